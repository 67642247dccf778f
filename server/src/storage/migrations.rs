//! Schema migrations: numbered steps, applied in order, each recorded in `schema_version`.
//!
//! Steps are never edited once shipped; a schema change is a new step at the end.

use rusqlite::{Connection, Transaction};

/// One schema step.
type Step = fn(&Transaction<'_>) -> rusqlite::Result<()>;

/// The steps, in order; step `i` brings the schema to version `i + 1`.
const STEPS: &[Step] = &[v1_initial_schema, v2_database_id];

/// Applies every step the database has not seen yet, each in its own transaction, and returns the
/// database's schema version (higher than [`latest_version`] when a newer server wrote it).
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<usize> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version INTEGER PRIMARY KEY,
             applied_at TEXT NOT NULL DEFAULT (datetime('now'))
         );",
    )?;
    let current: usize = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |row| row.get(0),
    )?;
    for (index, step) in STEPS.iter().enumerate().skip(current) {
        let version = index + 1;
        let tx = conn.transaction()?;
        step(&tx)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version],
        )?;
        tx.commit()?;
        tracing::info!(version, "applied schema migration");
    }
    Ok(current.max(STEPS.len()))
}

/// The newest schema version this build knows.
pub(super) fn latest_version() -> usize {
    STEPS.len()
}

/// Version 1: users, tokens, conversations, members, messages, read markers and the change log.
///
/// Every endpoint is an index scan: the feed walks `changes` by primary key (or
/// `changes_by_conversation`), history walks `messages_by_order`, idempotent sends probe
/// `messages_by_client_id`, membership checks use the `members` primary key.
fn v1_initial_schema(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE users (
             id TEXT PRIMARY KEY,
             display_name TEXT NOT NULL,
             created_ts INTEGER NOT NULL
         );
         CREATE TABLE tokens (
             token_sha256 TEXT PRIMARY KEY,
             user_id TEXT NOT NULL REFERENCES users(id)
         );
         CREATE TABLE conversations (
             id TEXT PRIMARY KEY,
             title TEXT NOT NULL,
             created_ts INTEGER NOT NULL,
             updated_ts INTEGER NOT NULL
         );
         CREATE TABLE members (
             conversation_id TEXT NOT NULL REFERENCES conversations(id),
             user_id TEXT NOT NULL REFERENCES users(id),
             PRIMARY KEY (conversation_id, user_id)
         ) WITHOUT ROWID;
         CREATE INDEX members_by_user ON members(user_id, conversation_id);
         CREATE TABLE messages (
             rowid INTEGER PRIMARY KEY,
             conversation_id TEXT NOT NULL REFERENCES conversations(id),
             sender_id TEXT NOT NULL REFERENCES users(id),
             client_message_id TEXT NOT NULL,
             sent_body_sha256 TEXT NOT NULL,
             body TEXT NOT NULL,
             server_ts INTEGER NOT NULL,
             updated_ts INTEGER NOT NULL,
             edited INTEGER NOT NULL DEFAULT 0,
             deleted INTEGER NOT NULL DEFAULT 0
         );
         CREATE UNIQUE INDEX messages_by_client_id ON messages(sender_id, client_message_id);
         CREATE INDEX messages_by_order ON messages(conversation_id, server_ts, rowid);
         CREATE TABLE read_markers (
             conversation_id TEXT NOT NULL,
             user_id TEXT NOT NULL,
             message_rowid INTEGER NOT NULL,
             message_server_ts INTEGER NOT NULL,
             updated_ts INTEGER NOT NULL,
             PRIMARY KEY (conversation_id, user_id)
         ) WITHOUT ROWID;
         -- The compacted change log: one row per entity, at the position of its latest write.
         CREATE TABLE changes (
             seq INTEGER PRIMARY KEY AUTOINCREMENT,
             conversation_id TEXT NOT NULL,
             kind TEXT NOT NULL,
             entity_key TEXT NOT NULL
         );
         CREATE UNIQUE INDEX changes_by_entity ON changes(kind, conversation_id, entity_key);
         CREATE INDEX changes_by_conversation ON changes(conversation_id, seq);
         -- The last stamp handed out, so stamps stay strictly increasing across restarts.
         CREATE TABLE server_clock (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             last_ts INTEGER NOT NULL
         );
         INSERT INTO server_clock (id, last_ts) VALUES (1, 0);",
    )
}

/// Version 2: `server_meta`, with the database's random id (`database_id`), which cursors carry
/// so that a cursor from another database (this one deleted and created again) is refused.
fn v2_database_id(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE server_meta (
             key TEXT PRIMARY KEY,
             value TEXT NOT NULL
         );
         INSERT INTO server_meta (key, value) VALUES ('database_id', lower(hex(randomblob(8))));",
    )
}
