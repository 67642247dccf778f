//! Wire types of the chat-sync protocol v1 (`docs/protocol.md`), shared by the client and the
//! reference server so the two cannot drift apart.
//!
//! This crate is data only: serde types, the documented limits, validation shared by both sides and
//! the request paths. It does no I/O.
//!
//! ```
//! use chat_sync_protocol::{ClientMessageId, SendMessageRequest};
//!
//! let request = SendMessageRequest {
//!     client_message_id: ClientMessageId::new("01JD5Q6Z4N8WQ3K2"),
//!     body: "See you at 10?".into(),
//! };
//! request.validate().expect("a valid message");
//! let json = serde_json::to_string(&request).unwrap();
//! assert_eq!(json, r#"{"clientMessageId":"01JD5Q6Z4N8WQ3K2","body":"See you at 10?"}"#);
//! ```

mod entities;
mod error;
mod ids;
pub mod limits;
pub mod paths;
mod requests;
mod validate;
mod wire;

pub use entities::{Change, Conversation, Message, ReadMarker, User};
pub use error::{is_retryable_status, ErrorBody, ErrorCode, ErrorDetail};
pub use ids::{ClientMessageId, ConversationId, Cursor, HistoryCursor, MessageId, UserId};
pub use requests::{
    ConversationResponse, ConversationsResponse, CreateConversationRequest, EditMessageRequest,
    FeedPage, HistoryPage, MarkReadRequest, MeResponse, MessageResponse, ReadMarkerResponse,
    SendMessageRequest,
};
pub use validate::{validate_message_body, ValidationError};
#[cfg(feature = "json")]
pub use wire::{decode_response, encode_request};
pub use wire::{decode_response_from, RequestBody, ResponseBody, ResponseKind};

/// Milliseconds since the Unix epoch (UTC), as stamped by the server.
pub type Millis = i64;
