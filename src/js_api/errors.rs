//! Errors as JS sees them: `Error` objects with a stable `code`.

use chat_sync_engine::{EngineError, StoreError, SyncError};
use js_sys::Reflect;
use wasm_bindgen::JsValue;

/// The stable error codes of the JS API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Code {
    /// The device is offline (or the command needs the network).
    Offline,
    /// The server refused the credentials.
    Auth,
    /// The server answered with an error.
    Server,
    /// The network failed or timed out.
    Network,
    /// The storage quota is used up.
    Quota,
    /// The local database failed.
    Storage,
    /// A bad argument; nothing changed.
    InvalidInput,
    /// The manager was disposed.
    Disposed,
    /// A bug stopped the manager (a Rust panic); reloading the page starts it again.
    Internal,
    /// Not in a browser (Node, as in server-side rendering): the manager runs in pages and
    /// workers only.
    Unsupported,
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::Offline => "offline",
            Code::Auth => "auth",
            Code::Server => "server",
            Code::Network => "network",
            Code::Quota => "quota",
            Code::Storage => "storage",
            Code::InvalidInput => "invalidInput",
            Code::Disposed => "disposed",
            Code::Internal => "internal",
            Code::Unsupported => "unsupported",
        }
    }
}

/// An `Error` with `code` (and `retryable`) properties.
pub(crate) fn js_error(code: Code, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    let _ = Reflect::set(&error, &"code".into(), &code.as_str().into());
    error.into()
}

/// The code of an engine error.
pub(crate) fn sync_error_code(error: &SyncError) -> Code {
    match error {
        SyncError::Offline => Code::Offline,
        SyncError::Auth => Code::Auth,
        SyncError::Server { .. } | SyncError::Protocol { .. } => Code::Server,
        SyncError::Timeout | SyncError::Network { .. } => Code::Network,
        SyncError::Storage { quota: true, .. } => Code::Quota,
        SyncError::Storage { .. } => Code::Storage,
        SyncError::Stopped => Code::Disposed,
        // As a retry or discard of a message this tab knows is not failed.
        SyncError::NotFailed => Code::InvalidInput,
        _ => Code::Server,
    }
}

/// An engine error as a JS `Error`, with `retryable`.
pub(crate) fn from_sync_error(error: &SyncError) -> JsValue {
    let value = js_error(sync_error_code(error), &error.to_string());
    let _ = Reflect::set(&value, &"retryable".into(), &error.is_retryable().into());
    value
}

/// A store error as a JS `Error`.
pub(crate) fn from_store_error(error: &StoreError) -> JsValue {
    let code = match error {
        StoreError::QuotaExceeded => Code::Quota,
        _ => Code::Storage,
    };
    js_error(code, &error.to_string())
}

/// A refused command as a JS `Error` (`invalidInput`).
pub(crate) fn from_engine_error(error: &EngineError) -> JsValue {
    js_error(Code::InvalidInput, &error.to_string())
}
