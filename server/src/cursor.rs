//! Encoding of the opaque cursors: `c1.<seq hex>` for the feed, `h1.<serverTs>.<rowid>` for history.
//!
//! The `1` is a format version, so a later encoding can be told apart and old cursors refused with
//! `invalid_cursor` (which tells the client to sync from the start).

use crate::error::ApiError;
use crate::storage::{MessageKey, Seq};
use chat_sync_protocol::{Cursor, ErrorCode, HistoryCursor};

/// The feed cursor for a change-log position.
pub(crate) fn encode_feed(seq: Seq) -> Cursor {
    Cursor::new(format!("c1.{seq:x}"))
}

/// The change-log position a feed cursor names.
pub(crate) fn decode_feed(cursor: &str) -> Result<Seq, ApiError> {
    cursor
        .strip_prefix("c1.")
        .filter(|hex| {
            !hex.is_empty() && hex.len() <= 16 && hex.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .and_then(|hex| Seq::from_str_radix(hex, 16).ok())
        .ok_or_else(|| invalid("cursor"))
}

/// The history cursor for a message position.
pub(crate) fn encode_history((server_ts, rowid): MessageKey) -> HistoryCursor {
    HistoryCursor::new(format!("h1.{server_ts}.{rowid}"))
}

/// The message position a history cursor names.
pub(crate) fn decode_history(cursor: &str) -> Result<MessageKey, ApiError> {
    let parse = || {
        let (ts, rowid) = cursor.strip_prefix("h1.")?.split_once('.')?;
        Some((ts.parse().ok()?, rowid.parse().ok()?))
    };
    parse().ok_or_else(|| invalid("before"))
}

fn invalid(parameter: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCursor,
        format!("`{parameter}` is not a cursor this server issued; sync from the start"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_decode_to_what_was_encoded() {
        for seq in [0, 1, 0x4f2, i64::MAX] {
            assert_eq!(decode_feed(encode_feed(seq).as_str()).ok(), Some(seq));
        }
        let key = (1_764_000_123_456, 41);
        assert_eq!(decode_history(encode_history(key).as_str()).ok(), Some(key));
    }

    #[test]
    fn foreign_cursors_are_refused() {
        for bad in [
            "",
            "c1.",
            "c1.xyz",
            "c2.10",
            "10",
            "c1.-5",
            "c1.ffffffffffffffff",
            "c1.10000000000000000",
        ] {
            let error = decode_feed(bad).expect_err(bad);
            assert_eq!(error.code(), ErrorCode::InvalidCursor, "{bad}");
        }
        for bad in ["", "h1.", "h1.5", "h1.a.b", "c1.10"] {
            assert!(decode_history(bad).is_err(), "{bad}");
        }
    }
}
