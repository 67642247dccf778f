//! The same package in a service worker's global scope (no `window`, no `document`):
//! `BackgroundSyncManager.syncOnce`, as a `sync` event handler runs it.
#![cfg(target_arch = "wasm32")]

use chat_sync::engine::protocol::UserId;
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
    let store = IndexedDbStore::open(&name).await.expect("open");
    let conversations = store.conversations().await.expect("read");
    assert!(!conversations.is_empty());
    let general = conversations
        .iter()
        .find(|c| c.title == "General")
        .expect("demo conversation")
        .id
        .clone();
    store.close();

    // A message queued while "offline" (as a page would, before registering Background Sync)…
    let offline = web_sys::Event::new("offline").expect("event");
    let manager_options = options("carol");
    let manager = JsFuture::from(BackgroundSyncManager::create(manager_options))
        .await
        .expect("created");
    let scope: web_sys::EventTarget = wasm_bindgen::JsCast::unchecked_into(js_sys::global());
    scope.dispatch_event(&offline).expect("dispatched");
    let send: js_sys::Function = Reflect::get(&manager, &"sendMessage".into())
        .expect("method")
        .into();
    let body = format!("queued for the worker {}", js_sys::Date::now());
    let queued = send
        .call2(&manager, &general.as_str().into(), &body.as_str().into())
        .expect("called");
    JsFuture::from(js_sys::Promise::from(queued))
        .await
        .expect("queued");
    let dispose: js_sys::Function = Reflect::get(&manager, &"dispose".into())
        .expect("method")
        .into();
    dispose.call0(&manager).expect("disposed");
    scope
        .dispatch_event(&web_sys::Event::new("online").expect("event"))
        .expect("dispatched");

    // …is delivered by the worker's sync.
    let result = JsFuture::from(BackgroundSyncManager::sync_once(options("carol")))
        .await
        .expect("synced");
    assert_eq!(field(&result, "pendingOutbox"), 0);
    let store = IndexedDbStore::open(&name).await.expect("open");
    let messages = store.messages(&general, None, 500).await.expect("read");
    let delivered: Vec<_> = messages.iter().filter(|m| m.body == body).collect();
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].is_from_server());
    store.close();
}
