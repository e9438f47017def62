//! The Confluent wire format: how a serializer that uses a Schema Registry frames a value.
//!
//! ```text
//! byte 0      magic byte, always 0
//! bytes 1..5  schema id, 4-byte big-endian signed int (Java `int`; ids are positive)
//! bytes 5..   the payload: for Avro, the binary encoding of one datum with that writer schema
//! ```
//!
//! Confluent's `AbstractKafkaSchemaSerDe.MAGIC_BYTE` / `idSize = 4`. Protobuf payloads also carry
//! message indexes after the id; this crate reads Avro only, so the payload is everything after
//! byte 5.

use thiserror::Error;

/// The magic byte of the Confluent wire format.
pub const MAGIC_BYTE: u8 = 0;

/// Bytes before the payload: the magic byte and the 4-byte schema id.
pub const HEADER_LEN: usize = 5;

/// A Schema Registry schema id as serializers write it (a Java `int`).
pub type SchemaId = i32;

/// One value in the Confluent wire format, borrowing the record's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed<'a> {
    /// The writer schema's id in the registry.
    pub schema_id: SchemaId,
    /// The serialized datum (for Avro: its binary encoding, no container header).
    pub payload: &'a [u8],
}

/// Why bytes are not a Confluent-framed value. Such a value goes to the raw fallback.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// Fewer than the 5 header bytes.
    #[error("value of {len} bytes is shorter than the 5-byte Confluent header")]
    TooShort {
        /// The value's length in bytes.
        len: usize,
    },
    /// The first byte is not the magic byte 0 (not written by a Schema Registry serializer).
    #[error("value starts with byte {found:#04x}, not the Confluent magic byte 0")]
    BadMagic {
        /// The first byte of the value.
        found: u8,
    },
    /// The schema id is negative: no registry hands out such ids.
    #[error("negative schema id {id}")]
    NegativeId {
        /// The id as read.
        id: SchemaId,
    },
}

/// Splits a value into its schema id and payload.
pub fn parse(value: &[u8]) -> Result<Framed<'_>, WireError> {
    if value.len() < HEADER_LEN {
        return Err(WireError::TooShort { len: value.len() });
    }
    if value[0] != MAGIC_BYTE {
        return Err(WireError::BadMagic { found: value[0] });
    }
    let schema_id = SchemaId::from_be_bytes([value[1], value[2], value[3], value[4]]);
    if schema_id < 0 {
        return Err(WireError::NegativeId { id: schema_id });
    }
    Ok(Framed {
        schema_id,
        payload: &value[HEADER_LEN..],
    })
}

/// Appends a framed value to `out`: magic byte, schema id, payload.
pub fn write(schema_id: SchemaId, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(HEADER_LEN + payload.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_header_and_payload() {
        let v = [0u8, 0, 0, 1, 2, 0xaa, 0xbb];
        let f = parse(&v).unwrap();
        assert_eq!(f.schema_id, 258);
        assert_eq!(f.payload, &[0xaa, 0xbb]);
        // An empty payload is legal framing (e.g. a record with no fields).
        assert_eq!(parse(&[0, 0, 0, 0, 7]).unwrap().payload, &[] as &[u8]);
    }

    #[test]
    fn rejects_what_is_not_framed() {
        assert_eq!(parse(&[]), Err(WireError::TooShort { len: 0 }));
        assert_eq!(parse(&[0, 0, 0, 1]), Err(WireError::TooShort { len: 4 }));
        assert_eq!(
            parse(b"{\"a\":1}"),
            Err(WireError::BadMagic { found: b'{' })
        );
        assert_eq!(
            parse(&[0, 0xff, 0xff, 0xff, 0xff]),
            Err(WireError::NegativeId { id: -1 })
        );
    }

    proptest! {
        #[test]
        fn write_then_parse(id in 0..=i32::MAX, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            write(id, &payload, &mut out);
            let f = parse(&out).unwrap();
            prop_assert_eq!(f.schema_id, id);
            prop_assert_eq!(f.payload, &payload[..]);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = parse(&bytes);
        }
    }
}
