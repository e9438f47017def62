//! Shared pieces of this crate's integration tests: a real S3-protocol server (moto's server
//! mode) on loopback, log capture, unique names.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
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

/// The moto version tests/install-deps.sh installs.
pub const MOTO_VERSION: &str = "5.2.1";

/// Runs moto's server; it also exits by itself when this test process is gone, or after 20 minutes.
const MOTO_LAUNCHER: &str = r#"
import os, sys, threading, time
parent = os.getppid()
started = time.time()
def watch():
    while True:
        if os.getppid() != parent or time.time() - started > 1200:
            os._exit(0)
        time.sleep(0.5)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"#;

/// moto's S3 server on a free loopback port, killed when dropped (also on panic).
pub struct S3Server {
    child: Child,
    pub port: u16,
    pub endpoint: String,
    log: tempfile::NamedTempFile,
}

impl S3Server {
    /// Starts the server and waits until it answers. Fails (never skips) when moto is missing.
    pub fn start() -> S3Server {
        let check = Command::new("python3")
            .args([
                "-c",
                "import moto, moto.server, flask, flask_cors; print(moto.__version__)",
            ])
            .output();
        match check {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "moto's S3 server is not installed ({}): run tests/install-deps.sh (it installs \"moto[server]=={MOTO_VERSION}\")",
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("import failed")
            ),
            Err(e) => panic!("python3 not found ({e}): install Python 3, then run tests/install-deps.sh"),
        }
        let port = closed_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("python3")
            .args(["-c", MOTO_LAUNCHER, &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start moto");
        let mut server = S3Server {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "moto exited ({status}) before answering:\n{}",
                    server.log_text()
                );
            }
            if server
                .request("GET", "/", "")
                .is_ok_and(|(status, _)| status > 0)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "moto did not answer on port {port} within 60 s:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(self.log.path()).and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    /// One plain (unsigned) HTTP/1.1 request; returns the status and body.
    pub fn request(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line)?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        Ok((status, rest))
    }

    /// Creates a bucket with a path-style PUT.
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self
            .request("PUT", &format!("/{bucket}"), "")
            .expect("create bucket");
        assert_eq!(status, 200, "create bucket {bucket}: {body}");
    }

    /// The configuration of `s3://bucket/prefix` on this server, as for any S3-compatible store.
    pub fn config(&self, bucket: &str, prefix: &str, extra: &[(&str, &str)]) -> StorageConfig {
        let mut p = props(&[
            ("s3.endpoint", &self.endpoint),
            ("s3.region", "us-east-1"),
            ("s3.access-key-id", "calving-test-key"),
            ("s3.secret-access-key", "calving-test-secret"),
            ("s3.path-style-access", "true"),
            ("s3.disable-config-load", "true"),
            ("s3.disable-ec2-metadata", "true"),
        ]);
        p.extend(props(extra));
        StorageConfig::new(&format!("s3://{bucket}/{prefix}"), &p).expect("S3 config")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
