//! The entities the server stores and the feed carries.

use crate::{ClientMessageId, ConversationId, MessageId, Millis, UserId};
use serde::{Deserialize, Serialize};

/// A user as other members see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The name to show.
    pub display_name: String,
}

/// A conversation with its members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    /// The conversation's id.
    pub id: ConversationId,
    /// Its title.
    pub title: String,
    /// Every member, the requesting user included.
    pub members: Vec<User>,
    /// Stamp of the write that created it.
    pub created_ts: Millis,
    /// Stamp of the write that last changed it (last-write-wins key).
    pub updated_ts: Millis,
}

/// A message, or its tombstone when `deleted` is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The server's id.
    pub id: MessageId,
    /// The conversation it belongs to.
    pub conversation_id: ConversationId,
    /// The id the sending client chose; the key of idempotent sends.
    pub client_message_id: ClientMessageId,
    /// Who sent it.
    pub sender_id: UserId,
    /// The text; empty for a tombstone.
    pub body: String,
    /// Stamp of the write that created it; the message order is `(server_ts, id)`.
    pub server_ts: Millis,
    /// Stamp of the write that last changed it (last-write-wins key).
    pub updated_ts: Millis,
    /// Whether it was edited after it was sent.
    pub edited: bool,
    /// Whether it was deleted (a tombstone).
    pub deleted: bool,
}

/// How far one member has read a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadMarker {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The member.
    pub user_id: UserId,
    /// The newest message the member has read.
    pub last_read_message_id: MessageId,
    /// That message's `server_ts`.
    pub last_read_server_ts: Millis,
    /// Stamp of the write that last moved the marker (last-write-wins key).
    pub updated_ts: Millis,
}

/// One entry of the change feed: the current state of an entity written after the cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", try_from = "WireChange")]
pub enum Change {
    /// A conversation was created or changed, or the user joined it.
    Conversation {
        /// Its current state.
        conversation: Conversation,
    },
    /// A message was created, edited or deleted (then it is a tombstone).
    Message {
        /// Its current state.
        message: Message,
    },
    /// A member's read marker moved.
    #[serde(rename_all = "camelCase")]
    ReadMarker {
        /// Its current state.
        read_marker: ReadMarker,
    },
}

impl Change {
    /// The conversation the change belongs to.
    pub fn conversation_id(&self) -> &ConversationId {
        match self {
            Change::Conversation { conversation } => &conversation.id,
            Change::Message { message } => &message.conversation_id,
            Change::ReadMarker { read_marker } => &read_marker.conversation_id,
        }
    }

    /// The stamp of the write the change carries (last-write-wins key).
    pub fn updated_ts(&self) -> Millis {
        match self {
            Change::Conversation { conversation } => conversation.updated_ts,
            Change::Message { message } => message.updated_ts,
            Change::ReadMarker { read_marker } => read_marker.updated_ts,
        }
    }
}

/// How a [`Change`] reads off the wire: one flat object (`{"type": "message", "message": {…}}`).
/// Serde's own reading of an internally tagged enum buffers each entry in a generic tree first;
/// this form reads it in one pass (and keeps that buffering code out of the wasm client).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireChange {
    #[serde(rename = "type")]
    kind: ChangeKind,
    conversation: Option<Conversation>,
    message: Option<Message>,
    read_marker: Option<ReadMarker>,
}

/// The `type` of a [`WireChange`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum ChangeKind {
    Conversation,
    Message,
    ReadMarker,
    /// A type this client does not know (a newer server's).
    #[serde(other)]
    Unknown,
}

impl WireChange {
    /// The change, or `None` for a type this client does not know.
    fn into_change(self) -> Result<Option<Change>, &'static str> {
        let change = match self.kind {
            ChangeKind::Conversation => (self.conversation)
                .map(|conversation| Change::Conversation { conversation })
                .ok_or("missing field `conversation`"),
            ChangeKind::Message => (self.message)
                .map(|message| Change::Message { message })
                .ok_or("missing field `message`"),
            ChangeKind::ReadMarker => (self.read_marker)
                .map(|read_marker| Change::ReadMarker { read_marker })
                .ok_or("missing field `readMarker`"),
            ChangeKind::Unknown => return Ok(None),
        };
        change.map(Some)
    }
}

impl TryFrom<WireChange> for Change {
    type Error = &'static str;

    fn try_from(wire: WireChange) -> Result<Self, Self::Error> {
        wire.into_change()?
            .ok_or("a change type this client does not know")
    }
}

/// Reads a feed page's changes, skipping those of a type this client does not know: a newer
/// server's feed stays readable (see `docs/protocol.md`, Compatibility).
pub(crate) fn deserialize_known_changes<'de, D>(deserializer: D) -> Result<Vec<Change>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let wire = Vec::<WireChange>::deserialize(deserializer)?;
    let mut changes = Vec::with_capacity(wire.len());
    for change in wire {
        if let Some(change) = change.into_change().map_err(serde::de::Error::custom)? {
            changes.push(change);
        }
    }
    Ok(changes)
}
