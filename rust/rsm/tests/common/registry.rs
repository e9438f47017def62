//! A real Confluent-compatible Schema Registry for the schema-mode tests: Apicurio Registry from
//! Maven Central (`tests/schema-registry/resolve.sh`), in-memory storage, on a free loopback
//! port, stopped by a Drop guard (as in `rust/schema/tests/registry.rs`). Schemas are registered
//! through its Confluent API (`/apis/ccompat/v7`), as a Confluent serializer would.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use calving_test_utils::repo_root;

pub const CCOMPAT: &str = "/apis/ccompat/v7";

pub struct Registry {
    child: Child,
    /// `http://127.0.0.1:PORT` (no path).
    pub base: String,
    log: PathBuf,
}

impl Registry {
    pub fn start(name: &str) -> Registry {
        let script = repo_root().join("tests/schema-registry/resolve.sh");
        let out = Command::new(&script).output().unwrap_or_else(|e| panic!("cannot run {} ({e})", script.display()));
        assert!(out.status.success(), "{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
        let jar = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::env::temp_dir().join(format!("calving-rsm-apicurio-{name}-{port}.log"));
        let child = Command::new("java")
            .args(["-Xmx384m", "-XX:TieredStopAtLevel=1", "-Dquarkus.http.host=127.0.0.1"])
            .arg(format!("-Dquarkus.http.port={port}"))
            .arg("-jar")
            .arg(&jar)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(std::fs::File::options().append(true).open(&log).unwrap()))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start java ({e}): install a JDK 17"));
        let mut r = Registry { child, base: format!("http://127.0.0.1:{port}"), log };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("the registry exited ({status}); its log:\n{}", std::fs::read_to_string(&r.log).unwrap_or_default());
            }
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let req = format!("GET {CCOMPAT}/subjects HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut buf = [0u8; 12];
                if s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200") {
                    eprintln!("Apicurio Registry up in {:?}", start.elapsed());
                    return r;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(180), "the registry did not answer within 180 s");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The URL Calving is configured with (`schema.registry.url`).
    pub fn url(&self) -> String {
        format!("{}{CCOMPAT}", self.base)
    }

    /// Registers a schema under a subject through the Confluent API; its id.
    pub fn register(&self, subject: &str, schema: &str) -> i32 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let body = serde_json::json!({ "schema": schema }).to_string();
            let resp = reqwest::Client::new()
                .post(format!("{}{CCOMPAT}/subjects/{subject}/versions", self.base))
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            assert!(status.is_success(), "register {subject}: {status} {text}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v["id"].as_i64().unwrap() as i32
        })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
