//! The browser events the engine hears: `online` / `offline`, `visibilitychange` and `pagehide`.
//! The listeners are owned: dropping a [`Lifecycle`] removes them.

use gloo_events::EventListener;

/// What happened in the browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BrowserEvent {
    /// The network came back (`true`) or went away.
    Online(bool),
    /// The page became visible (`true`) or hidden.
    Visible(bool),
    /// The page is being unloaded or frozen.
    PageHide,
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
            listeners.push(EventListener::new(
                &global,
                "pagehide",
                report(BrowserEvent::PageHide),
            ));
            let on_event = on_event.clone();
            listeners.push(EventListener::new(
                &document,
                "visibilitychange",
                move |_| on_event(BrowserEvent::Visible(super::is_visible())),
            ));
        }
        Self {
            _listeners: listeners,
        }
    }
}
