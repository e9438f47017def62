//! Credentials never appear in `Debug`/`Display` of the configuration, the storage, the
//! factory or FileIO, in errors (ours and iceberg's), or in logs (every target, TRACE level),
//! neither on failure paths nor on the real wire paths (moto, fake-gcs-server and Azurite on
//! loopback).
//!
//! Its own test binary: the log capture is the global tracing subscriber.

mod common;

use std::collections::HashMap;

use bytes::Bytes;
use calving_storage::{Error, ObjectStorage, StorageConfig};
use common::{
    closed_port, props, unique, AzuriteServer, CapturedLogs, GcsServer, S3Config, S3Server,
};

fn s3_config(endpoint: &str, extra: &[(&str, &str)]) -> StorageConfig {
    let mut p = props(&[
        ("s3.endpoint", endpoint),
        ("s3.region", "us-east-1"),
        ("s3.path-style-access", "true"),
        ("s3.disable-config-load", "true"),
    ]);
    p.extend(props(extra));
    StorageConfig::new("s3://bucket/wh", &p).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_appear_in_debug_display_errors_or_logs() {
    let secrets = [
        "AKIDSECRETVALUE77",
        "secret-access-key-SECRETVALUE",
        "session-token-SECRETVALUE",
        "sse-customer-key-SECRETVALUE",
        "gcs-oauth-SECRETVALUE",
        "adls-key-SECRETVALUE",
    ];
    let logs = CapturedLogs::global();
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let config = s3_config(
        &endpoint,
        &[
            ("s3.access-key-id", secrets[0]),
            ("s3.secret-access-key", secrets[1]),
            ("s3.session-token", secrets[2]),
            ("s3.sse.type", "custom"),
            ("s3.sse.key", "c2VjcmV0LWtleS0zMi1ieXRlcy1sb25nLXh4eHh4eHg="),
            ("gcs.oauth2.token", secrets[4]),
            ("adls.account-key", secrets[5]),
            ("storage.retry.num-retries", "1"),
        ],
    );
    let mut texts = vec![format!("{config:?}"), format!("{config}")];
    let storage = ObjectStorage::new(config.clone()).unwrap();
    texts.push(format!("{storage:?}"));
    let io = storage.file_io();
    texts.push(format!("{io:?}"));
    texts.push(format!(
        "{:?}",
        calving_storage::iceberg_storage_factory(&config)
    ));
    let loc = storage.location("x");
    for err in [
        storage.get(&loc).await.unwrap_err(),
        storage
            .put(&loc, Bytes::from_static(b"x"))
            .await
            .unwrap_err(),
        storage.writer(&loc).unwrap().finish().await.unwrap_err(),
    ] {
        texts.push(format!("{err}"));
        texts.push(format!("{err:?}"));
        texts.push(err.report());
        let ice: iceberg::Error = err.into();
        texts.push(format!("{ice}"));
        texts.push(format!("{ice:?}"));
    }
    // Invalid values of credential keys are reported without the value.
    for (key, bad) in [
        ("gcs.credentials-json", "not-json-SECRETVALUE"),
        ("adls.connection-string", "garbage-SECRETVALUE"),
    ] {
        let err = StorageConfig::new(
            "s3://b",
            &HashMap::from([(key.to_string(), bad.to_string())]),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig { key: k, .. } if k == key),
            "{err:?}"
        );
        texts.push(format!("{err}"));
        texts.push(format!("{err:?}"));
    }
    texts.push(logs.text());
    let all = texts.join("\n");
    assert!(
        all.contains("<redacted>"),
        "redaction marker expected:\n{all}"
    );
    assert!(
        all.contains("built object store client"),
        "client construction was logged:\n{all}"
    );
    for secret in secrets.iter().chain(&[
        "SECRETVALUE",
        "c2VjcmV0LWtleS0zMi1ieXRlcy1sb25nLXh4eHh4eHg=",
    ]) {
        assert!(
            !all.contains(secret),
            "credential {secret:?} leaked:\n{all}"
        );
    }
}

/// Puts, gets, streams 9 MiB and writes through the FileIO on `config`'s store; returns what
/// its types print (`Debug`, `Display`), for the caller to search for credentials.
async fn exercise(config: &StorageConfig) -> Vec<String> {
    let storage = ObjectStorage::new(config.clone()).unwrap();
    let loc = storage.location("x/y.bin");
    storage
        .put(&loc, Bytes::from_static(b"payload"))
        .await
        .unwrap();
    assert_eq!(&storage.get(&loc).await.unwrap()[..], b"payload");
    let mut w = storage.writer(&storage.location("x/big.bin")).unwrap();
    w.write(Bytes::from(vec![1u8; 9 * common::MIB]))
        .await
        .unwrap();
    w.finish().await.unwrap();
    let io = storage.file_io();
    io.new_output(storage.location("x/m.json"))
        .unwrap()
        .write(Bytes::from_static(b"{}"))
        .await
        .unwrap();
    vec![
        format!("{config:?}"),
        format!("{config}"),
        format!("{storage:?}"),
        format!("{io:?}"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_credentials_stay_out_of_logs_on_the_wire_path() {
    let server = S3Server::start();
    let bucket = unique("secrets").to_lowercase();
    server.create_bucket(&bucket);
    let secrets = [
        "AKIDWIRESECRET42",
        "wire-secret-access-key-0123456789",
        "wire-session-token-0123456789",
    ];
    let config = server.config(
        &bucket,
        "wh",
        &[
            ("s3.access-key-id", secrets[0]),
            ("s3.secret-access-key", secrets[1]),
            ("s3.session-token", secrets[2]),
        ],
    );
    let logs = CapturedLogs::global();
    let texts = exercise(&config).await;
    let all = texts.join("\n") + &logs.text();
    assert!(all.contains("<redacted>"), "{all}");
    assert!(
        all.contains("storage operation done"),
        "the operations were logged: {all}"
    );
    for secret in secrets {
        assert!(
            !all.contains(secret),
            "a credential in Debug/Display: {all}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_and_azure_credentials_stay_out_of_logs_on_the_wire_path() {
    let gcs = GcsServer::start();
    let azurite = AzuriteServer::start();
    let bucket = unique("secrets").to_lowercase();
    gcs.create_bucket(&bucket);
    azurite.create_container(&bucket);
    // fake-gcs-server takes any bearer token; Azurite checks the shared-key signatures.
    let token = "gcs-wire-token-SECRET-0123456789";
    let gcs_config = StorageConfig::new(
        &format!("gs://{bucket}/wh"),
        &props(&[
            ("gcs.service.host", &gcs.endpoint),
            ("gcs.oauth2.token", token),
            ("gcs.disable-config-load", "true"),
        ]),
    )
    .unwrap();
    let connection_string = azurite.connection_string();
    let azure_config = StorageConfig::new(
        &format!(
            "abfss://{bucket}@{}.dfs.core.windows.net/wh",
            calving_test_utils::azure::ACCOUNT
        ),
        &props(&[("adls.connection-string", &connection_string)]),
    )
    .unwrap();
    let logs = CapturedLogs::global();
    let mut texts = exercise(&gcs_config).await;
    texts.extend(exercise(&azure_config).await);
    let all = texts.join("\n") + &logs.text();
    assert!(all.contains("<redacted>"), "{all}");
    assert!(
        all.contains("storage operation done"),
        "the operations were logged: {all}"
    );
    for secret in [
        token,
        connection_string.as_str(),
        calving_test_utils::azure::ACCOUNT_KEY,
    ] {
        assert!(!all.contains(secret), "a credential leaked: {all}");
    }
}
