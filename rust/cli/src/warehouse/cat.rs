//! `calving cat`: rebuild a stored segment (or one of its indexes) from the table, as the broker
//! would read it through `fetchLogSegment`/`fetchIndex`.

use std::io::Write;
use std::path::PathBuf;

use calving_rsm::{IndexType, KafkaUuid};
use clap::{Args, ValueEnum};

use super::{WarehouseArgs, WarehouseError};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum IndexArg {
    Offset,
    Timestamp,
    ProducerSnapshot,
    Transaction,
    LeaderEpoch,
}

#[derive(Debug, Args)]
pub struct CatArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    #[arg(long)]
    pub topic: String,
    #[arg(long, default_value_t = 0)]
    pub partition: i32,
    /// The segment's base offset (the newest stored segment starting there).
    #[arg(long, conflicts_with = "segment_id")]
    pub start_offset: Option<i64>,
    /// The segment id as Kafka prints it.
    #[arg(long)]
    pub segment_id: Option<String>,
    /// Write this index instead of the segment.
    #[arg(long, value_enum)]
    pub index: Option<IndexArg>,
    /// Output file (default: stdout).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

pub fn run(args: CatArgs) -> Result<(), WarehouseError> {
    let rsm = args.warehouse.open()?;
    let wanted_id = match &args.segment_id {
        Some(s) => Some(KafkaUuid::parse(s).ok_or_else(|| WarehouseError::Usage(format!("{s:?} is not a segment id")))?),
        None => None,
    };
    let stored = rsm
        .list_segments(&args.topic)?
        .into_iter()
        .rev()
        .find(|s| {
            s.partition == args.partition
                && wanted_id.is_none_or(|id| s.segment_id == id)
                && args.start_offset.is_none_or(|o| s.start_offset == o)
        })
        .ok_or_else(|| WarehouseError::Usage(format!("no such stored segment of {}-{}", args.topic, args.partition)))?;
    let md = rsm.stored_segment_metadata(&args.topic, &stored)?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::fs::File::create(p).map_err(|source| WarehouseError::Io { path: p.clone(), source })?),
        None => Box::new(std::io::stdout().lock()),
    };
    let write_err = |source| WarehouseError::Io { path: args.output.clone().unwrap_or_else(|| "stdout".into()), source };
    match args.index {
        Some(i) => {
            let kind = match i {
                IndexArg::Offset => IndexType::Offset,
                IndexArg::Timestamp => IndexType::Timestamp,
                IndexArg::ProducerSnapshot => IndexType::ProducerSnapshot,
                IndexArg::Transaction => IndexType::Transaction,
                IndexArg::LeaderEpoch => IndexType::LeaderEpoch,
            };
            out.write_all(&rsm.fetch_index(&md, kind)?).map_err(write_err)?;
        }
        None => {
            let mut stream = rsm.fetch_log_segment(&md, 0, None)?;
            while let Some(chunk) = stream.next_chunk()? {
                out.write_all(chunk).map_err(write_err)?;
            }
        }
    }
    out.flush().map_err(write_err)
}
