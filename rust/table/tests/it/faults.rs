//! Failure injection for the tests, at the places the commit driver really talks to:
//!
//! - [`FaultyCatalog`] wraps the iceberg catalog the driver loads tables from: loads can fail
//!   (the catalog went away), and a barrier makes the first loads of several brokers meet after
//!   loading, so they all plan their commit on the same table state and all but one conflict.
//! - Commits do not go through `Catalog::update_table` (calving-table's own commit path speaks
//!   the SQL and REST protocols itself), so commit faults are injected below it:
//!   [`SqlFaults`] arms triggers on the SQL catalog's `iceberg_tables` (SQLite), [`RestFaults`]
//!   is an HTTP proxy in front of the REST catalog. Both can apply a commit and lose the answer
//!   (REST 504, an error from the SQL `UPDATE` after it was applied) or fail it without applying
//!   it, once, and count how often they fired.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, Namespace, NamespaceIdent, Result, TableCommit, TableCreation,
    TableIdent,
};

/// What the next commit that reaches the catalog does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Goes through.
    None,
    /// Is applied, then the answer is lost (SQL: the `UPDATE` errors after changing the row;
    /// REST: 504 after the server applied it).
    ApplyThenLoseAnswer,
    /// Fails without being applied (SQL: the `UPDATE` errors before changing the row; REST: 500
    /// without reaching the server).
    FailWithoutApplying,
}

/// A catalog whose loads can fail and can meet at a barrier.
#[derive(Debug)]
pub struct FaultyCatalog {
    inner: Arc<dyn Catalog>,
    /// `Some(n)`: the next `n` loads succeed, every later one fails.
    loads_left: Mutex<Option<usize>>,
    barrier: Option<Arc<tokio::sync::Barrier>>,
    barrier_passed: AtomicBool,
    /// Every load takes at least this long (`delay_loads`).
    load_delay: Mutex<Option<std::time::Duration>>,
    /// Every load answers this long after it read the table (`delay_answers`).
    answer_delay: Mutex<Option<std::time::Duration>>,
    pub load_calls: AtomicUsize,
    /// Loads that read the table (before any `delay_answers`).
    loads_read: AtomicUsize,
}

impl FaultyCatalog {
    pub fn new(inner: Arc<dyn Catalog>) -> Self {
        FaultyCatalog {
            inner,
            loads_left: Mutex::new(None),
            barrier: None,
            barrier_passed: AtomicBool::new(false),
            load_delay: Mutex::new(None),
            answer_delay: Mutex::new(None),
            load_calls: AtomicUsize::new(0),
            loads_read: AtomicUsize::new(0),
        }
    }

    /// The first `load_table` waits at `barrier` (shared with other catalogs) once it loaded the
    /// table, so that all of them plan on the same table state.
    pub fn with_barrier(mut self, barrier: Arc<tokio::sync::Barrier>) -> Self {
        self.barrier = Some(barrier);
        self
    }

    /// Every later load waits `delay` first (a slow catalog).
    pub fn delay_loads(&self, delay: std::time::Duration) {
        *self.load_delay.lock().unwrap() = Some(delay);
    }

    /// Every later load answers `delay` after it read the table (a slow answer: the state it
    /// carries may be stale by the time it arrives).
    pub fn delay_answers(&self, delay: std::time::Duration) {
        *self.answer_delay.lock().unwrap() = Some(delay);
    }

    /// The next `n` loads succeed, then the catalog is gone (connection refused).
    pub fn go_away_after_loads(&self, n: usize) {
        *self.loads_left.lock().unwrap() = Some(n);
    }

    pub fn heal(&self) {
        *self.loads_left.lock().unwrap() = None;
    }

    pub fn loads(&self) -> usize {
        self.load_calls.load(Ordering::SeqCst)
    }

    /// Loads that have read the table (their answer may still be on its way: `delay_answers`).
    pub fn loads_read(&self) -> usize {
        self.loads_read.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Catalog for FaultyCatalog {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> Result<Vec<NamespaceIdent>> {
        self.inner.list_namespaces(parent).await
    }
    async fn create_namespace(
        &self,
        ns: &NamespaceIdent,
        props: HashMap<String, String>,
    ) -> Result<Namespace> {
        self.inner.create_namespace(ns, props).await
    }
    async fn get_namespace(&self, ns: &NamespaceIdent) -> Result<Namespace> {
        self.inner.get_namespace(ns).await
    }
    async fn namespace_exists(&self, ns: &NamespaceIdent) -> Result<bool> {
        self.inner.namespace_exists(ns).await
    }
    async fn update_namespace(
        &self,
        ns: &NamespaceIdent,
        props: HashMap<String, String>,
    ) -> Result<()> {
        self.inner.update_namespace(ns, props).await
    }
    async fn drop_namespace(&self, ns: &NamespaceIdent) -> Result<()> {
        self.inner.drop_namespace(ns).await
    }
    async fn list_tables(&self, ns: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        self.inner.list_tables(ns).await
    }
    async fn create_table(&self, ns: &NamespaceIdent, creation: TableCreation) -> Result<Table> {
        self.inner.create_table(ns, creation).await
    }
    async fn load_table(&self, ident: &TableIdent) -> Result<Table> {
        self.load_calls.fetch_add(1, Ordering::SeqCst);
        let gone = {
            let mut left = self.loads_left.lock().unwrap();
            match left.as_mut() {
                Some(0) => true,
                Some(n) => {
                    *n -= 1;
                    false
                }
                None => false,
            }
        };
        if gone {
            return Err(
                Error::new(ErrorKind::Unexpected, "Failed to execute http request").with_source(
                    std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "connection refused",
                    ),
                ),
            );
        }
        let delay = *self.load_delay.lock().unwrap();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let table = self.inner.load_table(ident).await?;
        self.loads_read.fetch_add(1, Ordering::SeqCst);
        let delay = *self.answer_delay.lock().unwrap();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        // After loading: every broker at the barrier holds the same table state.
        if let Some(barrier) = &self.barrier {
            if !self.barrier_passed.swap(true, Ordering::SeqCst) {
                barrier.wait().await;
            }
        }
        Ok(table)
    }
    async fn drop_table(&self, ident: &TableIdent) -> Result<()> {
        self.inner.drop_table(ident).await
    }
    async fn purge_table(&self, ident: &TableIdent) -> Result<()> {
        self.inner.purge_table(ident).await
    }
    async fn table_exists(&self, ident: &TableIdent) -> Result<bool> {
        self.inner.table_exists(ident).await
    }
    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> Result<()> {
        self.inner.rename_table(src, dest).await
    }
    async fn register_table(&self, ident: &TableIdent, location: String) -> Result<Table> {
        self.inner.register_table(ident, location).await
    }
    async fn update_table(&self, commit: TableCommit) -> Result<Table> {
        self.inner.update_table(commit).await
    }
}

/// Commit faults of the SQL catalog on SQLite: triggers on `iceberg_tables` that fire on the next
/// change of a table's `metadata_location` when armed, disarm themselves and count.
///
/// `RAISE(FAIL)` aborts the statement but keeps what it changed before (SQLite's FAIL conflict
/// resolution; the statement runs in autocommit mode, so that is committed): in an `AFTER UPDATE`
/// trigger the row's new metadata location stays (applied, answer lost), in a `BEFORE UPDATE`
/// trigger the row is not changed (failed without applying). In both, the trigger's own update of
/// the fault table (disarm, count) happened before the `RAISE` and stays.
#[derive(Debug)]
pub struct SqlFaults {
    uri: String,
}

impl SqlFaults {
    /// Installs the triggers in the SQLite catalog at `uri` (its tables must exist).
    pub async fn install(uri: &str) -> SqlFaults {
        let faults = SqlFaults { uri: uri.to_string() };
        faults
            .execute(&[
                "CREATE TABLE calving_test_faults (id INTEGER PRIMARY KEY CHECK (id = 1), \
                 fault TEXT NOT NULL, fired INTEGER NOT NULL)",
                "INSERT INTO calving_test_faults VALUES (1, 'none', 0)",
                "CREATE TRIGGER calving_test_apply_then_lose_answer \
                 AFTER UPDATE OF metadata_location ON iceberg_tables \
                 WHEN (SELECT fault FROM calving_test_faults) = 'apply-then-lose-answer' \
                 BEGIN \
                   UPDATE calving_test_faults SET fault = 'none', fired = fired + 1; \
                   SELECT RAISE(FAIL, 'injected fault: the answer to the UPDATE was lost'); \
                 END",
                "CREATE TRIGGER calving_test_fail_without_applying \
                 BEFORE UPDATE OF metadata_location ON iceberg_tables \
                 WHEN (SELECT fault FROM calving_test_faults) = 'fail-without-applying' \
                 BEGIN \
                   UPDATE calving_test_faults SET fault = 'none', fired = fired + 1; \
                   SELECT RAISE(FAIL, 'injected fault: the UPDATE failed'); \
                 END",
            ])
            .await;
        faults
    }

    /// Arms `fault` for the next commit.
    pub async fn inject(&self, fault: Fault) {
        let name = match fault {
            Fault::None => "none",
            Fault::ApplyThenLoseAnswer => "apply-then-lose-answer",
            Fault::FailWithoutApplying => "fail-without-applying",
        };
        self.execute(&[&format!(
            "UPDATE calving_test_faults SET fault = '{name}'"
        )])
        .await;
    }

    /// How many injected faults fired, and whether one is still armed.
    pub async fn fired(&self) -> (i64, bool) {
        let pool = self.pool().await;
        let (fired, fault): (i64, String) =
            sqlx::query_as("SELECT fired, fault FROM calving_test_faults")
                .fetch_one(&pool)
                .await
                .unwrap();
        pool.close().await;
        (fired, fault != "none")
    }

    async fn pool(&self) -> sqlx::SqlitePool {
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&self.uri)
            .await
            .unwrap()
    }

    async fn execute(&self, statements: &[&str]) {
        let pool = self.pool().await;
        for s in statements {
            sqlx::query(s).execute(&pool).await.unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        pool.close().await;
    }
}

/// An HTTP/1.1 proxy in front of a REST catalog, for the commit path: faults apply to the next
/// `POST .../tables/<name>` (a table commit); everything else is forwarded as is. One request per
/// connection (`Connection: close` both ways). Stops when dropped (its thread then lingers on
/// `accept` until the process exits; the port is just one loopback port).
#[derive(Debug)]
pub struct RestFaults {
    pub uri: String,
    state: Arc<ProxyState>,
}

#[derive(Debug)]
struct ProxyState {
    upstream: String,
    next: Mutex<Fault>,
    fired: AtomicUsize,
    commits: AtomicUsize,
    stopped: AtomicBool,
}

impl RestFaults {
    /// Starts the proxy in front of `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> RestFaults {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let uri = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(ProxyState {
            upstream: upstream
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
            next: Mutex::new(Fault::None),
            fired: AtomicUsize::new(0),
            commits: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        });
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    if let Err(e) = serve(&s, conn) {
                        eprintln!("rest fault proxy: {e}");
                    }
                });
            }
        });
        RestFaults { uri, state }
    }

    pub fn inject(&self, fault: Fault) {
        *self.state.next.lock().unwrap() = fault;
    }

    /// How many injected faults fired.
    pub fn fired(&self) -> usize {
        self.state.fired.load(Ordering::SeqCst)
    }

    /// How many table commits went through the proxy (faulty or not).
    pub fn commits(&self) -> usize {
        self.state.commits.load(Ordering::SeqCst)
    }
}

impl Drop for RestFaults {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
    }
}

/// Reads one HTTP message (head and a `Content-Length` body, or up to EOF without one).
fn read_message(stream: &mut TcpStream, to_eof: bool) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed inside the head"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut body = buf[head_end..].to_vec();
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    match length {
        Some(len) => {
            while body.len() < len {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        None if to_eof => {
            stream.read_to_end(&mut body)?;
        }
        None => {}
    }
    Ok((head, body))
}

/// `head` with `Connection: close` instead of whatever it said.
fn closing(head: &str) -> String {
    let mut out: Vec<&str> = head
        .split("\r\n")
        .filter(|l| {
            !l.is_empty()
                && !l
                    .split_once(':')
                    .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"))
        })
        .collect();
    out.push("Connection: close");
    format!("{}\r\n\r\n", out.join("\r\n"))
}

fn serve(state: &ProxyState, mut client: TcpStream) -> std::io::Result<()> {
    let (head, body) = read_message(&mut client, false)?;
    let request_line = head.lines().next().unwrap_or_default().to_string();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let is_commit = method == "POST"
        && path.contains("/tables/")
        && !path.trim_end_matches('/').ends_with("/tables");
    let fault = if is_commit {
        state.commits.fetch_add(1, Ordering::SeqCst);
        std::mem::replace(&mut *state.next.lock().unwrap(), Fault::None)
    } else {
        Fault::None
    };
    let reply = |client: &mut TcpStream, status: &str, text: &str| -> std::io::Result<()> {
        let body = format!(
            r#"{{"error":{{"message":"{text}","type":"InjectedFault","code":{}}}}}"#,
            &status[..3]
        );
        write!(
            client,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        client.flush()?;
        client.shutdown(Shutdown::Both)
    };
    if fault == Fault::FailWithoutApplying {
        state.fired.fetch_add(1, Ordering::SeqCst);
        return reply(&mut client, "500 Internal Server Error", "injected fault: not applied");
    }
    let mut upstream = TcpStream::connect(&state.upstream)?;
    upstream.write_all(closing(&head).as_bytes())?;
    upstream.write_all(&body)?;
    upstream.flush()?;
    let (response_head, response_body) = read_message(&mut upstream, true)?;
    if fault == Fault::ApplyThenLoseAnswer {
        let applied = response_head
            .lines()
            .next()
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("200"));
        // Only a commit the server applied counts (a refused one is answered as it was).
        if applied {
            state.fired.fetch_add(1, Ordering::SeqCst);
            return reply(&mut client, "504 Gateway Timeout", "injected fault: answer lost");
        }
    }
    client.write_all(closing(&response_head).as_bytes())?;
    client.write_all(&response_body)?;
    client.flush()?;
    client.shutdown(Shutdown::Both)
}
