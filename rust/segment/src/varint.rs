//! Zig-zag varints as Kafka writes them inside v2 records (`ByteUtils.writeVarint`/`writeVarlong`).
//!
//! Readers return `None` on truncation or on an encoding longer than the type allows; the record
//! parser turns that into a typed error with the record's index.

/// Reads a zig-zag varint (int32) from `buf` at `*pos`, advancing `*pos`.
#[inline]
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i32> {
    let mut value: u32 = 0;
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        if shift == 28 && b & 0xf0 != 0 {
            return None; // more than 32 bits
        }
        value |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((value >> 1) as i32) ^ -((value & 1) as i32));
        }
        shift += 7;
    }
}

/// Reads a zig-zag varlong (int64) from `buf` at `*pos`, advancing `*pos`.
#[inline]
pub fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        if shift == 63 && b & 0xfe != 0 {
            return None; // more than 64 bits
        }
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
        shift += 7;
    }
}

/// Appends a zig-zag varint (int32), minimal length as Kafka writes it.
#[inline]
pub fn write_varint(out: &mut Vec<u8>, value: i32) {
    let mut v = ((value << 1) ^ (value >> 31)) as u32;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a zig-zag varlong (int64), minimal length as Kafka writes it.
#[inline]
pub fn write_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encoded size of a zig-zag varint.
#[inline]
pub fn varint_size(value: i32) -> usize {
    let v = ((value << 1) ^ (value >> 31)) as u32;
    (32 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Encoded size of a zig-zag varlong.
#[inline]
pub fn varlong_size(value: i64) -> usize {
    let v = ((value << 1) ^ (value >> 63)) as u64;
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings_match_kafka() {
        // Values and bytes from Kafka's ByteUtilsTest (zig-zag: 0->0, -1->1, 1->2, -64->127, 64->128 1).
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for (v, bytes) in cases {
            let mut out = Vec::new();
            write_varint(&mut out, *v);
            assert_eq!(&out, bytes, "encoding {v}");
            assert_eq!(varint_size(*v), bytes.len());
            let mut pos = 0;
            assert_eq!(read_varint(bytes, &mut pos), Some(*v));
            assert_eq!(pos, bytes.len());
        }
    }

    #[test]
    fn overlong_and_truncated_are_rejected() {
        let mut pos = 0;
        assert_eq!(read_varint(&[0x80, 0x80], &mut pos), None);
        let mut pos = 0;
        assert_eq!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f], &mut pos), None);
        let mut pos = 0;
        assert_eq!(read_varlong(&[0xff; 11], &mut pos), None);
    }

    proptest! {
        #[test]
        fn varint_roundtrip(v: i32) {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_size(v));
            let mut pos = 0;
            prop_assert_eq!(read_varint(&out, &mut pos), Some(v));
        }

        #[test]
        fn varlong_roundtrip(v: i64) {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            prop_assert_eq!(out.len(), varlong_size(v));
            let mut pos = 0;
            prop_assert_eq!(read_varlong(&out, &mut pos), Some(v));
        }
    }
}
