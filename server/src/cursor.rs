//! Encoding of the opaque cursors: `c2.<database>.<seq hex>` for the feed,
//! `h2.<database>.<serverTs>.<rowid>` for history, where `<database>` is the database's random id
//! ([`Storage::database_id`](crate::storage::Storage::database_id)).
//!
//! The `2` is a format version, so a later encoding can be told apart and old cursors refused with
//! `invalid_cursor` (which tells the client to sync from the start). The database id does the same
//! for a cursor from another database: positions in it mean nothing here.

use crate::error::ApiError;
use crate::storage::{MessageKey, Seq};
use chat_sync_protocol::{Cursor, ErrorCode, HistoryCursor};

/// The feed cursor for a change-log position of `database`.
pub(crate) fn encode_feed(database: &str, seq: Seq) -> Cursor {
    Cursor::new(format!("c2.{database}.{seq:x}"))
}

/// The change-log position a feed cursor of `database` names.
pub(crate) fn decode_feed(database: &str, cursor: &str) -> Result<Seq, ApiError> {
    position(database, cursor, "c2")
        .filter(|hex| {
            !hex.is_empty() && hex.len() <= 16 && hex.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .and_then(|hex| Seq::from_str_radix(hex, 16).ok())
        .ok_or_else(|| invalid("cursor"))
}

/// The history cursor for a message position of `database`.
pub(crate) fn encode_history(database: &str, (server_ts, rowid): MessageKey) -> HistoryCursor {
    HistoryCursor::new(format!("h2.{database}.{server_ts}.{rowid}"))
}

/// The message position a history cursor of `database` names.
pub(crate) fn decode_history(database: &str, cursor: &str) -> Result<MessageKey, ApiError> {
    let parse = || {
        let (ts, rowid) = position(database, cursor, "h2")?.split_once('.')?;
        Some((decimal(ts)?, decimal(rowid)?))
    };
    parse().ok_or_else(|| invalid("before"))
}

/// A number of decimal digits only: no sign, so no negative position.
fn decimal(digits: &str) -> Option<i64> {
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())?
}

/// What follows `<kind>.<database>.` in `cursor`; `None` for another kind or database.
fn position<'a>(database: &str, cursor: &'a str, kind: &str) -> Option<&'a str> {
    let (prefix, rest) = cursor.split_once('.')?;
    let (id, position) = rest.split_once('.')?;
    (prefix == kind && id == database).then_some(position)
}

fn invalid(parameter: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCursor,
        format!(
            "`{parameter}` is not a cursor of this server's database (or is malformed); \
             sync from the start"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB: &str = "9f86d081884c7d65";

    #[test]
    fn cursors_decode_to_what_was_encoded() {
        for seq in [0, 1, 0x4f2, i64::MAX] {
            assert_eq!(
                decode_feed(DB, encode_feed(DB, seq).as_str()).ok(),
                Some(seq)
            );
        }
        let key = (1_764_000_123_456, 41);
        let cursor = encode_history(DB, key);
        assert_eq!(decode_history(DB, cursor.as_str()).ok(), Some(key));
    }

    #[test]
    fn malformed_old_and_other_databases_cursors_are_refused() {
        for bad in [
            "",
            "c2.",
            "c2.9f86d081884c7d65.",
            "c2.9f86d081884c7d65.xyz",
            "c2.9f86d081884c7d65.-5",
            "c2.9f86d081884c7d65.ffffffffffffffff",
            "c2.9f86d081884c7d65.10000000000000000",
            "c2.0000000000000000.10",
            "c1.10",
            "h2.9f86d081884c7d65.10",
            "10",
        ] {
            let error = decode_feed(DB, bad).expect_err(bad);
            assert_eq!(error.code(), ErrorCode::InvalidCursor, "{bad}");
        }
        for bad in [
            "",
            "h2.9f86d081884c7d65.",
            "h2.9f86d081884c7d65.5",
            "h2.9f86d081884c7d65.a.b",
            "h2.9f86d081884c7d65.-5.-1",
            "h2.9f86d081884c7d65.5.-1",
            "h2.9f86d081884c7d65.+5.1",
            "h2.9f86d081884c7d65.5.",
            "h2.9f86d081884c7d65.99999999999999999999.1",
            "h2.0000000000000000.5.1",
            "h1.5.1",
            "c2.9f86d081884c7d65.10",
        ] {
            assert!(decode_history(DB, bad).is_err(), "{bad}");
        }
    }
}
