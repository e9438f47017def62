//! Finding the segments of a broker partition directory (or of `.log` files) and what the
//! broker would hand a RemoteStorageManager for each: metadata and side files.
//!
//! A partition directory is `<topic>-<partition>` and holds `partition.metadata` (with the topic
//! id), the segments (`<base offset>.log` with `.index`, `.timeindex`, `.txnindex`), producer
//! snapshots (`<offset>.snapshot`) and `leader-epoch-checkpoint`. Only rolled segments are taken:
//! a segment is rolled when a later segment or a producer snapshot past its base offset exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use calving_rsm::{KafkaUuid, LogSegmentFiles, SegmentMetadata};
use calving_segment::{leader_epoch, LogEntry, LogReader};

use super::WarehouseError;

/// Identity given on the command line, overriding what the directory says.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SegmentIdentityArgs {
    /// The topic (default: from the directory name `<topic>-<partition>`).
    #[arg(long)]
    pub topic: Option<String>,
    /// The partition (default: from the directory name).
    #[arg(long)]
    pub partition: Option<i32>,
    /// The topic id as Kafka prints it (default: from `partition.metadata`).
    #[arg(long)]
    pub topic_id: Option<String>,
}

/// One segment to convert or verify.
#[derive(Debug, Clone)]
pub struct FoundSegment {
    pub metadata: SegmentMetadata,
    pub files: LogSegmentFiles,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WarehouseError + '_ {
    move |source| WarehouseError::Io { path: path.to_path_buf(), source }
}

fn offset_of(path: &Path) -> Option<i64> {
    path.file_stem()?.to_str()?.parse().ok()
}

fn files_with(dir: &Path, ext: &str) -> Result<Vec<(i64, PathBuf)>, WarehouseError> {
    let mut out: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .filter_map(|p| offset_of(&p).map(|o| (o, p)))
        .collect();
    out.sort();
    Ok(out)
}

/// The last offset and max timestamp in a `.log` file (batch headers only).
fn scan(log: &Path) -> Result<(Option<i64>, i64), WarehouseError> {
    let mut reader = LogReader::open(log)?;
    let (mut last, mut max_ts) = (None, -1i64);
    while let Some(entry) = reader.next_entry()? {
        match entry {
            LogEntry::Batch(b) => {
                last = Some(b.header.last_offset());
                max_ts = max_ts.max(b.header.max_timestamp);
            }
            LogEntry::Legacy(l) => {
                last = Some(l.offset);
                max_ts = max_ts.max(l.timestamp);
            }
        }
    }
    Ok((last, max_ts))
}

/// Every rolled segment under `paths` (partition directories or `.log` files).
pub fn discover(paths: &[PathBuf], id: &SegmentIdentityArgs) -> Result<Vec<FoundSegment>, WarehouseError> {
    let mut out = Vec::new();
    for path in paths {
        let (dir, only): (PathBuf, Option<PathBuf>) = if path.is_dir() {
            (path.clone(), None)
        } else {
            (path.parent().unwrap_or(Path::new(".")).to_path_buf(), Some(path.clone()))
        };
        let name = dir.canonicalize().map_err(io(&dir))?.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        let from_dir = name.rsplit_once('-').and_then(|(t, p)| Some((t.to_string(), p.parse::<i32>().ok()?)));
        let topic = id.topic.clone().or_else(|| from_dir.as_ref().map(|d| d.0.clone())).ok_or_else(|| {
            WarehouseError::Usage(format!("{}: not a <topic>-<partition> directory; pass --topic and --partition", dir.display()))
        })?;
        let partition = id.partition.or(from_dir.as_ref().map(|d| d.1)).ok_or_else(|| {
            WarehouseError::Usage(format!("{}: not a <topic>-<partition> directory; pass --partition", dir.display()))
        })?;
        let topic_id = match &id.topic_id {
            Some(t) => t.clone(),
            None => {
                let meta = dir.join("partition.metadata");
                let text = std::fs::read_to_string(&meta).map_err(|_| {
                    WarehouseError::Usage(format!("{}: no partition.metadata; pass --topic-id", dir.display()))
                })?;
                text.lines()
                    .find_map(|l| l.strip_prefix("topic_id:").map(|v| v.trim().to_string()))
                    .ok_or_else(|| WarehouseError::Usage(format!("{}: no topic_id line", meta.display())))?
            }
        };
        let topic_id = KafkaUuid::parse(&topic_id)
            .ok_or_else(|| WarehouseError::Usage(format!("topic id {topic_id:?} is not a Kafka UUID (22 base64 characters)")))?;
        let logs = files_with(&dir, "log")?;
        let snapshots = files_with(&dir, "snapshot")?;
        let epochs_path = dir.join("leader-epoch-checkpoint");
        let epochs = match std::fs::read(&epochs_path) {
            Ok(b) => leader_epoch::parse(&b).map_err(|e| e.in_file(&epochs_path))?,
            Err(_) => Vec::new(),
        };
        for (i, (base, log)) in logs.iter().enumerate() {
            if only.as_ref().is_some_and(|o| o.file_name() != log.file_name()) {
                continue;
            }
            let next = logs.get(i + 1).map(|(b, _)| *b);
            let snapshot = match next {
                Some(n) => snapshots.iter().find(|(o, _)| *o == n),
                None => snapshots.iter().find(|(o, _)| *o > *base),
            };
            let Some((_, snapshot)) = snapshot else {
                tracing::info!(log = %log.display(), "skipping the active segment (no producer snapshot after it)");
                continue;
            };
            let (last, max_ts) = scan(log)?;
            let end = match next {
                Some(n) => n - 1,
                None => last.unwrap_or(*base),
            };
            let kept: Vec<_> = epochs.iter().copied().filter(|e| e.start_offset <= end).collect();
            let txn = log.with_extension("txnindex");
            let size = std::fs::metadata(log).map_err(io(log))?.len();
            out.push(FoundSegment {
                metadata: SegmentMetadata {
                    topic: topic.clone(),
                    topic_id,
                    partition,
                    segment_id: KafkaUuid::random(),
                    start_offset: *base,
                    end_offset: end,
                    max_timestamp_ms: max_ts,
                    segment_size: size,
                    leader_epochs: kept.iter().map(|e| (e.epoch, e.start_offset)).collect::<BTreeMap<_, _>>(),
                },
                files: LogSegmentFiles {
                    log: log.clone(),
                    offset_index: log.with_extension("index"),
                    time_index: log.with_extension("timeindex"),
                    txn_index: txn.exists().then_some(txn),
                    producer_snapshot: snapshot.clone(),
                    leader_epoch: leader_epoch::encode(&kept).into_bytes(),
                },
            });
        }
    }
    Ok(out)
}
