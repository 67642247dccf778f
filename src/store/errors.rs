//! Sorting IndexedDB failures into the engine's [`StoreError`]s.

use chat_sync_engine::{OutboxEntry, StoreError};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::DomException;

/// What an IndexedDB failure means for the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Out of quota.
    Quota,
    /// The connection is gone or closing (Safari's "connection lost", a `versionchange`):
    /// reopen and retry once.
    ConnectionLost(String),
    /// The database was written by a newer version of the app.
    TooNew(String),
    /// Another tab holds the database open at an older version and does not let go.
    Blocked,
    /// Opening the database did not settle in time (seen in Safari).
    Timeout,
    /// IndexedDB is not available here (some private modes, blocked storage).
    Unsupported(String),
    /// The database is unreadable or inconsistent: rebuild it.
    Corrupt(String),
    /// A step of the schema upgrade failed; the database kept its version: rebuild it.
    UpgradeFailed(String),
    /// The database is being deleted (`clear()`, a logout): [`super::IndexedDbStore::retire`].
    Retired,
    /// The database could not be used, and rebuilding it failed (the new one did not open or
    /// take the rescued entries, or another tab blocked the deletion); `reason` tells both.
    /// `rescued`: the outbox entries read from it, which exist nowhere else now; the page keeps
    /// them in memory ([`super::Opened::Damaged`]).
    RebuildFailed {
        reason: String,
        rescued: Vec<OutboxEntry>,
    },
    /// Anything else.
    Other(String),
}

impl Failure {
    /// The engine's view of it.
    pub(crate) fn into_store_error(self) -> StoreError {
        match self {
            Failure::Quota => StoreError::QuotaExceeded,
            Failure::ConnectionLost(message) | Failure::Unsupported(message) => {
                StoreError::Unavailable(message)
            }
            Failure::Blocked => StoreError::Unavailable(
                "another tab keeps an older version of the database open; close other tabs of \
                 this app"
                    .into(),
            ),
            Failure::Timeout => StoreError::Unavailable("opening the database timed out".into()),
            Failure::Retired => StoreError::Unavailable("the user's local data was cleared".into()),
            Failure::TooNew(message) => StoreError::Failed(format!(
                "{message}; the database was written by a newer version of this app: reload \
                 the page to get it, or clear the site's data"
            )),
            Failure::Corrupt(message)
            | Failure::UpgradeFailed(message)
            | Failure::RebuildFailed {
                reason: message, ..
            }
            | Failure::Other(message) => StoreError::Failed(message),
        }
    }
}

/// Sorts a DOM exception by its name (and, for the ambiguous ones, its message).
pub(crate) fn classify_exception(exception: &DomException) -> Failure {
    classify_named(&exception.name(), &exception.message())
}

/// Sorts a DOM exception's `name` and `message`.
fn classify_named(name: &str, message: &str) -> Failure {
    let text = format!("{name}: {message}");
    match name {
        "QuotaExceededError" => Failure::Quota,
        "VersionError" => Failure::TooNew(text),
        "InvalidStateError" | "TransactionInactiveError" => Failure::ConnectionLost(text),
        // Storage the user blocked: Firefox throws this; Chromium, with all cookies blocked,
        // fails the open with an `UnknownError` saying the user denied permission.
        "SecurityError" => Failure::Unsupported(text),
        "UnknownError" if contains(&message.to_ascii_lowercase(), "denied") => {
            Failure::Unsupported(text)
        }
        // Transient by experience (Safari's lost connections, Chromium's backing store hiccups):
        // reopen and retry once; repeated on open, the database is rebuilt.
        "UnknownError" => Failure::ConnectionLost(text),
        "NotReadableError" | "NotFoundError" => Failure::Corrupt(text),
        "AbortError" if contains(&message.to_ascii_lowercase(), "quota") => Failure::Quota,
        _ => Failure::Other(text),
    }
}

/// Sorts what a raw IndexedDB call threw.
pub(crate) fn classify_js(error: &JsValue) -> Failure {
    match error.dyn_ref::<DomException>() {
        Some(exception) => classify_exception(exception),
        None => Failure::Other(format!("{error:?}")),
    }
}

/// Sorts an `idb` error: the DOM exception it wraps, or its message.
pub(crate) fn classify(error: &idb::Error) -> Failure {
    match exception_of(error) {
        Some(exception) => classify_exception(&exception),
        None => {
            let text = error.to_string();
            if is_connection_message(&text) {
                Failure::ConnectionLost(text)
            } else {
                Failure::Other(text)
            }
        }
    }
}

/// The DOM exception inside an `idb` error, when there is one.
fn exception_of(error: &idb::Error) -> Option<DomException> {
    use idb::Error::*;
    let value: &JsValue = match error {
        DomException(exception) => return Some(exception.clone()),
        AddFailed(v)
        | ClearFailed(v)
        | CountFailed(v)
        | CursorAdvanceFailed(v)
        | CursorContinueFailed(v)
        | CursorKeyNotFound(v)
        | CursorPrimaryKeyNotFound(v)
        | CursorValueNotFound(v)
        | DeleteFailed(v)
        | GetAllFailed(v)
        | GetAllKeysFailed(v)
        | GetFailed(v)
        | GetKeyFailed(v)
        | IndexCreateFailed(v)
        | IndexDeleteFailed(v)
        | IndexedDbDeleteFailed(v)
        | IndexedDbNotFound(v)
        | IndexedDbOpenFailed(v)
        | IndexNotFound(v)
        | KeyPathNotFound(v)
        | KeyRangeBoundNotFound(v)
        | KeyRangeCreateFailed(v)
        | KeyRangeIncludesFailed(v)
        | ObjectStoreCreateFailed(v)
        | ObjectStoreDeleteFailed(v)
        | ObjectStoreNotFound(v)
        | OpenCursorFailed(v)
        | OpenKeyCursorFailed(v)
        | RequestErrorNotFound(v)
        | RequestResultNotFound(v)
        | TransactionAbortError(v)
        | TransactionCommitError(v)
        | TransactionModeNotFound(v)
        | TransactionOpenFailed(v)
        | UpdateFailed(v)
        | UnexpectedJsType(_, v) => v,
        _ => return None,
    };
    value.dyn_ref::<web_sys::DomException>().cloned()
}

/// Safari and Chromium word a lost connection in these ways. (ASCII lowercasing: the words
/// matched are ASCII, and it spares the wasm the Unicode case tables.)
fn is_connection_message(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    let has = |words| contains(&message, words);
    has("connection") && (has("lost") || has("closing"))
        || has("database is closed")
        || has("is closing")
}

/// Whether `text` contains `words`. A plain byte comparison: `str::contains` brings the standard
/// library's substring search (two-way) into the wasm, 3 KB for these few short words.
fn contains(text: &str, words: &str) -> bool {
    text.as_bytes()
        .windows(words.len())
        .any(|window| window == words.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::{classify_named, is_connection_message, Failure};

    #[test]
    fn storage_the_user_blocked_is_unsupported_not_a_lost_connection() {
        let denied = [
            ("SecurityError", "The operation is insecure."),
            (
                "UnknownError",
                "The user denied permission to access the database.",
            ),
        ];
        for (name, message) in denied {
            let failure = classify_named(name, message);
            assert!(
                matches!(failure, Failure::Unsupported(_)),
                "{name}: {failure:?}"
            );
        }
        let hiccup = classify_named("UnknownError", "Internal error opening backing store");
        assert!(matches!(hiccup, Failure::ConnectionLost(_)), "{hiccup:?}");
    }

    #[test]
    fn lost_connections_are_told_by_their_words() {
        for lost in [
            "Connection to Indexed Database server lost. Refresh the page to try again",
            "InvalidStateError: The database connection is closing.",
            "Database is closed",
        ] {
            assert!(is_connection_message(lost), "{lost}");
        }
        for other in [
            "",
            "lost",
            "Key already exists in the object store.",
            "Connect",
        ] {
            assert!(!is_connection_message(other), "{other}");
        }
    }
}
