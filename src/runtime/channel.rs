//! Tabs of one user tell each other what they stored, over a `BroadcastChannel`.

use serde::{Deserialize, Serialize};
use wasm_bindgen::{closure::Closure, JsCast, JsValue};

/// What a tab tells the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub(crate) enum Note {
    /// This tab wrote to the shared database (conversations whose data changed).
    #[serde(rename_all = "camelCase")]
    Stored { conversation_ids: Vec<String> },
    /// A follower asks the leader to sync now.
    SyncRequested,
    /// The leader finished a sync (successfully or not).
    Synced { ok: bool },
}

/// The channel; dropping it closes it and its listener.
pub(crate) struct Channel {
    channel: Option<web_sys::BroadcastChannel>,
    _listener: Option<Closure<dyn FnMut(web_sys::MessageEvent)>>,
}

impl Channel {
    /// Opens the channel `name`; `on_note` hears the other tabs (never this one's own notes).
    pub(crate) fn open(name: &str, on_note: impl Fn(Note) + 'static) -> Self {
        let Ok(channel) = web_sys::BroadcastChannel::new(name) else {
            log::info!("no BroadcastChannel here: other tabs are not told about changes");
            return Self {
                channel: None,
                _listener: None,
            };
        };
        let listener = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
            move |event: web_sys::MessageEvent| match serde_wasm_bindgen::from_value::<Note>(
                event.data(),
            ) {
                Ok(note) => on_note(note),
                Err(error) => {
                    log::warn!(error:% = error; "ignoring an unknown message from another tab")
                }
            },
        );
        channel.set_onmessage(Some(listener.as_ref().unchecked_ref()));
        Self {
            channel: Some(channel),
            _listener: Some(listener),
        }
    }

    /// Tells the other tabs.
    pub(crate) fn post(&self, note: &Note) {
        if let Some(channel) = &self.channel {
            let value = note
                .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
                .unwrap_or(JsValue::NULL);
            let _ = channel.post_message(&value);
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        if let Some(channel) = &self.channel {
            channel.set_onmessage(None);
            channel.close();
        }
    }
}
