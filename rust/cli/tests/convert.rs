//! `calving convert`, `verify` and `cat` on the real broker fixtures, with the embedded default
//! (local warehouse, SQLite catalog), and the table read by independent engines.
//!
//! Every fixture partition is converted twice (the second run re-uploads every offset under new
//! segment ids, as Kafka does after a failed copy or a leader change). Then `calving verify`
//! must pass, and pyiceberg and DuckDB must return exactly the records Kafka's own parser reads
//! from the original segments (`KafkaRecordsDump`): same count (no duplicate), offsets,
//! timestamps, keys, values and headers.

use std::path::Path;
use std::process::{Command, Output};

use calving_test_utils::{fixture_files, fixture_names, fixtures_dir, kafka_records_dump, read_table};
use serde_json::json;

fn calving(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_calving")).current_dir(dir).args(args).output().expect("run calving");
    assert!(
        out.status.success(),
        "calving {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn topic_id(fixture: &str) -> String {
    // 22 characters of Kafka's base64 alphabet ending in 'A' (the padding bits must be zero).
    let mut id: String = format!("{fixture:A<21}").chars().take(21).map(|c| if c.is_ascii_alphanumeric() { c } else { 'x' }).collect();
    id.push('A');
    id
}


#[test]
fn converted_tables_read_back_exactly_in_pyiceberg_and_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse");
    let fixtures: Vec<String> = fixture_names().into_iter().filter(|n| !n.starts_with("legacy")).collect();
    for name in &fixtures {
        let path = fixtures_dir().join(name);
        let topic = format!("fx-{name}");
        let id = topic_id(name);
        let args = ["--topic", topic.as_str(), "--partition", "0", "--topic-id", id.as_str(), path.to_str().unwrap()];
        for _ in 0..2 {
            let mut a = vec!["convert", "--warehouse", "warehouse"];
            a.extend(args);
            calving(dir.path(), &a);
        }
        let mut v = vec!["verify", "--warehouse", "warehouse"];
        v.extend(args);
        let out = calving(dir.path(), &v);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("verified 4 stored segment(s)"), "{text}");
    }
    for name in &fixtures {
        // What Kafka's record parser reads from the original segments: data records only.
        let logs = fixture_files(name, "log");
        let mut expected = Vec::new();
        let mut control = false;
        for v in kafka_records_dump(&logs) {
            match v["type"].as_str() {
                Some("batch") => control = v["isControl"] == true,
                Some("record") if !control => expected.push(json!({
                    "topic_id": topic_id(name),
                    "partition": 0,
                    "offset": v["offset"],
                    "timestamp": v["timestamp"].as_i64().unwrap() * 1000,
                    "key": v["key"],
                    "value": v["value"],
                    "headers": v["headers"],
                })),
                _ => {}
            }
        }
        assert!(expected.len() > 40, "{name}: {} records", expected.len());
        let table = format!("kafka.fx-{name}");
        for engine in ["pyiceberg", "duckdb"] {
            let rows = read_table(engine, &warehouse, &table);
            assert_eq!(rows.len(), expected.len(), "{engine} reads {} rows of {table}, Kafka {}", rows.len(), expected.len());
            for (r, e) in rows.iter().zip(&expected) {
                assert_eq!(r, e, "{engine}: {table} differs from Kafka's records");
            }
        }
    }
}

#[test]
fn cat_rebuilds_the_served_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixtures_dir().join("none");
    let id = topic_id("none");
    calving(dir.path(), &["convert", "--warehouse", "w", "--topic", "t", "--partition", "0", "--topic-id", &id, path.to_str().unwrap()]);
    calving(dir.path(), &["cat", "--warehouse", "w", "--topic", "t", "--start-offset", "0", "-o", "out.log"]);
    // Originally uncompressed: the rebuilt segment is the original, byte for byte.
    let original = std::fs::read(path.join("00000000000000000000.log")).unwrap();
    assert_eq!(std::fs::read(dir.path().join("out.log")).unwrap(), original);
    calving(dir.path(), &["cat", "--warehouse", "w", "--topic", "t", "--start-offset", "0", "--index", "leader-epoch", "-o", "epoch"]);
    assert!(std::fs::read_to_string(dir.path().join("epoch")).unwrap().starts_with("0\n"));

    // `calving sweep`: a file no copy committed goes (after the grace period); nothing else does.
    let data = walk_files(&dir.path().join("w/kafka/t/data"));
    let stray = data[0].parent().unwrap().join("stray.parquet");
    std::fs::write(&stray, b"died mid-copy").unwrap();
    let sweep = |extra: &[&str]| {
        let mut a = vec!["sweep", "--warehouse", "w", "--topic", "t"];
        a.extend(extra);
        String::from_utf8(calving(dir.path(), &a).stdout).unwrap()
    };
    let kept = sweep(&[]);
    assert!(kept.contains("0 orphans") && kept.contains("1 unreferenced but younger"), "{kept}");
    let dry = sweep(&["--older-than-secs", "0", "--dry-run"]);
    assert!(dry.contains("orphan ") && dry.contains("stray.parquet") && stray.exists(), "{dry}");
    let done = sweep(&["--older-than-secs", "0"]);
    assert!(done.contains("1 orphans") && !stray.exists(), "{done}");
    assert!(data.iter().all(|f| f.exists()));
    calving(dir.path(), &["verify", "--warehouse", "w", "--topic", "t", "--partition", "0", "--topic-id", &id, path.to_str().unwrap()]);
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
