//! Failure paths through the real HTTP stack: an endpoint nobody listens on, servers that answer
//! with error statuses or never answer, and credentials kept out of every message and log.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use calving_storage::{Error, ObjectStorage, StorageConfig};
use common::{closed_port, props, unique, AzuriteServer, EmulatorConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn s3_config(endpoint: &str, extra: &[(&str, &str)]) -> StorageConfig {
    let mut p = props(&[
        ("s3.endpoint", endpoint),
        ("s3.region", "us-east-1"),
        ("s3.access-key-id", "AKIDTEST"),
        ("s3.secret-access-key", "not-a-real-secret"),
        ("s3.path-style-access", "true"),
        ("s3.disable-config-load", "true"),
    ]);
    p.extend(props(extra));
    StorageConfig::new("s3://bucket/wh", &p).unwrap()
}

fn assert_transient(what: &str, result: Result<impl std::fmt::Debug, Error>, location: &str) {
    match result {
        Err(err @ Error::Transient { .. }) => {
            assert!(err.is_retriable(), "{what}");
            assert_eq!(err.location(), Some(location), "{what}: location");
            assert!(
                err.to_string().contains(location),
                "{what}: message names the location: {err}"
            );
        }
        other => panic!("{what}: expected Transient, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_transient_within_seconds_with_default_retries() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let storage = ObjectStorage::new(s3_config(&endpoint, &[])).unwrap();
    let loc = storage.location("data/x.parquet");
    let started = Instant::now();
    assert_transient("get", storage.get(&loc).await, &loc);
    let one = started.elapsed();
    // Defaults: 3 retries, backoff from 100 ms (capped at 5 s), so about a second.
    assert!(one < Duration::from_secs(10), "one failed get took {one:?}");
    assert_transient("get_range", storage.get_range(&loc, 0..10).await, &loc);
    assert_transient("head", storage.head(&loc).await, &loc);
    assert_transient("exists", storage.exists(&loc).await, &loc);
    assert_transient(
        "put",
        storage.put(&loc, Bytes::from_static(b"x")).await,
        &loc,
    );
    assert_transient("delete", storage.delete(&loc).await, &loc);
    let prefix = storage.location("data");
    assert_transient("list", storage.list(&prefix).await, &prefix);
    let w = storage.writer(&loc).unwrap();
    assert_transient("writer finish", w.finish().await, &loc);
    let err = storage
        .file_io()
        .new_input(&loc)
        .unwrap()
        .read()
        .await
        .unwrap_err();
    assert!(err.retryable(), "iceberg sees a retryable error: {err}");
    assert!(err.to_string().contains(&loc), "{err}");
    eprintln!(
        "first failure after {one:?}, all nine after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// What the fake server does with each request.
#[derive(Clone, Copy)]
enum Behaviour {
    Status(u16, &'static str),
    Hang,
}

/// A loopback HTTP server answering every request the same way; counts requests.
async fn fake_server(behaviour: Behaviour) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                match behaviour {
                    Behaviour::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
                    Behaviour::Status(code, reason) => {
                        let body = format!("<Error><Code>{reason}</Code></Error>");
                        let response = format!(
                            "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                }
            });
        }
    });
    (endpoint, count)
}

const FAST_RETRIES: &[(&str, &str)] = &[
    ("storage.retry.num-retries", "2"),
    ("storage.retry.min-wait-ms", "10"),
    ("storage.retry.max-wait-ms", "50"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_as_configured_then_transient() {
    for (code, reason) in [(503, "ServiceUnavailable"), (500, "InternalError")] {
        let (endpoint, count) = fake_server(Behaviour::Status(code, reason)).await;
        let storage = ObjectStorage::new(s3_config(&endpoint, FAST_RETRIES)).unwrap();
        let loc = storage.location("x");
        assert_transient(&format!("get on {code}"), storage.get(&loc).await, &loc);
        assert_eq!(
            count.load(Ordering::SeqCst),
            3,
            "{code}: one attempt plus storage.retry.num-retries=2"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_map_by_what_the_caller_can_do() {
    type Expect = fn(&Error) -> bool;
    let cases: [(u16, &str, Expect); 4] = [
        (403, "AccessDenied", |e| {
            matches!(e, Error::PermissionDenied { .. })
        }),
        (401, "Unauthorized", |e| {
            matches!(e, Error::Unauthenticated { .. })
        }),
        (404, "NoSuchKey", |e| matches!(e, Error::NotFound { .. })),
        (400, "InvalidRequest", |e| matches!(e, Error::Other { .. })),
    ];
    for (code, reason, expected) in cases {
        let (endpoint, count) = fake_server(Behaviour::Status(code, reason)).await;
        let storage = ObjectStorage::new(s3_config(&endpoint, FAST_RETRIES)).unwrap();
        let loc = storage.location("x");
        let err = storage.get(&loc).await.unwrap_err();
        assert!(expected(&err), "{code}: got {err:?}");
        assert!(!err.is_retriable(), "{code} is not retriable");
        assert_eq!(err.location(), Some(loc.as_str()));
        assert_eq!(count.load(Ordering::SeqCst), 1, "{code} is not retried");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_is_transient() {
    let (endpoint, _) = fake_server(Behaviour::Hang).await;
    let storage = ObjectStorage::new(s3_config(
        &endpoint,
        &[
            ("storage.request-timeout-ms", "300"),
            ("storage.retry.num-retries", "0"),
        ],
    ))
    .unwrap();
    let loc = storage.location("slow");
    let started = Instant::now();
    assert_transient(
        "get from a server that never answers",
        storage.get(&loc).await,
        &loc,
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// The same classification on GCS and Azure: an endpoint nobody listens on is transient, naming
/// the location; a wrong account key (Azurite checks the signatures) is a permission error the
/// broker must not retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_and_azure_failures_map_by_what_the_caller_can_do() {
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let fast = [
        ("storage.retry.num-retries", "1"),
        ("storage.retry.min-wait-ms", "10"),
    ];
    let mut gcs = props(&[("gcs.service.host", &dead), ("gcs.no-auth", "true")]);
    gcs.extend(props(&fast));
    let mut azure = props(&[
        (
            "adls.connection-string",
            &format!("{dead}/devstoreaccount1"),
        ),
        ("adls.account-name", "devstoreaccount1"),
        ("adls.account-key", "a2V5"),
    ]);
    azure.extend(props(&fast));
    for config in [
        StorageConfig::new("gs://bucket/wh", &gcs).unwrap(),
        StorageConfig::new("abfs://c@devstoreaccount1.dfs.core.windows.net/wh", &azure).unwrap(),
    ] {
        let storage = ObjectStorage::new(config).unwrap();
        let loc = storage.location("data/x.parquet");
        assert_transient("get", storage.get(&loc).await, &loc);
        assert_transient(
            "put",
            storage.put(&loc, Bytes::from_static(b"x")).await,
            &loc,
        );
    }

    let azurite = AzuriteServer::start();
    let container = unique("denied").to_lowercase();
    azurite.create_container(&container);
    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=";
    let storage = ObjectStorage::new(azurite.config(
        &container,
        "wh",
        &[("adls.auth.shared-key.account.key", wrong_key)],
    ))
    .unwrap();
    let loc = storage.location("x.bin");
    match storage.put(&loc, Bytes::from_static(b"x")).await {
        Err(err @ Error::PermissionDenied { .. }) => {
            assert!(!err.is_retriable(), "{err}");
            assert!(err.to_string().contains(&loc), "{err}");
            assert!(!format!("{err:?}").contains(wrong_key), "{err:?}");
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
}
