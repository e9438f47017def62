//! A real Confluent-compatible Schema Registry for the schema-mode tests: Apicurio Registry 3.0.9
//! from Maven Central (`tests/schema-registry/resolve.sh`), in-memory storage, on a free loopback
//! port, optionally behind HTTP basic auth, or serving HTTPS too with a certificate of a private CA
//! made for the run (`openssl`); killed when dropped (also on panic). Schemas are
//! registered through its Confluent API (`/apis/ccompat/v7`), as a Confluent serializer would.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::prelude::{Engine as _, BASE64_STANDARD};

use crate::repo_root;
use crate::s3::closed_port;

/// The path of Apicurio's Confluent-compatible API.
pub const CCOMPAT: &str = "/apis/ccompat/v7";

/// A running Apicurio Registry.
pub struct Registry {
    child: Child,
    /// `http://127.0.0.1:PORT` (no path).
    pub base: String,
    port: u16,
    log: PathBuf,
    auth: Option<(String, String)>,
    /// With TLS: `https://127.0.0.1:PORT` and the PEM file of the CA that signed its certificate.
    pub https: Option<(String, PathBuf)>,
}

impl Registry {
    /// Starts a registry (`name` tells its log file apart) and waits until it answers.
    pub fn start(name: &str) -> Registry {
        Self::launch(name, None, None)
    }

    /// Starts a registry whose API needs HTTP basic auth as `user`:`password`.
    pub fn start_with_basic_auth(name: &str, user: &str, password: &str) -> Registry {
        Self::launch(name, Some((user.to_string(), password.to_string())), None)
    }

    /// Starts a registry that also serves HTTPS ([`Registry::https`]) with a certificate for
    /// 127.0.0.1 signed by a CA made in `dir`.
    pub fn start_with_tls(name: &str, dir: &std::path::Path) -> Registry {
        Self::launch(name, None, Some(dir))
    }

    fn launch(name: &str, auth: Option<(String, String)>, tls: Option<&std::path::Path>) -> Registry {
        let script = repo_root().join("tests/schema-registry/resolve.sh");
        let out = Command::new(&script).output().unwrap_or_else(|e| panic!("cannot run {} ({e})", script.display()));
        assert!(
            out.status.success(),
            "{} failed (Apicurio Registry comes from Maven Central):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let jar = String::from_utf8(out.stdout).expect("jar path").lines().last().expect("jar path").to_string();
        let port = closed_port();
        let log = std::env::temp_dir().join(format!("calving-apicurio-{name}-{port}.log"));
        let mut cmd = Command::new("java");
        cmd.args(["-Xmx384m", "-XX:TieredStopAtLevel=1", "-Dquarkus.http.host=127.0.0.1"]).arg(format!("-Dquarkus.http.port={port}"));
        if let Some((user, password)) = &auth {
            cmd.args([
                "-Dquarkus.http.auth.basic=true",
                "-Dquarkus.security.users.embedded.plain-text=true",
                "-Dquarkus.http.auth.permission.calving.paths=/apis/*",
                "-Dquarkus.http.auth.permission.calving.policy=authenticated",
            ])
            .arg(format!("-Dquarkus.security.users.embedded.users.{user}={password}"));
        }
        let https = tls.map(|dir| {
            let (cert, key, ca) = certificates(dir);
            let ssl_port = closed_port();
            cmd.arg(format!("-Dquarkus.http.ssl-port={ssl_port}"))
                .arg(format!("-Dquarkus.http.ssl.certificate.files={}", cert.display()))
                .arg(format!("-Dquarkus.http.ssl.certificate.key-files={}", key.display()));
            (format!("https://127.0.0.1:{ssl_port}"), ca)
        });
        let file = std::fs::File::create(&log).expect("registry log file");
        let child = cmd
            .arg("-jar")
            .arg(&jar)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("registry log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start java ({e}): install a JDK 17"));
        let mut r = Registry { child, base: format!("http://127.0.0.1:{port}"), port, log, auth, https };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("the registry exited ({status}); its log:\n{}", r.log_text());
            }
            // Any HTTP answer (401 included) means the server is up.
            if r.http("GET", &format!("{CCOMPAT}/subjects"), None).is_ok() {
                eprintln!("Apicurio Registry up in {:?}", start.elapsed());
                return r;
            }
            assert!(start.elapsed() < Duration::from_secs(180), "the registry did not answer within 180 s; its log:\n{}", r.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The URL Calving is configured with (`schema.registry.url`).
    pub fn url(&self) -> String {
        format!("{}{CCOMPAT}", self.base)
    }

    /// What the registry logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Registers a schema under a subject through the Confluent API; its id.
    pub fn register(&self, subject: &str, schema: &str) -> i32 {
        self.register_with_references(subject, schema, serde_json::json!([]))
    }

    /// Registers a schema that refers to other subjects' schemas (`references`: Confluent's
    /// `[{"name", "subject", "version"}]`); its id.
    pub fn register_with_references(&self, subject: &str, schema: &str, references: serde_json::Value) -> i32 {
        self.register_typed(subject, "AVRO", schema, references)
    }

    /// Registers a schema of type `schema_type` (`AVRO`, `PROTOBUF`, `JSON`) with `references`;
    /// its id.
    pub fn register_typed(&self, subject: &str, schema_type: &str, schema: &str, references: serde_json::Value) -> i32 {
        let body = serde_json::json!({ "schema": schema, "schemaType": schema_type, "references": references }).to_string();
        let (status, text) = self
            .http("POST", &format!("{CCOMPAT}/subjects/{subject}/versions"), Some(&body))
            .unwrap_or_else(|e| panic!("register {subject}: {e}"));
        assert!((200..300).contains(&status), "register {subject}: {status} {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("register {subject}: {e}: {text}"));
        v["id"].as_i64().unwrap_or_else(|| panic!("register {subject}: no id in {text}")) as i32
    }

    /// One HTTP/1.1 request (with the basic auth the registry was started with); the status
    /// and the body (de-chunked).
    fn http(&self, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n", self.port);
        if let Some((user, password)) = &self.auth {
            head.push_str(&format!("Authorization: Basic {}\r\n", BASE64_STANDARD.encode(format!("{user}:{password}"))));
        }
        if let Some(b) = body {
            head.push_str(&format!("Content-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(body.unwrap_or("").as_bytes())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw);
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not an HTTP response: {text:?}"));
        let (headers, rest) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
        let status = headers.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let chunked = headers.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked"));
        Ok((status, if chunked { dechunk(rest) } else { rest.to_string() }))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private CA and a server certificate for 127.0.0.1 it signed, made with `openssl` in `dir`:
/// (certificate, key, CA certificate), PEM files.
fn certificates(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run openssl ({e}): run tests/install-deps.sh"));
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::write(dir.join("server.ext"), "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n").expect("write server.ext");
    run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=calving test CA"]);
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    run(&[
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2",
        "-extfile", "server.ext",
    ]);
    (dir.join("server.pem"), dir.join("server.key"), dir.join("ca.pem"))
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}
