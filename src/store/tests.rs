//! The IndexedDB store in real browsers (Chromium, Firefox, WebKit via `tests/wasm.sh`): the
//! shared store contract, migrations, atomic batches and every fault the store handles.

use super::codec::*;
use super::{open, IndexedDbStore, NoDatabase, Opened};
use chat_sync_engine::protocol::{Conversation, Cursor, Message};
use chat_sync_engine::{
    Failure, HistoryFloor, LocalMessage, OutboxEntry, PendingReadMarker, Store, StoreError, StoreOp,
};
use idb::{Factory, TransactionMode};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;
use web_sys::DomException;

wasm_bindgen_test_configure!(run_in_browser);

/// A fresh store: the database `name` is deleted first, in case an earlier run left it.
async fn fresh(name: &str) -> IndexedDbStore {
    IndexedDbStore::delete(name).await.expect("delete");
    IndexedDbStore::open(name).await.expect("open")
}

mod contract {
    use super::*;

    chat_sync_engine::store_contract_tests!(
        #[wasm_bindgen_test]
        |name| async move { fresh(&format!("contract-{name}")).await },
        async
    );
}

mod differential;

fn message(n: i64, conversation: &str) -> Message {
    Message {
        id: format!("m{n:012}").into(),
        conversation_id: conversation.into(),
        client_message_id: format!("x{n}").into(),
        sender_id: "u-bob".into(),
        body: format!("hello {n}"),
        server_ts: 1_000 + n,
        updated_ts: 1_000 + n,
        edited: false,
        deleted: false,
    }
}

fn conversation(id: &str, updated_ts: i64) -> Conversation {
    Conversation {
        id: id.into(),
        title: id.into(),
        members: vec![],
        created_ts: updated_ts,
        updated_ts,
    }
}

fn entry(n: u64, conversation: &str) -> OutboxEntry {
    OutboxEntry {
        client_message_id: format!("out-{n}").into(),
        conversation_id: conversation.into(),
        body: format!("draft {n}"),
        seq: n,
        composed_at: 5_000 + n as i64,
        failure: None,
    }
}

/// Server messages `range` of `conversation`, its history marked whole (floor `Complete`) so
/// that all are shown.
fn put_messages(range: std::ops::Range<i64>, conversation: &str) -> Vec<StoreOp> {
    let whole = StoreOp::ExtendHistory {
        conversation: conversation.into(),
        from: HistoryFloor::Unknown,
        to: HistoryFloor::Complete,
    };
    let messages =
        range.map(|n| StoreOp::PutMessage(LocalMessage::from_server(message(n, conversation))));
    std::iter::once(whole).chain(messages).collect()
}

#[wasm_bindgen_test]
async fn a_batch_reads_modifies_and_writes_inside_one_transaction() {
    let store = fresh("get-modify-put").await;
    let mut ops = vec![StoreOp::PutConversation(conversation("c1", 10))];
    ops.extend(put_messages(0..200, "c1"));
    store.apply(&ops).await.expect("first batch");
    // Every op of this batch reads the stored record before deciding to write: edits replace
    // older versions, stale versions are dropped, the conversation's activity moves.
    let mut edited = message(7, "c1");
    edited.body = "edited".into();
    edited.updated_ts = 5_000;
    let mut stale = message(8, "c1");
    stale.body = "stale".into();
    let mut ops = vec![
        StoreOp::PutMessage(LocalMessage::from_server(edited)),
        StoreOp::PutMessage(LocalMessage::from_server(stale)),
    ];
    ops.extend(put_messages(200..400, "c1"));
    store.apply(&ops).await.expect("second batch");
    let all = store
        .messages(&"c1".into(), None, 1_000)
        .await
        .expect("read");
    assert_eq!(all.len(), 400);
    assert_eq!(all[7].body, "edited");
    assert_eq!(all[8].body, "hello 8");
    let newest = store.messages(&"c1".into(), None, 3).await.expect("read");
    let bodies: Vec<&str> = newest.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["hello 397", "hello 398", "hello 399"]);
}

#[wasm_bindgen_test]
async fn has_conversation_finds_stored_conversations_only() {
    let store = fresh("has-conversation").await;
    store
        .apply(&[StoreOp::PutConversation(conversation("c1", 10))])
        .await
        .expect("stored");
    store
        .apply(&put_messages(0..3, "c-messages-only"))
        .await
        .expect("messages");
    assert_eq!(store.has_conversation(&"c1".into()).await, Ok(true));
    assert_eq!(
        store.has_conversation(&"c-messages-only".into()).await,
        Ok(false)
    );
    assert_eq!(store.has_conversation(&"c2".into()).await, Ok(false));
}

#[wasm_bindgen_test]
async fn a_conversation_stored_after_its_messages_takes_their_activity() {
    let store = fresh("late-conversation").await;
    // The messages land first (server stamps 1_000..=1_002), their conversation in a later batch.
    store
        .apply(&put_messages(0..3, "c-late"))
        .await
        .expect("messages");
    let ops = [
        StoreOp::PutConversation(conversation("c-early", 1_001)),
        StoreOp::PutConversation(conversation("c-late", 10)),
    ];
    store.apply(&ops).await.expect("conversations");
    let ids: Vec<String> = store
        .conversations()
        .await
        .expect("conversations")
        .into_iter()
        .map(|conversation| conversation.id.to_string())
        .collect();
    assert_eq!(ids, ["c-late", "c-early"]);
}

#[wasm_bindgen_test]
async fn awaiting_a_timer_inside_a_transaction_lets_it_commit_early() {
    // The control for the test above: the pattern the store avoids fails in this browser.
    let store = fresh("inactive-control").await;
    drop(store);
    let (database, _) = open::open_at("inactive-control", super::schema::SCHEMA_VERSION)
        .await
        .expect("open");
    let transaction = database
        .transaction(&[OUTBOX], TransactionMode::ReadWrite)
        .expect("transaction");
    let outbox = transaction.object_store(OUTBOX).expect("store");
    let _ = outbox.get(JsValue::from("out-1")).expect("get").await;
    gloo_timers::future::TimeoutFuture::new(50).await;
    let put = outbox.put(&to_js(&entry(1, "c1")).expect("encode"), None);
    let error = put.expect_err("the transaction is inactive after a timer");
    assert!(
        error.to_string().contains("TransactionInactiveError"),
        "{error}"
    );
    database.close();
}

#[wasm_bindgen_test]
async fn an_aborted_batch_leaves_nothing_behind() {
    let store = fresh("abort").await;
    store
        .apply(&[StoreOp::PutOutbox(entry(1, "c1"))])
        .await
        .expect("outbox");
    for name in ["DataError", "QuotaExceededError"] {
        let exception =
            DomException::new_with_message_and_name("injected", name).expect("exception");
        store.inject_apply_failure(exception);
        let mut ops = put_messages(0..50, "c1");
        ops.push(StoreOp::RemoveOutbox("out-1".into()));
        ops.push(StoreOp::SetCursor(Some(Cursor::new("c1.99"))));
        let error = store.apply(&ops).await.expect_err("aborted");
        if name == "QuotaExceededError" {
            assert_eq!(error, StoreError::QuotaExceeded);
        }
        assert!(store
            .messages(&"c1".into(), None, 100)
            .await
            .expect("read")
            .is_empty());
        let state = store.load().await.expect("load");
        assert_eq!(state.outbox, vec![entry(1, "c1")], "the outbox is intact");
        assert_eq!(state.cursor, None);
    }
    // And the next write succeeds.
    store.apply(&put_messages(0..5, "c1")).await.expect("after");
    assert_eq!(
        store
            .messages(&"c1".into(), None, 100)
            .await
            .expect("read")
            .len(),
        5
    );
}

/// A write request that fails (WebKit and Firefox fail a `put` itself when out of space) aborts
/// the batch, which reports the transaction's error: here the `ConstraintError` of a record that
/// exists (the test makes the messages' `put` an `add`), in a batch that ends with its writes and
/// in one that reads after them. Nothing of either is left.
#[wasm_bindgen_test]
async fn a_failed_write_request_reports_why_and_leaves_nothing_behind() {
    let store = fresh("failed-request").await;
    store
        .apply(&put_messages(0..3, "c1"))
        .await
        .expect("stored");
    let restore: js_sys::Function = js_sys::Function::new_no_args(
        "const proto = IDBObjectStore.prototype;
         const put = proto.put;
         proto.put = function (...args) {
           return this.name === 'messages' ? this.add(...args) : put.apply(this, args);
         };
         return () => { proto.put = put; };",
    )
    .call0(&JsValue::NULL)
    .expect("patched")
    .into();
    let mut results = Vec::new();
    for read_after in [false, true] {
        let mut ops = put_messages(3..6, "c1");
        let mut edited = message(2, "c1"); // there already: its `add` fails
        edited.updated_ts += 10;
        edited.body = "edited".into();
        ops.push(StoreOp::PutMessage(LocalMessage::from_server(edited)));
        ops.push(StoreOp::PutOutbox(entry(1, "c1")));
        if read_after {
            ops.push(StoreOp::EvictHistory { keep: 100 });
        }
        results.push(store.apply(&ops).await);
    }
    restore.call0(&JsValue::NULL).expect("restored");
    for result in results {
        let error = result.expect_err("aborted");
        assert!(
            matches!(&error, StoreError::Failed(message) if message.starts_with("ConstraintError")),
            "{error:?}"
        );
    }
    let cached = store.messages(&"c1".into(), None, 100).await.expect("read");
    assert_eq!(cached.len(), 3);
    assert!(store.load().await.expect("load").outbox.is_empty());
}

/// A composed or retried message and a read marker not sent yet exist nowhere else: their batches
/// commit strictly. A synced page commits relaxed.
#[wasm_bindgen_test]
async fn what_exists_only_here_is_committed_strictly_and_a_synced_page_relaxed() {
    use wasm_bindgen::JsCast;
    // Records the durability each readwrite transaction reports, as the browser took it.
    let install = js_sys::Function::new_no_args(
        "const proto = IDBDatabase.prototype; const real = proto.transaction; const seen = [];
         proto.transaction = function (...args) {
           const transaction = real.apply(this, args);
           if (transaction.mode === 'readwrite') seen.push(String(transaction.durability));
           return transaction;
         };
         return [() => seen.slice(), () => { proto.transaction = real; }];",
    );
    let pair: js_sys::Array = install
        .call0(&JsValue::NULL)
        .expect("installed")
        .unchecked_into();
    let seen: js_sys::Function = pair.get(0).unchecked_into();
    let restore: js_sys::Function = pair.get(1).unchecked_into();
    let store = fresh("durability").await;
    let composed = entry(1, "c1");
    let read = PendingReadMarker {
        conversation_id: "c1".into(),
        message_id: "m000000000019".into(),
        server_ts: 1_019,
    };
    let written = async {
        store
            .apply(&[
                StoreOp::PutOutbox(composed.clone()),
                StoreOp::PutMessage(LocalMessage::optimistic(&composed, &"u-me".into())),
            ])
            .await?;
        let mut page = put_messages(0..20, "c1");
        page.push(StoreOp::SetCursor(Some(Cursor::new("c1.19"))));
        store.apply(&page).await?;
        // Refused, then retried by the user.
        let failed = OutboxEntry {
            failure: Some(Failure {
                code: "forbidden".into(),
                message: "refused".into(),
            }),
            ..composed.clone()
        };
        store.apply(&[StoreOp::PutOutbox(failed)]).await?;
        let retried = store
            .apply(&[StoreOp::RetryOutbox {
                client_message_id: composed.client_message_id.clone(),
                conversation: composed.conversation_id.clone(),
                sender: "u-me".into(),
                composed_at: composed.composed_at,
            }])
            .await?;
        // Read by the user (`markRead`), not sent yet.
        store
            .apply(&[StoreOp::SetPendingReadMarkers(vec![read.clone()])])
            .await?;
        Ok::<_, StoreError>(retried)
    }
    .await;
    let durabilities: Vec<String> = js_sys::Array::from(&seen.call0(&JsValue::NULL).expect("seen"))
        .iter()
        .filter_map(|value| value.as_string())
        .collect();
    restore.call0(&JsValue::NULL).expect("restored");
    assert_eq!(written.expect("written").outbox_retried.len(), 1);
    assert_eq!(
        durabilities,
        ["strict", "relaxed", "strict", "strict", "strict"]
    );
    let state = store.load().await.expect("load");
    assert_eq!(state.outbox, vec![composed]);
    assert_eq!(state.pending_read_markers, vec![read]);
}

#[wasm_bindgen_test]
async fn a_version_1_database_upgrades_with_every_record() {
    let name = "migration-v1";
    IndexedDbStore::delete(name).await.expect("delete");
    let (database, created_from) = open::open_at(name, 1).await.expect("v1");
    assert_eq!(created_from, Some(0));
    let version_1_stores = [CONVERSATIONS, MESSAGES, OUTBOX, READ_MARKERS, META];
    let transaction = database
        .transaction(&version_1_stores, TransactionMode::ReadWrite)
        .expect("transaction");
    let store = |name| transaction.object_store(name).expect("store");
    for n in 0..20 {
        let value = to_js(&LocalMessage::from_server(message(n, "c1"))).expect("encode");
        store(MESSAGES).put(&value, None).expect("put");
    }
    let record = ConversationRecord::new(conversation("c1", 10), 1_019);
    store(CONVERSATIONS)
        .put(&to_js(&record).expect("encode"), None)
        .expect("put");
    store(OUTBOX)
        .put(&to_js(&entry(1, "c1")).expect("encode"), None)
        .expect("put");
    let meta = MetaRecord {
        cursor: Some(Cursor::new("c1.14")),
        last_sync: Some(77),
        ..MetaRecord::fresh()
    };
    store(META)
        .put(&to_js(&meta).expect("encode"), Some(&META_KEY.into()))
        .expect("put");
    open::finish(transaction).await.expect("fixtures written");
    database.close();

    let upgraded = IndexedDbStore::open(name).await.expect("upgrade");
    assert_eq!(upgraded.open_report().upgraded_from, Some(1));
    assert_eq!(upgraded.open_report().recovered, None);
    let state = upgraded.load().await.expect("load");
    assert_eq!(state.cursor, Some(Cursor::new("c1.14")));
    assert_eq!(state.last_sync, Some(77));
    assert_eq!(state.outbox, vec![entry(1, "c1")]);
    let messages = upgraded
        .messages(&"c1".into(), None, 100)
        .await
        .expect("read");
    assert_eq!(messages.len(), 20);
    // Schema 3 records no floor for it: the cache counts as whole from its oldest message.
    assert_eq!(
        upgraded.history_floor(&"c1".into()).await.expect("read"),
        HistoryFloor::at(&messages[0]).expect("a server message")
    );
    assert_eq!(
        upgraded.conversations().await.expect("read"),
        vec![conversation("c1", 10)]
    );
    // The version 2 index finds the old records by server id.
    let database = upgraded.database().await.expect("connection");
    let transaction = database
        .transaction(&[MESSAGES], TransactionMode::ReadOnly)
        .expect("transaction");
    let found = transaction
        .object_store(MESSAGES)
        .and_then(|store| store.index(BY_SERVER_ID))
        .and_then(|index| index.get(JsValue::from("m000000000013")))
        .expect("get")
        .await
        .expect("read");
    let found: LocalMessage = from_js(found.expect("indexed")).expect("decode");
    assert_eq!(found.body, "hello 13");
}

/// Tombstones written before schema 4 lack `tombstoneTs`, and the meta record says nothing of
/// it: after the upgrade, the first compaction walks every message once, removes the old
/// tombstones and marks the others, so that the next finds them through the index.
#[wasm_bindgen_test]
async fn a_version_3_database_compacts_its_tombstones_after_the_upgrade() {
    let name = "migration-v3";
    IndexedDbStore::delete(name).await.expect("delete");
    let (database, _) = open::open_at(name, 3).await.expect("v3");
    let transaction = database
        .transaction(&[MESSAGES, META], TransactionMode::ReadWrite)
        .expect("transaction");
    let store = |name| transaction.object_store(name).expect("store");
    let tombstone = |n: i64, deleted_at: i64| {
        let mut message = message(n, "c1");
        message.deleted = true;
        message.body.clear();
        message.updated_ts = deleted_at;
        message
    };
    let old = LocalMessage::from_server(tombstone(1, 1_100));
    let recent = LocalMessage::from_server(tombstone(2, 3_000));
    for message in [&old, &recent, &LocalMessage::from_server(message(3, "c1"))] {
        // As version 3 wrote them: the message alone.
        let value = to_js(message).expect("encode");
        store(MESSAGES).put(&value, None).expect("put");
    }
    // Version 3's meta record, without `tombstonesIndexed`.
    let meta = to_js(&MetaRecord::fresh()).expect("encode");
    js_sys::Reflect::delete_property(&meta.clone().into(), &"tombstonesIndexed".into())
        .expect("deleted");
    store(META).put(&meta, Some(&META_KEY.into())).expect("put");
    open::finish(transaction).await.expect("fixtures written");
    database.close();

    let upgraded = IndexedDbStore::open(name).await.expect("upgrade");
    assert_eq!(upgraded.open_report().upgraded_from, Some(3));
    let compact = |before| [StoreOp::CompactTombstones { before }];
    let report = upgraded.apply(&compact(2_000)).await.expect("compacted");
    assert_eq!(report.compacted_tombstones, 1, "the old tombstone");
    // The other is in the index now, and the meta record says every tombstone is.
    let database = upgraded.database().await.expect("connection");
    let transaction = database
        .transaction(&[MESSAGES, META], TransactionMode::ReadOnly)
        .expect("transaction");
    let indexed = (transaction.object_store(MESSAGES))
        .and_then(|store| store.index(BY_TOMBSTONE_TS))
        .and_then(|index| index.count(None))
        .expect("count")
        .await
        .expect("counted");
    assert_eq!(indexed, 1);
    let meta = (transaction.object_store(META))
        .and_then(|store| store.get(JsValue::from(META_KEY)))
        .expect("get")
        .await
        .expect("read");
    let meta: MetaRecord = from_js(meta.expect("meta")).expect("decode");
    assert!(meta.tombstones_indexed);
    let report = upgraded.apply(&compact(4_000)).await.expect("compacted");
    assert_eq!(
        report.compacted_tombstones, 1,
        "the other, found by the index"
    );
    let whole = StoreOp::ExtendHistory {
        conversation: "c1".into(),
        from: HistoryFloor::Unknown,
        to: HistoryFloor::Complete,
    };
    upgraded.apply(&[whole]).await.expect("whole");
    let left = upgraded
        .messages(&"c1".into(), None, 10)
        .await
        .expect("read");
    assert_eq!(
        left.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["hello 3"]
    );
}

/// A step of the schema upgrade that fails leaves the database at its version (nothing half
/// upgraded is committed under the new one), and the store rebuilds it, keeping the outbox.
#[wasm_bindgen_test]
async fn a_failed_upgrade_step_rebuilds_the_database_keeping_the_outbox() {
    let name = "failed-upgrade";
    IndexedDbStore::delete(name).await.expect("delete");
    let (database, _) = open::open_at(name, 1).await.expect("v1");
    let transaction = database
        .transaction(&[OUTBOX], TransactionMode::ReadWrite)
        .expect("transaction");
    (transaction.object_store(OUTBOX).expect("store"))
        .put(&to_js(&entry(1, "c1")).expect("encode"), None)
        .expect("put");
    open::finish(transaction).await.expect("written");
    database.close();
    // A version 2 no version of the app wrote: it has version 3's store already, so creating it
    // fails.
    let upgrade = js_sys::Function::new_with_args(
        "name",
        "return new Promise((resolve, reject) => {
           const request = indexedDB.open(name, 2);
           request.onupgradeneeded = () => request.result.createObjectStore('historyFloors');
           request.onsuccess = () => { request.result.close(); resolve(); };
           request.onerror = () => reject(request.error);
         });",
    );
    let upgraded = upgrade.call1(&JsValue::NULL, &name.into()).expect("called");
    wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(upgraded))
        .await
        .expect("version 2");

    let store = IndexedDbStore::open(name).await.expect("rebuilt");
    let recovered = store.open_report().recovered.clone().unwrap_or_default();
    assert!(recovered.contains("schema upgrade failed"), "{recovered:?}");
    assert_eq!(
        store.load().await.expect("load").outbox,
        vec![entry(1, "c1")]
    );
    store
        .apply(&put_messages(0..3, "c1"))
        .await
        .expect("written");
    assert_eq!(
        store.history_floor(&"c1".into()).await.expect("read"),
        HistoryFloor::Complete
    );
}

/// An outbox record that does not read back (a bug wrote it, or it was damaged) is skipped:
/// the store still loads, with the user's other messages.
#[wasm_bindgen_test]
async fn an_outbox_record_that_does_not_read_back_is_skipped() {
    let store = fresh("bad-outbox-record").await;
    store
        .apply(&[StoreOp::PutOutbox(entry(1, "c1"))])
        .await
        .expect("queued");
    let database = store.database().await.expect("connection");
    let transaction = database
        .transaction(&[OUTBOX], TransactionMode::ReadWrite)
        .expect("transaction");
    let bad = js_sys::JSON::parse(r#"{"clientMessageId":"bad","body":7}"#).expect("json");
    (transaction.object_store(OUTBOX).expect("store"))
        .put(&bad, None)
        .expect("put");
    open::finish(transaction).await.expect("written");
    assert_eq!(
        store.load().await.expect("loads").outbox,
        vec![entry(1, "c1")]
    );
}

/// Makes the page's next `times` IndexedDB transactions fail to start with an `UnknownError`
/// (Chromium's backing store hiccups, Safari's lost connections).
fn fail_next_transactions(times: u32) {
    js_sys::Function::new_with_args(
        "times",
        "const proto = IDBDatabase.prototype;
         const transaction = proto.transaction;
         proto.transaction = function (...args) {
           if (times <= 0) {
             proto.transaction = transaction;
             return transaction.apply(this, args);
           }
           times -= 1;
           throw new DOMException('injected', 'UnknownError');
         };",
    )
    .call1(&JsValue::NULL, &times.into())
    .expect("patched");
}

/// Writes garbage over `store`'s meta record, as a damaged database holds, and closes it.
async fn corrupt_meta(store: IndexedDbStore) {
    let database = store.database().await.expect("connection");
    let transaction = database
        .transaction(&[META], TransactionMode::ReadWrite)
        .expect("transaction");
    transaction
        .object_store(META)
        .and_then(|meta| meta.put(&JsValue::from("garbage"), Some(&META_KEY.into())))
        .expect("put");
    open::finish(transaction).await.expect("corrupted");
    store.close();
}

/// A fresh database `name` whose outbox holds entry 1 of `c1`.
async fn holding_one_entry(name: &str) -> IndexedDbStore {
    let store = fresh(name).await;
    store
        .apply(&[StoreOp::PutOutbox(entry(1, "c1"))])
        .await
        .expect("queued");
    store
}

/// [`holding_one_entry`] closed, then opened again with its next `failures` transactions failing
/// (an `UnknownError`, as a transient failure gives).
async fn reopened_after_failed_transactions(name: &str, failures: u32) -> IndexedDbStore {
    holding_one_entry(name).await.close();
    fail_next_transactions(failures);
    IndexedDbStore::open(name).await.expect("opened")
}

/// The integrity check at open meets a transient failure: the store opens again and checks once
/// more; failing twice, the database counts as unreadable and is rebuilt, keeping the outbox.
#[wasm_bindgen_test]
async fn a_check_that_fails_once_is_retried_and_twice_rebuilds() {
    for (failures, rebuilt) in [(1, false), (2, true)] {
        let name = format!("check-fails-{failures}");
        let store = reopened_after_failed_transactions(&name, failures).await;
        assert_eq!(store.open_report().recovered.is_some(), rebuilt);
        assert_eq!(
            store.load().await.expect("load").outbox,
            vec![entry(1, "c1")]
        );
        store.close();
    }
}

/// Rebuilding a database whose check failed twice, the store reads its outbox (the messages not
/// sent yet, which exist nowhere else) before deleting it: a read that fails once (a third
/// transient failure in a row) is tried again on a fresh connection, and the outbox is kept. A
/// database whose outbox cannot be read at all is still rebuilt, and the reason says so.
#[wasm_bindgen_test]
async fn a_rescue_whose_read_fails_once_still_keeps_the_outbox() {
    for (failures, kept) in [(3, true), (4, false)] {
        let name = format!("rescue-fails-{failures}");
        let store = reopened_after_failed_transactions(&name, failures).await;
        let reason = store.open_report().recovered.clone().expect("rebuilt");
        let outbox = store.load().await.expect("load").outbox;
        let expected = if kept { vec![entry(1, "c1")] } else { vec![] };
        assert_eq!(outbox, expected, "{failures} failures");
        let unread = reason.contains("outbox could not be read");
        assert_eq!(unread, !kept, "{reason}");
        store.close();
    }
}

/// Rebuilding an unreadable database, the new one fails to open (an `UnknownError`) once: it is
/// opened again a moment later, with the outbox rescued from the old one. Failing twice, opening
/// hands that outbox on ([`Opened::Damaged`]): it exists nowhere else now.
#[wasm_bindgen_test]
async fn a_rebuild_whose_reopen_fails_tries_again_then_hands_the_outbox_on() {
    use wasm_bindgen::JsCast;
    for failing in [1, 2] {
        let name = format!("rebuild-reopen-fails-{failing}");
        let store = holding_one_entry(&name).await;
        corrupt_meta(store).await;
        // Opens of the database after the first (the one that finds it unreadable) fail.
        let restore: js_sys::Function = js_sys::Function::new_with_args(
            "name, failing",
            "const proto = IDBFactory.prototype; const open = proto.open; let opens = 0;
             proto.open = function (opened, ...rest) {
               if (opened === name && ++opens > 1 && failing-- > 0) {
                 throw new DOMException('injected', 'UnknownError');
               }
               return open.call(this, opened, ...rest);
             };
             return () => { proto.open = open; };",
        )
        .call2(&JsValue::NULL, &name.as_str().into(), &failing.into())
        .expect("patched")
        .unchecked_into();
        let opened = IndexedDbStore::open_if_allowed(&name).await;
        restore.call0(&JsValue::NULL).expect("restored");
        match opened.expect("opened") {
            Opened::Database(store) if failing == 1 => {
                assert!(store.open_report().recovered.is_some());
                let state = store.load().await.expect("load");
                assert_eq!(state.outbox, vec![entry(1, "c1")]);
                store.close();
            }
            Opened::Damaged { reason, outbox } if failing == 2 => {
                assert!(
                    reason.contains("rebuilding the database failed"),
                    "{reason}"
                );
                assert_eq!(outbox, vec![entry(1, "c1")]);
            }
            Opened::Database(_) => panic!("rebuilt, though its open failed {failing} times"),
            Opened::Damaged { reason, .. } => panic!("not rebuilt: {reason}"),
            Opened::Without(reason) => panic!("no database: {reason:?}"),
        }
        IndexedDbStore::delete(&name).await.expect("cleaned up");
    }
}

#[wasm_bindgen_test]
async fn a_closed_store_finishes_its_operations_and_leaves_no_connection_open() {
    let name = "closed-store";
    let store = fresh(name).await;
    let batch = [StoreOp::PutConversation(conversation("c-1", 5))];
    store.apply(&batch).await.expect("applied");
    // Closed (a disposed manager, a hidden page), then used by operations asked for before:
    // they run, each opening a connection at the same time, and close them when done.
    store.close();
    let (first, second) =
        futures_util::future::join(store.conversations(), store.conversations()).await;
    assert_eq!(first.expect("read").len(), 1);
    assert_eq!(second.expect("read").len(), 1);
    // Deleting the database waits for every open connection: none is left.
    IndexedDbStore::delete(name)
        .await
        .expect("deleted without waiting");
}

#[wasm_bindgen_test]
async fn a_database_from_a_newer_version_is_left_as_it_is() {
    let name = "too-new";
    let store = fresh(name).await;
    store.close();
    let newer_version = super::schema::SCHEMA_VERSION + 1;
    let (newer, _) = open::open_at(name, newer_version)
        .await
        .expect("a newer app version opens it");
    newer.close();
    let opened = IndexedDbStore::open_if_allowed(name)
        .await
        .map(|opened| match opened {
            Opened::Database(_) | Opened::Damaged { .. } => None,
            Opened::Without(reason) => Some(reason),
        });
    assert_eq!(opened, Ok(Some(NoDatabase::NewerVersion)));
    let error = IndexedDbStore::open(name).await.err().expect("refused");
    assert!(
        error.to_string().contains("newer version of this app"),
        "{error}"
    );
    let (newer, _) = open::open_at(name, newer_version)
        .await
        .expect("the newer version still opens it, as it left it");
    newer.close();
}

#[wasm_bindgen_test]
async fn another_tab_upgrading_closes_our_connection_and_is_not_blocked() {
    let name = "versionchange";
    let store = fresh(name).await;
    store
        .apply(&[StoreOp::PutOutbox(entry(1, "c1"))])
        .await
        .expect("write");
    // The "other tab": a newer schema. Our versionchange handler lets it through at once.
    let (newer, _) = open::open_at(name, super::schema::SCHEMA_VERSION + 1)
        .await
        .expect("the upgrade is not blocked by us");
    newer.close();
    // Our next call reopens and hears the database is now too new for us.
    let error = store.load().await.expect_err("the database moved on");
    assert!(error.to_string().contains("newer version"), "{error}");
}

#[wasm_bindgen_test]
async fn a_blocked_upgrade_is_reported_not_waited_on() {
    let name = "blocked";
    IndexedDbStore::delete(name).await.expect("delete");
    // An "old tab" holding version 1 open, without a versionchange handler.
    let (old, _) = open::open_at(name, 1).await.expect("v1");
    let started = js_sys::Date::now();
    let error = IndexedDbStore::open(name).await.err().expect("blocked");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    assert!(error.to_string().contains("another tab"), "{error}");
    assert!(
        js_sys::Date::now() - started < 7_000.0,
        "reported before the open timeout"
    );
    old.close();
    // Once the old tab lets go, opening works.
    gloo_timers::future::TimeoutFuture::new(50).await;
    IndexedDbStore::open(name).await.expect("opens afterwards");
}

#[wasm_bindgen_test]
async fn an_unreadable_database_is_rebuilt_keeping_the_outbox() {
    let name = "corrupt-meta";
    let store = fresh(name).await;
    let mut ops = put_messages(0..10, "c1");
    ops.push(StoreOp::PutOutbox(entry(1, "c1")));
    ops.push(StoreOp::SetCursor(Some(Cursor::new("c1.9"))));
    store.apply(&ops).await.expect("write");
    corrupt_meta(store).await;

    let reopened = IndexedDbStore::open(name).await.expect("recovers");
    let reason = reopened.open_report().recovered.clone().expect("recovered");
    assert!(reason.contains("decode"), "{reason}");
    let state = reopened.load().await.expect("load");
    assert_eq!(state.outbox, vec![entry(1, "c1")], "the outbox was rescued");
    assert_eq!(state.cursor, None, "a full resync follows");
    assert!(reopened
        .messages(&"c1".into(), None, 100)
        .await
        .expect("read")
        .is_empty());
}

#[wasm_bindgen_test]
async fn a_database_missing_its_stores_is_rebuilt() {
    let name = "corrupt-stores";
    IndexedDbStore::delete(name).await.expect("delete");
    // Right name and version, wrong contents (nothing created in the upgrade).
    let factory = Factory::new().expect("factory");
    let request = factory
        .open(name, Some(super::schema::SCHEMA_VERSION))
        .expect("open");
    request.await.expect("opened").close();
    let store = IndexedDbStore::open(name).await.expect("recovers");
    let reason = store.open_report().recovered.clone().expect("recovered");
    assert!(reason.contains("missing"), "{reason}");
    store
        .apply(&put_messages(0..3, "c1"))
        .await
        .expect("usable");
}

#[wasm_bindgen_test]
async fn a_wiped_database_starts_over_with_the_surviving_outbox() {
    let name = "wiped";
    let store = fresh(name).await;
    store
        .apply(&[
            StoreOp::PutOutbox(entry(1, "c1")),
            StoreOp::SetCursor(Some(Cursor::new("c1.5"))),
        ])
        .await
        .expect("write");
    let database = store.database().await.expect("connection");
    let transaction = database
        .transaction(&[META], TransactionMode::ReadWrite)
        .expect("transaction");
    transaction
        .object_store(META)
        .and_then(|meta| meta.delete(JsValue::from(META_KEY)))
        .expect("delete");
    open::finish(transaction).await.expect("wiped");
    store.close();
    drop(database);

    let reopened = IndexedDbStore::open(name).await.expect("opens");
    assert!(reopened.open_report().wiped);
    let state = reopened.load().await.expect("load");
    assert_eq!(state.cursor, None);
    assert_eq!(state.outbox, vec![entry(1, "c1")]);
}

#[wasm_bindgen_test]
async fn a_lost_connection_is_reopened_and_the_write_retried() {
    let store = fresh("lost-connection").await;
    store.lose_connection();
    store
        .apply(&put_messages(0..4, "c1"))
        .await
        .expect("retried on a new connection");
    assert_eq!(
        store
            .messages(&"c1".into(), None, 10)
            .await
            .expect("read")
            .len(),
        4
    );
}

#[wasm_bindgen_test]
fn without_indexeddb_opening_fails_clearly() {
    use futures_util::FutureExt;
    use js_sys::{Object, Reflect};
    // Hide `indexedDB` only while the open's first step runs (no await in between, so no other
    // test sees it missing), then put the original property back.
    let global: Object = js_sys::global();
    let original = Object::get_own_property_descriptor(&global, &"indexedDB".into());
    let hidden = Object::new();
    Reflect::set(&hidden, &"value".into(), &JsValue::UNDEFINED).expect("set");
    Reflect::set(&hidden, &"configurable".into(), &JsValue::TRUE).expect("set");
    Object::define_property(&global, &"indexedDB".into(), &hidden);
    let result = IndexedDbStore::open("no-indexeddb").now_or_never();
    if original.is_undefined() {
        Reflect::delete_property(&global, &"indexedDB".into()).expect("restore");
    } else {
        Object::define_property(&global, &"indexedDB".into(), &original.into());
    }
    assert!(Factory::new().is_ok(), "indexedDB is back");
    let error = result.expect("fails at once").err().expect("refused");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
}

#[wasm_bindgen_test]
async fn an_open_that_never_settles_times_out_and_a_second_open_succeeds() {
    use wasm_bindgen::JsCast;
    // The first `indexedDB.open` returns a request that never fires; later ones are real.
    let install = js_sys::Function::new_no_args(
        "const real = globalThis.indexedDB; let opens = 0;
         const original = Object.getOwnPropertyDescriptor(globalThis, 'indexedDB');
         const fake = new Proxy(real, { get(target, key) {
           if (key === 'open') return (...args) => (++opens === 1 ? {} : target.open(...args));
           const value = Reflect.get(target, key);
           return typeof value === 'function' ? value.bind(target) : value;
         } });
         Object.defineProperty(globalThis, 'indexedDB', { value: fake, configurable: true });
         const restore = () => original
           ? Object.defineProperty(globalThis, 'indexedDB', original)
           : delete globalThis.indexedDB;
         return [() => opens, restore];",
    );
    let pair: js_sys::Array = install
        .call0(&JsValue::NULL)
        .expect("installed")
        .unchecked_into();
    let opens: js_sys::Function = pair.get(0).unchecked_into();
    let restore: js_sys::Function = pair.get(1).unchecked_into();
    let name = "never-settling-open";
    let store = IndexedDbStore::open(name).await;
    let count = opens.call0(&JsValue::NULL).expect("count").as_f64();
    restore.call0(&JsValue::NULL).expect("restored");
    let store = store.expect("the second open succeeds");
    assert_eq!(count, Some(2.0), "one open timed out, one more was made");
    assert!(store.load().await.expect("loads").outbox.is_empty());
    store.close();
    IndexedDbStore::delete(name).await.expect("deleted");
}

#[wasm_bindgen_test]
async fn deleting_a_users_database_leaves_nothing_for_the_next_user() {
    let alice = IndexedDbStore::database_name("http://127.0.0.1:8080/", &"u-alice".into());
    let bob = IndexedDbStore::database_name("http://127.0.0.1:8080", &"u-bob".into());
    assert_ne!(alice, bob);
    let store = fresh(&alice).await;
    store
        .apply(&[StoreOp::PutOutbox(entry(1, "c1"))])
        .await
        .expect("write");
    store.close();
    IndexedDbStore::delete(&alice).await.expect("logout");
    let next = IndexedDbStore::open(&alice).await.expect("open");
    assert!(next.load().await.expect("load").outbox.is_empty());
    let other = fresh(&bob).await;
    assert!(other.load().await.expect("load").outbox.is_empty());
}

#[wasm_bindgen_test]
async fn the_engine_evicts_history_and_retries_when_indexeddb_is_full() {
    use chat_sync_engine::{Config, Engine, Event, Output, QUOTA_EVICTION_KEEP};
    let store = fresh("engine-quota").await;
    let mut ops = vec![StoreOp::PutConversation(conversation("c1", 10))];
    ops.extend(put_messages(0..300, "c1"));
    store.apply(&ops).await.expect("cached history");
    let mut engine = Engine::new(Config::new("u-alice".into(), 1), 0);
    engine.handle_loaded(store.load().await.expect("load"), 0);

    let quota =
        DomException::new_with_message_and_name("full", "QuotaExceededError").expect("exception");
    store.inject_apply_failure(quota);
    let (message, ticket) = engine.send("c1".into(), "hello".into(), 1).expect("valid");
    let mut events = Vec::new();
    loop {
        match engine.poll_output() {
            Output::Persist(batch) => {
                let result = store.apply(&batch.ops).await;
                engine.handle_persisted(batch.id, result, 2);
            }
            Output::Event(event) => events.push(event),
            Output::Send(request) => panic!("not started, yet sent {request:?}"),
            Output::Reload => panic!("not started, yet a sync run"),
            Output::Timeout(_) => break,
        }
    }
    assert!(events.contains(&Event::StorageFull), "{events:?}");
    assert!(
        events.contains(&Event::MessageQueued {
            message: message.clone()
        }),
        "{events:?}"
    );
    let finished = events.iter().any(|event| {
        matches!(event, Event::CommandFinished { ticket: t, result: Ok(_) } if *t == ticket)
    });
    assert!(finished, "{events:?}");
    assert!(!engine.status().storage_full);
    let state = store.load().await.expect("load");
    assert_eq!(state.outbox.len(), 1);
    assert_eq!(state.outbox[0].client_message_id, message.client_message_id);
    let cached = store
        .messages(&"c1".into(), None, 1_000)
        .await
        .expect("read");
    let server = cached.iter().filter(|m| m.is_from_server()).count();
    assert_eq!(
        server, QUOTA_EVICTION_KEEP,
        "history was evicted to make room"
    );
    assert_eq!(cached.last(), Some(&message), "the pending message is kept");
}

#[wasm_bindgen_test]
async fn maintenance_reports_what_it_removed_and_the_storage_used_around_it() {
    let store = fresh("maintenance-report").await;
    let mut ops = put_messages(0..30, "c1");
    let mut tombstone = message(3, "c1");
    tombstone.deleted = true;
    tombstone.body.clear();
    tombstone.updated_ts = 1_100;
    ops.push(StoreOp::PutMessage(LocalMessage::from_server(tombstone)));
    store.apply(&ops).await.expect("history");
    let report = store
        .apply(&[
            StoreOp::CompactTombstones { before: 2_000 },
            StoreOp::EvictHistory { keep: 10 },
        ])
        .await
        .expect("maintenance");
    assert_eq!(
        (report.compacted_tombstones, report.evicted_messages),
        (1, 19)
    );
    let estimates = super::storage_estimate().await.is_some();
    assert_eq!(report.storage_used_before.is_some(), estimates);
    assert_eq!(report.storage_used_after.is_some(), estimates);
    // Plain writes do not pay for an estimate.
    let plain = store
        .apply(&put_messages(30..31, "c1"))
        .await
        .expect("write");
    assert_eq!(plain.storage_used_before, None);
}
