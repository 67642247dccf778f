//! The HTTP requests the engine asks for and the outcomes the driver reports back.

use chat_sync_protocol::{Millis, RequestBody, ResponseBody, ResponseKind};

/// Identifies a request so its outcome can be matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// The HTTP methods the protocol uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
}

impl Method {
    /// The method's name, as HTTP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// A request for the driver to send to the server (adding the base URL and the bearer token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// Report the outcome with this id.
    pub id: RequestId,
    /// The method.
    pub method: Method,
    /// Path and query, e.g. `/v1/sync?cursor=c1.4f2&limit=100`.
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<RequestBody>,
    /// Which success body to decode.
    pub expects: ResponseKind,
    /// The engine treats the request as timed out after this long; the driver may abort it then.
    pub timeout_ms: Millis,
}

/// What became of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpOutcome {
    /// The server answered.
    Response {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` header, in milliseconds.
        retry_after_ms: Option<Millis>,
        /// The decoded body.
        body: ResponseBody,
        /// Bytes received (for statistics).
        bytes: u64,
    },
    /// No answer in time (the driver's own timeout).
    Timeout,
    /// The connection failed or dropped before a complete answer.
    Network(String),
}
