//! The same package in a service worker's global scope (no `window`, no `document`):
//! `BackgroundSyncManager.syncOnce`, as a `sync` event handler runs it.
#![cfg(target_arch = "wasm32")]

use chat_sync::engine::protocol::{ConversationId, UserId};
use chat_sync::engine::Store;
use chat_sync::{BackgroundSyncManager, IndexedDbStore};
use js_sys::Reflect;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_service_worker);

fn server() -> &'static str {
    match option_env!("CHAT_SYNC_TEST_SERVER") {
        Some(url) => url,
        None => panic!("run the browser tests through tests/wasm.sh"),
    }
}

fn options(user: &str) -> JsValue {
    let options = js_sys::Object::new();
    let set = |key: &str, value: JsValue| Reflect::set(&options, &key.into(), &value).expect("set");
    set("serverUrl", server().into());
    set("token", format!("demo-{user}").into());
    set("userId", format!("u-{user}").into());
    options.into()
}

fn field(value: &JsValue, key: &str) -> JsValue {
    Reflect::get(value, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

#[wasm_bindgen_test]
async fn sync_once_syncs_and_delivers_what_a_page_queued_offline() {
    let name = IndexedDbStore::database_name(server(), &UserId::new("u-carol"));
    IndexedDbStore::delete(&name).await.expect("fresh database");

    // First sync from the worker: the local cache fills.
    let result = JsFuture::from(BackgroundSyncManager::sync_once(options("carol")))
        .await
        .expect("synced");
    assert_eq!(field(&result, "synced"), true);
    let general = general_of(&name).await;

    // A message queued while "offline" (as a page would, before registering Background Sync)…
    let body = format!("queued for the worker {}", js_sys::Date::now());
    let manager = queue_offline(&general, &body).await;
    call(&manager, "dispose");
    global_event("online");

    // …is delivered by the worker's sync.
    let result = JsFuture::from(BackgroundSyncManager::sync_once(options("carol")))
        .await
        .expect("synced");
    assert_eq!(field(&result, "pendingOutbox"), 0);
    assert_delivered_once(&name, &general, &body).await;
}

/// Beside a page that leads (here a manager in the same scope), the worker's sync goes through
/// it and lasts until the page delivered what was queued: it reports nothing pending only then.
#[wasm_bindgen_test]
async fn sync_once_beside_a_leading_page_waits_for_its_delivery() {
    let name = IndexedDbStore::database_name(server(), &UserId::new("u-carol"));
    IndexedDbStore::delete(&name).await.expect("fresh database");
    JsFuture::from(BackgroundSyncManager::sync_once(options("carol")))
        .await
        .expect("synced");
    let general = general_of(&name).await;

    let body = format!("queued beside a page {}", js_sys::Date::now());
    let page = queue_offline(&general, &body).await;
    // The page's delivery takes a while: the worker reads the outbox with the message in it.
    let restore = js_sys::Function::new_no_args(
        "const original = globalThis.fetch;
         globalThis.fetch = (input, init) => {
           const url = typeof input === 'string' ? input : input.url;
           const call = () => original(input, init);
           return url.endsWith('/messages') ? new Promise((r) => setTimeout(r, 1500)).then(call) : call();
         };
         return () => { globalThis.fetch = original; };",
    )
    .call0(&JsValue::NULL)
    .expect("installed");
    global_event("online");
    let result = JsFuture::from(BackgroundSyncManager::sync_once(options("carol"))).await;
    js_sys::Function::from(restore)
        .call0(&JsValue::NULL)
        .expect("restored");
    let result = result.expect("synced through the page");
    assert_eq!(field(&result, "pendingOutbox"), 0);
    assert_delivered_once(&name, &general, &body).await;
    call(&page, "dispose");
}

/// The id of the demo conversation General, from the local cache.
async fn general_of(name: &str) -> String {
    let store = IndexedDbStore::open(name).await.expect("open");
    let conversations = store.conversations().await.expect("read");
    store.close();
    let general = conversations.into_iter().find(|c| c.title == "General");
    general.expect("demo conversation").id.to_string()
}

/// A manager (as a page has) that queued `body` in `general` while offline; the scope stays
/// offline until `global_event("online")`.
async fn queue_offline(general: &str, body: &str) -> JsValue {
    let manager = JsFuture::from(BackgroundSyncManager::create(options("carol")))
        .await
        .expect("created");
    global_event("offline");
    let send: js_sys::Function = Reflect::get(&manager, &"sendMessage".into())
        .expect("method")
        .into();
    let queued = send
        .call2(&manager, &general.into(), &body.into())
        .expect("called");
    JsFuture::from(js_sys::Promise::from(queued))
        .await
        .expect("queued");
    manager
}

/// Calls `manager.method()`.
fn call(manager: &JsValue, method: &str) {
    let method: js_sys::Function = Reflect::get(manager, &method.into())
        .expect("method")
        .into();
    method.call0(manager).expect("called");
}

/// Fires `online` or `offline` on the worker's global scope.
fn global_event(kind: &str) {
    let scope: web_sys::EventTarget = wasm_bindgen::JsCast::unchecked_into(js_sys::global());
    let event = web_sys::Event::new(kind).expect("event");
    scope.dispatch_event(&event).expect("dispatched");
}

/// The local cache holds `body` in `general` once, as the server's message.
async fn assert_delivered_once(name: &str, general: &str, body: &str) {
    let store = IndexedDbStore::open(name).await.expect("open");
    let messages = store
        .messages(&ConversationId::new(general), None, 500)
        .await
        .expect("read");
    store.close();
    let delivered: Vec<_> = messages.iter().filter(|m| m.body == body).collect();
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].is_from_server());
}
