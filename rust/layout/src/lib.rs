//! # calving-layout: Kafka records as table rows, and back
//!
//! Pure (no I/O): what a segment becomes in the table and in its sidecar, and how the bytes Kafka
//! reads are rebuilt from them.
//!
//! - [`schema`]: Calving's columns, found by name in the table's schema.
//! - [`rows`]: records ⇄ Arrow columns.
//! - [`typed`]: schema modes: a value's Avro fields as columns, the raw fallback, the writer
//!   schemas a segment's rows use (decoding and re-encoding by calving-schema).
//! - [`sidecar`]: everything Kafka needs that is not a record.
//! - [`served`]: the served layout, version 1: which bytes `fetchLogSegment` returns for a segment
//!   and the offset and time indexes that describe them.
//! - [`convert`]: one pass over a segment producing rows and the sidecar.
//! - [`parquet_props`]: the Parquet writer settings of data files.

pub mod convert;
pub mod error;
pub mod parquet_props;
pub mod rows;
pub mod served;
pub mod schema;
pub mod sidecar;
pub mod typed;

pub use error::LayoutError;

/// Kafka's text form of a topic id (`Uuid.toString()`): URL-safe base64 without padding.
pub fn topic_id_string(id: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    let mut bits = 0u32;
    let mut nbits = 0;
    for &b in id {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 0x3f) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 0x3f) as usize] as char);
    }
    out
}
