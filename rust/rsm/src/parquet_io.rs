//! Reading rows back from data files: only the row groups and pages that hold the wanted offsets.
//!
//! Data files are sorted by offset within each segment's rows, and `kafka.offset` has page-level
//! statistics (see `calving_layout::parquet_props`). A fetch therefore picks the row groups whose
//! offset range overlaps the wanted one, then, with the page index, only the pages of rows that
//! can hold those offsets. An offset page holds up to 1,024 rows (the writer's row limit per page,
//! `calving_layout::parquet_props::DATA_PAGE_ROWS`: offsets delta-encode to almost nothing), more
//! than a fetch of large records wants, so the offsets of those pages are read first and the other
//! columns only for the rows whose offset is in the range (a row filter): the value pages read are
//! those of about the wanted bytes. File footers
//! (with the page index) are cached, so a fetch costs range reads of data pages and nothing else.

use std::collections::HashMap;
use std::ops::{Range, RangeInclusive};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use calving_storage::ObjectStorage;
use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{BooleanArray, RecordBatch};

/// An `AsyncFileReader` over one object of the warehouse.
#[derive(Clone)]
pub struct ObjectFileReader {
    storage: ObjectStorage,
    location: String,
    size: u64,
}

fn to_parquet(e: calving_storage::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { self.storage.get_range(&self.location, range).await.map_err(to_parquet) }.boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.storage.get_ranges(&self.location, &ranges).await.map_err(to_parquet) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let reader = ParquetMetaDataReader::new().with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Optional);
            let size = self.size;
            let md = reader.load_and_finish(self, size).await?;
            Ok(Arc::new(md))
        }
        .boxed()
    }
}

/// Reads rows by offset range from data files, caching their footers.
#[derive(Clone)]
pub struct RowReader {
    storage: ObjectStorage,
    footers: Arc<Mutex<HashMap<String, ArrowReaderMetadata>>>,
    max_footers: usize,
}

impl RowReader {
    pub fn new(storage: ObjectStorage, max_footers: usize) -> RowReader {
        RowReader { storage, footers: Arc::default(), max_footers }
    }

    async fn footer(&self, location: &str, size: u64) -> parquet::errors::Result<(ObjectFileReader, ArrowReaderMetadata)> {
        let mut reader = ObjectFileReader { storage: self.storage.clone(), location: location.to_string(), size };
        if let Some(md) = self.footers.lock().expect("footer cache").get(location).cloned() {
            return Ok((reader, md));
        }
        let options = ArrowReaderOptions::new().with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required);
        let md = ArrowReaderMetadata::load_async(&mut reader, options.clone()).await?;
        // Files other engines wrote (compaction by Spark…) read in Calving's Arrow types.
        let md = match calving_table::calving_arrow_schema(md.schema()) {
            Some(schema) => ArrowReaderMetadata::try_new(md.metadata().clone(), options.with_schema(Arc::new(schema)))?,
            None => md,
        };
        let mut cache = self.footers.lock().expect("footer cache");
        if cache.len() >= self.max_footers {
            cache.clear(); // simple bound; footers are cheap to reload
        }
        cache.insert(location.to_string(), md.clone());
        Ok((reader, md))
    }

    /// The rows of `location` whose `kafka.offset` lies in `offsets`, in file order: the `kafka`
    /// and `value` columns, or every column with `all_columns` (values in columns). With `only`,
    /// just the rows of that (topic id, partition): a file compacted by maintenance (Calving's or
    /// another engine's) may hold rows of several partitions.
    pub async fn read(
        &self,
        location: &str,
        size: u64,
        offsets: RangeInclusive<i64>,
        all_columns: bool,
        only: Option<(&str, i32)>,
    ) -> parquet::errors::Result<Vec<RecordBatch>> {
        let (reader, md) = self.footer(location, size).await?;
        let meta = md.metadata().clone();
        let schema = md.parquet_schema();
        let column = |name: &str| {
            (0..schema.num_columns())
                .find(|&i| schema.column(i).path().string() == name)
                .ok_or_else(|| ParquetError::General(format!("{location}: no {name} column")))
        };
        let offset_col = column("kafka.offset")?;
        let filter_cols = match only {
            Some(_) => vec![column("kafka.topic_id")?, column("kafka.partition")?, offset_col],
            None => vec![offset_col],
        };
        let only = only.map(|(t, p)| (t.to_string(), p));
        let roots: Vec<usize> = md
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| all_columns || f.name() == "kafka" || f.name() == "value")
            .map(|(i, _)| i)
            .collect();
        let (lo, hi) = (*offsets.start(), *offsets.end());
        let mut row_groups = Vec::new();
        let mut selectors: Vec<RowSelector> = Vec::new();
        for (rg_index, rg) in meta.row_groups().iter().enumerate() {
            let rows = rg.num_rows() as usize;
            let overlaps = match rg.column(offset_col).statistics() {
                Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
                    (Some(min), Some(max)) => *max >= lo && *min <= hi,
                    _ => true,
                },
                _ => true,
            };
            if !overlaps {
                continue;
            }
            row_groups.push(rg_index);
            let pages = meta
                .column_index()
                .and_then(|ci| ci.get(rg_index))
                .and_then(|c| c.get(offset_col))
                .zip(meta.offset_index().and_then(|oi| oi.get(rg_index)).and_then(|c| c.get(offset_col)));
            match pages {
                Some((ColumnIndexMetaData::INT64(index), locations)) => {
                    let locs = locations.page_locations();
                    for (p, loc) in locs.iter().enumerate() {
                        let first = loc.first_row_index as usize;
                        let end = locs.get(p + 1).map_or(rows, |n| n.first_row_index as usize);
                        let keep = match (index.min_value(p), index.max_value(p)) {
                            (Some(min), Some(max)) => *max >= lo && *min <= hi,
                            _ => true,
                        };
                        selectors.push(if keep { RowSelector::select(end - first) } else { RowSelector::skip(end - first) });
                    }
                }
                _ => selectors.push(RowSelector::select(rows)),
            }
        }
        if row_groups.is_empty() {
            return Ok(Vec::new());
        }
        let mask = ProjectionMask::roots(md.parquet_schema(), roots);
        // The predicate reads `kafka.offset` (and with `only` `kafka.topic_id` and
        // `kafka.partition`): a batch of one struct column.
        let in_range = ArrowPredicateFn::new(ProjectionMask::leaves(md.parquet_schema(), filter_cols), move |batch: RecordBatch| {
            let kafka = batch.column(0).as_struct();
            let missing = |name: &str| arrow_schema::ArrowError::SchemaError(format!("no kafka.{name} in the predicate's columns"));
            let offsets = kafka.column_by_name("offset").ok_or_else(|| missing("offset"))?.as_primitive::<Int64Type>();
            let Some((topic_id, partition)) = &only else {
                return Ok(offsets.values().iter().map(|&o| Some(lo <= o && o <= hi)).collect::<BooleanArray>());
            };
            let topics = kafka.column_by_name("topic_id").ok_or_else(|| missing("topic_id"))?.as_string::<i32>();
            let partitions = kafka.column_by_name("partition").ok_or_else(|| missing("partition"))?.as_primitive::<Int32Type>();
            Ok((0..batch.num_rows())
                .map(|i| {
                    let o = offsets.value(i);
                    Some(lo <= o && o <= hi && partitions.value(i) == *partition && topics.value(i) == topic_id.as_str())
                })
                .collect::<BooleanArray>())
        });
        let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, md)
            .with_row_groups(row_groups)
            .with_row_selection(RowSelection::from(selectors))
            .with_row_filter(RowFilter::new(vec![Box::new(in_range)]))
            .with_projection(mask)
            .with_batch_size(8192)
            .build()?;
        stream.try_collect().await
    }
}
