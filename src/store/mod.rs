//! The engine's store on IndexedDB: one database per user and server, atomic batches, index
//! reads, migrations, and recovery from the ways browsers lose or damage databases.
//!
//! Built on the `idb` crate (the layer `rexie` wraps) because the store needs what `rexie` hides:
//! `upgradeneeded` with the `versionchange` transaction for numbered migrations, `blocked`, and
//! `versionchange` on open connections.
//!
//! A batch that stores a composed message, or the read markers not sent yet (`markRead`),
//! commits with `durability: "strict"`: the browser reports it committed only once the disk has
//! it, so a power cut after "queued" cannot lose what the user wrote or read. Every other batch
//! holds what the server can send again and commits `"relaxed"`.
//!
//! | fault | what the store does |
//! |---|---|
//! | quota exceeded | the batch aborts whole; [`StoreError::QuotaExceeded`] (the engine evicts and retries) |
//! | another tab upgrades or deletes | `versionchange` closes our connection; the next call reopens |
//! | our upgrade is blocked by another tab | reported as [`StoreError::Unavailable`], not waited on |
//! | connection lost (Safari, backgrounding) | the handle is dropped, reopened, the call retried once |
//! | `open()` never settles | times out after 8 s: [`StoreError::Unavailable`] |
//! | unreadable or inconsistent database | readable outbox rescued (a failed read tried once more on a fresh connection), database rebuilt, [`OpenReport::recovered`] |
//! | wiped (meta record missing) | starts over with the surviving outbox, [`OpenReport::wiped`] |
//! | deleted while in use (site data cleared) | reopened empty, with a fresh meta record; [`IndexedDbStore::take_wiped`] (the leading engine writes its outbox again and syncs from the start) |
//! | database from a newer app version | left as it is: [`Opened::Without`] (the page keeps its data in memory) |
//! | rebuild fails (the new database does not open, twice; another tab blocks the deletion) | [`Opened::Damaged`] with the rescued outbox (the page keeps it in memory and delivers it) |

mod apply;
mod codec;
mod connection;
mod errors;
mod open;
mod quota;
mod read;
mod request;
mod schema;
mod slots;

#[cfg(all(test, target_arch = "wasm32"))]
mod tests;

pub use open::OpenReport;
pub use quota::{request_persistence, storage_estimate, StorageEstimate};

use chat_sync_engine::protocol::{Conversation, ConversationId, Millis, ReadMarker, UserId};
use chat_sync_engine::{
    ApplyReport, ConversationSummary, HistoryFloor, LocalMessage, OutboxEntry, PersistedState,
    Store, StoreError, StoreOp,
};
use connection::Connection;
use errors::Failure;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use web_sys::DomException;

/// The engine's store on IndexedDB.
pub struct IndexedDbStore {
    name: String,
    /// The open connection, shared with the `versionchange` handler that closes it.
    connection: Rc<RefCell<Option<Rc<Connection>>>>,
    /// Operations under way.
    busy: Cell<usize>,
    /// [`close`](Self::close) was called: the connection closes whenever no operation is under
    /// way.
    closed: Cell<bool>,
    /// [`retire`](Self::retire) was called: nothing opens the database again.
    retired: Cell<bool>,
    /// Opening made the database anew, or an operation reopened it and found it gone
    /// ([`Self::take_wiped`]).
    wiped: Cell<bool>,
    /// Told when an operation finds the database deleted while in use ([`Self::on_wiped`]).
    on_wiped: RefCell<Option<Box<dyn Fn()>>>,
    report: OpenReport,
    injected: RefCell<Option<DomException>>,
}

/// What [`IndexedDbStore::open_if_allowed`] found.
pub enum Opened {
    /// The database, open and checked.
    Database(IndexedDbStore),
    /// No database this page can use.
    Without(NoDatabase),
    /// The database could not be used, and rebuilding it failed (`reason` tells both): the page
    /// keeps its data in memory ([`NoDatabase::Damaged`]), starting with `outbox`, the messages
    /// not sent yet read from it, which exist nowhere else now.
    Damaged {
        /// Why the database could not be used, and why rebuilding it failed.
        reason: String,
        /// The outbox entries read from it.
        outbox: Vec<OutboxEntry>,
    },
}

/// Why a page has no database and keeps its data in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoDatabase {
    /// The browser gives this page no IndexedDB (some private modes, storage the user blocked).
    Unavailable,
    /// A newer version of the app wrote the database, at a schema version this one does not
    /// know (another tab already runs it, or the app was rolled back).
    NewerVersion,
    /// The database could not be used, and rebuilding it failed ([`Opened::Damaged`]).
    Damaged,
}

impl NoDatabase {
    /// The name the JS API gives it (`memoryReason`).
    pub fn as_str(self) -> &'static str {
        match self {
            NoDatabase::Unavailable => "unavailable",
            NoDatabase::NewerVersion => "newerVersion",
            NoDatabase::Damaged => "damaged",
        }
    }
}

impl IndexedDbStore {
    /// The database name for a user on a server: one database each, so a different user (or
    /// server) never sees another's data.
    pub fn database_name(server_url: &str, user: &UserId) -> String {
        let server = server_url.trim_end_matches('/');
        format!("chat-sync|{server}|{user}")
    }

    /// Opens (creating or upgrading) the database `name`, checks it and repairs it if needed.
    /// Where repairing it fails, the outbox entries read from it are lost: a page keeps them with
    /// [`open_if_allowed`](Self::open_if_allowed).
    pub async fn open(name: &str) -> Result<Self, StoreError> {
        match Self::open_if_allowed(name).await? {
            Opened::Database(store) => Ok(store),
            Opened::Without(NoDatabase::Unavailable) => Err(StoreError::Unavailable(
                "IndexedDB is not available here".into(),
            )),
            Opened::Without(NoDatabase::NewerVersion) => Err(StoreError::Failed(
                "the database was written by a newer version of this app".into(),
            )),
            Opened::Without(NoDatabase::Damaged) | Opened::Damaged { .. } => Err(
                StoreError::Failed("the database is damaged and could not be rebuilt".into()),
            ),
        }
    }

    /// [`open`](Self::open), or why there is no database to use: the browser gives this page no
    /// IndexedDB, a newer version of the app wrote it (that version keeps it as it is), or it
    /// could not be used and rebuilding it failed (with the outbox entries read from it).
    pub async fn open_if_allowed(name: &str) -> Result<Opened, StoreError> {
        let (database, report) = match open::open_checked(name).await {
            Ok(opened) => opened,
            Err(Failure::Unsupported(reason)) => {
                log::info!(reason = reason.as_str(); "IndexedDB is not available here");
                return Ok(Opened::Without(NoDatabase::Unavailable));
            }
            Err(Failure::TooNew(reason)) => {
                log::warn!(
                    reason = reason.as_str();
                    "the database was written by a newer version of this app: left as it is"
                );
                return Ok(Opened::Without(NoDatabase::NewerVersion));
            }
            Err(Failure::RebuildFailed { reason, rescued }) => {
                return Ok(Opened::Damaged {
                    reason,
                    outbox: rescued,
                })
            }
            Err(failure) => return Err(failure.into_store_error()),
        };
        let store = Self {
            name: name.to_owned(),
            connection: Rc::new(RefCell::new(None)),
            busy: Cell::new(0),
            closed: Cell::new(false),
            retired: Cell::new(false),
            // Opening made the database anew: where another tab runs, it was deleted under it
            // (the leading tab syncs from the start once told).
            wiped: Cell::new(
                report.upgraded_from == Some(0) || report.wiped || report.recovered.is_some(),
            ),
            on_wiped: RefCell::new(None),
            report,
            injected: RefCell::new(None),
        };
        store.install(database);
        Ok(Opened::Database(store))
    }

    /// Whether opening, or an operation since the last call, found the database deleted while in
    /// use (it made it anew, and it started over empty); the engine then syncs from the start.
    pub fn take_wiped(&self) -> bool {
        self.wiped.replace(false)
    }

    /// Calls `hook` whenever an operation finds the database deleted while in use (before
    /// [`Self::take_wiped`] says so): a read the engine does not see finds it too.
    pub fn on_wiped(&self, hook: impl Fn() + 'static) {
        *self.on_wiped.borrow_mut() = Some(Box::new(hook));
    }

    /// What opening found (upgrade, wipe, recovery).
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// Closes the connection, so other tabs' upgrades and deletes are not blocked, and keeps it
    /// closed: operations under way finish first, and one started later opens a connection for
    /// itself and closes it when done (a write the engine asked for before is still stored),
    /// until [`keep_open`](Self::keep_open).
    pub fn close(&self) {
        self.closed.set(true);
        if self.busy.get() == 0 {
            self.drop_connection();
        }
    }

    /// [`close`](Self::close) for good, as the database is deleted (`clear()`, a logout):
    /// operations under way finish, and later ones fail instead of opening it (which would make
    /// it anew, and write the user's data back).
    pub fn retire(&self) {
        self.retired.set(true);
        self.close();
    }

    /// Undoes [`close`](Self::close): the next operation opens the connection and it stays open.
    pub fn keep_open(&self) {
        self.closed.set(false);
    }

    fn drop_connection(&self) {
        if let Some(database) = self.connection.borrow_mut().take() {
            database.close();
        }
    }

    /// Deletes the database `name` (logout, `clear()`). Other tabs' connections close on the
    /// resulting `versionchange`.
    pub async fn delete(name: &str) -> Result<(), StoreError> {
        open::delete(name).await.map_err(Failure::into_store_error)
    }

    /// Makes the next [`Store::apply`] abort its transaction with `exception` after issuing its
    /// writes, as a browser does when the quota runs out mid-batch. For tests.
    #[doc(hidden)]
    pub fn inject_apply_failure(&self, exception: DomException) {
        *self.injected.borrow_mut() = Some(exception);
    }

    /// Whether the store holds the conversation `id`: one keyed count, where
    /// [`Store::conversations`] reads and sorts every conversation (sending a message checks
    /// its conversation with it).
    pub async fn has_conversation(&self, id: &ConversationId) -> Result<bool, StoreError> {
        self.run(|database| async move { read::has_conversation(&database, id).await })
            .await
    }

    /// Makes every store of this page run maintenance the old way, a walk over every message
    /// (`on`), or the store's own way. For `bench/maintenance.mjs`.
    #[cfg(feature = "legacy-maintenance")]
    #[doc(hidden)]
    pub fn use_legacy_maintenance(on: bool) {
        apply::LEGACY_MAINTENANCE.set(on);
    }

    /// Closes the connection but keeps the stale handle, as when Safari drops the connection of
    /// a backgrounded page. For tests.
    #[doc(hidden)]
    pub fn lose_connection(&self) {
        if let Some(database) = self.connection.borrow().as_ref() {
            database.close();
        }
    }

    /// Keeps `database` as the connection, closing it when another tab asks for a version change.
    fn install(&self, mut database: Connection) -> Rc<Connection> {
        let slot = Rc::downgrade(&self.connection);
        database.on_version_change(move |_| {
            log::info!("another tab changes the database version; closing our connection");
            if let Some(slot) = slot.upgrade() {
                if let Some(database) = slot.borrow_mut().take() {
                    database.close();
                }
            }
        });
        let database = Rc::new(database);
        *self.connection.borrow_mut() = Some(database.clone());
        database
    }

    async fn database(&self) -> Result<Rc<Connection>, Failure> {
        let current = self.connection.borrow().clone();
        if let Some(database) = current {
            return Ok(database);
        }
        if self.retired.get() {
            return Err(Failure::Retired);
        }
        let (database, upgraded_from) = open::open_at(&self.name, schema::SCHEMA_VERSION).await?;
        if upgraded_from == Some(0) {
            // Created anew (with a fresh meta record): deleted while in use (site data cleared,
            // storage evicted).
            log::warn!("the database was deleted while in use; it starts over empty");
            self.wiped.set(true);
            if let Some(hook) = self.on_wiped.borrow().as_ref() {
                hook();
            }
        }
        // Another operation may have opened one while this one waited: one connection only
        // (a second, unknown to the store, would never be closed).
        if let Some(current) = self.connection.borrow().clone() {
            database.close();
            return Ok(current);
        }
        Ok(self.install(database))
    }

    /// Runs `operation`; on a lost connection, drops the handle, reopens and runs it once more
    /// (every operation is idempotent; a failed one wrote nothing).
    async fn run<T, F, Fut>(&self, operation: F) -> Result<T, StoreError>
    where
        F: Fn(Rc<Connection>) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let _busy = Busy::new(self);
        let database = self.database().await.map_err(Failure::into_store_error)?;
        match operation(database).await {
            Err(Failure::ConnectionLost(reason)) => {
                log::warn!(reason = reason.as_str(); "IndexedDB connection lost; reopening");
                self.drop_connection();
                let database = self.database().await.map_err(Failure::into_store_error)?;
                operation(database).await.map_err(Failure::into_store_error)
            }
            other => other.map_err(Failure::into_store_error),
        }
    }
}

/// Counts an operation under way for as long as it lives; the last one out closes a connection
/// [`IndexedDbStore::close`] asked to close.
struct Busy<'a>(&'a IndexedDbStore);

impl<'a> Busy<'a> {
    fn new(store: &'a IndexedDbStore) -> Self {
        store.busy.set(store.busy.get() + 1);
        Self(store)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let store = self.0;
        store.busy.set(store.busy.get() - 1);
        if store.closed.get() && store.busy.get() == 0 {
            store.drop_connection();
        }
    }
}

impl Store for IndexedDbStore {
    async fn load(&self) -> Result<PersistedState, StoreError> {
        self.run(|database| async move { read::load(&database).await })
            .await
    }

    async fn apply(&self, ops: &[StoreOp]) -> Result<ApplyReport, StoreError> {
        let maintenance = ops.iter().any(|op| {
            matches!(
                op,
                StoreOp::EvictHistory { .. } | StoreOp::CompactTombstones { .. }
            )
        });
        // Maintenance reports the storage used around it (never awaited inside a transaction).
        let used = || async {
            match maintenance {
                true => storage_estimate()
                    .await
                    .map(|estimate| estimate.usage as u64),
                false => None,
            }
        };
        let storage_used_before = used().await;
        // An injected failure hits the first attempt only.
        let injected = RefCell::new(self.injected.borrow_mut().take());
        let report = self
            .run(|database| {
                let injected = injected.borrow_mut().take();
                async move { apply::apply(&database, ops, injected).await }
            })
            .await?;
        Ok(ApplyReport {
            storage_used_before,
            storage_used_after: used().await,
            ..report
        })
    }

    async fn conversations(&self) -> Result<Vec<Conversation>, StoreError> {
        self.run(|database| async move { read::conversations(&database).await })
            .await
    }

    async fn conversation_summaries(
        &self,
        me: &UserId,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        self.run(|database| async move { read::conversation_summaries(&database, me).await })
            .await
    }

    async fn messages(
        &self,
        conversation: &ConversationId,
        before: Option<Millis>,
        limit: usize,
    ) -> Result<Vec<LocalMessage>, StoreError> {
        self.run(
            |database| async move { read::messages(&database, conversation, before, limit).await },
        )
        .await
    }

    async fn history_floor(
        &self,
        conversation: &ConversationId,
    ) -> Result<HistoryFloor, StoreError> {
        self.run(|database| async move { read::history_floor(&database, conversation).await })
            .await
    }

    async fn read_markers(
        &self,
        conversation: &ConversationId,
    ) -> Result<Vec<ReadMarker>, StoreError> {
        self.run(|database| async move { read::read_markers(&database, conversation).await })
            .await
    }
}
