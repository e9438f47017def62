//! A catalog wrapper that injects the failures the tests need: a commit whose answer is lost after
//! it was applied (REST 504 "commit state unknown"), one that fails without being applied, loads
//! that fail, and a barrier that makes concurrent commits meet (so one of them must conflict).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, Namespace, NamespaceIdent, Result, TableCommit, TableCreation,
    TableIdent,
};

/// What the next `update_table` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it.
    None,
    /// Apply it, then answer like a REST gateway timeout (state unknown).
    ApplyThenLoseAnswer,
    /// Apply it, lose the answer, and fail every later load (the catalog went away).
    ApplyThenGoAway,
    /// Do not apply it; answer like a REST 500 (state unknown).
    FailWithoutApplying,
}

#[derive(Debug)]
pub struct FaultyCatalog {
    inner: Arc<dyn Catalog>,
    next_fault: Mutex<Fault>,
    loads_fail: AtomicBool,
    barrier: Option<Arc<tokio::sync::Barrier>>,
    barrier_passed: AtomicBool,
    pub update_calls: AtomicUsize,
    pub conflicts: AtomicUsize,
}

fn state_unknown() -> Error {
    Error::new(
        ErrorKind::Unexpected,
        "A server-side gateway timeout occurred; the commit state is unknown.",
    )
}

impl FaultyCatalog {
    pub fn new(inner: Arc<dyn Catalog>) -> Self {
        FaultyCatalog {
            inner,
            next_fault: Mutex::new(Fault::None),
            loads_fail: AtomicBool::new(false),
            barrier: None,
            barrier_passed: AtomicBool::new(false),
            update_calls: AtomicUsize::new(0),
            conflicts: AtomicUsize::new(0),
        }
    }

    /// The first `update_table` waits at `barrier` (shared with another catalog) before going on.
    pub fn with_barrier(mut self, barrier: Arc<tokio::sync::Barrier>) -> Self {
        self.barrier = Some(barrier);
        self
    }

    pub fn inject(&self, fault: Fault) {
        *self.next_fault.lock().unwrap() = fault;
    }

    pub fn heal(&self) {
        self.inject(Fault::None);
        self.loads_fail.store(false, Ordering::SeqCst);
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
        if self.loads_fail.load(Ordering::SeqCst) {
            return Err(
                Error::new(ErrorKind::Unexpected, "Failed to execute http request").with_source(
                    std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "connection refused",
                    ),
                ),
            );
        }
        self.inner.load_table(ident).await
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
        self.update_calls.fetch_add(1, Ordering::SeqCst);
        if let Some(barrier) = &self.barrier {
            if !self.barrier_passed.swap(true, Ordering::SeqCst) {
                barrier.wait().await;
            }
        }
        let fault = std::mem::replace(&mut *self.next_fault.lock().unwrap(), Fault::None);
        match fault {
            Fault::None => {
                let result = self.inner.update_table(commit).await;
                if matches!(&result, Err(e) if e.kind() == ErrorKind::CatalogCommitConflicts) {
                    self.conflicts.fetch_add(1, Ordering::SeqCst);
                }
                result
            }
            Fault::ApplyThenLoseAnswer => {
                self.inner.update_table(commit).await?;
                Err(state_unknown())
            }
            Fault::ApplyThenGoAway => {
                self.inner.update_table(commit).await?;
                self.loads_fail.store(true, Ordering::SeqCst);
                Err(state_unknown())
            }
            Fault::FailWithoutApplying => Err(Error::new(
                ErrorKind::Unexpected,
                "An unknown server-side problem occurred; the commit state is unknown.",
            )),
        }
    }
}
