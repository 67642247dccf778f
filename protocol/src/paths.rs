//! Request paths, so the client builds exactly what the server routes.
//!
//! Ids are placed in paths as they are: the server only issues ids of `A–Z a–z 0–9 - _`.

use crate::{ConversationId, MessageId};

/// `GET /v1/me`.
pub const ME: &str = "/v1/me";
/// `GET /v1/sync`.
pub const SYNC: &str = "/v1/sync";
/// `GET` and `POST /v1/conversations`.
pub const CONVERSATIONS: &str = "/v1/conversations";

/// `GET /v1/conversations/{id}/sync`.
pub fn conversation_sync(id: &ConversationId) -> String {
    format!("/v1/conversations/{id}/sync")
}

/// `GET` (history) and `POST` (send) `/v1/conversations/{id}/messages`.
pub fn messages(id: &ConversationId) -> String {
    format!("/v1/conversations/{id}/messages")
}

/// `PATCH` (edit) and `DELETE` `/v1/conversations/{id}/messages/{messageId}`.
pub fn message(id: &ConversationId, message_id: &MessageId) -> String {
    format!("/v1/conversations/{id}/messages/{message_id}")
}

/// `POST /v1/conversations/{id}/read`.
pub fn read_marker(id: &ConversationId) -> String {
    format!("/v1/conversations/{id}/read")
}

/// `path?name=value&…` with the values percent-encoded; `None` values are left out.
pub fn with_query(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut url = path.to_owned();
    let mut separator = '?';
    for (name, value) in params {
        if let Some(value) = value {
            url.push(separator);
            url.push_str(name);
            url.push('=');
            for byte in value.bytes() {
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                    url.push(byte as char);
                } else {
                    url.push_str(&format!("%{byte:02X}"));
                }
            }
            separator = '&';
        }
    }
    url
}
