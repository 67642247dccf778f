//! Tabs of one user tell each other what they stored, over a `BroadcastChannel`.

use chat_sync_engine::protocol::ConversationId;
use chat_sync_engine::{HistoryFloor, SyncError};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{closure::Closure, JsCast, JsValue};

/// What a tab tells the others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", try_from = "WireNote")]
pub(crate) enum Note {
    /// This tab wrote to the shared database (conversations whose data changed).
    #[serde(rename_all = "camelCase")]
    Stored { conversation_ids: Vec<String> },
    /// A follower asks the leading tab to run a command that talks to the server (only the
    /// leading tab does); the leader answers with [`Note::Answer`].
    #[serde(rename_all = "camelCase")]
    Ask {
        request_id: String,
        command: NetworkCommand,
    },
    /// The leading tab ran the command a follower asked for ([`Note::Ask`]): what it wrote, or
    /// why it failed.
    #[serde(rename_all = "camelCase")]
    Answer {
        request_id: String,
        changes: usize,
        has_more: bool,
        error: Option<SyncError>,
    },
    /// A follower's user read a conversation up to a message: the leader sends the marker.
    #[serde(rename_all = "camelCase")]
    MarkRead {
        conversation_id: String,
        message_id: String,
        server_ts: i64,
    },
    /// This tab cleared the user's local data (`clear()`, a logout): the others stop, and delete
    /// what they would write back.
    Cleared,
    /// A follower asks whether the leading tab runs.
    Ping,
    /// A follower's page became visible again: the leading tab syncs, as it does when its own
    /// page does (the user looks at the follower, not at the tab that syncs).
    Resumed,
    /// The leading tab runs (the answer to [`Note::Ping`]), and speaks this version of the
    /// notes ([`NOTES_VERSION`]; 1 before versions were told).
    Pong { version: u32 },
    /// A tab found the shared database deleted while in use (the site's data cleared): the
    /// leading tab syncs from the start.
    Wiped,
    /// The leading tab's `message` event of a message it delivered, that failed or went (the
    /// `detail` as its app got it): the other tabs' apps hear it too.
    MessageEvent {
        #[serde(with = "serde_wasm_bindgen::preserve")]
        detail: JsValue,
    },
}

/// The version of the notes tabs exchange: a follower whose leading tab speaks an older one (a
/// tab of the app from before a deploy, which would not understand its asks) takes the lead over.
/// Raise it when a note a follower relies on is added or changed.
pub(crate) const NOTES_VERSION: u32 = 3;

/// A command that talks to the server, which only the leading tab does: a follower asks the
/// leader to run it ([`Note::Ask`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum NetworkCommand {
    /// A sync now (`forceSync`).
    Sync,
    /// One conversation brought up to date (`syncConversation`).
    SyncConversation(ConversationId),
    /// A page of a conversation's history below its floor (back-fill in `listMessages`).
    LoadOlder(ConversationId, HistoryFloor),
}

/// How a [`Note`] reads off the channel: one flat object, read in one pass (serde's own reading
/// of an internally tagged enum buffers it in a generic tree first, which costs wasm size; the
/// protocol's `Change` does the same).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireNote {
    kind: NoteKind,
    conversation_ids: Option<Vec<String>>,
    request_id: Option<String>,
    command: Option<NetworkCommand>,
    changes: Option<usize>,
    has_more: Option<bool>,
    error: Option<WireError>,
    conversation_id: Option<String>,
    message_id: Option<String>,
    server_ts: Option<i64>,
    version: Option<u32>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    detail: JsValue,
}

/// How a [`SyncError`] in a [`Note::Answer`] reads off the channel: its serialized form, flat
/// (the engine's error has no reading of its own: serde's reading of an internally tagged enum
/// costs wasm size).
#[derive(Deserialize)]
struct WireError {
    code: String,
    status: Option<u16>,
    error_code: Option<String>,
    message: Option<String>,
    quota: Option<bool>,
}

impl From<WireError> for SyncError {
    fn from(wire: WireError) -> Self {
        let message = wire.message.unwrap_or_default();
        match wire.code.as_str() {
            "offline" => SyncError::Offline,
            "auth" => SyncError::Auth,
            "server" => SyncError::Server {
                status: wire.status.unwrap_or_default(),
                error_code: wire.error_code.unwrap_or_default(),
                message,
            },
            "timeout" => SyncError::Timeout,
            "network" => SyncError::Network { message },
            "storage" => SyncError::Storage {
                message,
                quota: wire.quota.unwrap_or_default(),
            },
            "stopped" => SyncError::Stopped,
            _ => SyncError::Protocol { message },
        }
    }
}

/// The `kind` of a [`WireNote`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum NoteKind {
    Stored,
    Ask,
    Answer,
    MarkRead,
    Cleared,
    Ping,
    Resumed,
    Pong,
    Wiped,
    MessageEvent,
}

impl TryFrom<WireNote> for Note {
    type Error = &'static str;

    fn try_from(wire: WireNote) -> Result<Self, Self::Error> {
        match wire.kind {
            NoteKind::Stored => (wire.conversation_ids)
                .map(|conversation_ids| Note::Stored { conversation_ids })
                .ok_or("missing field `conversationIds`"),
            NoteKind::Ask => match (wire.request_id, wire.command) {
                (Some(request_id), Some(command)) => Ok(Note::Ask {
                    request_id,
                    command,
                }),
                _ => Err("missing field `requestId` or `command`"),
            },
            NoteKind::Answer => match (wire.request_id, wire.changes, wire.has_more) {
                (Some(request_id), Some(changes), Some(has_more)) => Ok(Note::Answer {
                    request_id,
                    changes,
                    has_more,
                    error: wire.error.map(SyncError::from),
                }),
                _ => Err("missing field `requestId`, `changes` or `hasMore`"),
            },
            NoteKind::MarkRead => match (wire.conversation_id, wire.message_id, wire.server_ts) {
                (Some(conversation_id), Some(message_id), Some(server_ts)) => Ok(Note::MarkRead {
                    conversation_id,
                    message_id,
                    server_ts,
                }),
                _ => Err("missing field `conversationId`, `messageId` or `serverTs`"),
            },
            NoteKind::Cleared => Ok(Note::Cleared),
            NoteKind::Ping => Ok(Note::Ping),
            NoteKind::Resumed => Ok(Note::Resumed),
            NoteKind::Pong => Ok(Note::Pong {
                version: wire.version.unwrap_or(1),
            }),
            NoteKind::Wiped => Ok(Note::Wiped),
            NoteKind::MessageEvent if wire.detail.is_object() => Ok(Note::MessageEvent {
                detail: wire.detail,
            }),
            NoteKind::MessageEvent => Err("missing field `detail`"),
        }
    }
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
                    let error = error.to_string();
                    log::warn!(
                        error = error.as_str();
                        "ignoring an unknown message from another tab"
                    )
                }
            },
        );
        channel.set_onmessage(Some(listener.as_ref().unchecked_ref()));
        Self {
            channel: Some(channel),
            _listener: Some(listener),
        }
    }

    /// Whether the other tabs hear this one (the browser has `BroadcastChannel`).
    pub(crate) fn is_open(&self) -> bool {
        self.channel.is_some()
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

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::{NetworkCommand, Note, NOTES_VERSION};
    use chat_sync_engine::{HistoryFloor, SyncError};
    use serde::Serialize;
    use wasm_bindgen_test::*;

    wasm_bindgen_test_configure!(run_in_browser);

    fn read(json: &str) -> Result<Note, serde_wasm_bindgen::Error> {
        serde_wasm_bindgen::from_value(js_sys::JSON::parse(json).expect("valid JSON"))
    }

    /// A failed [`Note::Answer`] for each error.
    fn answers_failed_with(
        errors: impl IntoIterator<Item = SyncError>,
    ) -> impl Iterator<Item = Note> {
        errors.into_iter().map(|error| Note::Answer {
            request_id: "7f3a".into(),
            changes: 0,
            has_more: false,
            error: Some(error),
        })
    }

    #[wasm_bindgen_test]
    fn notes_read_back_as_posted() {
        let notes = [
            Note::Stored {
                conversation_ids: vec!["c-1".into(), "c-2".into()],
            },
            Note::Ask {
                request_id: "7f3a".into(),
                command: NetworkCommand::Sync,
            },
            Note::Ask {
                request_id: "7f3b".into(),
                command: NetworkCommand::SyncConversation("c-1".into()),
            },
            Note::Ask {
                request_id: "7f3c".into(),
                command: NetworkCommand::LoadOlder(
                    "c-1".into(),
                    HistoryFloor::From {
                        sort_ts: 1_790_000_000_000,
                        id: "m-4".into(),
                    },
                ),
            },
            Note::Answer {
                request_id: "7f3a".into(),
                changes: 12,
                has_more: true,
                error: None,
            },
        ]
        .into_iter()
        .chain(answers_failed_with([
            SyncError::Offline,
            SyncError::Auth,
            SyncError::Server {
                status: 503,
                error_code: "unavailable".into(),
                message: "try later".into(),
            },
            SyncError::Timeout,
            SyncError::Network {
                message: "connection reset".into(),
            },
            SyncError::Protocol {
                message: "not JSON".into(),
            },
            SyncError::Storage {
                message: "full".into(),
                quota: true,
            },
            SyncError::Stopped,
        ]))
        .chain([
            Note::MarkRead {
                conversation_id: "c-1".into(),
                message_id: "m-9".into(),
                server_ts: 1_790_000_000_123,
            },
            Note::Cleared,
            Note::Ping,
            Note::Resumed,
            Note::Pong {
                version: NOTES_VERSION,
            },
            Note::Wiped,
            Note::MessageEvent {
                detail: js_sys::JSON::parse(r#"{"type":"sent","message":{"body":"hi"}}"#)
                    .expect("json"),
            },
        ]);
        for note in notes {
            let posted = note
                .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
                .expect("serializes");
            let read: Note = serde_wasm_bindgen::from_value(posted).expect("reads back");
            assert_eq!(read, note);
        }
        let stored = read(r#"{"kind":"stored","conversationIds":["c-1"]}"#).expect("the wire form");
        assert_eq!(
            stored,
            Note::Stored {
                conversation_ids: vec!["c-1".into()]
            }
        );
        // A tab from before the notes had versions.
        let pong = read(r#"{"kind":"pong"}"#).expect("the first version's");
        assert_eq!(pong, Note::Pong { version: 1 });
    }

    #[wasm_bindgen_test]
    fn a_note_without_its_field_or_of_an_unknown_kind_is_refused() {
        let missing = read(r#"{"kind":"ask","requestId":"1"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            missing.ends_with("missing field `requestId` or `command`"),
            "{missing}"
        );
        assert!(read(r#"{"kind":"markRead","conversationId":"c-1"}"#).is_err());
        assert!(read(r#"{"kind":"reloaded"}"#).is_err());
    }
}
