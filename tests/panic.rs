//! A bug (a Rust panic) stops the JS API cleanly: pending promises reject, later calls fail at
//! once, the app hears `internalerror`. A test binary of its own, so its own wasm instance: the
//! panic leaves the instance stopped for anything that would run after it.
#![cfg(target_arch = "wasm32")]

use chat_sync::BackgroundSyncManager;
use js_sys::{Function, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Calls the manager's method `name` as JS does; its return value, or what it threw.
fn call(manager: &JsValue, name: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let method: Function = Reflect::get(manager, &name.into())?.unchecked_into();
    method.apply(manager, &args.iter().collect())
}

/// What a promise-returning method settles with.
async fn settle(manager: &JsValue, name: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    JsFuture::from(js_sys::Promise::from(call(manager, name, args)?)).await
}

fn field(value: &JsValue, key: &str) -> String {
    Reflect::get(value, &key.into())
        .ok()
        .and_then(|value| value.as_string())
        .unwrap_or_default()
}

#[wasm_bindgen_test]
async fn a_panic_rejects_pending_calls_refuses_later_ones_and_tells_the_app() {
    let Some(server) = option_env!("CHAT_SYNC_TEST_SLOW_SERVER") else {
        panic!("run the browser tests through tests/wasm.sh");
    };
    let options = js_sys::Object::new();
    for (key, value) in [
        ("serverUrl", server),
        ("token", "demo-dave"),
        ("userId", "u-dave"),
        ("logLevel", "off"),
    ] {
        Reflect::set(&options, &key.into(), &value.into()).expect("set");
    }
    let manager = JsFuture::from(BackgroundSyncManager::create(options.into()))
        .await
        .expect("created");
    let told = Rc::new(RefCell::new(Vec::<String>::new()));
    let listener = {
        let told = told.clone();
        Closure::<dyn Fn(web_sys::CustomEvent)>::new(move |event: web_sys::CustomEvent| {
            told.borrow_mut().push(field(&event.detail(), "message"));
        })
    };
    let listener_fn: &Function = listener.as_ref().unchecked_ref();
    call(
        &manager,
        "addEventListener",
        &["internalerror".into(), listener_fn.into()],
    )
    .expect("listening");

    // The slow server takes 2 s to answer: this sync is still running when the bug hits.
    let pending = js_sys::Promise::from(call(&manager, "forceSync", &[]).expect("called"));
    wasm_bindgen_futures::spawn_local(async { panic!("a deliberate bug") });

    let error = JsFuture::from(pending).await.expect_err("rejected");
    assert_eq!(field(&error, "code"), "internal");
    let message = field(&error, "message");
    assert!(message.contains("a deliberate bug"), "{message}");
    assert!(message.contains("Reload the page"), "{message}");

    let later = settle(&manager, "listConversations", &[])
        .await
        .expect_err("refused");
    assert_eq!(field(&later, "code"), "internal");
    let status = call(&manager, "getSyncStatus", &[]).expect_err("thrown");
    assert_eq!(field(&status, "code"), "internal");
    let created = JsFuture::from(BackgroundSyncManager::create(js_sys::Object::new().into()))
        .await
        .expect_err("refused");
    assert_eq!(field(&created, "code"), "internal");

    let told = told.borrow().clone();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("a deliberate bug"), "{}", told[0]);
}
