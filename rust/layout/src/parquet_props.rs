//! Parquet writer settings of Calving's data files, sized for both worlds (DESIGN.md, "Table
//! layout"): large files and row groups for analytics, small pages with the page index so a
//! Kafka fetch decodes about a fetch's worth of rows.
//!
//! - zstd level 1 everywhere (the table properties may override the codec and level).
//! - `kafka.offset` and `kafka.timestamp`: delta encoding, no dictionary, page-level statistics
//!   (the page index the fetch path uses to select rows by offset, and time filters).
//! - `value`, `kafka.key` and header values: no statistics (min/max of opaque bytes helps no
//!   reader and costs time); no dictionary for `value`.
//! - Pages of at most 256 KiB and 1,024 rows, row groups of at most 48 MiB (what keeps a convert
//!   under 256 MiB of memory: the writer holds one row group of compressed pages until it is
//!   flushed). The row cap is for fetches: a 1 MiB fetch reads ~1,000 rows of 1 KiB records
//!   (~2,000 of an lz4 segment's), and Parquet decompresses a whole page to skip into it; without
//!   the cap a page of a small column (key, headers, a typed table's ~30 leaf columns) holds up
//!   to Parquet's default 20,000 rows. 1,024 is the smallest cap the writer keeps (it checks the
//!   limits every 1,024 rows it is given); it took a page's waste from 2,048 rows to 1,024 at no
//!   cost in table size (BENCHMARKS.md, "Session 17" and "Session 18").

use parquet::basic::{Compression as ParquetCompression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

/// Largest data page.
pub const DATA_PAGE_BYTES: usize = 256 * 1024;
/// Largest row group.
pub const ROW_GROUP_BYTES: usize = 48 << 20;
/// Most rows in a data page (the writer checks it every 1,024 rows written).
pub const DATA_PAGE_ROWS: usize = 1024;

fn path(p: &[&str]) -> ColumnPath {
    ColumnPath::new(p.iter().map(|s| s.to_string()).collect())
}

/// Writer properties for a data file; `zstd_level` is the table's
/// `write.parquet.compression-level` (default 1).
pub fn writer_properties(zstd_level: i32) -> WriterProperties {
    let zstd = ZstdLevel::try_new(zstd_level).unwrap_or_default();
    let offset = path(&["kafka", "offset"]);
    let timestamp = path(&["kafka", "timestamp"]);
    let value = path(&["value"]);
    let key = path(&["kafka", "key"]);
    let header_value = path(&["kafka", "headers", "list", "element", "value"]);
    WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(ParquetCompression::ZSTD(zstd))
        .set_data_page_size_limit(DATA_PAGE_BYTES)
        .set_data_page_row_count_limit(DATA_PAGE_ROWS)
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_column_statistics_enabled(offset.clone(), EnabledStatistics::Page)
        .set_column_statistics_enabled(timestamp.clone(), EnabledStatistics::Page)
        .set_column_dictionary_enabled(offset.clone(), false)
        .set_column_dictionary_enabled(timestamp.clone(), false)
        .set_column_encoding(offset, Encoding::DELTA_BINARY_PACKED)
        .set_column_encoding(timestamp, Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(value.clone(), false)
        .set_column_statistics_enabled(value, EnabledStatistics::None)
        .set_column_statistics_enabled(key, EnabledStatistics::None)
        .set_column_statistics_enabled(header_value, EnabledStatistics::None)
        .set_created_by(format!("calving {}", env!("CARGO_PKG_VERSION")))
        .build()
}
