//! The browser runtime around the engine: time, randomness, the global scope's events and the
//! console logger. Works in a window and in a (service) worker: everything goes through
//! `js_sys::global()`, never `window` directly.

mod channel;
mod leader;
mod lifecycle;
mod logger;

pub(crate) use channel::{Channel, NetworkCommand, Note, NOTES_VERSION};
pub(crate) use leader::{Ask, Leadership};
pub(crate) use lifecycle::{connection_quality, BrowserEvent, Lifecycle};
pub use logger::set_log_level;

use chat_sync_engine::protocol::Millis;
use js_sys::{Function, Reflect, Uint32Array};
use std::cell::Cell;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

#[wasm_bindgen]
extern "C" {
    /// `performance.now()`: milliseconds on a clock that only moves forward (pages and workers).
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn monotonic_now() -> f64;
}

thread_local! {
    /// The last [`now`] and the `performance.now()` it was read with.
    static LAST_NOW: Cell<Option<(f64, f64)>> = const { Cell::new(None) };
}

/// Milliseconds since the Unix epoch by this device's clock, moved on by `performance.now()` when
/// the clock is set back: the engine's deadlines are on this clock, and if it ran backwards with
/// the device's (a clock that was ahead, corrected), they would all wait for as long as the
/// correction (the periodic sync, a retry), or for ever. It keeps up with the device's clock
/// otherwise, also where `performance.now()` stands still while the device sleeps.
pub(crate) fn now() -> Millis {
    clock().0
}

/// [`now`], and how far it runs ahead of the device's clock (0 unless the clock was set back):
/// the engine takes the time stamps it stores and shows on the device's clock.
pub(crate) fn clock() -> (Millis, Millis) {
    let wall = js_sys::Date::now();
    let monotonic = monotonic_now();
    let now = match LAST_NOW.get() {
        Some((last, last_monotonic)) => wall.max(last + (monotonic - last_monotonic).max(0.0)),
        None => wall,
    };
    LAST_NOW.set(Some((now, monotonic)));
    (now as Millis, (now - wall) as Millis)
}

/// 64 random bits from `crypto.getRandomValues` (`Math.random` where there is no crypto).
pub(crate) fn random_seed() -> u64 {
    let words = Uint32Array::new_with_length(2);
    let from_crypto = (|| {
        let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).ok()?;
        let method: Function = Reflect::get(&crypto, &"getRandomValues".into())
            .ok()?
            .dyn_into()
            .ok()?;
        method.call1(&crypto, &words).ok()
    })();
    if from_crypto.is_none() {
        words.set_index(0, (js_sys::Math::random() * f64::from(u32::MAX)) as u32);
        words.set_index(1, (js_sys::Math::random() * f64::from(u32::MAX)) as u32);
    }
    (u64::from(words.get_index(0)) << 32) | u64::from(words.get_index(1))
}

/// `navigator.onLine`, true where the browser does not say.
pub(crate) fn is_online() -> bool {
    Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|navigator| Reflect::get(&navigator, &"onLine".into()))
        .ok()
        .and_then(|online| online.as_bool())
        .unwrap_or(true)
}

/// Whether this runs in a browser: a page (`Window`) or a worker (`WorkerGlobalScope`), not in
/// Node (server-side rendering), where fetch, timers and events are not what a browser has.
pub(crate) fn in_browser() -> bool {
    let global = js_sys::global();
    global.is_instance_of::<web_sys::Window>()
        || global.is_instance_of::<web_sys::WorkerGlobalScope>()
}

/// Whether this runs in a page (a `document` exists) rather than a worker.
pub(crate) fn has_document() -> bool {
    document().is_some()
}

/// The page's `document`, if any.
pub(crate) fn document() -> Option<web_sys::Document> {
    Reflect::get(&js_sys::global(), &"document".into())
        .ok()
        .filter(|document| !document.is_undefined())
        .and_then(|document| document.dyn_into().ok())
}

/// Whether the page is visible (workers count as visible).
pub(crate) fn is_visible() -> bool {
    document()
        .is_none_or(|document| document.visibility_state() == web_sys::VisibilityState::Visible)
}

/// The global scope as an event target (window or worker scope).
pub(crate) fn global_target() -> web_sys::EventTarget {
    JsValue::from(js_sys::global()).unchecked_into()
}
