//! The browser events the engine hears: `online` / `offline`, `visibilitychange`, `pagehide` /
//! `pageshow` and `freeze` / `resume`.
//! The listeners are owned: dropping a [`Lifecycle`] removes them.

use chat_sync_engine::{ConnectionQuality, EffectiveType};
use gloo_events::EventListener;
use js_sys::Reflect;
use wasm_bindgen::JsValue;

/// What happened in the browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BrowserEvent {
    /// The network came back (`true`) or went away.
    Online(bool),
    /// The page became visible (`true`) or hidden.
    Visible(bool),
    /// The page stops running: it is being unloaded, put in the back/forward cache (`pagehide`)
    /// or frozen (`freeze`: a background tab in Chrome on Android, or with Energy Saver on).
    Suspended,
    /// The page runs again: shown from the back/forward cache or after loading (`pageshow`), or
    /// no longer frozen (`resume`).
    Resumed,
    /// `navigator.connection` changed (Chromium only).
    Connection(ConnectionQuality),
}

/// `navigator.connection`, where the browser has it.
fn connection() -> Option<JsValue> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let connection = Reflect::get(&navigator, &"connection".into()).ok()?;
    (!connection.is_undefined() && !connection.is_null()).then_some(connection)
}

/// The connection quality now; `None` where the browser does not tell.
pub(crate) fn connection_quality() -> Option<ConnectionQuality> {
    let connection = connection()?;
    let effective_type = match Reflect::get(&connection, &"effectiveType".into())
        .ok()?
        .as_string()
        .as_deref()
    {
        Some("slow-2g") => EffectiveType::Slow2g,
        Some("2g") => EffectiveType::TwoG,
        Some("3g") => EffectiveType::ThreeG,
        Some("4g") => EffectiveType::FourG,
        _ => EffectiveType::Unknown,
    };
    let save_data = Reflect::get(&connection, &"saveData".into())
        .ok()
        .and_then(|value| value.as_bool())
        .unwrap_or(false);
    Some(ConnectionQuality {
        effective_type,
        save_data,
    })
}

/// The listeners, alive as long as this value.
pub(crate) struct Lifecycle {
    _listeners: Vec<EventListener>,
}

impl Lifecycle {
    /// Listens on the global scope (and the document, in a page) and reports to `on_event`.
    pub(crate) fn listen(on_event: impl Fn(BrowserEvent) + Clone + 'static) -> Self {
        let global = super::global_target();
        let mut listeners = Vec::new();
        let report = |event: BrowserEvent| {
            let on_event = on_event.clone();
            move |_: &web_sys::Event| on_event(event)
        };
        listeners.push(EventListener::new(
            &global,
            "online",
            report(BrowserEvent::Online(true)),
        ));
        listeners.push(EventListener::new(
            &global,
            "offline",
            report(BrowserEvent::Online(false)),
        ));
        if let Some(document) = super::document() {
            let page_events = [
                (&global, "pagehide", BrowserEvent::Suspended),
                (&global, "pageshow", BrowserEvent::Resumed),
                (document.as_ref(), "freeze", BrowserEvent::Suspended),
                (document.as_ref(), "resume", BrowserEvent::Resumed),
            ];
            for (target, name, event) in page_events {
                listeners.push(EventListener::new(target, name, report(event)));
            }
            let on_event = on_event.clone();
            listeners.push(EventListener::new(
                &document,
                "visibilitychange",
                move |_| on_event(BrowserEvent::Visible(super::is_visible())),
            ));
        }
        if let Some(connection) = connection() {
            let target: web_sys::EventTarget = wasm_bindgen::JsCast::unchecked_into(connection);
            let on_event = on_event.clone();
            listeners.push(EventListener::new(&target, "change", move |_| {
                if let Some(quality) = connection_quality() {
                    on_event(BrowserEvent::Connection(quality));
                }
            }));
        }
        Self {
            _listeners: listeners,
        }
    }
}
