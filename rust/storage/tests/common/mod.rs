//! Shared pieces of this crate's integration tests: a real S3-protocol server (moto's server
//! mode), a GCS emulator (fake-gcs-server) and Azurite, from calving-test-utils, on loopback;
//! log capture, unique names.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use calving_storage::StorageConfig;

pub const MIB: usize = 1024 * 1024;
/// Size of the multipart uploads in the conformance runs: 3 parts of the default 8 MiB.
pub const LARGE: usize = 20 * MIB;

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Logs from `RUST_LOG` to the test output, once per process.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Everything logged (every target, TRACE and up) while the guard lives, on this thread.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The process-wide capture: installed as the global subscriber on first use. (A
    /// thread-local `set_default` misses events whose callsites other tests' threads already
    /// registered as uninteresting, so the capture must be global, in its own test binary.)
    pub fn global() -> CapturedLogs {
        static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = CapturedLogs::default();
            let sink = logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || sink.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this binary");
            logs
        })
        .clone()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[allow(unused_imports)]
pub use calving_test_utils::s3::{closed_port, S3Server};

/// An S3 configuration of a server.
pub trait S3Config {
    /// The configuration of `s3://bucket/prefix` on this server, as for any S3-compatible store.
    fn config(&self, bucket: &str, prefix: &str, extra: &[(&str, &str)]) -> StorageConfig;
}

impl S3Config for S3Server {
    fn config(&self, bucket: &str, prefix: &str, extra: &[(&str, &str)]) -> StorageConfig {
        let p = with_extra(S3Server::s3_props(&self.endpoint), extra);
        StorageConfig::new(&format!("s3://{bucket}/{prefix}"), &p).expect("S3 config")
    }
}

#[allow(unused_imports)]
pub use calving_test_utils::azure::AzuriteServer;
#[allow(unused_imports)]
pub use calving_test_utils::gcs::GcsServer;

/// The configuration of a warehouse on an emulator, as for the real service.
pub trait EmulatorConfig {
    /// The configuration of `<prefix>` in `bucket` (a bucket or container) on this emulator.
    fn config(&self, bucket: &str, prefix: &str, extra: &[(&str, &str)]) -> StorageConfig;
}

fn with_extra(
    base: Vec<(&'static str, String)>,
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut p: HashMap<String, String> =
        base.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    p.extend(props(extra));
    p
}

impl EmulatorConfig for GcsServer {
    /// `gs://bucket/prefix`, `gcs.service.host` pointing at the emulator, no auth.
    fn config(&self, bucket: &str, prefix: &str, extra: &[(&str, &str)]) -> StorageConfig {
        let p = with_extra(GcsServer::gcs_props(&self.endpoint), extra);
        StorageConfig::new(&format!("gs://{bucket}/{prefix}"), &p).expect("GCS config")
    }
}

impl EmulatorConfig for AzuriteServer {
    /// `abfs://container@devstoreaccount1.dfs.core.windows.net/prefix` with Iceberg Java's
    /// shared-key and per-account endpoint keys.
    fn config(&self, container: &str, prefix: &str, extra: &[(&str, &str)]) -> StorageConfig {
        let p = with_extra(AzuriteServer::adls_props(&self.endpoint), extra);
        let warehouse = format!(
            "abfs://{container}@{}.dfs.core.windows.net/{prefix}",
            calving_test_utils::azure::ACCOUNT
        );
        StorageConfig::new(&warehouse, &p).expect("Azure config")
    }
}
