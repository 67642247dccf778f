//! The SQLite backend: one connection behind a mutex (SQLite has a single writer anyway), WAL mode
//! with `synchronous=FULL` for file databases (every acknowledged write is on disk).
//!
//! Why the feed never skips or repeats a change: every write takes the next `changes.seq` inside
//! its transaction, and SQLite commits writes one at a time, so sequence order is commit order and
//! a reader's snapshot always holds a gap-free prefix of the log. An entity's row moves to the end
//! of the log on each write (`INSERT OR REPLACE`), so a reader meets it once, in its latest state.

use super::migrations;
use super::{
    FeedRead, FeedScope, HistoryRead, HistoryStart, MessageKey, SendOutcome, Seq, Storage,
    StorageError,
};
use chat_sync_protocol::{
    Change, ClientMessageId, Conversation, ConversationId, Message, MessageId, Millis, ReadMarker,
    User, UserId,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use sha2::{Digest, Sha256};
use std::sync::{Mutex, MutexGuard};

/// Change-log kinds.
const KIND_CONVERSATION: &str = "conversation";
const KIND_MESSAGE: &str = "message";
const KIND_READ_MARKER: &str = "read_marker";

/// The columns [`read_message`] expects, in order.
const MESSAGE_COLUMNS: &str =
    "rowid, conversation_id, client_message_id, sender_id, body, server_ts, updated_ts, edited, deleted";

/// Storage on an embedded SQLite database.
pub struct SqliteStorage {
    conn: Mutex<Connection>,
    database_id: String,
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// SQLite failed to open or migrate the file.
    #[error("cannot open database {path}: {source}")]
    Sqlite {
        /// The path given.
        path: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file was written by a newer server whose schema this build does not know.
    #[error(
        "database {path} has schema version {found}, newer than this server's {supported}; \
         run a newer chat-sync-server or point --db at another file"
    )]
    TooNew {
        /// The path given.
        path: String,
        /// The version found in the file.
        found: usize,
        /// The newest version this build knows.
        supported: usize,
    },
}

impl SqliteStorage {
    /// Opens (creating if needed) and migrates the database at `path`; `:memory:` is in-memory.
    pub fn open(path: &str) -> Result<Self, OpenError> {
        let sqlite = |source| OpenError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let mut conn = if path == ":memory:" {
            Connection::open_in_memory().map_err(sqlite)?
        } else {
            let conn = Connection::open(path).map_err(sqlite)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(sqlite)?;
            // FULL, not NORMAL: in WAL mode NORMAL may lose the last commits to a power loss,
            // and a send the server acknowledged must survive (else its id is given out again
            // and cursors handed out point past the log).
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(sqlite)?;
            conn
        };
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite)?;
        let found = migrations::migrate(&mut conn).map_err(sqlite)?;
        let supported = migrations::latest_version();
        if found > supported {
            return Err(OpenError::TooNew {
                path: path.to_owned(),
                found,
                supported,
            });
        }
        let database_id = conn
            .query_row(
                "SELECT value FROM server_meta WHERE key = 'database_id'",
                [],
                |row| row.get(0),
            )
            .map_err(sqlite)?;
        Ok(Self {
            conn: Mutex::new(conn),
            database_id,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-transaction rolled the transaction back when it unwound; the connection
        // itself is still sound.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` in a write transaction and commits when it succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` in a read transaction: one consistent snapshot.
    fn read<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        f(&tx)
    }
}

impl Storage for SqliteStorage {
    fn database_id(&self) -> &str {
        &self.database_id
    }

    fn user_for_token(&self, token: &str) -> Result<Option<User>, StorageError> {
        self.read(|tx| {
            Ok(tx
                .prepare_cached(
                    "SELECT u.id, u.display_name FROM tokens t JOIN users u ON u.id = t.user_id
                     WHERE t.token_sha256 = ?1",
                )?
                .query_row([sha256_hex(token)], read_user)
                .optional()?)
        })
    }

    fn create_user(&self, user: &User, token: &str, now: Millis) -> Result<(), StorageError> {
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO users (id, display_name, created_ts) VALUES (?1, ?2, ?3)",
                params![user.id.as_str(), user.display_name, now],
            )?;
            if inserted == 0 {
                return Err(StorageError::UserExists(user.id.clone()));
            }
            tx.execute(
                "INSERT INTO tokens (token_sha256, user_id) VALUES (?1, ?2)",
                params![sha256_hex(token), user.id.as_str()],
            )?;
            Ok(())
        })
    }

    fn conversations(&self, user: &UserId) -> Result<Vec<Conversation>, StorageError> {
        self.read(|tx| {
            let ids = tx
                .prepare_cached(
                    "SELECT c.id FROM members m JOIN conversations c ON c.id = m.conversation_id
                     WHERE m.user_id = ?1 ORDER BY c.created_ts DESC",
                )?
                .query_map([user.as_str()], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            ids.iter()
                .map(|id| load_conversation(tx, id))
                .collect::<Result<_, _>>()
                .map_err(StorageError::from)
        })
    }

    fn create_conversation(
        &self,
        user: &UserId,
        title: &str,
        members: &[UserId],
        now: Millis,
    ) -> Result<Conversation, StorageError> {
        self.write(|tx| {
            let mut member_ids: Vec<&UserId> = vec![user];
            for member in members {
                let exists = tx
                    .prepare_cached("SELECT 1 FROM users WHERE id = ?1")?
                    .exists([member.as_str()])?;
                if !exists {
                    return Err(StorageError::UnknownUser(member.clone()));
                }
                if !member_ids.contains(&member) {
                    member_ids.push(member);
                }
            }
            let ts = next_ts(tx, now)?;
            let id = format!("c{ts:013}");
            tx.execute(
                "INSERT INTO conversations (id, title, created_ts, updated_ts) VALUES (?1, ?2, ?3, ?3)",
                params![id, title, ts],
            )?;
            for member in member_ids {
                tx.execute(
                    "INSERT INTO members (conversation_id, user_id) VALUES (?1, ?2)",
                    params![id, member.as_str()],
                )?;
            }
            record_change(tx, &id, KIND_CONVERSATION, &id)?;
            Ok(load_conversation(tx, &id)?)
        })
    }

    fn feed(
        &self,
        user: &UserId,
        scope: &FeedScope,
        after: Seq,
        limit: u32,
    ) -> Result<FeedRead, StorageError> {
        self.read(|tx| {
            let head = head(tx)?;
            if after > head {
                return Err(StorageError::CursorAhead);
            }
            let fetch = i64::from(limit) + 1;
            let read_row = |row: &rusqlite::Row<'_>| {
                Ok((
                    row.get::<_, Seq>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            };
            let mut rows = match scope {
                FeedScope::AllConversations => tx
                    .prepare_cached(
                        "SELECT seq, conversation_id, kind, entity_key FROM changes
                         WHERE seq > ?1 AND conversation_id IN
                             (SELECT conversation_id FROM members WHERE user_id = ?2)
                         ORDER BY seq LIMIT ?3",
                    )?
                    .query_map(params![after, user.as_str(), fetch], read_row)?
                    .collect::<Result<Vec<_>, _>>()?,
                FeedScope::Conversation(conversation) => {
                    ensure_member(tx, conversation.as_str(), user)?;
                    tx.prepare_cached(
                        "SELECT seq, conversation_id, kind, entity_key FROM changes
                         WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                    )?
                    .query_map(params![conversation.as_str(), after, fetch], read_row)?
                    .collect::<Result<Vec<_>, _>>()?
                }
            };
            let has_more = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            let next = match (has_more, rows.last()) {
                (true, Some((seq, ..))) => *seq,
                // Everything up to the log's end was read: continue from there.
                _ => head,
            };
            let changes = rows
                .iter()
                .map(|(_, conversation, kind, key)| load_change(tx, conversation, kind, key))
                .collect::<Result<_, _>>()?;
            Ok(FeedRead {
                changes,
                next,
                has_more,
            })
        })
    }

    fn history(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        start: &HistoryStart,
        limit: u32,
    ) -> Result<HistoryRead, StorageError> {
        self.read(|tx| {
            ensure_member(tx, conversation.as_str(), user)?;
            let (before_ts, before_rowid) = match start {
                HistoryStart::Newest => (Millis::MAX, i64::MAX),
                HistoryStart::Before(key) if history_ahead(tx, *key)? => {
                    return Err(StorageError::CursorAhead)
                }
                HistoryStart::Before(key) => *key,
                HistoryStart::BeforeMessage(id) => message_key(&message_in(tx, conversation, id)?)?,
            };
            let mut messages = tx
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE conversation_id = ?1 AND (server_ts, rowid) < (?2, ?3)
                     ORDER BY server_ts DESC, rowid DESC LIMIT ?4"
                ))?
                .query_map(
                    params![
                        conversation.as_str(),
                        before_ts,
                        before_rowid,
                        i64::from(limit) + 1
                    ],
                    read_message,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            let has_more = messages.len() > limit as usize;
            messages.truncate(limit as usize);
            let next_before = match messages.last() {
                Some(oldest) if has_more => Some(message_key(oldest)?),
                _ => None,
            };
            Ok(HistoryRead {
                messages,
                next_before,
            })
        })
    }

    fn send_message(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        client_message_id: &ClientMessageId,
        body: &str,
        now: Millis,
    ) -> Result<SendOutcome, StorageError> {
        self.write(|tx| {
            ensure_member(tx, conversation.as_str(), user)?;
            let body_sha = sha256_hex(body);
            let known = tx
                .prepare_cached(
                    "SELECT rowid, conversation_id, sent_body_sha256 FROM messages
                     WHERE sender_id = ?1 AND client_message_id = ?2",
                )?
                .query_row(params![user.as_str(), client_message_id.as_str()], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })
                .optional()?;
            if let Some((rowid, known_conversation, known_sha)) = known {
                if known_conversation != conversation.as_str() || known_sha != body_sha {
                    return Err(StorageError::ClientMessageIdConflict(
                        client_message_id.clone(),
                    ));
                }
                return Ok(SendOutcome {
                    message: load_message(tx, rowid)?,
                    created: false,
                });
            }
            let ts = next_ts(tx, now)?;
            tx.execute(
                "INSERT INTO messages (conversation_id, sender_id, client_message_id,
                     sent_body_sha256, body, server_ts, updated_ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![
                    conversation.as_str(),
                    user.as_str(),
                    client_message_id.as_str(),
                    body_sha,
                    body,
                    ts
                ],
            )?;
            let rowid = tx.last_insert_rowid();
            record_change(tx, conversation.as_str(), KIND_MESSAGE, &rowid.to_string())?;
            Ok(SendOutcome {
                message: load_message(tx, rowid)?,
                created: true,
            })
        })
    }

    fn edit_message(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        message: &MessageId,
        body: &str,
        now: Millis,
    ) -> Result<Message, StorageError> {
        self.write(|tx| {
            let (rowid, current) = own_message(tx, user, conversation, message)?;
            if current.deleted {
                return Err(StorageError::MessageDeleted);
            }
            if current.body == body {
                return Ok(current);
            }
            let ts = next_ts(tx, now)?;
            tx.execute(
                "UPDATE messages SET body = ?2, edited = 1, updated_ts = ?3 WHERE rowid = ?1",
                params![rowid, body, ts],
            )?;
            record_change(tx, conversation.as_str(), KIND_MESSAGE, &rowid.to_string())?;
            Ok(load_message(tx, rowid)?)
        })
    }

    fn delete_message(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        message: &MessageId,
        now: Millis,
    ) -> Result<Message, StorageError> {
        self.write(|tx| {
            let (rowid, current) = own_message(tx, user, conversation, message)?;
            if current.deleted {
                return Ok(current);
            }
            let ts = next_ts(tx, now)?;
            tx.execute(
                "UPDATE messages SET body = '', deleted = 1, updated_ts = ?2 WHERE rowid = ?1",
                params![rowid, ts],
            )?;
            record_change(tx, conversation.as_str(), KIND_MESSAGE, &rowid.to_string())?;
            Ok(load_message(tx, rowid)?)
        })
    }

    fn mark_read(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        message: &MessageId,
        now: Millis,
    ) -> Result<ReadMarker, StorageError> {
        self.write(|tx| {
            ensure_member(tx, conversation.as_str(), user)?;
            let target = message_in(tx, conversation, message)?;
            let key = message_key(&target)?;
            let current = load_read_marker(tx, conversation.as_str(), user.as_str()).optional()?;
            if let Some(current) = current {
                let current_key = (
                    current.last_read_server_ts,
                    parse_message_id(&current.last_read_message_id).unwrap_or(0),
                );
                if current_key >= key {
                    return Ok(current);
                }
            }
            let ts = next_ts(tx, now)?;
            tx.execute(
                "INSERT OR REPLACE INTO read_markers
                     (conversation_id, user_id, message_rowid, message_server_ts, updated_ts)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![conversation.as_str(), user.as_str(), key.1, key.0, ts],
            )?;
            record_change(tx, conversation.as_str(), KIND_READ_MARKER, user.as_str())?;
            Ok(load_read_marker(tx, conversation.as_str(), user.as_str())?)
        })
    }
}

/// The next server stamp: the clock's reading, but always after the previous stamp.
fn next_ts(tx: &Transaction<'_>, now: Millis) -> rusqlite::Result<Millis> {
    tx.prepare_cached(
        "UPDATE server_clock SET last_ts = MAX(?1, last_ts + 1) WHERE id = 1 RETURNING last_ts",
    )?
    .query_row([now], |row| row.get(0))
}

/// Moves (or adds) the entity's row to the end of the change log.
fn record_change(
    tx: &Transaction<'_>,
    conversation: &str,
    kind: &str,
    key: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO changes (conversation_id, kind, entity_key) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![conversation, kind, key])?;
    Ok(())
}

/// The position of the newest change, 0 when the log is empty.
fn head(tx: &Transaction<'_>) -> rusqlite::Result<Seq> {
    tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |row| {
        row.get(0)
    })
}

/// Whether a history position lies past every stamp or message the server has given out.
fn history_ahead(tx: &Transaction<'_>, (ts, rowid): MessageKey) -> rusqlite::Result<bool> {
    tx.query_row(
        "SELECT ?1 > (SELECT last_ts FROM server_clock WHERE id = 1)
             OR ?2 > (SELECT COALESCE(MAX(rowid), 0) FROM messages)",
        params![ts, rowid],
        |row| row.get(0),
    )
}

fn ensure_member(
    tx: &Transaction<'_>,
    conversation: &str,
    user: &UserId,
) -> Result<(), StorageError> {
    let member = tx
        .prepare_cached("SELECT 1 FROM members WHERE conversation_id = ?1 AND user_id = ?2")?
        .exists(params![conversation, user.as_str()])?;
    if member {
        Ok(())
    } else {
        Err(StorageError::ConversationNotFound)
    }
}

/// A message of `conversation` (the user must be a member), or `MessageNotFound`.
fn message_in(
    tx: &Transaction<'_>,
    conversation: &ConversationId,
    message: &MessageId,
) -> Result<Message, StorageError> {
    let rowid = parse_message_id(message).ok_or(StorageError::MessageNotFound)?;
    let found = load_message(tx, rowid).optional()?;
    match found {
        Some(found) if found.conversation_id == *conversation => Ok(found),
        _ => Err(StorageError::MessageNotFound),
    }
}

/// The user's own message in a conversation they are a member of.
fn own_message(
    tx: &Transaction<'_>,
    user: &UserId,
    conversation: &ConversationId,
    message: &MessageId,
) -> Result<(i64, Message), StorageError> {
    ensure_member(tx, conversation.as_str(), user)?;
    let found = message_in(tx, conversation, message)?;
    if found.sender_id != *user {
        return Err(StorageError::Forbidden);
    }
    let rowid = parse_message_id(&found.id).ok_or(StorageError::MessageNotFound)?;
    Ok((rowid, found))
}

fn load_change(
    tx: &Transaction<'_>,
    conversation: &str,
    kind: &str,
    key: &str,
) -> rusqlite::Result<Change> {
    Ok(match kind {
        KIND_CONVERSATION => Change::Conversation {
            conversation: load_conversation(tx, key)?,
        },
        KIND_MESSAGE => Change::Message {
            message: load_message(tx, key.parse().unwrap_or(-1))?,
        },
        _ => Change::ReadMarker {
            read_marker: load_read_marker(tx, conversation, key)?,
        },
    })
}

fn load_conversation(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Conversation> {
    let members = tx
        .prepare_cached(
            "SELECT u.id, u.display_name FROM members m JOIN users u ON u.id = m.user_id
             WHERE m.conversation_id = ?1 ORDER BY u.id",
        )?
        .query_map([id], read_user)?
        .collect::<Result<Vec<_>, _>>()?;
    tx.prepare_cached("SELECT id, title, created_ts, updated_ts FROM conversations WHERE id = ?1")?
        .query_row([id], |row| {
            Ok(Conversation {
                id: ConversationId::new(row.get::<_, String>(0)?),
                title: row.get(1)?,
                members,
                created_ts: row.get(2)?,
                updated_ts: row.get(3)?,
            })
        })
}

fn load_message(tx: &Transaction<'_>, rowid: i64) -> rusqlite::Result<Message> {
    tx.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE rowid = ?1"
    ))?
    .query_row([rowid], read_message)
}

fn load_read_marker(
    tx: &Transaction<'_>,
    conversation: &str,
    user: &str,
) -> rusqlite::Result<ReadMarker> {
    tx.prepare_cached(
        "SELECT message_rowid, message_server_ts, updated_ts FROM read_markers
         WHERE conversation_id = ?1 AND user_id = ?2",
    )?
    .query_row(params![conversation, user], |row| {
        Ok(ReadMarker {
            conversation_id: ConversationId::new(conversation),
            user_id: UserId::new(user),
            last_read_message_id: message_id(row.get(0)?),
            last_read_server_ts: row.get(1)?,
            updated_ts: row.get(2)?,
        })
    })
}

fn read_user(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: UserId::new(row.get::<_, String>(0)?),
        display_name: row.get(1)?,
    })
}

fn read_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: message_id(row.get(0)?),
        conversation_id: ConversationId::new(row.get::<_, String>(1)?),
        client_message_id: ClientMessageId::new(row.get::<_, String>(2)?),
        sender_id: UserId::new(row.get::<_, String>(3)?),
        body: row.get(4)?,
        server_ts: row.get(5)?,
        updated_ts: row.get(6)?,
        edited: row.get(7)?,
        deleted: row.get(8)?,
    })
}

/// Message ids are the row id, zero-padded so that bytewise order is numeric order.
fn message_id(rowid: i64) -> MessageId {
    MessageId::new(format!("m{rowid:012}"))
}

fn parse_message_id(id: &MessageId) -> Option<i64> {
    let digits = id.as_str().strip_prefix('m')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn message_key(message: &Message) -> rusqlite::Result<MessageKey> {
    let rowid = parse_message_id(&message.id).ok_or(rusqlite::Error::InvalidQuery)?;
    Ok((message.server_ts, rowid))
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_databases_sync_every_commit_to_disk() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chat.db");
        let storage = SqliteStorage::open(path.to_str().expect("UTF-8 path")).expect("open");
        let conn = storage.lock();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .expect("journal_mode");
        let synchronous: i64 = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .expect("synchronous");
        assert_eq!(
            (mode.as_str(), synchronous),
            ("wal", 2),
            "WAL with FULL (2)"
        );
    }
}
