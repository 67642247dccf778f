//! Request and response bodies of each endpoint.

use crate::{
    Change, ClientMessageId, Conversation, Cursor, HistoryCursor, Message, MessageId, ReadMarker,
    User, UserId,
};
use serde::{Deserialize, Serialize};

/// `GET /v1/me` response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeResponse {
    /// The user the token belongs to.
    pub user: User,
}

/// A page of the change feed (`GET /v1/sync`, `GET /v1/conversations/{id}/sync`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedPage {
    /// The changes after the request's cursor, in server order (those of a type this client does
    /// not know are left out).
    #[serde(deserialize_with = "crate::entities::deserialize_known_changes")]
    pub changes: Vec<Change>,
    /// Where the next request continues; store it with the changes, in one transaction.
    pub next_cursor: Cursor,
    /// Whether more changes follow right away.
    pub has_more: bool,
}

/// A page of history (`GET /v1/conversations/{id}/messages`), newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    /// Messages and tombstones, newest first.
    pub messages: Vec<Message>,
    /// Where the next, older page starts; `None` when `has_more` is false.
    pub next_before: Option<HistoryCursor>,
    /// Whether older messages exist.
    pub has_more: bool,
}

/// `POST /v1/conversations/{id}/messages` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    /// Chosen once by the client per composed message and reused on every retry.
    pub client_message_id: ClientMessageId,
    /// The text.
    pub body: String,
}

/// `PATCH /v1/conversations/{id}/messages/{messageId}` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditMessageRequest {
    /// The new text.
    pub body: String,
}

/// Response of send, edit and delete: the message's current state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageResponse {
    /// The message as the server now holds it.
    pub message: Message,
}

/// `POST /v1/conversations/{id}/read` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarkReadRequest {
    /// The newest message the user has read.
    pub message_id: MessageId,
}

/// `POST /v1/conversations/{id}/read` response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadMarkerResponse {
    /// The marker as the server now holds it.
    pub read_marker: ReadMarker,
}

/// `GET /v1/conversations` response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationsResponse {
    /// The user's conversations, most recently created first.
    pub conversations: Vec<Conversation>,
}

/// `POST /v1/conversations` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateConversationRequest {
    /// The title.
    pub title: String,
    /// The other members; the caller is always added.
    pub member_ids: Vec<UserId>,
}

/// `POST /v1/conversations` response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationResponse {
    /// The conversation created.
    pub conversation: Conversation,
}
