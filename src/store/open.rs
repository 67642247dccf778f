//! Opening the database: upgrades, a `blocked` upgrade reported instead of waited on, a timeout
//! for opens that never settle, and the integrity check with recovery.

use super::codec::*;
use super::connection::{Connection, Durability};
use super::errors::{classify, classify_js, Failure};
use super::request::request_result;
use super::schema::{self, SCHEMA_VERSION};
use chat_sync_engine::OutboxEntry;
use futures_util::future::{select, Either};
use gloo_timers::future::TimeoutFuture;
use idb::request::OpenDatabaseRequest;
use idb::{Database, Factory, Request as _, TransactionMode};
use std::cell::RefCell;
use std::future::IntoFuture;
use std::rc::Rc;
use wasm_bindgen::{closure::Closure, JsCast};
use web_sys::{IdbDatabase, IdbFactory, IdbOpenDbRequest};

/// How long an open may take before it counts as hung (Safari sometimes never answers).
const OPEN_TIMEOUT_MS: u32 = 8_000;
/// After `blocked`, how long other connections get to close (those closing on `versionchange`
/// finish their transactions first) before the upgrade counts as blocked.
const BLOCKED_GRACE_MS: u32 = 1_500;
/// How long to wait before opening again after a transient failure.
const RETRY_OPEN_MS: u32 = 1_000;

/// What opening found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The schema version the database had before this open upgraded it (0: newly created).
    pub upgraded_from: Option<u32>,
    /// The meta record was missing (site data cleared): the store starts over, keeping any
    /// outbox entries that survived.
    pub wiped: bool,
    /// The database was unreadable or inconsistent and was rebuilt; the reason. Outbox entries
    /// that could be read were kept.
    pub recovered: Option<String>,
}

/// Opens `name` at `version`, running the upgrade steps it needs. Returns the connection and,
/// when it upgraded, the version it upgraded from (0: created).
pub(crate) async fn open_at(
    name: &str,
    version: u32,
) -> Result<(Connection, Option<u32>), Failure> {
    let factory: IdbFactory = Factory::new()
        .map_err(|error| Failure::Unsupported(error.to_string()))?
        .into();
    let raw = factory
        .open_with_u32(name, version)
        .map_err(|error| classify_js(&error))?;
    let mut request = OpenDatabaseRequest::from(raw.clone());
    let upgraded_from = Rc::new(RefCell::new(None));
    let upgrade_error: Rc<RefCell<Option<idb::Error>>> = Rc::new(RefCell::new(None));
    {
        let upgraded_from = upgraded_from.clone();
        let upgrade_error = upgrade_error.clone();
        request.on_upgrade_needed(move |event| {
            use idb::{DatabaseEvent, Event};
            let result = (|| {
                let old = event.old_version()?;
                let database = event.database()?;
                let transaction = event
                    .target()?
                    .transaction()
                    .ok_or(idb::Error::TransactionNotFound)?;
                *upgraded_from.borrow_mut() = Some(old);
                schema::upgrade(&database, &transaction, old, version)
            })();
            if let Err(error) = result {
                log::error!(error = error.to_string().as_str(); "schema upgrade failed");
                *upgrade_error.borrow_mut() = Some(error);
                // The database keeps its version and what it held: no half-done upgrade is
                // committed under the new version.
                if let Some(transaction) = event.target().ok().and_then(|t| t.transaction()) {
                    let _ = transaction.abort();
                }
            }
        });
    }
    let (blocked_tx, blocked_rx) = futures_channel::oneshot::channel::<()>();
    request.on_blocked(move |_| {
        let _ = blocked_tx.send(());
    });
    // The browser may call these after we stop waiting (a blocked open proceeds later): leave
    // them to the JS garbage collector instead of dropping them under it.
    request.forget_callbacks();
    let opened = Box::pin(request_result(&raw));
    let waited = match select(
        opened,
        select(blocked_rx, TimeoutFuture::new(OPEN_TIMEOUT_MS)),
    )
    .await
    {
        Either::Left((result, _)) => Ok(result),
        Either::Right((Either::Left((Ok(()), _)), opened)) => {
            match select(opened, TimeoutFuture::new(BLOCKED_GRACE_MS)).await {
                Either::Left((result, _)) => Ok(result),
                Either::Right(_) => Err(Failure::Blocked),
            }
        }
        Either::Right((Either::Left((Err(_), timeout)), opened)) => {
            match select(opened, timeout).await {
                Either::Left((result, _)) => Ok(result),
                Either::Right(_) => Err(Failure::Timeout),
            }
        }
        Either::Right((Either::Right(_), _)) => Err(Failure::Timeout),
    };
    let result = waited.inspect_err(|_| {
        // Giving up: if the open completes later, close what it opens.
        close_when_opened(&raw);
    })?;
    if let Some(error) = upgrade_error.borrow_mut().take() {
        return Err(Failure::UpgradeFailed(error.to_string()));
    }
    let database = Connection::new(
        result?
            .dyn_into::<IdbDatabase>()
            .map_err(|value| Failure::Other(format!("open gave {value:?}, not a database")))?,
    );
    let upgraded_from = *upgraded_from.borrow();
    Ok((database, upgraded_from))
}

/// Closes the connection an abandoned open request produces, whenever it does.
fn close_when_opened(request: &IdbOpenDbRequest) {
    let on_success = Closure::once_into_js(move |event: web_sys::Event| {
        let database = event
            .target()
            .and_then(|target| target.dyn_into::<IdbOpenDbRequest>().ok())
            .and_then(|request| request.result().ok())
            .and_then(|result| result.dyn_into::<IdbDatabase>().ok());
        if let Some(database) = database {
            database.close();
        }
    });
    request.set_onsuccess(Some(on_success.unchecked_ref()));
}

/// Opens the store's database, checks it and rebuilds it when it is unreadable.
pub(crate) async fn open_checked(name: &str) -> Result<(Connection, OpenReport), Failure> {
    let (database, upgraded_from) = match open_at(name, SCHEMA_VERSION).await {
        // A transient failure (an `UnknownError`, a lost connection): once more, a moment later.
        Err(Failure::ConnectionLost(first)) => {
            log::warn!(error = first.as_str(); "opening the database failed; retrying once");
            TimeoutFuture::new(RETRY_OPEN_MS).await;
            match open_at(name, SCHEMA_VERSION).await {
                // It may be opening at this version that fails: what the outbox holds at the
                // version it has goes into the new database.
                Err(Failure::ConnectionLost(second)) => {
                    return rebuild(name, second, rescue_outbox_as_it_is(name).await).await
                }
                other => other?,
            }
        }
        // A schema step failed, and the database kept its version: what its outbox holds goes
        // into a new one.
        Err(Failure::UpgradeFailed(reason)) => {
            let reason = format!("schema upgrade failed: {reason}");
            return rebuild(name, reason, rescue_outbox_as_it_is(name).await).await;
        }
        // An open that never settled (seen in Safari): a fresh request usually does.
        Err(Failure::Timeout) => {
            log::warn!(timeout_ms = OPEN_TIMEOUT_MS; "opening the database did not finish; retrying once");
            open_at(name, SCHEMA_VERSION).await?
        }
        other => other?,
    };
    let mut report = OpenReport {
        upgraded_from,
        ..OpenReport::default()
    };
    let (database, health) = match check(&database).await {
        // A transient failure (an `UnknownError`, a lost connection): once more, a moment later;
        // twice, the database counts as unreadable.
        Err(Failure::ConnectionLost(first)) => {
            log::warn!(error = first.as_str(); "checking the database failed; retrying once");
            database.close();
            TimeoutFuture::new(RETRY_OPEN_MS).await;
            let (database, _) = open_at(name, SCHEMA_VERSION).await?;
            let health = match check(&database).await {
                Err(Failure::ConnectionLost(second)) => Err(Failure::Corrupt(second)),
                health => health,
            };
            (database, health)
        }
        health => (database, health),
    };
    match health {
        Ok(Health::Sound) => Ok((database, report)),
        Ok(Health::Wiped) => {
            log::warn!("the database lost its meta record (site data cleared?); starting over");
            write_fresh_meta(&database).await?;
            report.wiped = true;
            Ok((database, report))
        }
        Err(Failure::Corrupt(reason)) => {
            let rescued = rescue_outbox(name, &database).await;
            database.close();
            rebuild(name, reason, rescued).await
        }
        Err(other) => {
            database.close();
            Err(other)
        }
    }
}

/// The database cannot be opened or read (`reason`): delete it and start with a new one, with
/// the outbox entries `rescued` from it (`None`: its outbox could not be read). Opening the new
/// one and writing them back is tried once more a moment later when it fails; when the rebuild
/// still fails, [`Failure::RebuildFailed`] carries them out: they exist nowhere else now.
async fn rebuild(
    name: &str,
    reason: String,
    rescued: Option<Vec<OutboxEntry>>,
) -> Result<(Connection, OpenReport), Failure> {
    log::error!(reason = reason.as_str(); "the database cannot be used; rebuilding it");
    let (reason, rescued) = match rescued {
        Some(rescued) => (reason, rescued),
        None => (
            format!("{reason}; its outbox could not be read"),
            Vec::new(),
        ),
    };
    let rebuilt = match delete(name).await {
        // Another tab keeps it open (`Blocked`): the deletion goes on when it lets go, and an
        // open waits behind it.
        Err(failure) => Err(failure),
        Ok(()) => match open_anew(name, &rescued).await {
            Err(first) => {
                log::warn!(
                    error = described(&first).as_str();
                    "opening the rebuilt database failed; retrying once"
                );
                TimeoutFuture::new(RETRY_OPEN_MS).await;
                open_anew(name, &rescued).await
            }
            opened => opened,
        },
    };
    match rebuilt {
        Ok(database) => {
            let report = OpenReport {
                upgraded_from: Some(0),
                recovered: Some(reason),
                ..OpenReport::default()
            };
            Ok((database, report))
        }
        Err(failure) => {
            let failure = described(&failure);
            log::error!(
                error = failure.as_str(), rescued = rescued.len();
                "rebuilding the database failed; the outbox entries rescued are handed on"
            );
            Err(Failure::RebuildFailed {
                reason: format!("{reason}; rebuilding the database failed: {failure}"),
                rescued,
            })
        }
    }
}

/// Opens the database `name`, just deleted, and writes `rescued` into it.
async fn open_anew(name: &str, rescued: &[OutboxEntry]) -> Result<Connection, Failure> {
    let (database, _) = open_at(name, SCHEMA_VERSION).await?;
    match restore_outbox(&database, rescued).await {
        Ok(()) => Ok(database),
        Err(failure) => {
            database.close();
            Err(failure)
        }
    }
}

/// Opens the database `name` at the version it has, without upgrading it.
async fn open_as_it_is(name: &str) -> Result<Database, Failure> {
    let factory: IdbFactory = Factory::new()
        .map_err(|error| Failure::Unsupported(error.to_string()))?
        .into();
    let request = factory.open(name).map_err(|error| classify_js(&error))?;
    let opened = select(
        Box::pin(request_result(&request)),
        TimeoutFuture::new(OPEN_TIMEOUT_MS),
    )
    .await;
    match opened {
        Either::Left((result, _)) => result?
            .dyn_into::<IdbDatabase>()
            .map(Database::from)
            .map_err(|value| Failure::Other(format!("open gave {value:?}, not a database"))),
        Either::Right(_) => {
            close_when_opened(&request);
            Err(Failure::Timeout)
        }
    }
}

/// What the integrity check found.
enum Health {
    Sound,
    /// No meta record: the data was cleared under us.
    Wiped,
}

/// Every object store and index present, and the meta record readable and ours.
async fn check(database: &Database) -> Result<Health, Failure> {
    let names = database.store_names();
    if let Some(missing) = ALL_STORES
        .iter()
        .find(|store| !names.iter().any(|n| n == *store))
    {
        return Err(Failure::Corrupt(format!(
            "object store `{missing}` is missing"
        )));
    }
    let transaction = database
        .transaction(&ALL_STORES, TransactionMode::ReadOnly)
        .map_err(|e| classify(&e))?;
    let indexes = [
        (CONVERSATIONS, BY_ACTIVITY),
        (MESSAGES, BY_CONVERSATION),
        (MESSAGES, BY_CLIENT_MESSAGE_ID),
        (MESSAGES, BY_SERVER_ID),
    ];
    for (store, index) in indexes {
        let store = transaction.object_store(store).map_err(|e| classify(&e))?;
        if store.index(index).is_err() {
            return Err(Failure::Corrupt(format!("index `{index}` is missing")));
        }
    }
    let meta = transaction
        .object_store(META)
        .and_then(|store| store.get(wasm_bindgen::JsValue::from(META_KEY)))
        .map_err(|e| classify(&e))?
        .await
        .map_err(|e| match classify(&e) {
            Failure::Other(message) => Failure::Corrupt(message),
            other => other,
        })?;
    let Some(meta) = meta else {
        return Ok(Health::Wiped);
    };
    let meta: MetaRecord = from_js(meta)?;
    if meta.marker != MARKER {
        return Err(Failure::Corrupt(format!(
            "unexpected meta marker `{}`",
            meta.marker
        )));
    }
    Ok(Health::Sound)
}

async fn write_fresh_meta(database: &Database) -> Result<(), Failure> {
    let transaction = database
        .transaction(&[META], TransactionMode::ReadWrite)
        .map_err(|e| classify(&e))?;
    // Messages may have survived it, tombstones among them from before schema 4.
    let meta = MetaRecord {
        tombstones_indexed: false,
        ..MetaRecord::fresh()
    };
    let meta = to_js(&meta)?;
    transaction
        .object_store(META)
        .and_then(|store| store.put(&meta, Some(&META_KEY.into())))
        .map_err(|e| classify(&e))?;
    finish(transaction).await
}

/// Reads what it can of the outbox of the damaged database `name`, open as `database`;
/// undecodable entries are skipped. A read that fails (a transient `UnknownError`, a lost
/// connection) is tried once more on a fresh connection a moment later: the entries exist
/// nowhere else, and the database is deleted next. `None`: the outbox could not be read.
async fn rescue_outbox(name: &str, database: &Database) -> Option<Vec<OutboxEntry>> {
    let rescued = match read_outbox(database).await {
        Ok(rescued) => Ok(rescued),
        Err(first) => {
            log::warn!(
                error = described(&first).as_str();
                "reading the outbox of the damaged database failed; retrying once"
            );
            TimeoutFuture::new(RETRY_OPEN_MS).await;
            match open_as_it_is(name).await {
                Ok(fresh) => {
                    let read = read_outbox(&fresh).await;
                    fresh.close();
                    read
                }
                Err(failure) => Err(failure),
            }
        }
    };
    match rescued {
        Ok(rescued) => {
            log::warn!(count = rescued.len(); "rescued outbox entries from the damaged database");
            Some(rescued)
        }
        Err(failure) => {
            outbox_lost(&failure);
            None
        }
    }
}

/// [`rescue_outbox`] from the database `name` opened at the version it has (for one this app
/// cannot open at its own).
async fn rescue_outbox_as_it_is(name: &str) -> Option<Vec<OutboxEntry>> {
    match open_as_it_is(name).await {
        Ok(database) => {
            let rescued = rescue_outbox(name, &database).await;
            database.close();
            rescued
        }
        Err(failure) => {
            outbox_lost(&failure);
            None
        }
    }
}

fn outbox_lost(failure: &Failure) {
    log::error!(
        error = described(failure).as_str();
        "the outbox of the damaged database could not be read: the messages it held, not sent \
         yet, are lost with it"
    );
}

/// Every outbox entry of `database` that decodes; a database without an outbox store has none.
async fn read_outbox(database: &Database) -> Result<Vec<OutboxEntry>, Failure> {
    if !database.store_names().iter().any(|store| store == OUTBOX) {
        return Ok(Vec::new());
    }
    let transaction = database
        .transaction(&[OUTBOX], TransactionMode::ReadOnly)
        .map_err(|e| classify(&e))?;
    let values = transaction
        .object_store(OUTBOX)
        .and_then(|store| store.get_all(None, None))
        .map_err(|e| classify(&e))?
        .await
        .map_err(|e| classify(&e))?;
    Ok(values
        .into_iter()
        .filter_map(|value| from_js::<OutboxEntry>(value).ok())
        .collect())
}

/// `failure` in words, for the log and the reasons told to the app.
fn described(failure: &Failure) -> String {
    failure.clone().into_store_error().to_string()
}

async fn restore_outbox(database: &Connection, entries: &[OutboxEntry]) -> Result<(), Failure> {
    if entries.is_empty() {
        return Ok(());
    }
    // The rescued entries now exist only in memory.
    let transaction = database.write(&[OUTBOX], Durability::Strict)?;
    let store = transaction.object_store(OUTBOX).map_err(|e| classify(&e))?;
    for entry in entries {
        store.put(&to_js(entry)?, None).map_err(|e| classify(&e))?;
    }
    finish(transaction).await
}

/// Deletes the database. Other connections get `versionchange` and close; until they do the
/// deletion is blocked, so this gives up after the open timeout.
pub(crate) async fn delete(name: &str) -> Result<(), Failure> {
    let factory = Factory::new().map_err(|error| Failure::Unsupported(error.to_string()))?;
    let request = factory.delete(name).map_err(|e| classify(&e))?;
    match select(
        Box::pin(request.into_future()),
        TimeoutFuture::new(OPEN_TIMEOUT_MS),
    )
    .await
    {
        Either::Left((result, _)) => result.map_err(|e| classify(&e)),
        Either::Right(_) => Err(Failure::Blocked),
    }
}

/// Waits for a transaction to commit; an abort reports the transaction's error (a quota error,
/// a lost connection, or why one of its requests failed).
///
/// Only `complete` and `abort` are heard. A request that fails (WebKit and Firefox fail a `put`
/// itself when out of space) fires `error` on the transaction first, with the request as its
/// target and before the transaction has an error: heard there, it told nothing of the cause.
pub(crate) async fn finish(mut transaction: idb::Transaction) -> Result<(), Failure> {
    let (ended, committed) = futures_channel::oneshot::channel::<bool>();
    let ended = Rc::new(RefCell::new(Some(ended)));
    let on_abort = ended.clone();
    transaction.on_complete(move |_| {
        if let Some(ended) = ended.borrow_mut().take() {
            let _ = ended.send(true);
        }
    });
    transaction.on_abort(move |_| {
        if let Some(ended) = on_abort.borrow_mut().take() {
            let _ = ended.send(false);
        }
    });
    if committed.await == Ok(true) {
        return Ok(());
    }
    Err(aborted_because(&transaction))
}

/// Why `transaction` was aborted, as its error says.
pub(crate) fn aborted_because(transaction: &idb::Transaction) -> Failure {
    match transaction.error() {
        Some(exception) => super::errors::classify_exception(&exception),
        None => Failure::Other("the transaction was aborted".into()),
    }
}
