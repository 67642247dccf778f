//! The records as IndexedDB holds them, and their keys.

use super::errors::Failure;
use chat_sync_engine::protocol::{Conversation, ConversationId, Cursor, Millis, User};
use chat_sync_engine::{LocalMessage, PendingReadMarker, OPTIMISTIC_SORT_BASE};
use js_sys::{Array, Reflect};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

/// Object store names.
pub(crate) const CONVERSATIONS: &str = "conversations";
pub(crate) const MESSAGES: &str = "messages";
pub(crate) const OUTBOX: &str = "outbox";
pub(crate) const READ_MARKERS: &str = "readMarkers";
pub(crate) const META: &str = "meta";
/// Recorded history floors ([`chat_sync_engine::HistoryFloor`]), keyed by conversation id.
pub(crate) const HISTORY: &str = "historyFloors";
/// Every object store, for transactions that span them all.
pub(crate) const ALL_STORES: [&str; 6] =
    [CONVERSATIONS, MESSAGES, OUTBOX, READ_MARKERS, META, HISTORY];

/// Index names.
pub(crate) const BY_CONVERSATION: &str = "byConversation";
pub(crate) const BY_CLIENT_MESSAGE_ID: &str = "byClientMessageId";
pub(crate) const BY_ACTIVITY: &str = "byActivity";
pub(crate) const BY_SERVER_ID: &str = "byServerId";
/// Tombstones by [`TOMBSTONE_TS`] (only tombstones carry it: IndexedDB leaves records without
/// the key path out of an index), for compaction.
pub(crate) const BY_TOMBSTONE_TS: &str = "byTombstoneTs";

/// The field a tombstone's record carries beside the message's own: its `updatedTs`, when it was
/// deleted ([`message_record`]).
pub(crate) const TOMBSTONE_TS: &str = "tombstoneTs";

/// The key of the one meta record.
pub(crate) const META_KEY: &str = "state";
/// Written with the meta record: its absence means the database was wiped.
pub(crate) const MARKER: &str = "chat-sync";

/// A conversation with its last activity (for the conversation list's order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConversationRecord {
    pub(crate) id: ConversationId,
    pub(crate) title: String,
    pub(crate) members: Vec<User>,
    pub(crate) created_ts: Millis,
    pub(crate) updated_ts: Millis,
    /// The highest of `updated_ts`, its server messages' `server_ts` and its optimistic
    /// messages' `composed_at`.
    pub(crate) last_activity: Millis,
}

impl ConversationRecord {
    pub(crate) fn new(conversation: Conversation, last_activity: Millis) -> Self {
        Self {
            last_activity: last_activity.max(conversation.updated_ts),
            id: conversation.id,
            title: conversation.title,
            members: conversation.members,
            created_ts: conversation.created_ts,
            updated_ts: conversation.updated_ts,
        }
    }

    pub(crate) fn conversation(self) -> Conversation {
        Conversation {
            id: self.id,
            title: self.title,
            members: self.members,
            created_ts: self.created_ts,
            updated_ts: self.updated_ts,
        }
    }
}

/// The engine's persisted scalars.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetaRecord {
    pub(crate) marker: String,
    pub(crate) cursor: Option<Cursor>,
    pub(crate) last_sync: Option<Millis>,
    pub(crate) last_maintenance: Option<Millis>,
    /// Missing in records written before read markers were sent: none then.
    #[serde(default)]
    pub(crate) pending_read_markers: Vec<PendingReadMarker>,
    /// Every tombstone's record carries [`TOMBSTONE_TS`]. Missing (`false`) in records from
    /// before schema 4, whose tombstones lack it: the next compaction walks every message once,
    /// and marks them.
    #[serde(default)]
    pub(crate) tombstones_indexed: bool,
}

impl MetaRecord {
    /// The meta record of a new database (it holds no tombstone yet).
    pub(crate) fn fresh() -> Self {
        Self {
            marker: MARKER.to_owned(),
            tombstones_indexed: true,
            ..Self::default()
        }
    }
}

/// A value as a plain JS object (numbers, not BigInts; `null` for `None`).
pub(crate) fn to_js<T: Serialize>(value: &T) -> Result<JsValue, Failure> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|error| Failure::Other(format!("cannot encode a record: {error}")))
}

/// A message as its record: [`to_js`], and on a tombstone [`TOMBSTONE_TS`].
pub(crate) fn message_record(message: &LocalMessage) -> Result<JsValue, Failure> {
    let record = to_js(message)?;
    if let (true, Some(deleted_at)) = (message.deleted, message.updated_ts) {
        Reflect::set(&record, &TOMBSTONE_TS.into(), &(deleted_at as f64).into())
            .map_err(|_| Failure::Other("cannot mark a tombstone".into()))?;
    }
    Ok(record)
}

/// A record read back; a record that does not decode is corruption.
pub(crate) fn from_js<T: DeserializeOwned>(value: JsValue) -> Result<T, Failure> {
    serde_wasm_bindgen::from_value(value)
        .map_err(|error| Failure::Corrupt(format!("a stored record does not decode: {error}")))
}

/// The key of a message: `[senderId, clientMessageId]`.
pub(crate) fn message_key(sender: &str, client_message_id: &str) -> JsValue {
    Array::of2(&sender.into(), &client_message_id.into()).into()
}

/// The key of a read marker: `[conversationId, userId]`.
pub(crate) fn read_marker_key(conversation: &str, user: &str) -> JsValue {
    Array::of2(&conversation.into(), &user.into()).into()
}

/// The `[conversationId, sortTs]` index key.
pub(crate) fn conversation_position(conversation: &ConversationId, sort_ts: f64) -> JsValue {
    Array::of2(&conversation.as_str().into(), &sort_ts.into()).into()
}

/// A conversation's server messages in the `[conversationId, sortTs]` index: below the
/// optimistic ones.
pub(crate) fn server_messages(conversation: &ConversationId) -> Result<idb::KeyRange, idb::Error> {
    idb::KeyRange::bound(
        &conversation_position(conversation, f64::NEG_INFINITY),
        &conversation_position(conversation, OPTIMISTIC_SORT_BASE as f64),
        None,
        Some(true),
    )
}

/// A conversation's optimistic messages in the `[conversationId, sortTs]` index.
pub(crate) fn optimistic_messages(
    conversation: &ConversationId,
) -> Result<idb::KeyRange, idb::Error> {
    idb::KeyRange::bound(
        &conversation_position(conversation, OPTIMISTIC_SORT_BASE as f64),
        &conversation_position(conversation, f64::INFINITY),
        None,
        None,
    )
}
