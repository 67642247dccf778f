//! What a client's transport moves: typed request bodies out, typed response bodies in. Drivers
//! turn them into bytes with the `json` feature's [`encode_request`](crate::encode_request) and
//! [`decode_response`](crate::decode_response), or decode with any serde deserializer through
//! [`decode_response_from`] (the browser client parses with `JSON.parse`).

use crate::{
    ErrorBody, FeedPage, HistoryPage, MarkReadRequest, MessageResponse, ReadMarkerResponse,
    SendMessageRequest,
};
use serde::{Deserialize, Deserializer, Serialize};

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
    /// A [`ReadMarkerResponse`].
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
    /// The read marker the server keeps.
    ReadMarker(ReadMarkerResponse),
    /// The documented error body of a non-2xx status.
    Error(ErrorBody),
    /// A body that does not match the protocol (a proxy's error page, a truncated body).
    Invalid(String),
}

/// Decodes a response from `body`, a deserializer over its parsed JSON: the expected body for
/// 2xx, the error body otherwise; [`ResponseBody::Invalid`] when it does not match.
pub fn decode_response_from<'de, D>(kind: ResponseKind, status: u16, body: D) -> ResponseBody
where
    D: Deserializer<'de>,
{
    fn parse<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        body: D,
        wrap: impl FnOnce(T) -> ResponseBody,
    ) -> ResponseBody {
        match T::deserialize(body) {
            Ok(value) => wrap(value),
            Err(error) => ResponseBody::Invalid(error.to_string()),
        }
    }
    if !(200..300).contains(&status) {
        return parse(body, ResponseBody::Error);
    }
    match kind {
        ResponseKind::Feed => parse(body, ResponseBody::Feed),
        ResponseKind::History => parse(body, ResponseBody::History),
        ResponseKind::Message => parse(body, ResponseBody::Message),
        ResponseKind::ReadMarker => parse(body, ResponseBody::ReadMarker),
    }
}

#[cfg(feature = "json")]
mod json {
    use super::*;

    /// The JSON text of a request body.
    pub fn encode_request(body: &RequestBody) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(body).unwrap_or_default()
    }

    /// Decodes a response's JSON bytes (see [`decode_response_from`]).
    pub fn decode_response(kind: ResponseKind, status: u16, bytes: &[u8]) -> ResponseBody {
        let mut json = serde_json::Deserializer::from_slice(bytes);
        match decode_response_from(kind, status, &mut json) {
            ResponseBody::Invalid(error) => ResponseBody::Invalid(error),
            decoded => match json.end() {
                Ok(()) => decoded,
                Err(error) => ResponseBody::Invalid(error.to_string()),
            },
        }
    }
}

#[cfg(feature = "json")]
pub use json::{decode_response, encode_request};
