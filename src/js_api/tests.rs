//! `BackgroundSyncManager` in real browsers against the reference server that `tests/wasm.sh`
//! starts (`CHAT_SYNC_TEST_SERVER`, and `CHAT_SYNC_TEST_FAULTY_SERVER` with injected 503/429).

use super::BackgroundSyncManager;
use crate::store::IndexedDbStore;
use chat_sync_engine::protocol::{ConversationsResponse, HistoryPage, Message, UserId};
use chat_sync_engine::{HistoryFloor, LocalMessage, OutboxEntry, Store, StoreOp};
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn server() -> &'static str {
    match option_env!("CHAT_SYNC_TEST_SERVER") {
        Some(url) => url,
        None => panic!("run the browser tests through tests/wasm.sh"),
    }
}

fn faulty_server() -> &'static str {
    match option_env!("CHAT_SYNC_TEST_FAULTY_SERVER") {
        Some(url) => url,
        None => panic!("run the browser tests through tests/wasm.sh"),
    }
}

/// A manager for a demo user, on a fresh local database.
async fn manager(server: &str, user: &str, extra: &[(&str, JsValue)]) -> BackgroundSyncManager {
    let name = IndexedDbStore::database_name(server, &UserId::new(format!("u-{user}")));
    IndexedDbStore::delete(&name).await.expect("fresh database");
    open_manager(server, user, extra).await
}

/// A manager for a demo user on the local database as it is: another tab, or the app reopened.
async fn open_manager(
    server: &str,
    user: &str,
    extra: &[(&str, JsValue)],
) -> BackgroundSyncManager {
    try_open_manager(server, user, extra)
        .await
        .expect("created")
}

/// [`open_manager`], or what creating it rejected with.
async fn try_open_manager(
    server: &str,
    user: &str,
    extra: &[(&str, JsValue)],
) -> Result<BackgroundSyncManager, JsValue> {
    let options = js_sys::Object::new();
    let set = |key: &str, value: JsValue| Reflect::set(&options, &key.into(), &value).expect("set");
    set("serverUrl", server.into());
    set("token", format!("demo-{user}").into());
    set("logLevel", "warn".into());
    for (key, value) in extra {
        set(key, value.clone());
    }
    BackgroundSyncManager::open(options.into()).await
}

async fn settle(promise: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(promise).await
}

fn field(value: &JsValue, key: &str) -> JsValue {
    Reflect::get(value, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

/// The manager's `getStats().syncsCompleted`.
fn syncs_completed(sync: &BackgroundSyncManager) -> f64 {
    field(&sync.get_stats().expect("stats"), "syncsCompleted")
        .as_f64()
        .unwrap_or(0.0)
}

fn error_code(error: &JsValue) -> String {
    field(error, "code").as_string().unwrap_or_default()
}

/// A GET as a demo user, decoded.
async fn get<T: serde::de::DeserializeOwned>(server: &str, user: &str, path: &str) -> T {
    let response = gloo_net::http::Request::get(&format!("{server}{path}"))
        .header("Authorization", &format!("Bearer demo-{user}"))
        .send()
        .await
        .expect("server reachable");
    assert_eq!(response.status(), 200, "{path}");
    serde_json::from_slice(&response.binary().await.expect("body")).expect("decodes")
}

/// The id of a demo conversation by title.
async fn conversation(server: &str, user: &str, title: &str) -> String {
    let list: ConversationsResponse = get(server, user, "/v1/conversations").await;
    list.conversations
        .into_iter()
        .find(|c| c.title == title)
        .map(|c| c.id.to_string())
        .expect("demo conversation")
}

/// The newest 200 messages of a conversation as the server holds them.
async fn on_server(server: &str, user: &str, conversation: &str) -> Vec<Message> {
    let page: HistoryPage = get(
        server,
        user,
        &format!("/v1/conversations/{conversation}/messages?limit=200"),
    )
    .await;
    page.messages
}

/// Sends as a demo user straight to the server (another client).
async fn post_as(server: &str, user: &str, conversation: &str, body: &str) {
    static SENT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("other-{}-{n}", js_sys::Date::now() as u64);
    let response = gloo_net::http::Request::post(&format!(
        "{server}/v1/conversations/{conversation}/messages"
    ))
    .header("Authorization", &format!("Bearer demo-{user}"))
    .header("Content-Type", "application/json")
    .body(serde_json::json!({ "clientMessageId": id, "body": body }).to_string())
    .expect("request")
    .send()
    .await
    .expect("sent");
    assert_eq!(response.status(), 201);
}

/// Tells the page's listeners the network went away or came back.
fn network(online: bool) {
    let event = web_sys::Event::new(if online { "online" } else { "offline" }).expect("event");
    crate::runtime::global_target()
        .dispatch_event(&event)
        .expect("dispatched");
}

/// Waits (up to 20 s) until `done` holds.
async fn until(what: &str, done: impl FnMut() -> bool) {
    until_within(20, what, done).await
}

/// Waits (up to `seconds`) until `done` holds.
async fn until_within(seconds: u32, what: &str, done: impl FnMut() -> bool) {
    if !holds_within(seconds, done).await {
        panic!("timed out after {seconds} s waiting until {what}");
    }
}

/// Whether `done` comes to hold within about `seconds` (checked every 100 ms), without reading
/// the clock.
async fn holds_within(seconds: u32, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..seconds * 10 {
        if done() {
            return true;
        }
        gloo_timers::future::TimeoutFuture::new(100).await;
    }
    done()
}

/// Records the `detail`s of one event type.
fn record(
    manager: &BackgroundSyncManager,
    kind: &str,
) -> std::rc::Rc<std::cell::RefCell<Vec<JsValue>>> {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = seen.clone();
    let listener =
        Closure::<dyn Fn(web_sys::CustomEvent)>::new(move |event: web_sys::CustomEvent| {
            sink.borrow_mut().push(event.detail());
        });
    manager
        .add_event_listener(
            kind,
            listener.as_ref().unchecked_ref::<Function>(),
            JsValue::UNDEFINED,
        )
        .expect("listens");
    listener.forget();
    seen
}

#[wasm_bindgen_test]
async fn a_message_sent_offline_is_delivered_once_when_back_online() {
    let general = conversation(server(), "alice", "General").await;
    let sync = manager(server(), "alice", &[]).await;
    settle(sync.force_sync()).await.expect("first sync");
    network(false);
    let body = format!("offline hello {}", js_sys::Date::now());
    let message = settle(sync.send_message(general.clone().into(), body.clone().into()))
        .await
        .expect("queued");
    assert_eq!(field(&message, "status"), "pending");
    let status = sync.get_sync_status().expect("status");
    assert_eq!(field(&status, "pendingOutbox"), 1);
    assert_eq!(field(&status, "phase"), "offline");
    assert!(on_server(server(), "bob", &general)
        .await
        .iter()
        .all(|m| m.body != body));

    network(true);
    until("the outbox is empty", || {
        field(&sync.get_sync_status().expect("status"), "pendingOutbox") == 0
    })
    .await;
    let copies: Vec<Message> = on_server(server(), "bob", &general)
        .await
        .into_iter()
        .filter(|m| m.body == body)
        .collect();
    assert_eq!(copies.len(), 1, "delivered exactly once");
    let local = settle(sync.list_messages(general.into(), None))
        .await
        .expect("listed");
    let local: Vec<chat_sync_engine::LocalMessage> =
        serde_wasm_bindgen::from_value(local).expect("messages");
    let mine: Vec<_> = local.iter().filter(|m| m.body == body).collect();
    assert_eq!(
        mine.len(),
        1,
        "the optimistic copy was replaced, not duplicated"
    );
    assert_eq!(mine[0].id.as_ref(), Some(&copies[0].id));
    sync.dispose();
}

/// `listOutbox` holds what is not delivered, of every conversation in compose order: pending
/// until sent, failed (here: a conversation the server does not have) until discarded.
#[wasm_bindgen_test]
async fn the_outbox_lists_pending_and_failed_messages_until_delivered_or_discarded() {
    let general = conversation(server(), "alice", "General").await;
    let sync = manager(server(), "alice", &[]).await;
    settle(sync.force_sync()).await.expect("first sync");
    // A conversation only this device knows, as after the server's database was replaced.
    let gone = chat_sync_engine::protocol::Conversation {
        id: "c-gone".into(),
        title: "Gone".into(),
        members: vec![],
        created_ts: 1,
        updated_ts: 1,
    };
    let store = &sync.inner.driver.store;
    store
        .apply(&[StoreOp::PutConversation(gone)])
        .await
        .expect("stored");
    network(false);
    let stamp = js_sys::Date::now();
    for (conversation, body) in [("c-gone", "to nowhere"), (general.as_str(), "to General")] {
        let body = format!("{body} {stamp}");
        settle(sync.send_message(conversation.into(), body.into()))
            .await
            .expect("queued");
    }
    let outbox = || async {
        let listed = settle(sync.list_outbox()).await.expect("listed");
        serde_wasm_bindgen::from_value::<Vec<chat_sync_engine::LocalMessage>>(listed)
            .expect("messages")
    };
    let summary = |messages: &[chat_sync_engine::LocalMessage]| {
        (messages.iter())
            .map(|m| (m.conversation_id.to_string(), m.status, m.body.clone()))
            .collect::<Vec<_>>()
    };
    use chat_sync_engine::MessageStatus::{Failed, Pending};
    assert_eq!(
        summary(&outbox().await),
        [
            ("c-gone".into(), Pending, format!("to nowhere {stamp}")),
            (general.clone(), Pending, format!("to General {stamp}")),
        ]
    );

    network(true);
    until("both messages are settled", || {
        let status = sync.get_sync_status().expect("status");
        field(&status, "pendingOutbox") == 0 && field(&status, "failedOutbox") == 1
    })
    .await;
    let failed = outbox().await;
    assert_eq!(
        summary(&failed),
        [("c-gone".into(), Failed, format!("to nowhere {stamp}"))],
        "the delivered message left the outbox"
    );
    let failure = failed[0].failure.as_ref().expect("why it failed");
    assert_eq!(failure.code, "conversation_not_found");

    let id = failed[0].client_message_id.to_string();
    settle(sync.discard_message(id.into()))
        .await
        .expect("discarded");
    assert_eq!(outbox().await, []);
    assert!(on_server(server(), "bob", &general)
        .await
        .iter()
        .any(|m| m.body == format!("to General {stamp}")));
    sync.dispose();
}

#[wasm_bindgen_test]
async fn force_sync_brings_other_users_messages_and_tells_what_changed() {
    let project = conversation(server(), "carol", "Project Phoenix").await;
    let sync = manager(server(), "carol", &[]).await;
    settle(sync.force_sync()).await.expect("first sync");
    let first_sync = field(&sync.get_sync_status().expect("status"), "lastSyncTime")
        .as_string()
        .expect("ISO time");
    let changes = record(&sync, "change");
    let body = format!("from dave {}", js_sys::Date::now());
    post_as(server(), "dave", &project, &body).await;
    gloo_timers::future::TimeoutFuture::new(5).await;
    let result = settle(sync.force_sync()).await.expect("synced");
    assert_eq!(field(&result, "changes"), 1);
    let local = settle(sync.list_messages(project.clone().into(), None))
        .await
        .expect("listed");
    let local: Vec<chat_sync_engine::LocalMessage> =
        serde_wasm_bindgen::from_value(local).expect("messages");
    assert!(local.iter().any(|m| m.body == body));
    let later = field(&sync.get_sync_status().expect("status"), "lastSyncTime")
        .as_string()
        .expect("ISO time");
    assert!(later > first_sync, "{later} after {first_sync}");
    let seen = changes.borrow();
    let touched: Vec<String> = seen
        .iter()
        .flat_map(|detail| {
            let ids: Vec<String> = serde_wasm_bindgen::from_value(field(detail, "conversationIds"))
                .unwrap_or_default();
            ids
        })
        .collect();
    assert_eq!(touched, vec![project], "only that conversation changed");
    sync.dispose();
}

/// `indexedDB.open` throwing as a browser whose user blocked storage does (Firefox's
/// `SecurityError`), until dropped.
struct StorageBlocked {
    prototype: JsValue,
    open: JsValue,
}

impl StorageBlocked {
    fn install() -> Self {
        let factory = Reflect::get(&js_sys::global(), &"IDBFactory".into()).expect("IDBFactory");
        let prototype = Reflect::get(&factory, &"prototype".into()).expect("prototype");
        let open = Reflect::get(&prototype, &"open".into()).expect("open");
        let refuse = Function::new_no_args(
            "throw new DOMException('The operation is insecure.', 'SecurityError');",
        );
        Reflect::set(&prototype, &"open".into(), &refuse).expect("replaced");
        Self { prototype, open }
    }
}

impl Drop for StorageBlocked {
    fn drop(&mut self) {
        Reflect::set(&self.prototype, &"open".into(), &self.open).expect("restored");
    }
}

/// Where the user blocked storage, the manager keeps its data in memory and says so in its
/// status (`storage: 'memory'`); syncing, listing and sending work.
#[wasm_bindgen_test]
async fn with_storage_blocked_the_manager_runs_in_memory() {
    let blocked = StorageBlocked::install();
    let created = try_open_manager(server(), "erin", &[]).await;
    // Restored before anything can fail: wasm has no unwinding, so a panic would not drop it.
    drop(blocked);
    let sync = created.expect("created in memory");
    settle(sync.force_sync()).await.expect("synced");
    let status = sync.get_sync_status().expect("status");
    assert_eq!(field(&status, "storage"), "memory");
    assert_eq!(field(&status, "memoryReason"), "unavailable");
    let conversations = settle(sync.list_conversations()).await.expect("listed");
    let conversations: js_sys::Array = conversations.unchecked_into();
    assert!(
        conversations.length() > 0,
        "Erin's conversations, from memory"
    );
    let body = format!("from memory {}", js_sys::Date::now());
    deliver_to_book_club(&sync, &body).await;
    sync.dispose();
}

/// A tab that keeps its data in memory leads only itself: a command it gets while frozen runs
/// once it leads again, instead of failing as if the manager were disposed.
#[wasm_bindgen_test]
async fn a_memory_only_tab_runs_a_command_it_got_while_frozen_once_resumed() {
    let blocked = StorageBlocked::install();
    let created = try_open_manager(server(), "erin", &[]).await;
    drop(blocked);
    let sync = created.expect("created in memory");
    page("freeze");
    let asked = sync.force_sync();
    page("resume");
    settle(asked).await.expect("synced once it led again");
    assert!(is_leader(&sync));
    sync.dispose();
}

/// A database a newer version of the app wrote (at a schema version this one does not know) is
/// left as it is: the manager keeps its data in memory and says why, and sending works. `clear`
/// deletes that database all the same: the user signs out of this device.
#[wasm_bindgen_test]
async fn a_database_of_a_newer_version_is_left_as_it_is_and_the_manager_runs_in_memory() {
    let name = IndexedDbStore::database_name(server(), &"u-erin".into());
    let factory = idb::Factory::new().expect("IndexedDB");
    let version = |name: String| {
        let factory = idb::Factory::new().expect("IndexedDB");
        async move {
            let database = factory
                .open(&name, None)
                .expect("open")
                .await
                .expect("opened");
            let version = database.version().expect("version");
            database.close();
            version
        }
    };
    let newer = factory.open(&name, Some(1_000)).expect("open");
    newer.await.expect("written by the newer version").close();

    let sync = try_open_manager(server(), "erin", &[])
        .await
        .expect("created in memory");
    let status = sync.get_sync_status().expect("status");
    assert_eq!(field(&status, "storage"), "memory");
    assert_eq!(field(&status, "memoryReason"), "newerVersion");
    settle(sync.force_sync()).await.expect("synced");
    let body = format!("from an older version {}", js_sys::Date::now());
    deliver_to_book_club(&sync, &body).await;
    assert_eq!(version(name.clone()).await, 1_000, "left as it is");

    settle(sync.clear()).await.expect("cleared");
    // Deleted: opening it again makes a new, empty one.
    assert_eq!(version(name.clone()).await, 1);
    IndexedDbStore::delete(&name).await.expect("cleaned up");
}

/// `indexedDB.open` of the database `name` failing (an `UnknownError`, as Chromium's backing
/// store hiccups) after its first `allowed` opens, until dropped.
struct FailingOpens {
    count: Function,
    restore: Function,
}

impl FailingOpens {
    fn install(name: &str, allowed: u32) -> Self {
        let install = Function::new_with_args(
            "name, allowed",
            "const proto = IDBFactory.prototype; const open = proto.open; let opens = 0;
             proto.open = function (opened, ...rest) {
               if (opened === name && ++opens > allowed) {
                 throw new DOMException('injected', 'UnknownError');
               }
               return open.call(this, opened, ...rest);
             };
             return [() => opens, () => { proto.open = open; }];",
        );
        let pair: js_sys::Array = install
            .call2(&JsValue::NULL, &name.into(), &allowed.into())
            .expect("installed")
            .unchecked_into();
        Self {
            count: pair.get(0).unchecked_into(),
            restore: pair.get(1).unchecked_into(),
        }
    }

    /// How many opens of the database there were.
    fn opens(&self) -> f64 {
        let count = self.count.call0(&JsValue::NULL).expect("counted");
        count.as_f64().unwrap_or_default()
    }
}

impl Drop for FailingOpens {
    fn drop(&mut self) {
        self.restore.call0(&JsValue::NULL).expect("restored");
    }
}

/// Makes the database `name` unreadable: its meta record no longer decodes.
async fn damage(name: &str) {
    let damage = Function::new_with_args(
        "name",
        "return new Promise((resolve, reject) => {
           const request = indexedDB.open(name);
           request.onerror = () => reject(request.error);
           request.onsuccess = () => {
             const database = request.result;
             const transaction = database.transaction('meta', 'readwrite');
             transaction.objectStore('meta').put('garbage', 'state');
             transaction.oncomplete = () => { database.close(); resolve(); };
             transaction.onabort = () => { database.close(); reject(transaction.error); };
           };
         });",
    );
    let damaged = damage.call1(&JsValue::NULL, &name.into()).expect("called");
    JsFuture::from(Promise::from(damaged))
        .await
        .expect("damaged");
}

/// The local database is unreadable, and rebuilding it fails once it is deleted (the new one
/// does not open, twice): the messages not sent yet read from it exist only in memory now. The
/// manager keeps its data in memory and says why (`memoryReason`, the `recovered` event), lists
/// them in `listOutbox`, and delivers each once.
#[wasm_bindgen_test]
async fn a_rebuild_that_fails_after_the_delete_keeps_the_outbox_in_memory_and_delivers_it() {
    let club = conversation(server(), "erin", "Book club").await;
    let name = IndexedDbStore::database_name(server(), &"u-erin".into());
    IndexedDbStore::delete(&name).await.expect("fresh database");
    let stamp = js_sys::Date::now() as u64;
    let entries: Vec<OutboxEntry> = (1..=2)
        .map(|n| OutboxEntry {
            client_message_id: format!("rescued-{stamp}-{n}").into(),
            conversation_id: club.clone().into(),
            body: format!("rescued {n} {stamp}"),
            seq: n,
            composed_at: stamp as i64,
            failure: None,
        })
        .collect();
    let store = IndexedDbStore::open(&name).await.expect("opened");
    let composed: Vec<StoreOp> = (entries.iter())
        .flat_map(|entry| {
            let message = LocalMessage::optimistic(entry, &"u-erin".into());
            [
                StoreOp::PutOutbox(entry.clone()),
                StoreOp::PutMessage(message),
            ]
        })
        .collect();
    store.apply(&composed).await.expect("queued");
    store.close();
    damage(&name).await;

    let failing = FailingOpens::install(&name, 1);
    let created = try_open_manager(server(), "erin", &[]).await;
    let opens = failing.opens();
    // Restored before anything can fail: wasm has no unwinding, so a panic would not drop it.
    drop(failing);
    let sync = created.expect("created in memory");
    assert_eq!(
        opens, 3.0,
        "opened, then opened anew twice after the delete"
    );
    let status = sync.get_sync_status().expect("status");
    assert_eq!(field(&status, "storage"), "memory");
    assert_eq!(field(&status, "memoryReason"), "damaged");
    let recovered = record(&sync, "recovered");
    let reason = recovered
        .borrow()
        .first()
        .map(|detail| field(detail, "reason"));
    let reason = reason
        .and_then(|reason| reason.as_string())
        .unwrap_or_default();
    assert!(
        reason.contains("rebuilding the database failed"),
        "told what happened: {reason:?}"
    );
    let listed: js_sys::Array = settle(sync.list_outbox())
        .await
        .expect("listed")
        .unchecked_into();
    let bodies: Vec<JsValue> = listed
        .iter()
        .map(|message| field(&message, "body"))
        .collect();
    let rescued: Vec<JsValue> = entries.iter().map(|e| e.body.as_str().into()).collect();
    assert_eq!(bodies, rescued, "the rescued messages wait to be sent");

    settle(sync.force_sync()).await.expect("synced");
    for entry in &entries {
        delivered_once(&sync, "erin", &club, &entry.body).await;
    }
    sync.dispose();
    IndexedDbStore::delete(&name).await.expect("cleaned up");
}

/// A tab that keeps its data in memory beside tabs that keep it in the database (as one of an
/// older app version does beside the newer version's) leads only itself: a follower's sync goes
/// to the tab that leads the database, the memory-only tab answers nothing, and tells nothing of
/// what it writes.
#[wasm_bindgen_test]
async fn a_memory_only_tab_answers_no_other_tab() {
    let leader = manager(server(), "dave", &[]).await;
    settle(leader.force_sync())
        .await
        .expect("the leader's first sync");
    let blocked = StorageBlocked::install();
    let memory = try_open_manager(server(), "dave", &[]).await;
    drop(blocked);
    let memory = memory.expect("created in memory");
    settle(memory.force_sync())
        .await
        .expect("the memory tab's own sync");
    let follower = open_manager(server(), "dave", &[]).await;
    assert_eq!(
        field(&follower.get_sync_status().expect("status"), "isLeader"),
        false
    );

    let (leader_before, memory_before) = (syncs_completed(&leader), syncs_completed(&memory));
    settle(follower.force_sync())
        .await
        .expect("synced through the leading tab");
    gloo_timers::future::TimeoutFuture::new(500).await;
    assert_eq!(syncs_completed(&leader), leader_before + 1.0);
    assert_eq!(
        syncs_completed(&memory),
        memory_before,
        "the memory-only tab ran no sync"
    );

    // What the memory-only tab writes is its own: the others hear of no change in theirs.
    let changes = record(&leader, "change");
    let general = conversation(server(), "dave", "General").await;
    let body = format!("kept in memory {}", js_sys::Date::now());
    settle(memory.send_message(general.clone().into(), body.clone().into()))
        .await
        .expect("queued");
    delivered_once(&memory, "dave", &general, &body).await;
    gloo_timers::future::TimeoutFuture::new(300).await;
    assert_eq!(changes.borrow().len(), 0, "{:?}", changes.borrow());
    for sync in [leader, memory, follower] {
        sync.dispose();
    }
}

/// The database deleted while the manager runs (the user cleared the site's data): the next
/// write finds it gone, and the manager syncs from the start, so the cache is whole again, not
/// only what changed since.
#[wasm_bindgen_test]
async fn a_database_deleted_while_in_use_is_synced_again_from_the_start() {
    let sync = manager(server(), "bob", &[]).await;
    settle(sync.force_sync()).await.expect("first sync");
    let whole = listed(&sync).await;
    assert!(whole > 0);

    let name = IndexedDbStore::database_name(server(), &"u-bob".into());
    IndexedDbStore::delete(&name)
        .await
        .expect("deleted under the manager");
    settle(sync.force_sync()).await.expect("synced");
    assert_eq!(
        listed_once(&sync, whole).await,
        whole,
        "every conversation back within 10 s"
    );
    sync.dispose();
}

/// A message queued before the database was deleted is written into the new one (found by a
/// read of the app), and delivered once when the network is back.
#[wasm_bindgen_test]
async fn a_message_queued_before_the_database_was_deleted_is_kept_and_delivered() {
    let general = conversation(server(), "alice", "General").await;
    let sync = manager(server(), "alice", &[]).await;
    settle(sync.force_sync()).await.expect("first sync");
    network(false);
    let body = format!("queued before the wipe {}", js_sys::Date::now());
    settle(sync.send_message(general.clone().into(), body.clone().into()))
        .await
        .expect("queued");

    let name = IndexedDbStore::database_name(server(), &"u-alice".into());
    IndexedDbStore::delete(&name)
        .await
        .expect("deleted under the manager");
    let mut outbox = 0;
    for _ in 0..100 {
        let listed = settle(sync.list_outbox()).await.expect("listed");
        outbox = js_sys::Array::from(&listed).length();
        if outbox == 1 {
            break;
        }
        gloo_timers::future::TimeoutFuture::new(100).await;
    }
    assert_eq!(outbox, 1, "in the new database's outbox within 10 s");

    network(true);
    delivered_once(&sync, "bob", &general, &body).await;
    sync.dispose();
}

/// Likewise when a tab that does not lead finds the database gone (it reopened it): it tells
/// the leading tab, which syncs from the start.
#[wasm_bindgen_test]
async fn a_database_a_follower_finds_deleted_is_synced_again_by_the_leader() {
    let leader = manager(server(), "carol", &[]).await;
    settle(leader.force_sync()).await.expect("first sync");
    let follower = open_manager(server(), "carol", &[]).await;
    let whole = listed(&leader).await;

    let name = IndexedDbStore::database_name(server(), &"u-carol".into());
    IndexedDbStore::delete(&name)
        .await
        .expect("deleted under both tabs");
    // The follower reads first, and finds the database gone.
    assert_eq!(listed(&follower).await, 0);
    settle(follower.force_sync()).await.expect("synced");
    assert_eq!(
        listed_once(&follower, whole).await,
        whole,
        "every conversation back within 10 s"
    );
    leader.dispose();
    follower.dispose();
}

/// After the site's data is cleared, a tab opened then makes the database anew; the leading tab,
/// which kept its cursor in memory, hears of it and syncs from the start.
#[wasm_bindgen_test]
async fn a_database_a_new_tab_makes_anew_is_synced_again_by_the_leader() {
    let leader = manager(server(), "carol", &[]).await;
    settle(leader.force_sync()).await.expect("first sync");
    let whole = listed(&leader).await;

    let name = IndexedDbStore::database_name(server(), &"u-carol".into());
    IndexedDbStore::delete(&name).await.expect("deleted");
    let newcomer = open_manager(server(), "carol", &[]).await;
    assert_eq!(
        listed_once(&newcomer, whole).await,
        whole,
        "every conversation back within 10 s"
    );
    // The leader's sync from the start ends before it goes (its writes would land in the next
    // test's database).
    until("the leader's sync ended", || {
        field(&leader.get_sync_status().expect("status"), "isRunning") == false
    })
    .await;
    leader.dispose();
    newcomer.dispose();
}

/// Waits until `sync` has nothing left to send, and checks that the server holds `body` once in
/// `conversation`, as `reader` sees it.
async fn delivered_once(
    sync: &BackgroundSyncManager,
    reader: &str,
    conversation: &str,
    body: &str,
) {
    until("the outbox is empty", || {
        field(&sync.get_sync_status().expect("status"), "pendingOutbox") == 0
    })
    .await;
    let copies = on_server(server(), reader, conversation)
        .await
        .into_iter()
        .filter(|m| m.body == body)
        .count();
    assert_eq!(copies, 1, "delivered once");
}

/// How many conversations `sync` lists.
async fn listed(sync: &BackgroundSyncManager) -> u32 {
    let conversations = settle(sync.list_conversations()).await.expect("listed");
    conversations.unchecked_into::<js_sys::Array>().length()
}

/// How many conversations `sync` lists once it lists `expected`, or after 10 s.
async fn listed_once(sync: &BackgroundSyncManager, expected: u32) -> u32 {
    for _ in 0..100 {
        if listed(sync).await == expected {
            break;
        }
        gloo_timers::future::TimeoutFuture::new(100).await;
    }
    listed(sync).await
}

/// Sends `body` to Erin's Book club through `sync` and waits until the server holds it.
async fn deliver_to_book_club(sync: &BackgroundSyncManager, body: &str) {
    let club = conversation(server(), "erin", "Book club").await;
    settle(sync.send_message(club.clone().into(), body.into()))
        .await
        .expect("queued");
    until("the message to reach the server", || {
        field(&sync.get_sync_status().expect("status"), "pendingOutbox").as_f64() == Some(0.0)
    })
    .await;
    let delivered = on_server(server(), "erin", &club).await;
    assert!(
        delivered.iter().any(|m| m.body == body),
        "{body} on the server"
    );
}

/// Two tabs that keep their data in memory share no outbox: each leads and syncs its own, so a
/// message sent from the second is delivered while the first lives.
#[wasm_bindgen_test]
async fn with_storage_blocked_each_tab_syncs_its_own() {
    let blocked = StorageBlocked::install();
    let first = try_open_manager(server(), "erin", &[]).await;
    let second = try_open_manager(server(), "erin", &[]).await;
    drop(blocked);
    let (first, second) = (first.expect("first tab"), second.expect("second tab"));
    let leads = |sync: &BackgroundSyncManager| {
        field(&sync.get_sync_status().expect("status"), "isLeader").as_bool() == Some(true)
    };
    until("both tabs lead", || leads(&first) && leads(&second)).await;
    settle(second.force_sync())
        .await
        .expect("the second tab syncs");
    let body = format!("from the second tab, in memory {}", js_sys::Date::now());
    deliver_to_book_club(&second, &body).await;
    first.dispose();
    second.dispose();
}

/// Erin's manager, synced, with maintenance keeping the newest 10 messages of each
/// conversation, and the id of Book club.
async fn erin_keeping_10() -> (BackgroundSyncManager, String) {
    let club = conversation(server(), "erin", "Book club").await;
    let sync = manager(server(), "erin", &[("retentionPerConversation", 10.into())]).await;
    settle(sync.force_sync()).await.expect("first sync");
    settle(sync.run_maintenance())
        .await
        .expect("maintenance evicts all but 10");
    (sync, club)
}

/// Maintenance's eviction tells the app, in a `change` event, which conversations it took old
/// messages from: those it left with the newest 10.
#[wasm_bindgen_test]
async fn maintenance_names_the_conversations_it_evicted_from() {
    let club = conversation(server(), "erin", "Book club").await;
    let sync = manager(server(), "erin", &[("retentionPerConversation", 10.into())]).await;
    settle(sync.force_sync()).await.expect("first sync");
    let changes = record(&sync, "change");
    settle(sync.run_maintenance()).await.expect("maintenance");
    let named: Vec<String> = (changes.borrow().iter())
        .flat_map(|detail| {
            let ids: Vec<String> = serde_wasm_bindgen::from_value(field(detail, "conversationIds"))
                .expect("conversation ids");
            ids
        })
        .collect();
    assert!(named.contains(&club), "{named:?} names Book club");
    for id in named {
        let id = chat_sync_engine::protocol::ConversationId::new(id);
        let cached = sync.inner.driver.store.messages(&id, None, 50);
        assert_eq!(
            cached.await.expect("read").len(),
            10,
            "{id:?} kept its newest 10"
        );
    }
    sync.dispose();
}

#[wasm_bindgen_test]
async fn paging_back_past_the_cached_messages_back_fills_from_the_server() {
    let (sync, club) = erin_keeping_10().await;
    let options = |before: Option<f64>| {
        let options = js_sys::Object::new();
        Reflect::set(&options, &"limit".into(), &20.into()).expect("set");
        if let Some(before) = before {
            Reflect::set(&options, &"before".into(), &before.into()).expect("set");
        }
        Some(options.unchecked_into())
    };
    let club_id = chat_sync_engine::protocol::ConversationId::new(club.clone());
    let cached = sync.inner.driver.store.messages(&club_id, None, 50);
    let cached = cached.await.expect("read");
    assert_eq!(cached.len(), 10, "maintenance kept the newest 10");
    let oldest = cached[0].sort_ts as f64;
    let older = settle(sync.list_messages(club.clone().into(), options(Some(oldest))))
        .await
        .expect("listed");
    let older: Vec<chat_sync_engine::LocalMessage> =
        serde_wasm_bindgen::from_value(older).expect("messages");
    assert!(!older.is_empty(), "older messages came from the server");
    assert!(older.iter().all(|m| (m.sort_ts as f64) < oldest));
    let server_ids: Vec<_> = on_server(server(), "erin", &club)
        .await
        .into_iter()
        .map(|m| m.id)
        .collect();
    for message in &older {
        let id = message.id.clone().expect("a server message");
        assert!(server_ids.contains(&id), "{id} is on the server");
    }
    sync.dispose();
}

/// Eviction leaves the cache whole from the oldest kept message up (its history floor); an old
/// message the feed brings later waits below, and paging back loads what lies between.
#[wasm_bindgen_test]
async fn paging_back_fills_the_gap_above_an_old_message_edited_after_eviction() {
    let (sync, club) = erin_keeping_10().await;
    let club_id = chat_sync_engine::protocol::ConversationId::new(club.clone());
    let window = sync.inner.driver.store.messages(&club_id, None, 50).await;
    let window = window.expect("read");
    assert_eq!(window.len(), 10);

    // Another member edits one of their messages well below those 10; the feed brings it.
    let newest_first = on_server(server(), "erin", &club).await;
    let old = (newest_first[15..].iter())
        .find(|m| !m.deleted && m.sender_id.as_str() != "u-erin")
        .expect("an old message of another member");
    let sender = old.sender_id.as_str().trim_start_matches("u-");
    let response = gloo_net::http::Request::patch(&format!(
        "{}/v1/conversations/{club}/messages/{}",
        server(),
        old.id
    ))
    .header("Authorization", &format!("Bearer demo-{sender}"))
    .header("Content-Type", "application/json")
    .body(r#"{ "body": "edited long after" }"#)
    .expect("request")
    .send()
    .await
    .expect("edited");
    assert_eq!(response.status(), 200);
    settle(sync.force_sync()).await.expect("second sync");

    // The page below the 10 is the 20 messages the server has right below them, not the edited
    // one and what lies below it.
    let listed = list_20_below(&sync, &club, &window[0]).await;
    assert!(listed.iter().any(|m| m.body == "edited long after"));
    sync.dispose();
}

/// Lists the 20 messages below `top`, a cached message of Erin's `club`, and checks they are
/// the 20 the server has right below it (deleted ones left out).
async fn list_20_below(
    sync: &BackgroundSyncManager,
    club: &str,
    top: &chat_sync_engine::LocalMessage,
) -> Vec<chat_sync_engine::LocalMessage> {
    let options = js_sys::Object::new();
    Reflect::set(&options, &"limit".into(), &20.into()).expect("set");
    Reflect::set(&options, &"before".into(), &(top.sort_ts as f64).into()).expect("set");
    let listed = settle(sync.list_messages(club.into(), Some(options.unchecked_into())))
        .await
        .expect("listed");
    let listed: Vec<chat_sync_engine::LocalMessage> =
        serde_wasm_bindgen::from_value(listed).expect("messages");
    let newest_first = on_server(server(), "erin", club).await;
    let below = (newest_first.iter())
        .position(|m| top.id.as_ref() == Some(&m.id))
        .expect("the top message is on the server")
        + 1;
    let mut expected: Vec<&Message> = (newest_first[below..below + 20].iter())
        .filter(|m| !m.deleted)
        .collect();
    expected.reverse();
    let listed_ids: Vec<String> = (listed.iter())
        .map(|m| m.id.as_ref().map_or("?".into(), ToString::to_string))
        .collect();
    let expected_ids: Vec<String> = expected.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(listed_ids, expected_ids);
    listed
}

/// A server that purged old history (or whose database was replaced) no longer has the message
/// the cache is whole down to: back-fill starts again from the newest message and fills the page.
#[wasm_bindgen_test]
async fn paging_back_below_a_message_the_server_no_longer_has_back_fills_from_the_newest() {
    let (sync, club) = erin_keeping_10().await;
    let club_id = chat_sync_engine::protocol::ConversationId::new(club.clone());
    let store = &sync.inner.driver.store;
    let window = store.messages(&club_id, None, 50).await.expect("read");
    assert_eq!(window.len(), 10);
    let oldest = HistoryFloor::at(&window[0]).expect("a server message");
    let purged = HistoryFloor::From {
        sort_ts: window[0].sort_ts - 1,
        id: "m-purged".into(),
    };
    let extend = StoreOp::ExtendHistory {
        conversation: club_id.clone(),
        from: oldest,
        to: purged.clone(),
    };
    store.apply(&[extend]).await.expect("floor set");
    assert_eq!(store.history_floor(&club_id).await.expect("floor"), purged);

    list_20_below(&sync, &club, &window[0]).await;
    let floor = store.history_floor(&club_id).await.expect("floor");
    assert!(
        floor.shows_from() < window[0].sort_ts,
        "back-filled from the newest down past the 10: {floor:?}"
    );
    sync.dispose();
}

/// What the first function of [`count_fetches`] counts now.
fn calls(count: &Function) -> Option<f64> {
    count.call0(&JsValue::NULL).expect("count").as_f64()
}

/// Dave starts a conversation `title` with Erin on the server; its id.
async fn dave_starts_a_conversation_with_erin(title: &str) -> String {
    let response = gloo_net::http::Request::post(&format!("{}/v1/conversations", server()))
        .header("Authorization", "Bearer demo-dave")
        .header("Content-Type", "application/json")
        .body(serde_json::json!({ "title": title, "memberIds": ["u-erin"] }).to_string())
        .expect("request")
        .send()
        .await
        .expect("created");
    assert_eq!(response.status(), 201);
    let created: serde_json::Value =
        serde_json::from_slice(&response.binary().await.expect("body")).expect("json");
    created["conversation"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Counts the page's `fetch` calls whose URL contains `part` (wraps `fetch`; `restore` undoes it).
fn count_fetches(part: &str) -> (Function, Function) {
    let install = Function::new_with_args(
        "part",
        "const original = globalThis.fetch; let count = 0;
         globalThis.fetch = function (input, init) {
           const url = typeof input === 'string' ? input : input.url;
           if (url.includes(part)) count += 1;
           return original.call(this, input, init);
         };
         return [() => count, () => { globalThis.fetch = original; }];",
    );
    let pair = install
        .call1(&JsValue::NULL, &part.into())
        .expect("installed");
    let pair: js_sys::Array = pair.unchecked_into();
    (pair.get(0).unchecked_into(), pair.get(1).unchecked_into())
}

/// A sync from the beginning of the feed brings every message: the histories it leaves are
/// complete, and listing them asks the server nothing.
#[wasm_bindgen_test]
async fn a_conversation_synced_from_the_beginning_is_listed_without_back_fill() {
    let id = dave_starts_a_conversation_with_erin("From the start").await;
    post_as(server(), "dave", &id, "one").await;
    post_as(server(), "dave", &id, "two").await;
    let sync = manager(server(), "dave", &[]).await;
    settle(sync.force_sync()).await.expect("synced");
    let (count, restore) = count_fetches(&format!("/conversations/{id}/messages"));
    let listed = settle(sync.list_messages(id.clone().into(), None))
        .await
        .expect("listed");
    let asked = calls(&count);
    restore.call0(&JsValue::NULL).expect("restored");
    assert_eq!(js_sys::Array::from(&listed).length(), 2);
    assert_eq!(asked, Some(0.0), "the history is known to be complete");
    sync.dispose();
}

/// Dave's manager, synced from the beginning, then a conversation Dave starts with Erin and
/// posts `count` messages to, synced incrementally: its start lies behind the cursor until a
/// back-fill finds it. The manager and the conversation's id.
async fn dave_synced_then_a_new_conversation(
    title: &str,
    count: usize,
) -> (BackgroundSyncManager, String) {
    let sync = manager(server(), "dave", &[]).await;
    settle(sync.force_sync())
        .await
        .expect("synced from the beginning");
    let id = dave_starts_a_conversation_with_erin(title).await;
    for n in 0..count {
        post_as(server(), "dave", &id, &n.to_string()).await;
    }
    settle(sync.force_sync()).await.expect("synced");
    (sync, id)
}

/// Deleted messages do not count toward a page: `listMessages` gives `limit` shown ones while the
/// history has them, reading on below the deleted (a short page would look like the beginning).
#[wasm_bindgen_test]
async fn a_page_of_messages_skips_deleted_ones_and_stays_full() {
    let sync = manager(server(), "erin", &[]).await;
    let id = "c-local-deletions";
    // (Recent: maintenance compacts old tombstones.)
    let base = js_sys::Date::now() as i64 - 3_600_000;
    let message = |n: i64| Message {
        id: format!("m-del-{n:03}").into(),
        conversation_id: id.into(),
        client_message_id: format!("x-del-{n}").into(),
        sender_id: "u-bob".into(),
        body: format!("message {n}"),
        server_ts: base + n,
        updated_ts: base + n,
        edited: false,
        deleted: false,
    };
    let put = |message: Message| StoreOp::PutMessage(LocalMessage::from_server(message));
    let mut ops = vec![StoreOp::ExtendHistory {
        conversation: id.into(),
        from: HistoryFloor::Unknown,
        to: HistoryFloor::Complete,
    }];
    ops.extend((0..150).map(|n| put(message(n))));
    // Then the newest 60 but one are deleted, and one further down.
    ops.extend((90..149).chain([10]).map(|n| {
        let mut deleted = message(n);
        deleted.deleted = true;
        deleted.body.clear();
        deleted.updated_ts += 1_000;
        put(deleted)
    }));
    sync.inner.driver.store.apply(&ops).await.expect("stored");

    let bodies = |listed: JsValue| -> Vec<String> {
        js_sys::Array::from(&listed)
            .iter()
            .map(|m| field(&m, "body").as_string().unwrap_or_default())
            .collect()
    };
    let shown = |range: std::ops::Range<i64>| -> Vec<String> {
        range
            .filter(|n| *n != 10)
            .map(|n| format!("message {n}"))
            .collect()
    };
    let fifty = js_sys::Object::new();
    Reflect::set(&fifty, &"limit".into(), &50.into()).expect("set");
    let newest = settle(sync.list_messages(id.into(), Some(fifty.clone().unchecked_into())))
        .await
        .expect("listed");
    let mut expected = shown(41..90);
    expected.push("message 149".into());
    assert_eq!(bodies(newest), expected);

    // Below the oldest shown: what is left, the deleted one skipped.
    Reflect::set(&fifty, &"before".into(), &((base + 41) as f64).into()).expect("set");
    let oldest = settle(sync.list_messages(id.into(), Some(fifty.unchecked_into())))
        .await
        .expect("listed");
    assert_eq!(bodies(oldest), shown(0..41));
    sync.dispose();
}

#[wasm_bindgen_test]
async fn a_conversation_whose_whole_history_is_cached_is_not_back_filled_again() {
    let (sync, id) = dave_synced_then_a_new_conversation("Short chat", 2).await;
    let (count, restore) = count_fetches(&format!("/conversations/{id}/messages"));
    for _ in 0..3 {
        let listed = settle(sync.list_messages(id.clone().into(), None))
            .await
            .expect("listed");
        assert_eq!(js_sys::Array::from(&listed).length(), 2);
    }
    let asked = calls(&count);
    restore.call0(&JsValue::NULL).expect("restored");
    assert_eq!(
        asked,
        Some(1.0),
        "one back-fill found the start; later listings ask no more"
    );
    sync.dispose();
}

/// Answers the page's `fetch` of URLs containing `part` with a 500 and the protocol's error
/// body; call the returned function to restore `fetch`.
fn fail_fetches(part: &str) -> Function {
    let install = Function::new_with_args(
        "part",
        "const original = globalThis.fetch;
         globalThis.fetch = function (input, init) {
           const url = typeof input === 'string' ? input : input.url;
           if (!url.includes(part)) return original.call(this, input, init);
           const body = JSON.stringify({ error: { code: 'internal', message: 'injected' } });
           return Promise.resolve(new Response(body, {
             status: 500, headers: { 'Content-Type': 'application/json' },
           }));
         };
         return () => { globalThis.fetch = original; };",
    );
    install
        .call1(&JsValue::NULL, &part.into())
        .expect("installed")
        .unchecked_into()
}

/// A short page whose back-fill failed is not the beginning: `isHistoryComplete` says so only
/// once the server said there is nothing older.
#[wasm_bindgen_test]
async fn history_is_complete_only_once_the_server_said_there_is_nothing_older() {
    let (sync, id) = dave_synced_then_a_new_conversation("Back-fill fails", 2).await;
    let complete = |sync: &BackgroundSyncManager| {
        let promise = sync.is_history_complete(id.clone().into());
        async move { settle(promise).await.expect("answered").as_bool() }
    };
    assert_eq!(complete(&sync).await, Some(false), "before any back-fill");

    let restore = fail_fetches(&format!("/conversations/{id}/messages"));
    let listed = settle(sync.list_messages(id.clone().into(), None)).await;
    restore.call0(&JsValue::NULL).expect("restored");
    let listed = listed.expect("the cached page, back-fill failing");
    assert_eq!(js_sys::Array::from(&listed).length(), 2, "a short page");
    assert_eq!(complete(&sync).await, Some(false), "the back-fill failed");

    let listed = settle(sync.list_messages(id.clone().into(), None))
        .await
        .expect("listed");
    assert_eq!(js_sys::Array::from(&listed).length(), 2);
    assert_eq!(complete(&sync).await, Some(true), "the server said so");
    sync.dispose();
}

#[wasm_bindgen_test]
async fn listing_a_conversation_shorter_than_the_page_asks_the_server_only_the_first_time() {
    let (sync, id) = dave_synced_then_a_new_conversation("Sixty", 60).await;
    let (count, restore) = count_fetches(&format!("/conversations/{id}/messages"));
    // More than a history page (50) and more than the conversation holds: short every time.
    let options = || {
        let options = js_sys::Object::new();
        Reflect::set(&options, &"limit".into(), &100.into()).expect("set");
        Some(options.unchecked_into())
    };
    let listed = settle(sync.list_messages(id.clone().into(), options()))
        .await
        .expect("listed");
    assert_eq!(js_sys::Array::from(&listed).length(), 60);
    let asked_first = calls(&count);
    for _ in 0..3 {
        let listed = settle(sync.list_messages(id.clone().into(), options()))
            .await
            .expect("listed");
        assert_eq!(js_sys::Array::from(&listed).length(), 60);
    }
    let asked = calls(&count);
    restore.call0(&JsValue::NULL).expect("restored");
    assert!(asked_first >= Some(1.0), "the first listing back-filled");
    assert_eq!(asked, asked_first, "later listings ask no more");
    sync.dispose();
}

/// A follower tab talks to the server through the leading tab: its `forceSync`,
/// `syncConversation` and back-fill run there, and answer with what they wrote.
#[wasm_bindgen_test]
async fn a_follower_syncs_a_conversation_and_back_fills_through_the_leader() {
    let (leader, id) = dave_synced_then_a_new_conversation("Through the leader", 60).await;
    let follower = open_manager(server(), "dave", &[]).await;
    let status = |sync: &BackgroundSyncManager| sync.get_sync_status().expect("status");
    assert_eq!(field(&status(&follower), "isLeader"), false);
    let hundred = js_sys::Object::new();
    Reflect::set(&hundred, &"limit".into(), &100.into()).expect("set");
    let listed = settle(follower.list_messages(id.clone().into(), Some(hundred.unchecked_into())))
        .await
        .expect("listed");
    assert_eq!(
        js_sys::Array::from(&listed).length(),
        60,
        "the leader back-filled the history behind the cursor"
    );

    post_as(server(), "erin", &id, "one more").await;
    let synced = settle(follower.sync_conversation(id.clone().into()))
        .await
        .expect("the leader synced the conversation");
    assert_eq!(field(&synced, "changes"), 1);
    let newest = settle(follower.list_messages(id.clone().into(), None))
        .await
        .expect("listed");
    let newest = js_sys::Array::from(&newest).pop();
    assert_eq!(field(&newest, "body"), "one more");

    post_as(server(), "erin", &id, "and another").await;
    let synced = settle(follower.force_sync())
        .await
        .expect("the leader synced");
    // (The global feed brings "one more" again: the conversation's sync did not move its cursor.)
    let changes = field(&synced, "changes").as_f64();
    assert!(
        changes >= Some(1.0),
        "the leader's sync, counted: {changes:?}"
    );
    assert_eq!(field(&status(&follower), "isLeader"), false);
    leader.dispose();
    follower.dispose();
}

/// A follower's `forceSync` resolves once the follower's status shows the leader's sync.
#[wasm_bindgen_test]
async fn a_followers_sync_resolves_with_its_status_up_to_date() {
    let leader = manager(server(), "carol", &[]).await;
    settle(leader.force_sync()).await.expect("synced");
    let follower = open_manager(server(), "carol", &[]).await;
    let last_sync = |sync: &BackgroundSyncManager| {
        field(&sync.get_sync_status().expect("status"), "lastSyncTime")
    };
    for _ in 0..3 {
        gloo_timers::future::TimeoutFuture::new(20).await; // a later sync time
        settle(follower.force_sync())
            .await
            .expect("synced by the leader");
        assert_eq!(last_sync(&follower), last_sync(&leader));
    }
    leader.dispose();
    follower.dispose();
}

/// A follower's app hears the `message` events of the messages the leading tab delivers (its own
/// engine sends nothing): `queued` from its own engine, then `sent` as the leader's app heard it.
#[wasm_bindgen_test]
async fn a_follower_hears_its_message_delivered() {
    let general = conversation(server(), "carol", "General").await;
    let leader = manager(server(), "carol", &[]).await;
    settle(leader.force_sync()).await.expect("synced");
    let follower = open_manager(server(), "carol", &[]).await;
    let heard = record(&follower, "message");
    let body = format!("sent from a follower {}", js_sys::Date::now());
    let queued = settle(follower.send_message(general.clone().into(), body.clone().into()))
        .await
        .expect("queued");
    let id = field(&queued, "clientMessageId");
    until("the follower hears it sent", || {
        heard.borrow().iter().any(|detail| {
            field(detail, "type") == "sent"
                && field(&field(detail, "message"), "clientMessageId") == id
        })
    })
    .await;
    delivered_once(&leader, "carol", &general, &body).await;
    leader.dispose();
    follower.dispose();
}

#[wasm_bindgen_test]
async fn sync_conversation_touches_only_that_conversation() {
    let weekend = conversation(server(), "erin", "Weekend hiking").await;
    let books = conversation(server(), "erin", "Book club").await;
    let sync = manager(server(), "erin", &[]).await;
    settle(sync.force_sync()).await.expect("first sync");
    post_as(server(), "bob", &weekend, "trail update").await;
    post_as(server(), "carol", &books, "next book?").await;
    let changes = record(&sync, "change");
    settle(sync.sync_conversation(weekend.clone().into()))
        .await
        .expect("synced");
    let seen: Vec<Vec<String>> = changes
        .borrow()
        .iter()
        .map(|detail| {
            serde_wasm_bindgen::from_value(field(detail, "conversationIds")).unwrap_or_default()
        })
        .collect();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|ids| ids == &vec![weekend.clone()]),
        "{seen:?}"
    );
    sync.dispose();
}

#[wasm_bindgen_test]
async fn sync_against_a_server_answering_503_and_429_backs_off_and_completes() {
    // The user is given: the faulty server may refuse `GET /v1/me` too.
    let sync = manager(
        faulty_server(),
        "dave",
        &[("userId", "u-dave".into()), ("pageSize", 500.into())],
    )
    .await;
    // Four in ten requests fail with a 1 s Retry-After: a few pages take a while.
    until_within(90, "a sync completed", || {
        !field(&sync.get_sync_status().expect("status"), "lastSyncTime").is_null()
    })
    .await;
    let stats = sync.get_stats().expect("stats");
    assert!(
        field(&stats, "retries").as_f64().unwrap_or(0.0) >= 1.0,
        "it did retry"
    );
    let list = settle(sync.list_conversations()).await.expect("listed");
    assert!(js_sys::Array::from(&list).length() > 0);
    sync.dispose();
}

/// `Date.now()` an hour behind, as on a device whose clock was ahead and is corrected, until
/// dropped.
struct ClockSetBack {
    now: JsValue,
}

impl ClockSetBack {
    fn install() -> Self {
        let set_back = Function::new_no_args(
            "const now = Date.now; Date.now = () => now.call(Date) - 3600000; return now;",
        );
        Self {
            now: set_back.call0(&JsValue::UNDEFINED).expect("replaced"),
        }
    }
}

impl Drop for ClockSetBack {
    fn drop(&mut self) {
        let date = Reflect::get(&js_sys::global(), &"Date".into()).expect("Date");
        Reflect::set(&date, &"now".into(), &self.now).expect("restored");
    }
}

/// The periodic sync (and every other wake-up) keeps its pace when the device's clock is set
/// back, instead of waiting until the clock is back where it was; what the manager stamps and
/// shows (the last sync, a message's compose time) is on the clock as set.
#[wasm_bindgen_test]
async fn periodic_sync_goes_on_when_the_device_clock_is_set_back() {
    let sync = manager(server(), "carol", &[("periodicSyncMs", 1_000.into())]).await;
    let completed = || syncs_completed(&sync);
    until("a first sync", || completed() >= 1.0).await;
    let general = conversation(server(), "carol", "General").await;
    let before = completed();
    let set_back = ClockSetBack::install();
    // The first was due before the clock moved; the other two are scheduled after it.
    let went_on = holds_within(15, || completed() >= before + 3.0).await;
    // What the manager stamps and shows is on the device's clock as it reads now.
    let device_now = js_sys::Date::now();
    let status = sync.get_sync_status().expect("status");
    let last_sync = js_sys::Date::parse(
        &field(&status, "lastSyncTime")
            .as_string()
            .unwrap_or_default(),
    );
    let sent = settle(sync.send_message(general.into(), "after the clock moved".into())).await;
    // Restored before anything can fail: wasm has no unwinding.
    drop(set_back);
    assert!(went_on, "{} periodic syncs in 15 s", completed() - before);
    assert!(
        last_sync <= device_now && last_sync > device_now - 10_000.0,
        "last sync {} ms before the device's clock",
        device_now - last_sync
    );
    let composed_at = field(&sent.expect("sent"), "composedAt")
        .as_f64()
        .unwrap_or(f64::NAN);
    assert!(
        (composed_at - device_now).abs() < 10_000.0,
        "composed {} ms after the device's clock",
        composed_at - device_now
    );
    sync.dispose();
}

/// A `getToken` that gives back the token the server refused (a cached one) is asked again later,
/// not at once: no storm of requests and calls. A new token then resumes sync.
#[wasm_bindgen_test]
async fn get_token_giving_the_refused_token_again_is_asked_later() {
    let tokens = Function::new_no_args(
        "const state = { calls: 0, token: 'wrong' };
         state.getToken = () => { state.calls += 1; return Promise.resolve(state.token); };
         return state;",
    )
    .call0(&JsValue::NULL)
    .expect("made");
    let sync = manager(
        server(),
        "bob",
        &[
            ("token", "wrong".into()),
            ("userId", "u-bob".into()),
            ("getToken", field(&tokens, "getToken")),
        ],
    )
    .await;
    until("auth is required", || {
        field(&sync.get_sync_status().expect("status"), "phase") == "authRequired"
    })
    .await;
    gloo_timers::future::TimeoutFuture::new(1_000).await;
    assert_eq!(field(&tokens, "calls"), 1, "asked once so far");
    assert!(field(&sync.get_stats().expect("stats"), "retries").as_f64() <= Some(1.0));
    // The app's token source has a fresh one by the next ask (2 s after the first).
    Reflect::set(&tokens, &"token".into(), &"demo-bob".into()).expect("set");
    until("a sync completed", || {
        !field(&sync.get_sync_status().expect("status"), "lastSyncTime").is_null()
    })
    .await;
    assert_eq!(field(&tokens, "calls"), 2);
    sync.dispose();
}

/// A `getToken` that throws (or rejects) makes `create` reject with code `auth`, the app's error
/// as its `cause`.
#[wasm_bindgen_test]
async fn a_get_token_that_throws_is_an_auth_error_with_its_cause() {
    let throwing = Function::new_no_args("throw new TypeError('no session');");
    let options = [
        ("token", JsValue::UNDEFINED),
        ("getToken", throwing.into()),
        ("userId", "u-bob".into()),
    ];
    let Err(refused) = try_open_manager(server(), "bob", &options).await else {
        panic!("created");
    };
    assert_eq!(error_code(&refused), "auth");
    let cause = field(&refused, "cause");
    assert_eq!(field(&cause, "message"), "no session");
}

/// At the first start (no `userId`), a token the server refuses (a cached one, expired) is
/// replaced by `getToken`'s before giving up; an empty token or user id is refused.
#[wasm_bindgen_test]
async fn a_refused_token_at_the_first_start_is_replaced_by_get_token() {
    let get_token = Function::new_no_args("return Promise.resolve('demo-bob');");
    let options = [("token", "expired".into()), ("getToken", get_token.into())];
    let Ok(sync) = try_open_manager(server(), "bob", &options).await else {
        panic!("refused");
    };
    settle(sync.force_sync()).await.expect("synced as Bob");
    sync.dispose();
    for (name, empty) in [("token", ""), ("userId", "")] {
        let Err(error) = try_open_manager(server(), "bob", &[(name, empty.into())]).await else {
            panic!("an empty {name} accepted");
        };
        assert_eq!(error_code(&error), "invalidInput");
    }
}

/// A server that takes the connection and never answers `GET /v1/me` fails the first start
/// after 10 s with code `offline`, instead of leaving `create` pending for good.
#[wasm_bindgen_test]
async fn create_gives_up_on_a_server_that_never_says_who_the_user_is() {
    let restore = delay_fetches("/v1/me", 60_000);
    let created = try_open_manager(server(), "bob", &[]).await;
    restore.call0(&JsValue::NULL).expect("restored");
    let Err(error) = created else {
        panic!("created");
    };
    assert_eq!(error_code(&error), "offline");
}

#[wasm_bindgen_test]
async fn a_refused_token_pauses_sync_until_set_token() {
    let sync = manager(
        server(),
        "bob",
        &[("token", "wrong".into()), ("userId", "u-bob".into())],
    )
    .await;
    let auth = record(&sync, "authrequired");
    until("auth is required", || {
        field(&sync.get_sync_status().expect("status"), "phase") == "authRequired"
    })
    .await;
    let retries = field(&sync.get_stats().expect("stats"), "retries");
    gloo_timers::future::TimeoutFuture::new(1_500).await;
    assert_eq!(
        field(&sync.get_stats().expect("stats"), "retries"),
        retries,
        "no retry storm"
    );
    assert_eq!(
        field(&sync.get_sync_status().expect("status"), "phase"),
        "authRequired"
    );
    let error = settle(sync.force_sync()).await.expect_err("refused");
    assert_eq!(error_code(&error), "auth");
    settle(sync.set_token("demo-bob".into()))
        .await
        .expect("token set");
    until("a sync completed", || {
        !field(&sync.get_sync_status().expect("status"), "lastSyncTime").is_null()
    })
    .await;
    assert!(auth.borrow().len() <= 1);
    sync.dispose();
}

#[wasm_bindgen_test]
async fn a_new_manager_keeps_the_data_and_clear_removes_it() {
    let general = conversation(server(), "dave", "General").await;
    let sync = manager(server(), "dave", &[]).await;
    settle(sync.force_sync()).await.expect("synced");
    network(false);
    settle(sync.send_message(general.clone().into(), "kept across reopen".into()))
        .await
        .expect("queued");
    sync.dispose();
    network(true);

    let name = IndexedDbStore::database_name(server(), &UserId::new("u-dave"));
    let store = IndexedDbStore::open(&name).await.expect("open");
    let state = store.load().await.expect("load");
    assert_eq!(state.outbox.len(), 1, "the pending message survived");
    assert!(!store.conversations().await.expect("read").is_empty());
    store.close();

    let reopened = open_manager(server(), "dave", &[]).await;
    until("the kept message was delivered", || {
        field(
            &reopened.get_sync_status().expect("status"),
            "pendingOutbox",
        ) == 0
    })
    .await;
    settle(reopened.clear()).await.expect("cleared");
    let store = IndexedDbStore::open(&name).await.expect("open");
    assert!(store.conversations().await.expect("read").is_empty());
    assert!(store.load().await.expect("load").outbox.is_empty());
    store.close();
}

/// The names of the origin's IndexedDB databases.
async fn database_names() -> Vec<String> {
    let factory = Reflect::get(&js_sys::global(), &"indexedDB".into()).expect("indexedDB");
    let databases: Function = Reflect::get(&factory, &"databases".into())
        .expect("databases()")
        .unchecked_into();
    let list = settle(databases.call0(&factory).expect("called").into())
        .await
        .expect("listed");
    js_sys::Array::from(&list)
        .iter()
        .filter_map(|database| field(&database, "name").as_string())
        .collect()
}

#[wasm_bindgen_test]
async fn clear_in_one_tab_stops_the_others_and_nothing_is_written_back() {
    let name = IndexedDbStore::database_name(server(), &UserId::new("u-carol"));
    let signing_out = manager(server(), "carol", &[]).await;
    settle(signing_out.force_sync()).await.expect("synced");
    // Another tab of Carol's, in the same page: it takes over syncing when the first one stops.
    let other = open_manager(server(), "carol", &[]).await;
    let cleared = record(&other, "cleared");
    let listed = settle(other.list_conversations()).await.expect("reads");
    assert!(
        js_sys::Array::from(&listed).length() > 0,
        "the other tab shows Carol's data"
    );

    settle(signing_out.clear()).await.expect("cleared");
    until("the other tab hears of the clear", || {
        !cleared.borrow().is_empty()
    })
    .await;
    let refused = settle(other.list_conversations())
        .await
        .expect_err("stopped");
    assert_eq!(error_code(&refused), "disposed");
    // Had the other tab gone on, it would have synced Carol's data into a new database.
    gloo_timers::future::TimeoutFuture::new(1_500).await;
    let names = database_names().await;
    assert!(!names.contains(&name), "{name} in {names:?}");
    assert_eq!(cleared.borrow().len(), 1);
}

/// Delays the page's `fetch` of URLs containing `part` by `ms`; call the returned function to
/// restore `fetch`.
fn delay_fetches(part: &str, ms: u32) -> Function {
    let install = Function::new_with_args(
        "part, ms",
        "const original = globalThis.fetch;
         globalThis.fetch = function (input, init) {
           const url = typeof input === 'string' ? input : input.url;
           const call = () => original.call(this, input, init);
           return url.includes(part) ? new Promise((r) => setTimeout(r, ms)).then(call) : call();
         };
         return () => { globalThis.fetch = original; };",
    );
    install
        .call2(&JsValue::NULL, &part.into(), &ms.into())
        .expect("installed")
        .unchecked_into()
}

/// Signing out while a message is on its way: its answer, arriving after the database was
/// deleted, writes nothing (it would make the user's database anew, with the message in it).
#[wasm_bindgen_test]
async fn clear_while_a_send_is_on_its_way_leaves_no_database_behind() {
    let general = conversation(server(), "dave", "General").await;
    let name = IndexedDbStore::database_name(server(), &UserId::new("u-dave"));
    let sync = manager(server(), "dave", &[]).await;
    settle(sync.force_sync()).await.expect("synced");
    let restore = delay_fetches("/messages", 500);
    settle(sync.send_message(general.into(), "sent, then signed out".into()))
        .await
        .expect("queued");
    settle(sync.clear()).await.expect("cleared");
    gloo_timers::future::TimeoutFuture::new(1_500).await;
    restore.call0(&JsValue::NULL).expect("restored");
    let names = database_names().await;
    assert!(!names.contains(&name), "{name} in {names:?}");
}

/// Signing out as a message is being stored: that write ends before the database is deleted,
/// and nothing after it opens the database again.
#[wasm_bindgen_test]
async fn clear_as_a_send_is_being_stored_leaves_no_database_behind() {
    let general = conversation(server(), "dave", "General").await;
    let name = IndexedDbStore::database_name(server(), &UserId::new("u-dave"));
    let sync = manager(server(), "dave", &[]).await;
    settle(sync.force_sync()).await.expect("synced");
    // The engine asks for the outbox write at once; the store performs it after `clear()`.
    let driver = sync.inner.driver.clone();
    let (_, stored) = driver
        .command(|engine, now| engine.send(general.as_str().into(), "signing out".into(), now))
        .expect("queued");
    settle(sync.clear()).await.expect("cleared");
    assert!(matches!(stored.await, Ok(Ok(_))), "stored, then deleted");
    gloo_timers::future::TimeoutFuture::new(500).await;
    let names = database_names().await;
    assert!(!names.contains(&name), "{name} in {names:?}");
}

/// `clear()` on a manager the app disposed already (an unmount's cleanup, then the logout
/// handler) still stops the user's other tabs: they would sync the data back into a new
/// database.
#[wasm_bindgen_test]
async fn clear_after_dispose_still_stops_the_other_tabs() {
    let name = IndexedDbStore::database_name(server(), &UserId::new("u-carol"));
    let signing_out = manager(server(), "carol", &[]).await;
    settle(signing_out.force_sync()).await.expect("synced");
    let other = open_manager(server(), "carol", &[]).await;
    let cleared = record(&other, "cleared");
    signing_out.dispose();
    settle(signing_out.clear()).await.expect("cleared");
    until("the other tab hears of the clear", || {
        !cleared.borrow().is_empty()
    })
    .await;
    gloo_timers::future::TimeoutFuture::new(1_500).await;
    let names = database_names().await;
    assert!(!names.contains(&name), "{name} in {names:?}");
}

/// A sync asked for just before `clear()` (in one go) reads nothing after the database is
/// deleted: a read would make it anew.
#[wasm_bindgen_test]
async fn force_sync_then_clear_in_one_go_leaves_no_database_behind() {
    let name = IndexedDbStore::database_name(server(), &UserId::new("u-carol"));
    let sync = manager(server(), "carol", &[]).await;
    settle(sync.force_sync()).await.expect("synced");
    let last = sync.force_sync();
    settle(sync.clear()).await.expect("cleared");
    let _ = settle(last).await;
    gloo_timers::future::TimeoutFuture::new(1_000).await;
    let names = database_names().await;
    assert!(!names.contains(&name), "{name} in {names:?}");
}

/// A follower disposed while the leading tab has not answered its command: the command ends at
/// once, as disposed.
#[wasm_bindgen_test]
async fn a_followers_command_ends_when_it_is_disposed() {
    let leader = manager(server(), "bob", &[]).await;
    settle(leader.force_sync()).await.expect("synced");
    let follower = open_manager(server(), "bob", &[]).await;
    // The leading tab hears nothing (suspended): the follower's sync waits for it.
    leader.inner.driver.stop_hearing();
    let asked = follower.force_sync();
    gloo_timers::future::TimeoutFuture::new(100).await; // asked, and waiting
    follower.dispose();
    let started = js_sys::Date::now();
    let refused = settle(asked).await.expect_err("ended");
    assert_eq!(error_code(&refused), "disposed");
    assert!(js_sys::Date::now() - started < 1_000.0, "at once");
    leader.dispose();
}

/// A leading tab that closes while it runs a follower's command ends it as stopped: the follower
/// keeps the command and asks again, and the tab that leads next runs it.
#[wasm_bindgen_test]
async fn a_command_the_leading_tab_left_unfinished_is_run_by_the_next_leader() {
    let first = manager(server(), "bob", &[]).await;
    settle(first.force_sync()).await.expect("synced");
    let next = open_manager(server(), "bob", &[]).await; // first in line for the lock
    let asking = open_manager(server(), "bob", &[]).await;
    let restore = delay_fetches("/v1/", 2_000); // the leading tab's sync for it takes a while
    let asked = asking.force_sync();
    gloo_timers::future::TimeoutFuture::new(300).await; // the leading tab runs it
    restore.call0(&JsValue::NULL).expect("restored");
    first.dispose();
    let synced = settle(asked)
        .await
        .expect("answered by the tab that leads next");
    assert!(field(&synced, "changes").as_f64().is_some());
    assert!(is_leader(&next), "the tab first in line leads");
    assert!(!is_leader(&asking));
    next.dispose();
    asking.dispose();
}

/// A tab that stops leading while its own command runs (taken over while the browser had it
/// suspended) hands the command to the tab that leads now.
#[wasm_bindgen_test]
async fn a_command_of_a_tab_taken_over_is_run_by_the_tab_that_took_over() {
    let suspended = manager(server(), "dave", &[]).await;
    settle(suspended.force_sync()).await.expect("synced");
    let restore = delay_fetches("/v1/", 8_000); // longer than a takeover takes
    let asked = suspended.force_sync();
    suspended.inner.driver.stop_hearing();
    // (Its user given: the delayed fetches are the leading tab's.) It takes over after 5 s of
    // silence.
    let in_use = open_manager(server(), "dave", &[("userId", "u-dave".into())]).await;
    gloo_timers::future::TimeoutFuture::new(1_000).await;
    restore.call0(&JsValue::NULL).expect("restored");
    suspended.inner.driver.hear_again(); // the browser runs it again
    let synced = settle(asked).await.expect("run by the tab that took over");
    assert!(field(&synced, "changes").as_f64().is_some());
    assert!(is_leader(&in_use));
    assert!(!is_leader(&suspended));
    in_use.dispose();
    suspended.dispose();
}

/// A manager the app lets go of (`free()`, which `using` calls) while it syncs stops as
/// `dispose()` stops it: at once, its sync ends as disposed, and the next tab leads.
#[wasm_bindgen_test]
async fn a_manager_let_go_of_while_it_syncs_stops_at_once() {
    let first = manager(server(), "erin", &[]).await;
    settle(first.force_sync()).await.expect("synced");
    let next = open_manager(server(), "erin", &[]).await;
    assert!(!is_leader(&next));
    let restore = delay_fetches("/v1/", 3_000);
    let syncing = first.force_sync();
    drop(first);
    let ended = holds_within(1, || is_leader(&next)).await;
    restore.call0(&JsValue::NULL).expect("restored");
    assert!(ended, "the next tab leads at once");
    let refused = settle(syncing).await.expect_err("ended");
    assert_eq!(error_code(&refused), "disposed");
    settle(next.force_sync()).await.expect("synced");
    next.dispose();
}

/// A `status` event's detail is the status `getSyncStatus()` gives: in a follower tab, phase
/// `follower`, with the tab's own fields (`isLeader`, `storage`).
#[wasm_bindgen_test]
async fn a_status_event_tells_what_get_sync_status_tells() {
    let general = conversation(server(), "erin", "General").await;
    let leader = manager(server(), "erin", &[]).await;
    settle(leader.force_sync()).await.expect("synced");
    let follower = open_manager(server(), "erin", &[]).await;
    let statuses = record(&follower, "status");
    let body = format!("status seen by a follower {}", js_sys::Date::now());
    settle(leader.send_message(general.clone().into(), body.clone().into()))
        .await
        .expect("queued");
    delivered_once(&leader, "erin", &general, &body).await;
    until("the follower hears of it", || !statuses.borrow().is_empty()).await;
    for detail in statuses.borrow().iter() {
        assert_eq!(field(detail, "phase"), "follower");
        assert_eq!(field(detail, "isLeader"), false);
        assert_eq!(field(detail, "storage"), "indexeddb");
    }
    leader.dispose();
    follower.dispose();
}

/// `requestPersistentStorage` does not hold up `create` (Firefox asks the user, who may take
/// their time): the status says null until the browser answers, then the answer.
#[wasm_bindgen_test]
async fn persistent_storage_is_asked_for_without_waiting_for_the_answer() {
    let persist = Function::new_no_args(
        "const storage = navigator.storage;
         if (!storage) return null;
         let grant;
         storage.persist = () => new Promise((resolve) => { grant = resolve; });
         return { grant: () => grant(true), restore: () => { delete storage.persist; } };",
    )
    .call0(&JsValue::NULL)
    .expect("patched");
    if persist.is_null() {
        return; // (no StorageManager here: WebKitGTK's test browser)
    }
    let call = |name: &str| {
        let method: Function = field(&persist, name).unchecked_into();
        method.call0(&JsValue::NULL).expect("called");
    };
    let opened = std::rc::Rc::new(std::cell::RefCell::new(None));
    let slot = opened.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let asking = [("requestPersistentStorage", JsValue::TRUE)];
        *slot.borrow_mut() = Some(manager(server(), "erin", &asking).await);
    });
    let created = holds_within(5, || opened.borrow().is_some()).await;
    if !created {
        call("grant");
        call("restore");
        panic!("create waited for the user's answer");
    }
    let sync = opened.borrow_mut().take().expect("created");
    let persistent = |sync: &BackgroundSyncManager| {
        field(
            &sync.get_sync_status().expect("status"),
            "persistentStorage",
        )
    };
    assert_eq!(persistent(&sync), JsValue::NULL, "not answered yet");
    call("grant");
    call("restore");
    until("the answer shows", || persistent(&sync) == true).await;
    sync.dispose();
}

/// A command called just before `dispose()` (its promise's work runs after it) ends as disposed
/// instead of never: a disposed manager writes nothing, so the engine would never finish it.
#[wasm_bindgen_test]
async fn a_command_called_just_before_dispose_ends_as_disposed() {
    let sync = manager(server(), "erin", &[]).await;
    let maintenance = sync.run_maintenance();
    sync.dispose();
    let ended = std::rc::Rc::new(std::cell::RefCell::new(None));
    let slot = ended.clone();
    wasm_bindgen_futures::spawn_local(async move {
        *slot.borrow_mut() = Some(settle(maintenance).await);
    });
    assert!(
        holds_within(5, || ended.borrow().is_some()).await,
        "it ended"
    );
    let refused = ended
        .borrow_mut()
        .take()
        .expect("ended")
        .expect_err("refused");
    assert_eq!(error_code(&refused), "disposed");
}

/// `addEventListener` takes the DOM's options: a listener added `{ once: true }` hears one event.
#[wasm_bindgen_test]
async fn a_listener_added_once_hears_one_event() {
    let sync = manager(server(), "erin", &[]).await;
    let heard = std::rc::Rc::new(std::cell::Cell::new(0));
    let count = heard.clone();
    let listener =
        Closure::<dyn Fn(web_sys::CustomEvent)>::new(move |_| count.set(count.get() + 1));
    let once = js_sys::Object::new();
    Reflect::set(&once, &"once".into(), &true.into()).expect("set");
    sync.add_event_listener("status", listener.as_ref().unchecked_ref(), once.into())
        .expect("listens");
    for _ in 0..2 {
        settle(sync.force_sync()).await.expect("synced");
    }
    assert_eq!(heard.get(), 1);
    sync.dispose();
}

/// An ask repeated as its answer went (a follower's re-ask crossing it) gets the answer again:
/// the leading tab runs the command once.
#[wasm_bindgen_test]
async fn an_ask_repeated_after_its_answer_gets_it_again_without_a_second_run() {
    let leader = manager(server(), "dave", &[]).await;
    settle(leader.force_sync()).await.expect("synced");
    let name = IndexedDbStore::database_name(server(), &UserId::new("u-dave"));
    let follower = Function::new_with_args(
        "name",
        "const channel = new BroadcastChannel('chat-sync|' + name);
         const tab = { answers: 0 };
         channel.onmessage = (event) => { if (event.data.kind === 'answer') tab.answers += 1; };
         tab.ask = () => channel.postMessage({ kind: 'ask', requestId: 'asked-twice', command: 'sync' });
         tab.close = () => channel.close();
         return tab;",
    )
    .call1(&JsValue::NULL, &name.as_str().into())
    .expect("a follower");
    let ask: Function = field(&follower, "ask").unchecked_into();
    let answers = || field(&follower, "answers").as_f64().unwrap_or(0.0);
    let before = syncs_completed(&leader);
    ask.call0(&JsValue::NULL).expect("asked");
    until("answered", || answers() == 1.0).await;
    ask.call0(&JsValue::NULL).expect("asked again");
    until("answered again", || answers() == 2.0).await;
    let close: Function = field(&follower, "close").unchecked_into();
    close.call0(&JsValue::NULL).expect("closed");
    assert_eq!(syncs_completed(&leader), before + 1.0, "one sync");
    leader.dispose();
}

/// Whether `sync`'s tab leads.
fn is_leader(sync: &BackgroundSyncManager) -> bool {
    field(&sync.get_sync_status().expect("status"), "isLeader") == true
}

/// A number where an option wants text: the message names the number as serde writes a float
/// (`7.0`, `2.5`), through the patched `serde-wasm-bindgen` (vendor/), which does without Rust's
/// float formatting.
#[wasm_bindgen_test]
async fn a_number_where_an_option_wants_text_is_named_in_the_error() {
    for (token, written) in [(7.0, "7.0"), (2.5, "2.5")] {
        let Err(error) = try_open_manager(server(), "erin", &[("token", token.into())]).await
        else {
            panic!("created");
        };
        assert_eq!(error_code(&error), "invalidInput");
        assert_eq!(
            field(&error, "message").as_string().unwrap_or_default(),
            format!("invalid options: invalid type: floating point `{written}`, expected a string")
        );
    }
}

/// Text where an option wants a number: the message quotes it as serde does (`"50 \"rows\""`),
/// through the patched `serde-wasm-bindgen` (vendor/), which quotes with `JSON.stringify`
/// instead of linking `str`'s `Debug`.
#[wasm_bindgen_test]
async fn text_where_an_option_wants_a_number_is_quoted_in_the_error() {
    let text = r#"50 "rows""#.into();
    let Err(error) = try_open_manager(server(), "erin", &[("pageSize", text)]).await else {
        panic!("created");
    };
    assert_eq!(error_code(&error), "invalidInput");
    assert_eq!(
        field(&error, "message").as_string().unwrap_or_default(),
        r#"invalid options: invalid type: string "50 \"rows\"", expected u32"#
    );
}

/// An interval out of range is refused, naming the option: `300` meant as seconds would poll the
/// server every 300 ms, and a huge one (to turn periodic sync off) overflowed the engine's clock.
#[wasm_bindgen_test]
async fn an_interval_out_of_range_is_refused() {
    let cases = [
        ("periodicSyncMs", 300.0),
        ("periodicSyncMs", 0.0),
        ("periodicSyncMs", f64::MAX),
        ("periodicSyncMs", f64::NAN),
        ("maintenanceIntervalMs", 1e20),
        ("optimisticTtlMs", 999.0),
    ];
    for (name, value) in cases {
        let Err(error) = try_open_manager(server(), "erin", &[(name, value.into())]).await else {
            panic!("{name} {value} accepted");
        };
        assert_eq!(error_code(&error), "invalidInput");
        let message = field(&error, "message").as_string().unwrap_or_default();
        assert!(message.starts_with(&format!("{name} must be")), "{message}");
    }
}

#[wasm_bindgen_test]
async fn invalid_input_is_refused_and_changes_nothing() {
    let general = conversation(server(), "erin", "General").await;
    let sync = manager(server(), "erin", &[]).await;
    settle(sync.force_sync()).await.expect("synced");
    let attempts: [(JsValue, JsValue); 5] = [
        ("".into(), "hi".into()),
        (general.clone().into(), "".into()),
        (general.clone().into(), "   ".into()),
        ("no-such-conversation".into(), "hi".into()),
        (general.clone().into(), JsValue::from(42)),
    ];
    for (conversation, text) in attempts {
        let error = settle(sync.send_message(conversation, text))
            .await
            .expect_err("refused");
        assert_eq!(error_code(&error), "invalidInput");
    }
    let too_long = "x".repeat(4_001);
    let error = settle(sync.send_message(general.clone().into(), too_long.into()))
        .await
        .expect_err("refused");
    assert_eq!(error_code(&error), "invalidInput");
    let error = settle(sync.retry_message("unknown".into()))
        .await
        .expect_err("refused");
    assert_eq!(error_code(&error), "invalidInput");
    assert_eq!(
        field(&sync.get_sync_status().expect("status"), "pendingOutbox"),
        0
    );
    let error = JsFuture::from(BackgroundSyncManager::create(JsValue::from("nope")))
        .await
        .expect_err("refused");
    assert_eq!(error_code(&error), "invalidInput");
    sync.dispose();
    let error = settle(sync.force_sync()).await.expect_err("disposed");
    assert_eq!(error_code(&error), "disposed");
}

#[wasm_bindgen_test]
async fn one_tab_leads_a_follower_tab_sends_through_it_and_takes_over_when_it_closes() {
    let general = conversation(server(), "alice", "General").await;
    let leader = manager(server(), "alice", &[]).await;
    settle(leader.force_sync())
        .await
        .expect("the leader's first sync");
    // A second manager on the same database: another tab, in the same page.
    let follower = open_manager(server(), "alice", &[]).await;
    assert_eq!(
        field(&leader.get_sync_status().expect("status"), "isLeader"),
        true
    );
    assert_eq!(
        field(&follower.get_sync_status().expect("status"), "isLeader"),
        false
    );
    assert_eq!(
        field(&follower.get_sync_status().expect("status"), "phase"),
        "follower"
    );
    let follower_changes = record(&follower, "change");

    let body = format!("from the follower tab {}", js_sys::Date::now());
    settle(follower.send_message(general.clone().into(), body.clone().into()))
        .await
        .expect("queued in the shared outbox");
    until("the follower sees its message delivered", || {
        field(
            &follower.get_sync_status().expect("status"),
            "pendingOutbox",
        ) == 0
    })
    .await;
    let copies = on_server(server(), "bob", &general)
        .await
        .into_iter()
        .filter(|m| m.body == body)
        .count();
    assert_eq!(copies, 1, "delivered once, by the leader");
    assert!(
        !follower_changes.borrow().is_empty(),
        "the follower heard about the changes"
    );
    // The follower's read marker goes through the leader too.
    let listed = settle(follower.list_messages(general.clone().into(), None))
        .await
        .expect("listed");
    let delivered = js_sys::Array::from(&listed)
        .iter()
        .find(|m| field(m, "body") == body.as_str())
        .expect("the delivered message");
    settle(follower.mark_read(delivered.clone()))
        .await
        .expect("marked");
    // Only the leader sends: the server's answer reached the leader's store.
    sent_read_marker(&leader, &general, &delivered).await;
    let synced_at = field(&follower.get_sync_status().expect("status"), "lastSyncTime");
    settle(follower.force_sync())
        .await
        .expect("the leader synced for the follower");
    // The follower's status says when the leader last synced.
    let leaders = field(&leader.get_sync_status().expect("status"), "lastSyncTime");
    assert_ne!(leaders, synced_at, "the leader synced again");
    until("the follower's status takes the leader's sync time", || {
        field(&follower.get_sync_status().expect("status"), "lastSyncTime") == leaders
    })
    .await;

    leader.dispose();
    until("the follower took over", || {
        field(&follower.get_sync_status().expect("status"), "isLeader") == true
    })
    .await;
    settle(follower.force_sync())
        .await
        .expect("syncs itself now");
    follower.dispose();
}

/// A visible follower goes on checking that the leading tab runs while its user just reads: a
/// leading tab suspended without a word later on is taken over.
#[wasm_bindgen_test]
async fn a_visible_follower_notices_a_leader_gone_silent_later() {
    let suspended = manager(server(), "erin", &[]).await;
    settle(suspended.force_sync()).await.expect("synced");
    let reading = open_manager(server(), "erin", &[]).await;
    gloo_timers::future::TimeoutFuture::new(6_000).await; // its first check answered
    assert!(!is_leader(&reading));
    suspended.inner.driver.stop_hearing();
    until_within(30, "the follower takes the lead over", || {
        is_leader(&reading)
    })
    .await;
    reading.dispose();
    suspended.dispose();
}

/// A follower's page that becomes visible again has the leading tab sync, as the leading tab's
/// own page would: the user looks at the follower.
#[wasm_bindgen_test]
async fn a_follower_coming_back_into_view_has_the_leading_tab_sync() {
    let leader = manager(server(), "erin", &[]).await;
    settle(leader.force_sync()).await.expect("synced");
    let follower = open_manager(server(), "erin", &[]).await;
    assert!(!is_leader(&follower));
    let before = syncs_completed(&leader);
    // (Both are in this page: the leading tab was visible already, so only the follower's
    // note makes it sync.)
    page("visibilitychange");
    until("the leading tab synced", || {
        syncs_completed(&leader) > before
    })
    .await;
    follower.dispose();
    leader.dispose();
}

/// A leading tab the browser suspended without a word (Safari suspends background tabs and fires
/// no `freeze`) keeps the lock but answers no tab: the tab in use takes the lead over, runs the
/// sync it asked for and delivers its message; the suspended tab, running again, follows.
#[wasm_bindgen_test]
async fn a_leading_tab_that_does_not_answer_is_taken_over() {
    let general = conversation(server(), "dave", "General").await;
    let suspended = manager(server(), "dave", &[]).await;
    settle(suspended.force_sync()).await.expect("synced");
    suspended.inner.driver.stop_hearing();
    let in_use = open_manager(server(), "dave", &[]).await;
    let is_leader = |sync: &BackgroundSyncManager| {
        field(&sync.get_sync_status().expect("status"), "isLeader") == true
    };
    assert!(!is_leader(&in_use), "the lock is taken");

    settle(in_use.force_sync())
        .await
        .expect("synced by the tab in use once it took over");
    assert!(is_leader(&in_use));
    until("the suspended tab hears it lost the lead", || {
        !is_leader(&suspended)
    })
    .await;
    let body = format!("after the takeover {}", js_sys::Date::now());
    settle(in_use.send_message(general.clone().into(), body.clone().into()))
        .await
        .expect("queued");
    delivered_once(&in_use, "dave", &general, &body).await;
    assert_eq!(
        field(&suspended.get_sync_status().expect("status"), "phase"),
        "follower",
        "the suspended tab queued for the lock again"
    );
    in_use.dispose();
    until("the other tab leads once the tab in use closes", || {
        is_leader(&suspended)
    })
    .await;
    suspended.dispose();
}

/// A leading tab of an older version of the app (open from before a deploy: it answers pings
/// without a version, and not the asks it does not know) is taken over by a tab of this version,
/// whose commands would otherwise wait for it in vain.
#[wasm_bindgen_test]
async fn a_leading_tab_of_an_older_version_is_taken_over() {
    let name = IndexedDbStore::database_name(server(), &UserId::new("u-erin"));
    IndexedDbStore::delete(&name).await.expect("fresh database");
    let older = Function::new_with_args(
        "name",
        "const channel = new BroadcastChannel('chat-sync|' + name);
         channel.onmessage = (event) => {
           if (event.data.kind === 'ping') channel.postMessage({ kind: 'pong' });
         };
         let release;
         const held = new Promise((resolve) => { release = resolve; });
         const granted = new Promise((resolve) => {
           navigator.locks.request('chat-sync-leader|' + name, () => { resolve(); return held; })
             .catch(() => {});
         });
         return { granted, close: () => { release(); channel.close(); } };",
    )
    .call1(&JsValue::NULL, &name.as_str().into())
    .expect("an older tab");
    settle(field(&older, "granted").unchecked_into())
        .await
        .expect("it leads");
    let sync = open_manager(server(), "erin", &[]).await;
    let took_over = holds_within(10, || is_leader(&sync)).await;
    let close: Function = field(&older, "close").unchecked_into();
    close.call0(&JsValue::NULL).expect("closed");
    assert!(took_over, "this version's tab took the lead over");
    settle(sync.force_sync()).await.expect("synced");
    sync.dispose();
}

#[wasm_bindgen_test]
async fn background_sync_registration_is_declined_without_a_service_worker() {
    let registered = settle(BackgroundSyncManager::register_background_sync(None))
        .await
        .expect("never throws");
    assert_eq!(registered, false);
}

/// Fires a page lifecycle event: `pagehide` and `pageshow` at the global scope, `freeze` and
/// `resume` at the document, where browsers fire them.
fn page(kind: &str) {
    let event = web_sys::Event::new(kind).expect("event");
    let target: web_sys::EventTarget = match kind {
        "freeze" | "resume" | "visibilitychange" => {
            crate::runtime::document().expect("a page").into()
        }
        _ => crate::runtime::global_target(),
    };
    target.dispatch_event(&event).expect("dispatched");
}

/// Counts the page's Web Lock requests from now on for names with `part` in them (`count`),
/// refusing every request as an opaque origin does (a sandboxed frame, a `file:` page) when
/// `refuse`; `restore()` puts the browser's back.
fn watch_lock_requests(part: &str, refuse: bool) -> JsValue {
    let install = Function::new_with_args(
        "part, refuse",
        "const locks = navigator.locks;
         const seen = { count: 0, restore: () => { delete locks.request; } };
         locks.request = function (...args) {
           if (String(args[0]).includes(part)) seen.count += 1;
           return refuse
             ? Promise.reject(new DOMException('no locks in an opaque origin', 'SecurityError'))
             : Object.getPrototypeOf(locks).request.apply(this, args);
         };
         return seen;",
    );
    install
        .call2(&JsValue::NULL, &part.into(), &refuse.into())
        .expect("installed")
}

/// A page restored from the back/forward cache hears `resume` and `pageshow`: it asks for the
/// lock once. (With two requests, the second let go of the lock the first had won.)
#[wasm_bindgen_test]
async fn a_restored_page_asks_for_the_lock_once() {
    let sync = manager(server(), "erin", &[]).await;
    page("freeze");
    assert!(!is_leader(&sync));
    gloo_timers::future::TimeoutFuture::new(100).await; // the lock is let go
    let requests = watch_lock_requests("u-erin", false);
    page("resume");
    page("pageshow");
    until("it leads again", || is_leader(&sync)).await;
    gloo_timers::future::TimeoutFuture::new(300).await;
    let count = field(&requests, "count");
    let restore: Function = field(&requests, "restore").unchecked_into();
    restore.call0(&JsValue::NULL).expect("restored");
    assert_eq!(count, 1, "one request, and the lock was free");
    settle(sync.force_sync()).await.expect("syncs");
    sync.dispose();
}

/// Where the browser refuses Web Locks (an opaque origin), the manager starts and syncs on its
/// own instead of waiting for a lock that never comes.
#[wasm_bindgen_test]
async fn where_locks_are_refused_the_manager_syncs_on_its_own() {
    let requests = watch_lock_requests("u-erin", true);
    let opened = std::rc::Rc::new(std::cell::RefCell::new(None));
    let slot = opened.clone();
    wasm_bindgen_futures::spawn_local(async move {
        *slot.borrow_mut() = Some(manager(server(), "erin", &[]).await);
    });
    let started = holds_within(10, || opened.borrow().is_some()).await;
    let restore: Function = field(&requests, "restore").unchecked_into();
    restore.call0(&JsValue::NULL).expect("restored");
    assert!(started, "created");
    let sync = opened.borrow_mut().take().expect("created");
    assert!(is_leader(&sync));
    settle(sync.force_sync()).await.expect("synced");
    sync.dispose();
}

/// A send whose write is under way when its tab is disposed settles by that write, and the
/// leading tab hears of it and delivers it; a send whose write waits behind it ends `disposed`,
/// unstored.
#[wasm_bindgen_test]
async fn dispose_settles_the_write_under_way_and_ends_those_behind_it() {
    let general = conversation(server(), "dave", "General").await;
    let leader = manager(server(), "dave", &[]).await;
    settle(leader.force_sync()).await.expect("synced");
    let follower = open_manager(server(), "dave", &[]).await;
    assert_eq!(
        field(&follower.get_sync_status().expect("status"), "isLeader"),
        false
    );
    // The engine asks for the first outbox write at once (the second waits for it); the store
    // performs it after `dispose`.
    let driver = follower.inner.driver.clone();
    let stamp = js_sys::Date::now();
    let (under_way, behind) = (format!("last words {stamp}"), format!("too late {stamp}"));
    let send = |body: &str| {
        driver
            .command(|engine, now| engine.send(general.as_str().into(), body.into(), now))
            .expect("queued")
    };
    let (first, first_stored) = send(&under_way);
    let (second, second_stored) = send(&behind);
    follower.dispose();

    assert!(
        matches!(first_stored.await, Ok(Ok(_))),
        "the send under way is stored"
    );
    assert_eq!(
        second_stored.await.expect("ended"),
        Err(chat_sync_engine::SyncError::Stopped),
        "the send behind it ends disposed"
    );
    let mut delivered = false;
    for _ in 0..100 {
        let held = on_server(server(), "dave", &general).await;
        delivered = held.iter().any(|m| m.body == under_way);
        if delivered {
            break;
        }
        gloo_timers::future::TimeoutFuture::new(100).await;
    }
    assert!(delivered, "the leading tab delivered it within 10 s");
    let held = on_server(server(), "dave", &general).await;
    assert_eq!(held.iter().filter(|m| m.body == under_way).count(), 1);
    assert!(!held.iter().any(|m| m.body == behind));
    let name = IndexedDbStore::database_name(server(), &UserId::new("u-dave"));
    let store = IndexedDbStore::open(&name).await.expect("opened");
    let outbox = store.load().await.expect("loaded").outbox;
    store.close();
    let ids: Vec<_> = outbox.iter().map(|e| &e.client_message_id).collect();
    assert!(!ids.contains(&&second.client_message_id), "not stored");
    assert!(!ids.contains(&&first.client_message_id), "delivered");
    leader.dispose();
}

/// A message a tab stored without telling the leading tab (it closed as its write ended) goes
/// with the leading tab's next sync run, which reloads the shared outbox as it starts.
#[wasm_bindgen_test]
async fn a_message_stored_by_a_tab_that_closed_untold_goes_with_the_next_sync() {
    let general = conversation(server(), "dave", "General").await;
    let leader = manager(server(), "dave", &[]).await;
    settle(leader.force_sync()).await.expect("synced");
    let body = format!("stored as the tab closed {}", js_sys::Date::now());
    let entry = chat_sync_engine::OutboxEntry {
        client_message_id: format!("closed-tab-{}", js_sys::Date::now() as u64).into(),
        conversation_id: general.as_str().into(),
        body: body.clone(),
        seq: 1_000,
        composed_at: js_sys::Date::now() as i64,
        failure: None,
    };
    let name = IndexedDbStore::database_name(server(), &UserId::new("u-dave"));
    let closed_tab = IndexedDbStore::open(&name).await.expect("opened");
    let optimistic = LocalMessage::optimistic(&entry, &UserId::new("u-dave"));
    (closed_tab.apply(&[StoreOp::PutOutbox(entry), StoreOp::PutMessage(optimistic)]))
        .await
        .expect("stored");
    closed_tab.close();

    settle(leader.force_sync()).await.expect("synced");
    delivered_once(&leader, "dave", &general, &body).await;
    leader.dispose();
}

#[wasm_bindgen_test]
async fn pagehide_hands_leadership_over_and_pageshow_queues_for_it_again() {
    leaving_hands_leadership_over_and_coming_back_queues_for_it("pagehide", "pageshow").await;
}

/// A frozen tab runs no script until resumed (Chrome freezes background tabs on Android, and with
/// Energy Saver): holding the lock, it would keep every other tab from syncing.
#[wasm_bindgen_test]
async fn freeze_hands_leadership_over_and_resume_queues_for_it_again() {
    leaving_hands_leadership_over_and_coming_back_queues_for_it("freeze", "resume").await;
}

/// The page lifecycle event `leave` stops the leading tab and frees the lock; `back` queues it
/// behind the tab that leads meanwhile.
async fn leaving_hands_leadership_over_and_coming_back_queues_for_it(leave: &str, back: &str) {
    let first = manager(server(), "erin", &[]).await;
    assert_eq!(
        field(&first.get_sync_status().expect("status"), "isLeader"),
        true
    );
    page(leave);
    assert_eq!(
        field(&first.get_sync_status().expect("status"), "isLeader"),
        false
    );
    assert_eq!(
        field(&first.get_sync_status().expect("status"), "isRunning"),
        false
    );

    let second = open_manager(server(), "erin", &[]).await;
    assert_eq!(
        field(&second.get_sync_status().expect("status"), "isLeader"),
        true,
        "the lock was free"
    );

    page(back);
    gloo_timers::future::TimeoutFuture::new(100).await;
    assert_eq!(
        field(&first.get_sync_status().expect("status"), "isLeader"),
        false,
        "queued behind the leader"
    );
    second.dispose();
    until("the shown page leads again", || {
        field(&first.get_sync_status().expect("status"), "isLeader") == true
    })
    .await;
    settle(first.force_sync()).await.expect("syncs again");
    first.dispose();
}

/// A member's read marker in a conversation, as `listReadMarkers` gives it.
async fn read_marker_of(
    manager: &BackgroundSyncManager,
    conversation: &str,
    user: &str,
) -> Option<JsValue> {
    let markers = settle(manager.list_read_markers(conversation.into()))
        .await
        .expect("listed");
    js_sys::Array::from(&markers)
        .iter()
        .find(|marker| field(marker, "userId") == format!("u-{user}").as_str())
}

/// Waits (up to 20 s) until Alice's marker in `conversation`, as `manager` lists it, is at
/// `message` and not pending: the server has it. Returns it.
async fn sent_read_marker(
    manager: &BackgroundSyncManager,
    conversation: &str,
    message: &JsValue,
) -> JsValue {
    let deadline = js_sys::Date::now() + 20_000.0;
    loop {
        let marker = read_marker_of(manager, conversation, "alice").await;
        let sent = marker.filter(|marker| {
            field(marker, "lastReadMessageId") == field(message, "id")
                && field(marker, "pending") == false
        });
        if let Some(marker) = sent {
            return marker;
        }
        assert!(
            js_sys::Date::now() < deadline,
            "timed out waiting until the server has Alice's marker"
        );
        gloo_timers::future::TimeoutFuture::new(100).await;
    }
}

#[wasm_bindgen_test]
async fn a_read_marker_shows_at_once_offline_then_reaches_the_server_and_other_members() {
    let general = conversation(server(), "alice", "General").await;
    let body = format!("read me {}", js_sys::Date::now());
    post_as(server(), "bob", &general, &body).await;
    let alice = manager(server(), "alice", &[]).await;
    settle(alice.force_sync()).await.expect("synced");
    let messages = settle(alice.list_messages(general.clone().into(), None))
        .await
        .expect("listed");
    let message = js_sys::Array::from(&messages)
        .iter()
        .find(|m| field(m, "body") == body.as_str())
        .expect("bob's message arrived");

    network(false);
    settle(alice.mark_read(message.clone()))
        .await
        .expect("marked");
    let pending = read_marker_of(&alice, &general, "alice")
        .await
        .expect("shown");
    assert_eq!(field(&pending, "lastReadMessageId"), field(&message, "id"));
    assert_eq!(
        field(&pending, "lastReadServerTs"),
        field(&message, "serverTs")
    );
    assert_eq!(field(&pending, "pending"), true);

    network(true);
    let marker = sent_read_marker(&alice, &general, &message).await;
    assert!(field(&marker, "updatedTs").as_f64().is_some());
    alice.dispose();

    // Another member's device gets it with its sync.
    let bob = manager(server(), "bob", &[]).await;
    settle(bob.force_sync()).await.expect("synced");
    let seen = read_marker_of(&bob, &general, "alice")
        .await
        .expect("alice's marker reached bob");
    assert_eq!(field(&seen, "lastReadMessageId"), field(&message, "id"));
    assert_eq!(field(&seen, "pending"), false);

    let refused = settle(bob.mark_read(js_sys::Object::new().into()))
        .await
        .expect_err("no message");
    assert_eq!(error_code(&refused), "invalidInput");
    bob.dispose();
}

/// `listConversations` tells each conversation's last message and how many messages from
/// others the user has not read: a marker set offline counts at once, and a reply (even one not
/// sent yet) reads what came before.
#[wasm_bindgen_test]
async fn conversations_list_their_last_message_and_unread_count() {
    let id = dave_starts_a_conversation_with_erin("Unread").await;
    post_as(server(), "erin", &id, "one").await;
    post_as(server(), "erin", &id, "two").await;
    let dave = manager(server(), "dave", &[]).await;
    settle(dave.force_sync()).await.expect("synced");
    let listed = |dave: &BackgroundSyncManager| {
        let promise = dave.list_conversations();
        let id = id.clone();
        async move {
            let conversations = settle(promise).await.expect("listed");
            let conversation = js_sys::Array::from(&conversations)
                .iter()
                .find(|c| field(c, "id") == id.as_str())
                .expect("the new conversation is listed");
            let last = field(&conversation, "lastMessage");
            (field(&last, "body"), field(&conversation, "unreadCount"))
        }
    };
    assert_eq!(listed(&dave).await, ("two".into(), 2.into()));

    network(false);
    let messages = settle(dave.list_messages(id.clone().into(), None))
        .await
        .expect("listed");
    let one = js_sys::Array::from(&messages)
        .iter()
        .find(|m| field(m, "body") == "one")
        .expect("erin's first message");
    settle(dave.mark_read(one)).await.expect("marked");
    assert_eq!(listed(&dave).await, ("two".into(), 1.into()));

    settle(dave.send_message(id.clone().into(), "three".into()))
        .await
        .expect("queued");
    assert_eq!(listed(&dave).await, ("three".into(), 0.into()));
    network(true);
    dave.dispose();
}
