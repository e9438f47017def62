//! The conformance suite every backend passes (feature `conformance`, always on in this crate's
//! tests).
//!
//! Each function takes an [`ObjectStorage`] and a `base` location that the test owns (a fresh
//! prefix under the warehouse: the functions write below it and expect it empty), runs one
//! behaviour end to end through the public API, and panics with a message on the first
//! difference. [`run_all`] runs them all. Other crates call them from their own tests to check
//! a store setup (for example a loopback S3 server) before relying on it.
//!
//! The streaming tests need a multi-threaded tokio runtime (`#[tokio::test(flavor =
//! "multi_thread")]`): the blocking writer is driven from `spawn_blocking`.

use std::time::Duration;

use bytes::Bytes;

use crate::{Error, ObjectStorage};

/// Deterministic pseudo-random bytes (xorshift), distinct per `seed`.
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn join(base: &str, name: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), name)
}

fn assert_same(actual: &[u8], expected: &[u8], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length differs");
    if let Some(i) = actual.iter().zip(expected).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {i}");
    }
}

/// Runs every function of this module below `base`; `large` is the size of the multipart
/// uploads (at least three parts of the configured part size makes the test meaningful).
pub async fn run_all(storage: &ObjectStorage, base: &str, large: usize) {
    put_get_head(storage, &join(base, "put_get_head")).await;
    ranges(storage, &join(base, "ranges")).await;
    not_found(storage, &join(base, "not_found")).await;
    delete_is_idempotent(storage, &join(base, "delete")).await;
    delete_many(storage, &join(base, "delete_many")).await;
    list_prefix(storage, &join(base, "list")).await;
    put_if_absent(storage, &join(base, "put_if_absent")).await;
    streaming_write_small(storage, &join(base, "small")).await;
    streaming_write_large(storage, &join(base, "large"), large).await;
    blocking_write_large(storage, &join(base, "blocking"), large).await;
    abort_leaves_nothing(storage, &join(base, "abort")).await;
    iceberg_file_io_round_trip(storage, &join(base, "iceberg")).await;
}

/// put → get → head → overwrite → copy → empty object.
pub async fn put_get_head(storage: &ObjectStorage, base: &str) {
    let loc = join(base, "dir/object.bin");
    let data = test_bytes(70_001, 1);
    storage
        .put(&loc, Bytes::from(data.clone()))
        .await
        .expect("put");
    assert_same(
        &storage.get(&loc).await.expect("get"),
        &data,
        "get after put",
    );
    let info = storage.head(&loc).await.expect("head");
    assert_eq!(info.size, data.len() as u64, "head size");
    assert_eq!(info.location, loc, "head location");
    assert!(
        storage.exists(&loc).await.expect("exists"),
        "exists after put"
    );

    let replacement = test_bytes(10, 2);
    storage
        .put(&loc, Bytes::from(replacement.clone()))
        .await
        .expect("overwrite");
    assert_same(
        &storage.get(&loc).await.expect("get"),
        &replacement,
        "get after overwrite",
    );

    let copied = join(base, "copy/object.bin");
    storage.copy(&loc, &copied).await.expect("copy");
    assert_same(
        &storage.get(&copied).await.expect("get copy"),
        &replacement,
        "copy",
    );

    let empty = join(base, "empty");
    storage.put(&empty, Bytes::new()).await.expect("put empty");
    assert_eq!(storage.get(&empty).await.expect("get empty").len(), 0);
    assert_eq!(storage.head(&empty).await.expect("head empty").size, 0);
}

/// get_range and get_ranges at the edges; a range past the end is a non-retriable error.
pub async fn ranges(storage: &ObjectStorage, base: &str) {
    let loc = join(base, "object.bin");
    let data = test_bytes(100_000, 3);
    storage
        .put(&loc, Bytes::from(data.clone()))
        .await
        .expect("put");
    for r in [
        0..1,
        0..100_000,
        99_999..100_000,
        4_096..65_536,
        12_345..12_346,
    ] {
        let got = storage
            .get_range(&loc, r.clone())
            .await
            .unwrap_or_else(|e| panic!("get_range {r:?}: {e}"));
        assert_same(
            &got,
            &data[r.start as usize..r.end as usize],
            &format!("range {r:?}"),
        );
    }
    assert!(storage
        .get_range(&loc, 5..5)
        .await
        .expect("empty range")
        .is_empty());
    let wanted = [0..10, 5..20, 50_000..50_100, 99_990..100_000];
    let got = storage.get_ranges(&loc, &wanted).await.expect("get_ranges");
    assert_eq!(got.len(), wanted.len());
    for (r, bytes) in wanted.iter().zip(&got) {
        assert_same(
            bytes,
            &data[r.start as usize..r.end as usize],
            &format!("ranges {r:?}"),
        );
    }
    let err = storage
        .get_range(&loc, 99_000..100_001)
        .await
        .expect_err("range past the end");
    assert!(
        !err.is_retriable(),
        "a range past the end is not transient: {err:?}"
    );
    let err = storage
        .get_range(&loc, 200_000..200_010)
        .await
        .expect_err("range after the end");
    assert!(!err.is_retriable(), "{err:?}");
}

/// A missing object is `NotFound` naming the location, never retriable, for every read.
pub async fn not_found(storage: &ObjectStorage, base: &str) {
    let loc = join(base, "missing.parquet");
    let check = |what: &str, r: crate::Result<()>| match r {
        Err(Error::NotFound { ref location, .. }) => {
            assert_eq!(location, &loc, "{what}: location");
            let err = r.unwrap_err();
            assert!(!err.is_retriable(), "{what}: not retriable");
            assert!(
                err.to_string().contains(&loc),
                "{what}: message names the location: {err}"
            );
        }
        other => panic!("{what}: expected NotFound, got {other:?}"),
    };
    check("get", storage.get(&loc).await.map(drop));
    check("get_range", storage.get_range(&loc, 0..10).await.map(drop));
    check("head", storage.head(&loc).await.map(drop));
    assert!(
        !storage.exists(&loc).await.expect("exists"),
        "exists on a missing object"
    );
    let io = storage.file_io();
    let err = io
        .new_input(&loc)
        .expect("input")
        .read()
        .await
        .expect_err("iceberg read of a missing file");
    assert!(
        !err.retryable(),
        "iceberg error must not be retryable: {err}"
    );
    assert!(
        err.to_string().contains(&loc),
        "iceberg error names the location: {err}"
    );
    assert!(
        !io.exists(&loc).await.expect("iceberg exists"),
        "iceberg exists on a missing file"
    );
}

/// Deleting twice, or deleting what never existed, succeeds.
pub async fn delete_is_idempotent(storage: &ObjectStorage, base: &str) {
    let loc = join(base, "object");
    storage
        .delete(&loc)
        .await
        .expect("delete of a missing object");
    storage
        .put(&loc, Bytes::from_static(b"x"))
        .await
        .expect("put");
    storage.delete(&loc).await.expect("delete");
    assert!(
        !storage.exists(&loc).await.expect("exists"),
        "gone after delete"
    );
    storage.delete(&loc).await.expect("second delete");
}

/// `delete_many` deletes exactly what it names, missing objects included, and nothing beside.
pub async fn delete_many(storage: &ObjectStorage, base: &str) {
    let names: Vec<String> = (0..5).map(|i| join(base, &format!("object-{i}"))).collect();
    for loc in &names {
        storage.put(loc, Bytes::from_static(b"x")).await.expect("put");
    }
    let doomed = vec![names[0].clone(), names[2].clone(), join(base, "never-written"), names[4].clone()];
    storage.delete_many(&doomed).await.expect("delete_many");
    for (i, loc) in names.iter().enumerate() {
        let expected = i % 2 == 1;
        assert_eq!(storage.exists(loc).await.expect("exists"), expected, "{loc} after delete_many");
    }
    storage.delete_many(&doomed).await.expect("delete_many again");
    storage.delete_many(&[]).await.expect("delete_many of nothing");
}

/// Listing is recursive, by whole segments, and returns full locations; delete_prefix removes
/// exactly what list shows.
pub async fn list_prefix(storage: &ObjectStorage, base: &str) {
    let names = ["a/1", "a/2", "a/sub/3", "ab/4"];
    for (i, name) in names.iter().enumerate() {
        storage
            .put(&join(base, name), Bytes::from(vec![7u8; i + 1]))
            .await
            .expect("put");
    }
    let mut listed = storage.list(&join(base, "a")).await.expect("list");
    listed.sort_by(|a, b| a.location.cmp(&b.location));
    let locations: Vec<&str> = listed.iter().map(|i| i.location.as_str()).collect();
    assert_eq!(
        locations,
        vec![join(base, "a/1"), join(base, "a/2"), join(base, "a/sub/3")],
        "list a"
    );
    assert_eq!(
        listed.iter().map(|i| i.size).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "sizes"
    );
    assert_eq!(storage.list(base).await.expect("list base").len(), 4);
    assert!(storage
        .list(&join(base, "nothing-here"))
        .await
        .expect("list empty")
        .is_empty());
    assert_eq!(
        storage
            .delete_prefix(&join(base, "a"))
            .await
            .expect("delete_prefix"),
        3
    );
    let rest = storage.list(base).await.expect("list after delete_prefix");
    assert_eq!(rest.len(), 1, "only ab/4 is left: {rest:?}");
    assert_eq!(rest[0].location, join(base, "ab/4"));
}

/// A create-only put refuses to replace an object.
pub async fn put_if_absent(storage: &ObjectStorage, base: &str) {
    let loc = join(base, "once");
    storage
        .put_if_absent(&loc, Bytes::from_static(b"first"))
        .await
        .expect("first put");
    match storage
        .put_if_absent(&loc, Bytes::from_static(b"second"))
        .await
    {
        Err(Error::AlreadyExists { location, .. }) => assert_eq!(location, loc),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(&storage.get(&loc).await.expect("get")[..], b"first");
}

/// A streaming write smaller than a part (one PUT at finish), and an empty one.
pub async fn streaming_write_small(storage: &ObjectStorage, base: &str) {
    let loc = join(base, "small.bin");
    let data = test_bytes(300_000, 4);
    let mut w = storage.writer(&loc).expect("writer");
    w.write(Bytes::copy_from_slice(&data[..1000]))
        .await
        .expect("write");
    w.write_all(&data[1000..]).await.expect("write_all");
    assert!(
        !storage.exists(&loc).await.expect("exists"),
        "nothing visible before finish"
    );
    assert_eq!(w.finish().await.expect("finish"), data.len() as u64);
    assert_same(
        &storage.get(&loc).await.expect("get"),
        &data,
        "small streaming write",
    );

    let empty = join(base, "empty.bin");
    let w = storage.writer(&empty).expect("writer");
    assert_eq!(w.finish().await.expect("finish empty"), 0);
    assert_eq!(storage.head(&empty).await.expect("head").size, 0);
}

/// A multipart upload of `size` bytes written in uneven pieces; checked whole and at the part
/// boundaries.
pub async fn streaming_write_large(storage: &ObjectStorage, base: &str, size: usize) {
    let loc = join(base, "large.bin");
    let data = test_bytes(size, 5);
    let mut w = storage.writer(&loc).expect("writer");
    let mut offset = 0;
    let mut step = 777_777;
    while offset < size {
        let end = (offset + step).min(size);
        if step % 2 == 0 {
            w.write_all(&data[offset..end]).await.expect("write_all");
        } else {
            w.write(Bytes::copy_from_slice(&data[offset..end]))
                .await
                .expect("write");
        }
        offset = end;
        step = step * 3 % 2_000_003 + 1;
    }
    assert!(
        !storage.exists(&loc).await.expect("exists"),
        "nothing visible before finish"
    );
    assert_eq!(w.finish().await.expect("finish"), size as u64);
    check_large(storage, &loc, &data).await;
}

async fn check_large(storage: &ObjectStorage, loc: &str, data: &[u8]) {
    assert_eq!(
        storage.head(loc).await.expect("head").size,
        data.len() as u64,
        "size after multipart upload"
    );
    let part = storage.config().settings().part_size as u64;
    let size = data.len() as u64;
    let mut boundary = part;
    while boundary < size {
        let r = boundary - 3..(boundary + 3).min(size);
        let got = storage
            .get_range(loc, r.clone())
            .await
            .expect("range at a part boundary");
        assert_same(
            &got,
            &data[r.start as usize..r.end as usize],
            &format!("part boundary {boundary}"),
        );
        boundary += part;
    }
    assert_same(
        &storage.get(loc).await.expect("get"),
        data,
        "multipart object",
    );
}

/// The `std::io::Write` writer, fed small writes from a blocking thread.
pub async fn blocking_write_large(storage: &ObjectStorage, base: &str, size: usize) {
    let loc = join(base, "blocking.bin");
    let data = test_bytes(size, 6);
    let handle = tokio::runtime::Handle::current();
    let (s, l, d) = (storage.clone(), loc.clone(), data.clone());
    let written = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut w = s.blocking_writer(&l, handle).expect("blocking writer");
        for (i, piece) in d.chunks(4096 + 1000).enumerate() {
            // Mix small and split writes, as an encoder does.
            if i % 3 == 0 {
                let (a, b) = piece.split_at(piece.len() / 2);
                w.write_all(a).expect("write");
                w.write_all(b).expect("write");
            } else {
                w.write_all(piece).expect("write");
            }
        }
        w.flush().expect("flush");
        w.finish().expect("finish")
    })
    .await
    .expect("blocking writer thread");
    assert_eq!(written, size as u64);
    check_large(storage, &loc, &data).await;
}

/// Aborted and dropped uploads (past the first part) leave no object.
pub async fn abort_leaves_nothing(storage: &ObjectStorage, base: &str) {
    let part = storage.config().settings().part_size;
    let data = Bytes::from(test_bytes(part + part / 2, 7));
    let aborted = join(base, "aborted.bin");
    let mut w = storage.writer(&aborted).expect("writer");
    w.write(data.clone()).await.expect("write");
    w.abort().await.expect("abort");
    assert!(
        !storage.exists(&aborted).await.expect("exists"),
        "aborted upload is not visible"
    );

    let dropped = join(base, "dropped.bin");
    let mut w = storage.writer(&dropped).expect("writer");
    w.write(data).await.expect("write");
    drop(w);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !storage.exists(&dropped).await.expect("exists"),
        "dropped upload is not visible"
    );
}

/// iceberg's FileIO through this storage: write, exists, read, ranged read, streaming write,
/// delete, delete_prefix, delete_stream, and the same objects seen from both sides.
pub async fn iceberg_file_io_round_trip(storage: &ObjectStorage, base: &str) {
    let io = storage.file_io();
    let meta = join(base, "metadata/00000-x.metadata.json");
    let body = Bytes::from_static(br#"{"format-version":2}"#);
    let out = io.new_output(&meta).expect("new_output");
    assert!(!out.exists().await.expect("exists before write"));
    out.write(body.clone()).await.expect("iceberg write");
    assert!(io.exists(&meta).await.expect("iceberg exists"));
    let input = io.new_input(&meta).expect("new_input");
    assert_eq!(input.read().await.expect("iceberg read"), body);
    assert_eq!(
        input.metadata().await.expect("iceberg metadata").size,
        body.len() as u64
    );
    let reader = input.reader().await.expect("iceberg reader");
    assert_eq!(
        &reader.read(2..8).await.expect("iceberg ranged read")[..],
        &body[2..8]
    );
    // Same store both ways.
    assert_eq!(
        storage
            .get(&meta)
            .await
            .expect("get of an iceberg-written file"),
        body
    );
    let data_file = join(base, "data/part-0.parquet");
    let data = test_bytes(50_000, 8);
    storage
        .put(&data_file, Bytes::from(data.clone()))
        .await
        .expect("put");
    assert_same(
        &io.new_input(&data_file)
            .expect("input")
            .read()
            .await
            .expect("iceberg read"),
        &data,
        "iceberg read",
    );

    let streamed = join(base, "metadata/snap-1.avro");
    let mut w = io
        .new_output(&streamed)
        .expect("output")
        .writer()
        .await
        .expect("iceberg writer");
    w.write(Bytes::from_static(b"hello "))
        .await
        .expect("iceberg write chunk");
    w.write(Bytes::from_static(b"manifest"))
        .await
        .expect("iceberg write chunk");
    w.close().await.expect("iceberg close");
    assert!(w.close().await.is_err(), "a second close is an error");
    assert_eq!(
        &storage.get(&streamed).await.expect("get")[..],
        b"hello manifest"
    );

    io.delete(&meta).await.expect("iceberg delete");
    assert!(!io.exists(&meta).await.expect("exists"));
    io.delete(&meta)
        .await
        .expect("iceberg delete of a missing file");
    let stream = futures::stream::iter(vec![data_file.clone(), join(base, "never-existed")]);
    io.delete_stream(stream)
        .await
        .expect("iceberg delete_stream");
    assert!(!storage.exists(&data_file).await.expect("exists"));
    io.delete_prefix(&join(base, "metadata"))
        .await
        .expect("iceberg delete_prefix");
    assert!(
        storage.list(base).await.expect("list").is_empty(),
        "everything deleted"
    );
}
