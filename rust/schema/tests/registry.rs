//! The registry client against a real Confluent-compatible Schema Registry: Apicurio Registry
//! 3.0.9 from Maven Central (`tests/schema-registry/resolve.sh`), started on a free 127.0.0.1
//! port with in-memory storage and stopped by a Drop guard. Schemas are registered through its
//! Confluent API (`/apis/ccompat/v7`), as a Confluent serializer would, and read back by our
//! client. Requests are counted by a loopback proxy in front of the registry.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use calving_schema::registry::{RegistryConfig, RegistryError, SchemaRegistry};
use calving_test_utils::registry::{Registry, CCOMPAT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn free_port() -> u16 {
    calving_test_utils::s3::closed_port()
}

/// A loopback TCP proxy that records the request line of every HTTP request it forwards.
struct CountingProxy {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl CountingProxy {
    async fn start(upstream: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async move {
                        let mut pending = Vec::new();
                        let mut buf = [0u8; 8192];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            pending.extend_from_slice(&buf[..n]);
                            // GET requests have no body: each header block is one request.
                            while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n")
                            {
                                let head = String::from_utf8_lossy(&pending[..end]).to_string();
                                if let Some(line) = head.lines().next() {
                                    log.lock().unwrap().push(line.to_string());
                                }
                                pending.drain(..end + 4);
                            }
                            if sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = sw.shutdown().await;
                    };
                    let down = async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                        let _ = cw.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        CountingProxy { addr, requests }
    }

    fn count(&self, path_suffix: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|l| {
                l.split(' ')
                    .nth(1)
                    .is_some_and(|p| p.ends_with(path_suffix))
            })
            .count()
    }
}

fn upstream(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}

const ORDER_V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"}]}"#;
const ORDER_V2: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"},{"name":"qty","type":["null","int"],"default":null}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_by_id_latest_cache_and_not_found() {
    let registry = Registry::start("plain");
    let id1 = registry.register("orders-value", ORDER_V1);
    let id2 = registry.register("orders-value", ORDER_V2);
    assert_ne!(id1, id2);

    let proxy = CountingProxy::start(upstream(&registry.base)).await;
    let url = format!("http://{}{CCOMPAT}", proxy.addr);
    let client = Arc::new(SchemaRegistry::new(RegistryConfig::new(&url).unwrap()).unwrap());

    // By id: the schema text verbatim, compiled.
    let s1 = client.schema_by_id(id1).await.unwrap().unwrap();
    assert_eq!(s1.id, id1);
    assert_eq!(s1.text, ORDER_V1);
    assert_eq!(s1.writer.column_names().collect::<Vec<_>>(), ["id", "item"]);
    // Again, and from 16 concurrent callers: still one request for that id.
    for _ in 0..3 {
        client.schema_by_id(id1).await.unwrap().unwrap();
    }
    assert_eq!(proxy.count(&format!("/schemas/ids/{id1}")), 1);

    let handles: Vec<_> = (0..16)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.schema_by_id(id2).await.unwrap().unwrap().id })
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap(), id2);
    }
    assert_eq!(
        proxy.count(&format!("/schemas/ids/{id2}")),
        1,
        "concurrent callers share one request: {:?}",
        proxy.requests.lock().unwrap()
    );

    // Latest by subject: asks each time; its answer fills the id cache.
    let latest = client.latest("orders-value").await.unwrap();
    assert_eq!(latest.id, id2);
    assert_eq!(latest.version, Some(("orders-value".into(), 2)));
    assert_eq!(
        latest.writer.column_names().collect::<Vec<_>>(),
        ["id", "item", "qty"]
    );
    client.latest("orders-value").await.unwrap();
    assert_eq!(proxy.count("/subjects/orders-value/versions/latest"), 2);

    // Unknown id and unknown subject: NotFound (the record goes raw), cached for the id.
    let unknown = 987_654;
    let e = client.schema_by_id(unknown).await.unwrap().unwrap_err();
    assert!(matches!(*e, RegistryError::NotFound { .. }), "{e}");
    assert!(e.is_fallback() && !e.is_retriable());
    client.schema_by_id(unknown).await.unwrap().unwrap_err();
    assert_eq!(proxy.count(&format!("/schemas/ids/{unknown}")), 1);
    let e = client.latest("no-such-subject").await.unwrap_err();
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e}");

    // A wrong base path (the same server, no ccompat prefix): Apicurio answers 404 without a
    // Confluent error code. That is an error (retriable: the broker keeps its data), not a cached
    // "not found" that would silently turn the table's values raw.
    let wrong = Arc::new(
        SchemaRegistry::new(RegistryConfig::new(&format!("http://{}/wrong-prefix/", proxy.addr)).unwrap()).unwrap(),
    );
    let e = wrong.schema_by_id(id1).await.unwrap_err();
    assert!(matches!(e, RegistryError::Unavailable { status: Some(404), .. }), "{e}");
    assert!(e.is_retriable() && !e.is_fallback(), "{e}");
    assert!(e.to_string().contains("is the URL right"), "{e}");

    // A schema the registry holds (valid Avro: Apicurio refuses text it cannot parse) that no
    // table can hold: a recursive type. Invalid: its records go raw.
    let linked_list = r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}"#;
    let bad = registry.register("list-value", linked_list);
    let e = client.schema_by_id(bad).await.unwrap().unwrap_err();
    assert!(matches!(*e, RegistryError::Invalid { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth() {
    let (user, password) = ("calving", "pa:ss-w0rd");
    let registry = Registry::start_with_basic_auth("auth", user, password);
    let id = registry
        .register("auth-value", ORDER_V1);
    let url = format!("{}{CCOMPAT}", registry.base);

    // user:password from the Confluent property.
    let config = RegistryConfig::from_properties([
        ("schema.registry.url", url.as_str()),
        ("schema.registry.basic.auth.user.info", "calving:pa:ss-w0rd"),
    ])
    .unwrap();
    let client = SchemaRegistry::new(config).unwrap();
    assert_eq!(
        client.schema_by_id(id).await.unwrap().unwrap().text,
        ORDER_V1
    );

    // In the URL's user info (percent-encoded ':').
    let with_info = url.replace("http://", "http://calving:pa%3Ass-w0rd@");
    let client = SchemaRegistry::new(RegistryConfig::new(&with_info).unwrap()).unwrap();
    assert_eq!(client.latest("auth-value").await.unwrap().id, id);

    // A wrong password: Unavailable (retriable: never a degraded table), naming HTTP 401, and
    // no credential in the message or the debug form.
    let wrong = RegistryConfig::new(&url)
        .unwrap()
        .with_user_info("calving:WrongSecret")
        .unwrap();
    let client = SchemaRegistry::new(wrong).unwrap();
    let e = client.schema_by_id(id).await.unwrap_err();
    assert!(
        matches!(
            e,
            RegistryError::Unavailable {
                status: Some(401),
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_retriable());
    for text in [e.to_string(), format!("{e:?}"), format!("{client:?}")] {
        assert!(!text.contains("WrongSecret"), "{text}");
    }
    // No credentials at all: also 401.
    let client = SchemaRegistry::new(RegistryConfig::new(&url).unwrap()).unwrap();
    let e = client.latest("auth-value").await.unwrap_err();
    assert!(
        matches!(
            e,
            RegistryError::Unavailable {
                status: Some(401),
                ..
            }
        ),
        "{e}"
    );
}

/// HTTPS with a private CA: trusted through `schema.registry.ssl.ca.location`; without it, the
/// certificate is refused and the error is retriable (never a degraded table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca() {
    let dir = tempfile_dir("https");
    let registry = Registry::start_with_tls("https", &dir);
    let id = registry.register("tls-value", ORDER_V1);
    let (https, ca) = registry.https.clone().expect("TLS registry");
    let url = format!("{https}{CCOMPAT}");
    let config = RegistryConfig::from_properties([
        ("schema.registry.url", url.as_str()),
        ("schema.registry.ssl.ca.location", ca.to_str().unwrap()),
    ])
    .unwrap();
    let client = SchemaRegistry::new(config).unwrap();
    let s = client.schema_by_id(id).await.unwrap().unwrap_or_else(|e| panic!("{e}\n{}", registry.log_text()));
    assert_eq!(s.text, ORDER_V1);
    assert_eq!(client.latest("tls-value").await.unwrap().id, id);
    // Without the CA the server's certificate is not trusted.
    let client = SchemaRegistry::new(RegistryConfig::new(&url).unwrap()).unwrap();
    let e = client.schema_by_id(id).await.unwrap_err();
    assert!(e.is_retriable() && e.to_string().contains("127.0.0.1"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory under the system temp dir.
fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("calving-registry-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn registry_down_is_unavailable_within_the_bound() {
    // Nothing listens: connection refused, at once.
    let port = free_port();
    let config = RegistryConfig::new(&format!("http://127.0.0.1:{port}/apis/ccompat/v7"))
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let client = SchemaRegistry::new(config).unwrap();
    let start = Instant::now();
    let e = client.schema_by_id(1).await.unwrap_err();
    assert!(
        matches!(e, RegistryError::Unavailable { status: None, .. }),
        "{e}"
    );
    assert!(e.is_retriable() && !e.is_fallback());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    // A server that accepts and never answers: the bound holds, for concurrent callers too,
    // and the failure is not cached.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = silent.accept().await {
            keep.lock().unwrap().push(s);
        }
    });
    let config = RegistryConfig::new(&format!("http://{addr}/apis/ccompat/v7"))
        .unwrap()
        .with_timeout(Duration::from_millis(400));
    let client = Arc::new(SchemaRegistry::new(config).unwrap());
    let start = Instant::now();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.schema_by_id(7).await })
        })
        .collect();
    for h in handles {
        let e = h.await.unwrap().unwrap_err();
        assert!(matches!(e, RegistryError::Unavailable { .. }), "{e}");
    }
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "bounded wait exceeded: {waited:?}"
    );
    let e = client.latest("x").await.unwrap_err();
    assert!(e.is_retriable(), "{e}");
    // Failover: a dead URL first, then the live one is not needed here; the message names a URL
    // without credentials.
    let config = RegistryConfig::new(&format!(
        "http://u:TopSecret@127.0.0.1:{port}/a,http://{addr}/b"
    ))
    .unwrap()
    .with_timeout(Duration::from_millis(300));
    let client = SchemaRegistry::new(config).unwrap();
    let e = client.schema_by_id(3).await.unwrap_err();
    assert!(!e.to_string().contains("TopSecret") && !format!("{e:?}").contains("TopSecret"));
}

/// What Apicurio's serdes register by default for nested types: the value's schema refers to other
/// subjects' schemas (which refer on). The client inlines them into one self-contained schema
/// that parses on its own (the text the sidecar keeps), with each named type defined once.
#[tokio::test]
async fn schema_references_are_inlined() {
    let registry = Registry::start("references");
    let status = r#"{"type":"enum","name":"Status","namespace":"shop","symbols":["NEW","PAID"]}"#;
    let customer = r#"{"type":"record","name":"Customer","namespace":"shop","fields":[{"name":"name","type":"string"},{"name":"status","type":"shop.Status"}]}"#;
    let order = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"customer","type":"shop.Customer"},{"name":"status","type":"Status"},{"name":"payer","type":["null","Customer"]}]}"#;
    registry.register("shop.Status", status);
    registry
        .register_with_references(
            "shop.Customer",
            customer,
            serde_json::json!([{"name": "shop.Status", "subject": "shop.Status", "version": 1}]));
    let id = registry
        .register_with_references(
            "orders-value",
            order,
            serde_json::json!([
                {"name": "shop.Customer", "subject": "shop.Customer", "version": 1},
                {"name": "shop.Status", "subject": "shop.Status", "version": 1}
            ]));
    let client = SchemaRegistry::new(RegistryConfig::new(&format!("{}{CCOMPAT}", registry.base)).unwrap()).unwrap();
    let s = client.schema_by_id(id).await.unwrap().unwrap_or_else(|e| panic!("{e}\n{}", registry.log_text()));
    assert_eq!(s.writer.column_names().collect::<Vec<_>>(), ["id", "customer", "status", "payer"]);
    // Self-contained: Avro's own parser takes the kept text alone, and each named type is defined
    // exactly once in it.
    apache_avro::Schema::parse_str(&s.text).unwrap_or_else(|e| panic!("{e}: {}", s.text));
    assert_eq!(s.text.matches(r#""name":"Status""#).count(), 1, "{}", s.text);
    assert_eq!(s.text.matches(r#""name":"Customer""#).count(), 1, "{}", s.text);
    calving_schema::avro::WriterSchema::parse(&s.text).unwrap();
}

/// Protobuf and JSON Schema (issue 13): the registry's `schemaType` is followed, and a schema's
/// references (a Protobuf import, a JSON Schema `$ref`, and theirs) are fetched and kept by the
/// name the schema uses, in one envelope that compiles on its own (the sidecar's text).
#[tokio::test]
async fn protobuf_and_json_schemas_keep_their_references() {
    use calving_schema::transcode::Envelope;
    let registry = Registry::start("typed-formats");
    let money = "syntax = \"proto3\";\npackage shop;\nmessage Money {\n  string currency = 1;\n  int64 units = 2;\n}\n";
    let line = "syntax = \"proto3\";\npackage shop;\nimport \"shop/money.proto\";\nmessage Line {\n  string sku = 1;\n  shop.Money price = 2;\n}\n";
    let order = "syntax = \"proto3\";\npackage shop;\nimport \"shop/line.proto\";\nimport \"google/protobuf/timestamp.proto\";\nmessage Order {\n  int64 id = 1;\n  repeated shop.Line lines = 2;\n  google.protobuf.Timestamp placed = 3;\n}\n";
    registry.register_typed("shop-money", "PROTOBUF", money, serde_json::json!([]));
    registry.register_typed(
        "shop-line",
        "PROTOBUF",
        line,
        serde_json::json!([{"name": "shop/money.proto", "subject": "shop-money", "version": 1}]),
    );
    let proto_id = registry.register_typed(
        "orders-proto-value",
        "PROTOBUF",
        order,
        serde_json::json!([{"name": "shop/line.proto", "subject": "shop-line", "version": 1}]),
    );
    let address = r#"{"type":"object","properties":{"city":{"type":"string"},"zip":{"type":"string"}}}"#;
    let person = r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"name":{"type":"string"},"home":{"$ref":"address.json"}}}"#;
    registry.register_typed("address", "JSON", address, serde_json::json!([]));
    let json_id = registry.register_typed(
        "people-value",
        "JSON",
        person,
        serde_json::json!([{"name": "address.json", "subject": "address", "version": 1}]),
    );
    let client = SchemaRegistry::new(RegistryConfig::new(&format!("{}{CCOMPAT}", registry.base)).unwrap()).unwrap();

    let s = client.schema_by_id(proto_id).await.unwrap().unwrap_or_else(|e| panic!("{e}\n{}", registry.log_text()));
    let json: serde_json::Value = serde_json::from_str(&s.text).unwrap();
    let envelope = Envelope::of(&json).expect("an envelope").unwrap();
    assert_eq!(envelope.schema_type, "PROTOBUF");
    assert_eq!(envelope.schema, order);
    assert_eq!(
        envelope.references.keys().collect::<Vec<_>>(),
        ["shop/line.proto", "shop/money.proto"],
        "the import and the import's import, by import path"
    );
    assert_eq!(envelope.references["shop/money.proto"], money);
    assert_eq!(s.writer.format(), "protobuf");
    assert_eq!(s.writer.column_names().collect::<Vec<_>>(), ["id", "lines", "placed"]);
    // Self-contained: the kept text compiles with no registry.
    assert_eq!(calving_schema::avro::WriterSchema::parse(&s.text).unwrap().format(), "protobuf");

    let s = client.schema_by_id(json_id).await.unwrap().unwrap_or_else(|e| panic!("{e}\n{}", registry.log_text()));
    let json: serde_json::Value = serde_json::from_str(&s.text).unwrap();
    let envelope = Envelope::of(&json).expect("an envelope").unwrap();
    assert_eq!(envelope.schema_type, "JSON");
    assert_eq!(envelope.references.keys().collect::<Vec<_>>(), ["address.json"]);
    assert_eq!(s.writer.format(), "json");
    assert_eq!(s.writer.column_names().collect::<Vec<_>>(), ["name", "home"]);
}
