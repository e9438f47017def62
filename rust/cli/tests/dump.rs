//! `calving segment dump` as an operator uses it, checked against Apache Kafka's own record
//! parser (`tests/oracle/KafkaRecordsDump.java`, which reads files with `FileRecords` and
//! `ensureValid()`), and on damaged segments.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use calving_test_utils::{fixture_files, fixture_names, kafka_records_dump};
use serde_json::Value;

fn calving(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_calving")).args(args).arg(file).output().expect("run calving")
}

fn dump_json(file: &Path) -> Vec<Value> {
    let out = calving(&["segment", "dump", "--json"], file);
    assert!(out.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn all_logs() -> Vec<PathBuf> {
    fixture_names().iter().flat_map(|n| fixture_files(n, "log")).collect()
}

/// Every field Kafka reports must be in ours with the same value (ours has a few more, such as
/// `lastSequence`). Kafka's `valid` is our `crcValid`.
fn assert_agrees(ours: &Value, kafka: &Value, context: &str) {
    for (k, v) in kafka.as_object().unwrap() {
        let ours_key = if k == "valid" { "crcValid" } else { k.as_str() };
        assert_eq!(&ours[ours_key], v, "{context}: field {k} differs\n  ours:  {ours}\n  kafka: {kafka}");
    }
}

#[test]
fn json_dump_agrees_with_kafka_record_parser() {
    let logs = all_logs();
    let kafka = kafka_records_dump(&logs);
    let mut kafka_by_file: Vec<Vec<Value>> = Vec::new();
    for v in kafka {
        match v["type"].as_str() {
            Some("file") => kafka_by_file.push(Vec::new()),
            Some("batch" | "record") => kafka_by_file.last_mut().unwrap().push(v),
            _ => {}
        }
    }
    assert_eq!(kafka_by_file.len(), logs.len());
    let (mut batches, mut records, mut headers, mut controls) = (0, 0, 0, 0);
    for (log, kafka) in logs.iter().zip(&kafka_by_file) {
        let ours = dump_json(log);
        assert_eq!(ours.len(), kafka.len(), "{}: {} lines, Kafka has {}", log.display(), ours.len(), kafka.len());
        for (i, (o, k)) in ours.iter().zip(kafka).enumerate() {
            assert_agrees(o, k, &format!("{} line {}", log.display(), i + 1));
            match k["type"].as_str().unwrap() {
                "batch" => batches += 1,
                _ => {
                    records += 1;
                    headers += k["headers"].as_array().unwrap().len();
                    controls += usize::from(k.get("control").is_some());
                }
            }
        }
    }
    assert!(batches > 50 && records > 500 && headers > 100 && controls > 2, "thin fixtures: {batches} batches, {records} records, {headers} headers, {controls} control records");
}

#[test]
fn human_dump_shows_every_record() {
    let log = &fixture_files("none", "log")[0];
    let json = dump_json(log);
    let out = calving(&["segment", "dump"], log);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().filter(|l| l.starts_with("batch ")).count(), json.iter().filter(|v| v["type"] == "batch").count());
    assert_eq!(text.lines().filter(|l| l.starts_with("  record ")).count(), json.iter().filter(|v| v["type"] == "record").count());
    let first = json.iter().find(|v| v["type"] == "record").unwrap();
    assert!(text.contains(&format!("record offset={} ts={}", first["offset"], first["timestamp"])));
}

#[test]
fn side_files_dump() {
    for name in fixture_names().iter().filter(|n| !n.starts_with("legacy")) {
        for ext in ["index", "timeindex", "snapshot"] {
            for f in fixture_files(name, ext) {
                let out = calving(&["segment", "dump", "--json"], &f);
                assert!(out.status.success(), "{}: {}", f.display(), String::from_utf8_lossy(&out.stderr));
            }
        }
    }
    let epochs = calving_test_utils::fixtures_dir().join("none/leader-epoch-checkpoint");
    let out = calving(&["segment", "dump", "--json"], &epochs);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first: Value = serde_json::from_str(String::from_utf8(out.stdout).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "leaderEpoch");
}

/// Copies a fixture, lets `damage` change it, and dumps the copy.
fn dump_damaged(fixture: &str, damage: impl FnOnce(&mut Vec<u8>, &[Value])) -> (PathBuf, Output, tempfile::TempDir) {
    let log = &fixture_files(fixture, "log")[0];
    let batches: Vec<Value> = dump_json(log).into_iter().filter(|v| v["type"] == "batch").collect();
    let mut bytes = std::fs::read(log).unwrap();
    damage(&mut bytes, &batches);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(log.file_name().unwrap());
    std::fs::write(&path, &bytes).unwrap();
    let out = calving(&["segment", "dump", "--json"], &path);
    (path, out, dir)
}

fn pos(batch: &Value) -> usize {
    batch["position"].as_u64().unwrap() as usize
}

#[test]
fn flipped_byte_shows_as_crc_mismatch() {
    let (_, out, _dir) = dump_damaged("none", |bytes, batches| {
        bytes[pos(&batches[2]) + 30] ^= 0x01; // inside baseTimestamp, covered by the CRC
    });
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let crc: Vec<bool> = lines.iter().filter(|v| v["type"] == "batch").map(|v| v["crcValid"].as_bool().unwrap()).collect();
    assert_eq!(crc.iter().filter(|v| !**v).count(), 1);
    assert!(!crc[2]);
}

#[test]
fn truncated_segment_names_file_and_position() {
    let mut cut_at = 0;
    let (path, out, _dir) = dump_damaged("gzip", |bytes, batches| {
        cut_at = pos(&batches[3]);
        bytes.truncate(cut_at + 30);
    });
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("{}: at byte {cut_at}: truncated", path.display())),
        "unexpected error: {err}"
    );
}

#[test]
fn corrupt_compressed_payload_is_a_decompression_error() {
    let mut at = 0;
    let (path, out, _dir) = dump_damaged("zstd", |bytes, batches| {
        at = pos(&batches[1]);
        for b in &mut bytes[at + 61..at + 69] {
            *b = 0xff; // zstd frame magic and header
        }
    });
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("{}: at byte {at}: zstd decompression failed", path.display())), "unexpected error: {err}");
}

#[test]
fn forged_length_is_rejected() {
    let mut at = 0;
    let (path, out, _dir) = dump_damaged("lz4", |bytes, batches| {
        at = pos(&batches[1]);
        bytes[at + 8..at + 12].copy_from_slice(&(-5i32).to_be_bytes());
    });
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("{}: at byte {at}: invalid log entry length -5", path.display())), "unexpected error: {err}");
}
