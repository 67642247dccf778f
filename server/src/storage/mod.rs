//! Storage behind a trait, so a PostgreSQL backend can follow the SQLite one.
//!
//! The trait is synchronous: handlers call it on tokio's blocking pool. Each method is one
//! transaction and holds the rules that must be checked inside it (membership, idempotent sends,
//! last-write-wins stamps), so every backend gives the same answers.

mod migrations;
mod sqlite;

pub use sqlite::SqliteStorage;

use chat_sync_protocol::{
    Change, ClientMessageId, Conversation, ConversationId, Message, MessageId, Millis, ReadMarker,
    User, UserId,
};

/// A position in the change log: every write gets the next, strictly increasing sequence number.
pub type Seq = i64;

/// A position in one conversation's message order: `(server_ts, message rowid)`.
pub type MessageKey = (Millis, i64);

/// Where a history page starts (it holds the messages strictly older than this).
#[derive(Clone, Debug)]
pub enum HistoryStart {
    /// From the newest message.
    Newest,
    /// Before a position from an earlier page's history cursor.
    Before(MessageKey),
    /// Before a message of the conversation (`beforeMessage`).
    BeforeMessage(MessageId),
}

/// Which part of the change log a feed reads.
#[derive(Clone, Debug)]
pub enum FeedScope {
    /// Every conversation the user is a member of.
    AllConversations,
    /// One conversation (the user must be a member).
    Conversation(ConversationId),
}

/// What a feed read returns, before the cursor is encoded.
#[derive(Clone, Debug)]
pub struct FeedRead {
    /// The changes after the requested position, in log order.
    pub changes: Vec<Change>,
    /// Where the next read continues.
    pub next: Seq,
    /// Whether more changes follow right away.
    pub has_more: bool,
}

/// What a history read returns, before the cursor is encoded.
#[derive(Clone, Debug)]
pub struct HistoryRead {
    /// Messages and tombstones, newest first.
    pub messages: Vec<Message>,
    /// The position of the oldest message returned, when older ones exist.
    pub next_before: Option<MessageKey>,
}

/// The result of a send: the message, and whether this call created it.
#[derive(Clone, Debug)]
pub struct SendOutcome {
    /// The message as stored.
    pub message: Message,
    /// False when the `clientMessageId` was already known (an idempotent replay).
    pub created: bool,
}

/// Why a storage call refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The conversation does not exist or the user is not a member.
    #[error("conversation not found")]
    ConversationNotFound,
    /// The message does not exist in that conversation.
    #[error("message not found")]
    MessageNotFound,
    /// The user may not change this message (not the sender).
    #[error("only the sender may change a message")]
    Forbidden,
    /// The `clientMessageId` is already used for another conversation or body.
    #[error("clientMessageId {0} is already used for another message")]
    ClientMessageIdConflict(ClientMessageId),
    /// The message is deleted and cannot be edited.
    #[error("the message is deleted")]
    MessageDeleted,
    /// A member id names no user.
    #[error("unknown user {0}")]
    UnknownUser(UserId),
    /// A feed cursor names a position past the end of the log, or a history cursor one past
    /// every message (the database was replaced).
    #[error("the cursor is ahead of this server's data; sync from the start")]
    CursorAhead,
    /// The user id is taken (creating users).
    #[error("user {0} already exists")]
    UserExists(UserId),
    /// The database failed; the transaction was rolled back.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
}

/// Everything the server stores. Each method is one atomic transaction.
pub trait Storage: Send + Sync + 'static {
    /// A random id given to the database when it was created. Cursors carry it, so a cursor
    /// from another database (this one deleted and created again) is refused, not misread.
    fn database_id(&self) -> &str;

    /// The user a bearer token belongs to, if any.
    fn user_for_token(&self, token: &str) -> Result<Option<User>, StorageError>;

    /// Creates a user who signs in with `token`.
    fn create_user(&self, user: &User, token: &str, now: Millis) -> Result<(), StorageError>;

    /// The user's conversations, most recently created first.
    fn conversations(&self, user: &UserId) -> Result<Vec<Conversation>, StorageError>;

    /// Creates a conversation of `user` and `members`.
    fn create_conversation(
        &self,
        user: &UserId,
        title: &str,
        members: &[UserId],
        now: Millis,
    ) -> Result<Conversation, StorageError>;

    /// Changes after `after` in `scope`, at most `limit`.
    fn feed(
        &self,
        user: &UserId,
        scope: &FeedScope,
        after: Seq,
        limit: u32,
    ) -> Result<FeedRead, StorageError>;

    /// Messages of a conversation older than `start` (newest first), at most `limit`.
    fn history(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        start: &HistoryStart,
        limit: u32,
    ) -> Result<HistoryRead, StorageError>;

    /// Stores a message unless the user's `clientMessageId` is known (idempotent send).
    fn send_message(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        client_message_id: &ClientMessageId,
        body: &str,
        now: Millis,
    ) -> Result<SendOutcome, StorageError>;

    /// Replaces the body of the user's own message.
    fn edit_message(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        message: &MessageId,
        body: &str,
        now: Millis,
    ) -> Result<Message, StorageError>;

    /// Turns the user's own message into a tombstone.
    fn delete_message(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        message: &MessageId,
        now: Millis,
    ) -> Result<Message, StorageError>;

    /// Moves the user's read marker forward to `message`.
    fn mark_read(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        message: &MessageId,
        now: Millis,
    ) -> Result<ReadMarker, StorageError>;
}
