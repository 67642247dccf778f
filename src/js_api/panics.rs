//! What a bug (a Rust panic) does to the JS API.
//!
//! Wasm has no unwinding: a panicking task stops where it was, holding whatever it had borrowed,
//! and promises waiting on it would never settle. So the first panic stops the managers of this
//! instance, visibly:
//! - the panic's message and place go to the console (`console.error`), whatever the log level;
//! - every promise the API returned that is still pending rejects with code `internal`;
//! - every later call rejects (or throws) the same way at once;
//! - each manager dispatches `internalerror` with `{ message }`, so the app can offer a reload.
//!
//! Reloading the page starts a fresh instance; queued messages are safe in IndexedDB.

use super::errors::{js_error, Code};
use super::{custom_event, Inner};
use js_sys::{Function, Reflect};
use std::cell::{Cell, RefCell};
use std::panic::PanicHookInfo;
use std::rc::{Rc, Weak};
use std::sync::Once;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// The global `queueMicrotask` (pages and workers alike).
    #[wasm_bindgen(js_name = queueMicrotask)]
    fn queue_microtask(callback: &Function);
}

#[derive(Default)]
struct State {
    /// The first panic's message: the API is stopped.
    stopped: RefCell<Option<String>>,
    /// The reject functions of the promises still pending, by call number.
    pending: RefCell<Vec<(u32, Function)>>,
    next_call: Cell<u32>,
    /// The managers opened in this instance, to tell them.
    managers: RefCell<Vec<Weak<Inner>>>,
}

thread_local! {
    static STATE: State = State::default();
}

/// Installs the panic hook, once. (Not in this crate's unit tests: their harness reports a
/// failing test's panic through its own hook. `tests/panic.rs` tests this one.)
pub(super) fn install() {
    static INSTALL: Once = Once::new();
    if !cfg!(test) {
        INSTALL.call_once(|| std::panic::set_hook(Box::new(on_panic)));
    }
}

/// After a panic, the error every call gets.
pub(super) fn refusal() -> Option<JsValue> {
    STATE.with(|state| {
        let stopped = state.stopped.try_borrow().ok()?;
        stopped.as_deref().map(internal_error)
    })
}

/// Keeps a pending promise's `reject` until [`settled`] with the number returned.
pub(super) fn pending(reject: Function) -> u32 {
    STATE.with(|state| {
        let call = state.next_call.get();
        state.next_call.set(call.wrapping_add(1));
        state.pending.borrow_mut().push((call, reject));
        call
    })
}

/// The promise of call `call` settled.
pub(super) fn settled(call: u32) {
    STATE.with(|state| state.pending.borrow_mut().retain(|(c, _)| *c != call));
}

/// Tells `manager` of a panic, as long as it lives.
pub(super) fn watch(manager: &Rc<Inner>) {
    STATE.with(|state| {
        let mut managers = state.managers.borrow_mut();
        managers.retain(|manager| manager.strong_count() > 0);
        managers.push(Rc::downgrade(manager));
    });
}

fn internal_error(panic: &str) -> JsValue {
    js_error(
        Code::Internal,
        &format!(
            "chat-sync stopped after an internal error (a bug): {panic}. Reload the page; queued \
             messages are kept"
        ),
    )
}

fn on_panic(info: &PanicHookInfo) {
    let message = info.to_string();
    web_sys::console::error_1(&format!("chat-sync: internal error (a bug): {message}").into());
    STATE.with(|state| {
        // A borrow the panic interrupted is never released: take only what is free.
        if let Ok(mut stopped) = state.stopped.try_borrow_mut() {
            if stopped.is_some() {
                return;
            }
            *stopped = Some(message.clone());
        }
        let pending = state
            .pending
            .try_borrow_mut()
            .map(|mut pending| std::mem::take(&mut *pending))
            .unwrap_or_default();
        for (_, reject) in pending {
            let _ = reject.call1(&JsValue::UNDEFINED, &internal_error(&message));
        }
        let managers = state
            .managers
            .try_borrow()
            .map(|managers| managers.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_else(|_| Vec::new());
        for manager in managers {
            tell(&manager, &message);
        }
    });
}

/// Dispatches `internalerror` on `manager` in a microtask, outside the panicking code (a
/// listener may call the manager).
fn tell(manager: &Inner, message: &str) {
    let detail = js_sys::Object::new();
    let _ = Reflect::set(&detail, &"message".into(), &message.into());
    let Some(event) = custom_event("internalerror", &detail.into()) else {
        return;
    };
    let target: &JsValue = manager.events.as_ref();
    if let Ok(dispatch) = Reflect::get(target, &"dispatchEvent".into()) {
        let dispatch: Function<fn(JsValue) -> JsValue> = dispatch.unchecked_into();
        queue_microtask(dispatch.bind1(target, &event).unchecked_ref());
    }
}
