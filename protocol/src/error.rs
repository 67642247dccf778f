//! The JSON error body and its stable codes.

use serde::{Deserialize, Serialize};

/// The body of every error response: `{ "error": { "code", "message" } }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The content of [`ErrorBody`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable; clients branch on it.
    pub code: ErrorCode,
    /// For people; may change between versions.
    pub message: String,
}

/// The stable error codes of protocol v1 (the table in `docs/protocol.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the body is not valid JSON or not `application/json`.
    MalformedJson,
    /// 400: a query parameter is malformed.
    InvalidQuery,
    /// 400: a cursor cannot be decoded; sync from the start.
    InvalidCursor,
    /// 401: token missing or unknown.
    Unauthorized,
    /// 403: the user may not do this (edit another user's message).
    Forbidden,
    /// 404: no such conversation, or the user is not a member.
    ConversationNotFound,
    /// 404: no such message in the conversation.
    MessageNotFound,
    /// 404: no such endpoint.
    NotFound,
    /// 405: the endpoint does not take this method.
    MethodNotAllowed,
    /// 409: a `clientMessageId` reused for another conversation or body.
    ClientMessageIdConflict,
    /// 409: editing a deleted message.
    MessageDeleted,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: the body's `Content-Encoding` is not `gzip` (or identity).
    UnsupportedEncoding,
    /// 422: the message body is empty or only whitespace.
    EmptyMessage,
    /// 422: the message body is over the limit.
    MessageTooLong,
    /// 422: a field is missing, mistyped or breaks a limit.
    InvalidField,
    /// 429: too many requests; see `Retry-After`.
    RateLimited,
    /// 500: a failure on the server.
    Internal,
    /// 503: overloaded or shutting down; see `Retry-After`.
    Unavailable,
    /// A code this version does not know (sent by a newer server); go by the HTTP status.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire, e.g. `"message_too_long"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::InvalidCursor => "invalid_cursor",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::ConversationNotFound => "conversation_not_found",
            ErrorCode::MessageNotFound => "message_not_found",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::ClientMessageIdConflict => "client_message_id_conflict",
            ErrorCode::MessageDeleted => "message_deleted",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedEncoding => "unsupported_encoding",
            ErrorCode::EmptyMessage => "empty_message",
            ErrorCode::MessageTooLong => "message_too_long",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// The HTTP status the code is sent with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedJson | ErrorCode::InvalidQuery | ErrorCode::InvalidCursor => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::ConversationNotFound | ErrorCode::MessageNotFound | ErrorCode::NotFound => {
                404
            }
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::ClientMessageIdConflict | ErrorCode::MessageDeleted => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedEncoding => 415,
            ErrorCode::EmptyMessage | ErrorCode::MessageTooLong | ErrorCode::InvalidField => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal | ErrorCode::Unknown => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

/// Whether a request answered with this HTTP status may be retried (after backoff).
///
/// 408, 429 and every 5xx are retryable; every other status is permanent.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}
