//! What a client's transport moves: typed request bodies out, typed response bodies in. Drivers
//! turn them into bytes with the `json` feature's [`encode_request`](crate::encode_request) and
//! [`decode_response`](crate::decode_response).

use crate::{
    ErrorBody, FeedPage, HistoryPage, MarkReadRequest, MessageResponse, SendMessageRequest,
};
use serde::Serialize;

/// The JSON body of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RequestBody {
    /// `POST /v1/conversations/{id}/messages`.
    Send(SendMessageRequest),
    /// `POST /v1/conversations/{id}/read`.
    MarkRead(MarkReadRequest),
}

/// Which success body a request expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseKind {
    /// A [`FeedPage`].
    Feed,
    /// A [`HistoryPage`].
    History,
    /// A [`MessageResponse`].
    Message,
    /// A [`crate::ReadMarkerResponse`]; its content is not needed (the feed brings the marker).
    ReadMarker,
}

/// A decoded response body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseBody {
    /// A feed page.
    Feed(FeedPage),
    /// A history page.
    History(HistoryPage),
    /// A message (send, edit, delete).
    Message(MessageResponse),
    /// A read marker was stored.
    ReadMarker,
    /// The documented error body of a non-2xx status.
    Error(ErrorBody),
    /// A body that does not match the protocol (a proxy's error page, a truncated body).
    Invalid(String),
}

#[cfg(feature = "json")]
mod json {
    use super::*;
    use crate::ReadMarkerResponse;

    /// The JSON text of a request body.
    pub fn encode_request(body: &RequestBody) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(body).unwrap_or_default()
    }

    /// Decodes a response: the expected body for 2xx, the error body otherwise.
    pub fn decode_response(kind: ResponseKind, status: u16, bytes: &[u8]) -> ResponseBody {
        fn parse<T: serde::de::DeserializeOwned>(
            bytes: &[u8],
            wrap: impl FnOnce(T) -> ResponseBody,
        ) -> ResponseBody {
            match serde_json::from_slice(bytes) {
                Ok(value) => wrap(value),
                Err(error) => ResponseBody::Invalid(error.to_string()),
            }
        }
        if !(200..300).contains(&status) {
            return parse(bytes, ResponseBody::Error);
        }
        match kind {
            ResponseKind::Feed => parse(bytes, ResponseBody::Feed),
            ResponseKind::History => parse(bytes, ResponseBody::History),
            ResponseKind::Message => parse(bytes, ResponseBody::Message),
            ResponseKind::ReadMarker => {
                parse(bytes, |_: ReadMarkerResponse| ResponseBody::ReadMarker)
            }
        }
    }
}

#[cfg(feature = "json")]
pub use json::{decode_response, encode_request};
