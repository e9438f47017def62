//! # calving-schema: typed values from a Schema Registry, losslessly
//!
//! What a topic's values become when they carry a schema: Iceberg columns, with the guarantee
//! that every original byte can be given back to Kafka.
//!
//! - [`wire`]: the Confluent wire format (magic byte 0, 4-byte big-endian schema id, payload).
//! - [`registry`]: a Confluent-compatible Schema Registry client (HTTP(S), basic auth, one
//!   request per new schema id, bounded waits, errors by what the caller does). The only async
//!   part of the crate.
//! - [`avro`]: Avro writer schemas → Iceberg types, and [`avro::evolve`]: a writer schema merged
//!   into a table's schema with field ids stable by name path.
//! - [`decode`]: Avro binary → Arrow columns, with the lossless check.
//! - [`transcode`], [`protobuf`], [`json`]: Protobuf and JSON Schema writers seen as Avro.
//! - [`synth`]: deterministic ~1 KiB orders (Avro written by apache-avro, Protobuf, JSON), for
//!   benchmarks.
//! - [`encode`]: Arrow columns → Avro binary, the way back when serving Kafka (byte-identical for
//!   every value [`decode`] accepted).
//!
//! ## Design
//!
//! **Lossless first.** A value becomes columns only if re-encoding those column values with its
//! writer schema gives back exactly its bytes; otherwise its row keeps the bytes in the raw
//! fallback column (the caller's) and its value columns are null. So a consumer can always be
//! served the byte-identical value: from the raw column, or by re-encoding the columns with the
//! writer schema whose id the row records. [`decode`]'s module doc lists what breaks
//! byte-identity and how each case is caught.
//!
//! **Our own Avro decoder.** apache-avro parses schemas; values are decoded by [`decode`] itself,
//! in one pass over the bytes straight into the column builders, checking on the way that every
//! part is in the canonical form Java's `BinaryEncoder` writes (apache-avro, for one, writes a
//! decimal's bytes as it was given them, minimal or not) instead of re-encoding. The first
//! implementation (decode a value tree, re-encode it, compare, append) is kept for tests as the
//! oracle the property tests compare it with; apache-avro writes their inputs, so the
//! implementations check each other. Measured in a release build (`tests/throughput.rs`, on a
//! shared 2-vCPU machine, so figures move by a third between runs): the benchmark's ~1 KiB orders
//! decode into columns at 360–575 MiB/s (about 1.7–2.7 µs a value; the re-encoding
//! implementation: 77–99 MiB/s, 10–12 µs), 113-byte order-like values about 6 times as fast as
//! apache-avro's `from_avro_datum` alone (which only builds its `Value`).
//!
//! **Errors by what the caller does.** Registry errors separate "the registry says no usable
//! schema" (raw fallback) from "no answer" (fail the copy retriable): a registry outage never
//! produces a degraded table. Decode outcomes are a [`decode::Fallback`] reason per value.
//!
//! **Iceberg types from iceberg-rust.** Column types are `iceberg::spec` types and the Arrow
//! arrays follow `iceberg::arrow::schema_to_arrow_schema` exactly (field ids included), so the
//! arrays go straight into iceberg-rust's Parquet writer.
//!
//! **Protobuf and JSON Schema as Avro.** [`transcode`]: a writer schema of either compiles
//! ([`protobuf`], [`json`]) to an Avro schema of the same shape and a transcoder between its
//! bytes and that schema's datums, so typing, evolution, decoding and re-encoding are the Avro
//! path's; a value goes to columns only if transcoding back gives its bytes.
//!
//! Used by calving-layout (`typed`: rows with value columns and the raw fallback; `served`:
//! re-encoding) and calving-rsm (modes, registry lookups, schema-evolution commits through
//! calving-table).

pub mod avro;
pub mod decode;
pub mod encode;
pub mod json;
pub mod protobuf;
pub mod registry;
pub mod synth;
pub mod transcode;
pub mod wire;

pub use avro::{evolve, Evolution, FieldConflict, SchemaError, WriterSchema};
pub use decode::{Decoder, Fallback, ValueColumns};
pub use encode::{EncodeError, RowEncoder};
pub use registry::{RegistryConfig, RegistryError, SchemaRegistry};
pub use wire::SchemaId;
