//! moto's S3 server (Python, `moto[server]` from PyPI, installed by `tests/install-deps.sh`) on a
//! free loopback port: the real S3-protocol server the storage and rsm suites run against
//! (DESIGN.md, "Real components in tests"). Killed when dropped, also on panic; it also exits by
//! itself when the test process is gone, or after 20 minutes.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use crate::{http_request, ServerProcess};

/// The moto version `tests/install-deps.sh` installs.
pub const MOTO_VERSION: &str = "5.2.1";
/// The credentials tests sign with (moto accepts any).
pub const ACCESS_KEY: &str = "calving-test-key";
pub const SECRET_KEY: &str = "calving-test-secret";

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

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// A running moto S3 server.
pub struct S3Server {
    process: ServerProcess,
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl S3Server {
    /// Starts the server and waits until it answers. Fails (never skips) when moto is missing.
    pub fn start() -> S3Server {
        let check = Command::new("python3")
            .args(["-c", "import moto, moto.server, flask, flask_cors; print(moto.__version__)"])
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
        let log = std::env::temp_dir().join(format!("calving-moto-{}-{port}.log", std::process::id()));
        let mut cmd = Command::new("python3");
        cmd.args(["-c", MOTO_LAUNCHER, &port.to_string()]);
        let ready = || http_request(port, "GET", "/", &[], "").is_ok_and(|(status, _)| status > 0);
        let process = ServerProcess::start("moto", cmd, log, None, "run tests/install-deps.sh", Duration::from_secs(60), ready);
        S3Server { process, port, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// What the server logged so far.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// One plain (unsigned) HTTP/1.1 request; returns the status and body.
    pub fn request(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        http_request(self.port, method, path, &[], body)
    }

    /// Creates a bucket with a path-style PUT.
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self.request("PUT", &format!("/{bucket}"), "").expect("create bucket");
        assert_eq!(status, 200, "create bucket {bucket}: {body}");
    }

    /// The storage keys (`s3.*`) that reach an S3-compatible store at `endpoint` (this
    /// server's, or a proxy's in front of it) with the test credentials, path-style.
    pub fn s3_props(endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("s3.endpoint", endpoint.to_string()),
            ("s3.region", "us-east-1".into()),
            ("s3.access-key-id", ACCESS_KEY.into()),
            ("s3.secret-access-key", SECRET_KEY.into()),
            ("s3.path-style-access", "true".into()),
            ("s3.disable-config-load", "true".into()),
            ("s3.disable-ec2-metadata", "true".into()),
        ]
    }
}
