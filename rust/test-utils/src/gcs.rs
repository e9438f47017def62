//! A Google Cloud Storage emulator on a free loopback port: fake-gcs-server (v1.56.1's
//! `fakestorage`, from the Go module proxy) plus the XML API writes it lacks and object_store's
//! GCS client makes (plain and create-only PUTs, copies, XML multipart uploads), in
//! `rust/test-utils/fake-gcs` (see its `main.go`). Built with `go build` on first use in a test
//! process (incremental, so never stale) into `~/.cache/calving/bin/calving-fake-gcs`; the Go
//! modules come from `tests/install-deps.sh`. Killed when dropped, also on panic; it also exits
//! by itself when the test process is gone, or after 20 minutes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::s3::closed_port;
use crate::{http_request, repo_root, ServerProcess};

/// A running GCS emulator.
pub struct GcsServer {
    process: ServerProcess,
    pub port: u16,
    /// `http://127.0.0.1:PORT`: the service endpoint (`gcs.service.host`).
    pub endpoint: String,
}

/// `go`, from `PATH` or the standard install location.
fn go_command() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("go"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| PathBuf::from("/usr/local/go/bin/go"))
}

/// The emulator binary, built (or found up to date) once per test process.
fn emulator_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let source = repo_root().join("rust/test-utils/fake-gcs");
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let binary = home.join(".cache/calving/bin/calving-fake-gcs");
        let go = go_command();
        let out = Command::new(&go)
            .args(["build", "-o"])
            .arg(&binary)
            .arg(".")
            .current_dir(&source)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "the GCS emulator needs Go 1.26 ({} not found: {e}): install Go, then run tests/install-deps.sh",
                    go.display()
                )
            });
        assert!(
            out.status.success(),
            "building the GCS emulator ({}) failed; run tests/install-deps.sh (it fetches fake-gcs-server v1.56.1 \
             from the Go module proxy):\n{}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        binary
    })
}

impl GcsServer {
    /// Starts the emulator and waits until it answers. Fails (never skips) when it cannot be
    /// built or started.
    pub fn start() -> GcsServer {
        let binary = emulator_binary();
        let port = closed_port();
        let log = std::env::temp_dir().join(format!("calving-fake-gcs-{}-{port}.log", std::process::id()));
        let mut cmd = Command::new(binary);
        cmd.args(["-host", "127.0.0.1", "-port", &port.to_string()]);
        let ready = || http_request(port, "GET", "/storage/v1/b", &[], "").is_ok_and(|(status, _)| status == 200);
        let process = ServerProcess::start(
            "the GCS emulator",
            cmd,
            log,
            None,
            "run tests/install-deps.sh",
            Duration::from_secs(30),
            ready,
        );
        GcsServer { process, port, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// What the emulator logged so far.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// Creates a bucket through the JSON API.
    pub fn create_bucket(&self, bucket: &str) {
        let body = format!(r#"{{"name":"{bucket}"}}"#);
        let (status, answer) = http_request(
            self.port,
            "POST",
            "/storage/v1/b",
            &[("Content-Type", "application/json")],
            &body,
        )
        .expect("create bucket");
        assert_eq!(status, 200, "create bucket {bucket}: {answer}");
    }

    /// The storage keys (`gcs.*`, Iceberg's names) that reach a GCS-compatible service at
    /// `endpoint` without credentials, as Iceberg's own emulator tests do (`gcs.no-auth`).
    pub fn gcs_props(endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("gcs.service.host", endpoint.to_string()),
            ("gcs.no-auth", "true".into()),
            ("gcs.disable-config-load", "true".into()),
        ]
    }
}
