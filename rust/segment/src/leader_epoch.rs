//! The leader-epoch checkpoint (`LeaderEpochCheckpointFile`, `CheckpointFile.java`): UTF-8 text,
//! line 1 the version (`0`), line 2 the entry count, then `<epoch> <startOffset>` per line.
//! The broker hands `LogSegmentData.leaderEpochIndex` over in exactly this form; followers read it
//! back through `fetchIndex(LEADER_EPOCH)`, so the stored bytes are served as they came.

use crate::error::{ReadError, ReadErrorKind};

/// One entry: from `start_offset` on, `epoch` was the leader epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Parses a checkpoint. Position in errors is the byte offset of the failing line.
pub fn parse(bytes: &[u8]) -> Result<Vec<EpochEntry>, ReadError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ReadError::new(e.valid_up_to() as u64, ReadErrorKind::Malformed("leader-epoch checkpoint is not UTF-8".into()))
    })?;
    let mut lines = Vec::new();
    let mut at = 0usize;
    for line in text.split_inclusive('\n') {
        lines.push((at, line.trim_end_matches(['\n', '\r'])));
        at += line.len();
    }
    let bad = |at: usize, what: String| ReadError::new(at as u64, ReadErrorKind::Malformed(what));
    let mut it = lines.into_iter();
    let (at0, version) = it.next().ok_or_else(|| bad(0, "empty leader-epoch checkpoint".into()))?;
    if version.trim() != "0" {
        return Err(bad(at0, format!("unsupported leader-epoch checkpoint version {version:?}")));
    }
    let (at1, count) = it.next().ok_or_else(|| bad(text.len(), "leader-epoch checkpoint has no entry count".into()))?;
    let count: usize = count.trim().parse().map_err(|_| bad(at1, format!("bad entry count {count:?}")))?;
    let mut entries = Vec::new();
    for (at, line) in it {
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(epoch), Some(offset), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(at, format!("bad leader-epoch entry {line:?}")));
        };
        let epoch = epoch.parse().map_err(|_| bad(at, format!("bad epoch in {line:?}")))?;
        let start_offset = offset.parse().map_err(|_| bad(at, format!("bad start offset in {line:?}")))?;
        entries.push(EpochEntry { epoch, start_offset });
    }
    if entries.len() != count {
        return Err(bad(0, format!("leader-epoch checkpoint declares {count} entries, holds {}", entries.len())));
    }
    Ok(entries)
}

/// Writes a checkpoint as Kafka does (`\n` line ends).
pub fn encode(entries: &[EpochEntry]) -> String {
    let mut s = format!("0\n{}\n", entries.len());
    for e in entries {
        s.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_encodes() {
        let text = "0\n2\n0 0\n3 120\n";
        let entries = parse(text.as_bytes()).unwrap();
        assert_eq!(entries, vec![EpochEntry { epoch: 0, start_offset: 0 }, EpochEntry { epoch: 3, start_offset: 120 }]);
        assert_eq!(encode(&entries), text);
    }

    #[test]
    fn rejects_wrong_count_and_version() {
        assert!(parse(b"0\n3\n0 0\n").is_err());
        assert!(parse(b"1\n0\n").is_err());
        assert!(parse(b"0\n1\n0 x\n").is_err());
        assert!(parse(&[0xff, 0xfe]).is_err());
    }
}
