//! The local store: what the engine persists, the operations it asks for, and the [`Store`] trait
//! that the in-memory store ([`crate::MemoryStore`]) and the IndexedDB store implement.
//!
//! The engine never reads the store while it runs; it asks for writes ([`Batch`]es of
//! [`StoreOp`]s, each batch applied atomically, in the order emitted) and reads its own state once
//! at start ([`Store::load`]). The app reads conversations and messages through the store directly.

use crate::event::ChangeSet;
use chat_sync_protocol::{
    ClientMessageId, Conversation, ConversationId, Cursor, Message, MessageId, Millis, ReadMarker,
    UserId,
};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Optimistic messages sort after every server message (server stamps are far below this), in
/// compose order. It stays below 2^53 so JavaScript numbers hold it exactly.
pub const OPTIMISTIC_SORT_BASE: Millis = 4_000_000_000_000_000;

/// Where a message stands, as the app shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MessageStatus {
    /// Composed here, waiting in the outbox (or being sent right now).
    Pending,
    /// Held by the server.
    Sent,
    /// Refused by the server, or expired; waits for the user to retry or discard it.
    Failed,
}

/// Why a message failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// A stable code: the server's error code, or `expired`.
    pub code: String,
    /// For people.
    pub message: String,
}

/// A message as the local store holds it: a server message, or an optimistic one composed here.
///
/// Keyed by `(sender_id, client_message_id)`, so the server's copy of an optimistic message lands
/// on the same record and replaces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalMessage {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The sending client's id for the message.
    pub client_message_id: ClientMessageId,
    /// The sender.
    pub sender_id: UserId,
    /// The text; empty for a tombstone.
    pub body: String,
    /// Pending, sent or failed.
    pub status: MessageStatus,
    /// Why it failed, when it did.
    pub failure: Option<Failure>,
    /// The server's id, once the server holds it.
    pub id: Option<MessageId>,
    /// The server's creation stamp, once the server holds it.
    pub server_ts: Option<Millis>,
    /// The server's last-write stamp (last-write-wins key), once the server holds it.
    pub updated_ts: Option<Millis>,
    /// Edited after it was sent.
    pub edited: bool,
    /// Deleted (a tombstone).
    pub deleted: bool,
    /// Order within the conversation: `server_ts` for server messages, after all of them
    /// (`OPTIMISTIC_SORT_BASE + outbox sequence`) for optimistic ones.
    pub sort_ts: Millis,
    /// When it was composed, by this device's clock (optimistic messages only).
    pub composed_at: Option<Millis>,
}

impl LocalMessage {
    /// The server's message as stored locally.
    pub fn from_server(message: Message) -> Self {
        Self {
            conversation_id: message.conversation_id,
            client_message_id: message.client_message_id,
            sender_id: message.sender_id,
            body: message.body,
            status: MessageStatus::Sent,
            failure: None,
            id: Some(message.id),
            server_ts: Some(message.server_ts),
            updated_ts: Some(message.updated_ts),
            edited: message.edited,
            deleted: message.deleted,
            sort_ts: message.server_ts,
            composed_at: None,
        }
    }

    /// The optimistic copy of an outbox entry.
    pub fn optimistic(entry: &OutboxEntry, sender: &UserId) -> Self {
        let (status, failure) = match &entry.failure {
            Some(failure) => (MessageStatus::Failed, Some(failure.clone())),
            None => (MessageStatus::Pending, None),
        };
        Self {
            conversation_id: entry.conversation_id.clone(),
            client_message_id: entry.client_message_id.clone(),
            sender_id: sender.clone(),
            body: entry.body.clone(),
            status,
            failure,
            id: None,
            server_ts: None,
            updated_ts: None,
            edited: false,
            deleted: false,
            sort_ts: OPTIMISTIC_SORT_BASE + entry.seq as Millis,
            composed_at: Some(entry.composed_at),
        }
    }

    /// The store key: `(sender, clientMessageId)`.
    pub fn key(&self) -> (&UserId, &ClientMessageId) {
        (&self.sender_id, &self.client_message_id)
    }

    /// When it counts as activity in its conversation (the conversation list's order): the
    /// server's stamp, or, while optimistic, when it was composed. Both stores use it.
    pub fn activity(&self) -> Option<Millis> {
        self.server_ts.or(self.composed_at)
    }

    /// Whether the server holds this version (rather than it being optimistic).
    pub fn is_from_server(&self) -> bool {
        self.updated_ts.is_some()
    }

    /// Whether `self` may replace `existing` under last-write-wins: a server version replaces an
    /// optimistic copy or an older server version; an optimistic copy never replaces a server one.
    pub fn supersedes(&self, existing: &LocalMessage) -> bool {
        match (self.updated_ts, existing.updated_ts) {
            (Some(new), Some(old)) => new > old,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => true,
        }
    }
}

/// How far down the cache holds a conversation's history without gaps: every server message
/// that sorts at or above the floor (those newer than the change-feed cursor once the feed brings
/// them). [`Store::messages`] shows nothing below it: a message the feed brings from further down
/// (an edit of an evicted message) waits there until back-fill reaches it.
///
/// A store may hold no floor for a conversation: the cache then counts as whole from its oldest
/// server message. Eviction, which keeps the newest messages, only forgets floors: it deletes and
/// never writes, so it works when storage is full. A batch with a server message, an
/// `ExtendHistory` or a `RestartHistory` for such a conversation first records its floor from the
/// cache as it was before the batch: its oldest server message, or `Unknown` when none is cached.
// Externally tagged (serde's default): reading an internally tagged enum buffers it in serde's
// generic `Content` first, which costs the wasm some 7 KB (docs/benchmarks.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HistoryFloor {
    /// Down to the conversation's first message: there is nothing older to load.
    Complete,
    /// Down to this server message; back-fill goes on below it.
    #[serde(rename_all = "camelCase")]
    From {
        /// Its `sort_ts`.
        sort_ts: Millis,
        /// Its server id.
        id: MessageId,
    },
    /// Nothing yet: a conversation new to this device, whose earlier messages lie behind the
    /// feed's cursor. Back-fill starts from the newest message.
    Unknown,
}

impl HistoryFloor {
    /// The floor at a server message (`None` for an optimistic one).
    pub fn at(message: &LocalMessage) -> Option<Self> {
        Some(Self::From {
            sort_ts: message.server_ts?,
            id: message.id.clone()?,
        })
    }

    /// The floor of a cache that is whole from `oldest`, its oldest server message (`None`: it
    /// holds none): how a conversation without a recorded floor counts.
    pub fn whole_from(oldest: Option<&LocalMessage>) -> Self {
        oldest.and_then(Self::at).unwrap_or(Self::Unknown)
    }

    /// The lowest `sort_ts` [`Store::messages`] shows (optimistic messages sort above every floor).
    pub fn shows_from(&self) -> Millis {
        match self {
            Self::Complete => Millis::MIN,
            Self::From { sort_ts, .. } => *sort_ts,
            Self::Unknown => OPTIMISTIC_SORT_BASE,
        }
    }

    fn cmp_height(&self, other: &Self) -> Ordering {
        self.shows_from().cmp(&other.shows_from())
    }

    /// After the cache gained every server message from `to` up to `from` (exclusive; `Unknown`:
    /// up to the newest): lowered to `to` when that range meets the cached one (`from` at or
    /// above `self`), unchanged when a gap lies between (eviction raised the floor meanwhile).
    pub fn extended(self, from: &Self, to: &Self) -> Self {
        let meets = from.cmp_height(&self).is_ge();
        if meets && to.cmp_height(&self).is_lt() {
            to.clone()
        } else {
            self
        }
    }

    /// After a back-fill below `from` was refused (the server no longer has that message):
    /// `Unknown` where the floor is still `from`, unchanged otherwise.
    pub fn restarted(self, from: &Self) -> Self {
        if self == *from {
            Self::Unknown
        } else {
            self
        }
    }

    /// Whether eviction that left `oldest_kept` as the conversation's oldest server message
    /// (`None`: none) took messages at or above this floor, which then no longer holds: the store
    /// forgets it, so the cache counts as whole from the oldest kept message.
    pub fn is_below(&self, oldest_kept: Option<&LocalMessage>) -> bool {
        Self::whole_from(oldest_kept).cmp_height(self).is_gt()
    }
}

/// A message composed here that the server has not confirmed yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    /// Chosen at compose time, reused on every attempt.
    pub client_message_id: ClientMessageId,
    /// Where it goes.
    pub conversation_id: ConversationId,
    /// The text.
    pub body: String,
    /// Compose order across the outbox; delivery follows it per conversation.
    pub seq: u64,
    /// When it was composed, by this device's clock.
    pub composed_at: Millis,
    /// Set when the server refused it or it expired; it then waits for retry or discard.
    pub failure: Option<Failure>,
}

impl OutboxEntry {
    /// Compose order: by `seq`, then (two tabs may pick the same `seq`) by client message id.
    /// Stores sort [`PersistedState::outbox`] with it.
    pub fn compose_order(a: &Self, b: &Self) -> std::cmp::Ordering {
        (a.seq.cmp(&b.seq)).then_with(|| a.client_message_id.cmp(&b.client_message_id))
    }
}

/// The conversation list's order: newest activity first, then by id. Both stores sort with it;
/// `a` and `b` are each a conversation's last activity and id.
pub fn conversation_order(
    a: (Millis, &ConversationId),
    b: (Millis, &ConversationId),
) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1))
}

/// A read marker this user set (with [`crate::Engine::mark_read`]) that the server does not have
/// yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingReadMarker {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The newest message the user has read.
    pub message_id: MessageId,
    /// That message's `server_ts`.
    pub server_ts: Millis,
}

/// What the engine reads from the store at start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistedState {
    /// Where the change feed continues; `None` before the first full sync.
    pub cursor: Option<Cursor>,
    /// Every outbox entry, in `seq` (compose) order.
    pub outbox: Vec<OutboxEntry>,
    /// When the last sync finished, by this device's clock.
    pub last_sync: Option<Millis>,
    /// When maintenance last ran, by this device's clock.
    pub last_maintenance: Option<Millis>,
    /// This user's read markers not sent yet, by conversation.
    #[serde(default)]
    pub pending_read_markers: Vec<PendingReadMarker>,
}

/// One write. A [`Batch`] of them is applied atomically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// Stores a conversation unless the stored one's `updated_ts` is equal or higher. A
    /// conversation new to the store starts at [`HistoryFloor::Unknown`] unless it has a floor.
    PutConversation(Conversation),
    /// Stores a message where [`LocalMessage::supersedes`] the stored one (or none is stored).
    PutMessage(LocalMessage),
    /// Removes an optimistic message; a server message under the key is kept.
    RemoveOptimistic {
        /// The sender (this user).
        sender: UserId,
        /// The message's client id.
        client_message_id: ClientMessageId,
    },
    /// Stores a read marker unless the stored one's `updated_ts` is equal or higher.
    PutReadMarker(ReadMarker),
    /// Adds or replaces an outbox entry.
    PutOutbox(OutboxEntry),
    /// Removes an outbox entry.
    RemoveOutbox(ClientMessageId),
    /// Moves the compose time of an outbox entry back by `by` (forward when negative), with its
    /// optimistic message: the device's clock was set back. Only while the store holds the entry
    /// pending (not failed); a server message under its key stays ([`LocalMessage::supersedes`]).
    RestampOutbox {
        /// The entry.
        client_message_id: ClientMessageId,
        /// Its conversation (for those told what changed).
        conversation: ConversationId,
        /// The sender of its optimistic message (this user).
        sender: UserId,
        /// How far back.
        by: Millis,
    },
    /// Maintenance's expiry of an outbox entry, by what the store holds: composed before
    /// `composed_before`, a pending entry is marked failed with `failure`, a failed one is
    /// removed (only where `failed` says the engine reported it failed already), each with its
    /// optimistic message; one gone (delivered, discarded) or composed since (retried) is left
    /// as it is, and so is one failed that the engine held pending (another tab failed it
    /// lately: the user gets a maintenance interval to see it and retry). A server message
    /// under its key stays. The [`ApplyReport`] names what it did, or the entry it left.
    ExpireOutbox {
        /// The entry.
        client_message_id: ClientMessageId,
        /// Its conversation (for those told what changed).
        conversation: ConversationId,
        /// The sender of its optimistic message (this user).
        sender: UserId,
        /// Only an entry composed before this (by the device's clock) expires.
        composed_before: Millis,
        /// Why a pending one failed.
        failure: Failure,
        /// The engine held the entry failed (it reported it failed already): only then is one
        /// the store holds failed removed.
        failed: bool,
    },
    /// The app's retry of a failed outbox entry, by what the store holds: only while the store
    /// holds it failed, its failure is cleared and its compose time set to `composed_at`, and
    /// its optimistic message written pending. One the store holds pending (retried in another
    /// tab) or not at all (delivered, discarded, removed by maintenance) is left as it is: the
    /// engine that wrote this may be behind the store. A server message under its key stays.
    /// The [`ApplyReport`] names the entry it retried, or the one it left.
    RetryOutbox {
        /// The entry.
        client_message_id: ClientMessageId,
        /// Its conversation (for those told what changed).
        conversation: ConversationId,
        /// The sender of its optimistic message (this user).
        sender: UserId,
        /// Its new compose time (by the device's clock): its expiry starts over.
        composed_at: Millis,
    },
    /// The app's discard of a failed outbox entry, by what the store holds: only while the store
    /// holds it failed, it is removed with its optimistic message. One the store holds pending
    /// (retried in another tab) or not at all (delivered, discarded) is left as it is, and a
    /// server message under its key always stays. The [`ApplyReport`] names the entry it
    /// discarded, or the one it left.
    DiscardOutbox {
        /// The entry.
        client_message_id: ClientMessageId,
        /// Its conversation (for those told what changed).
        conversation: ConversationId,
        /// The sender of its optimistic message (this user).
        sender: UserId,
    },
    /// Sets (or, with `None`, forgets) the change-feed cursor.
    SetCursor(Option<Cursor>),
    /// Records when the last sync finished.
    SetLastSync(Millis),
    /// Records when maintenance last ran.
    SetLastMaintenance(Millis),
    /// Replaces the read markers not sent yet.
    SetPendingReadMarkers(Vec<PendingReadMarker>),
    /// Moves a conversation's [`HistoryFloor`] down: the cache now holds every server message
    /// from `to` up to `from` ([`HistoryFloor::extended`]).
    ExtendHistory {
        /// The conversation.
        conversation: ConversationId,
        /// Where the range starts (exclusive): the floor a back-fill asked below, or `Unknown`
        /// (up to the newest message).
        from: HistoryFloor,
        /// Where it ends.
        to: HistoryFloor,
    },
    /// Sends a conversation's back-fill back to the newest message: the server no longer has the
    /// message `from` names (it purged old history, or its database was replaced). Where the
    /// floor is still `from`, it becomes [`HistoryFloor::Unknown`].
    RestartHistory {
        /// The conversation.
        conversation: ConversationId,
        /// The floor the refused back-fill asked below.
        from: HistoryFloor,
    },
    /// Removes everything the server sent: conversations, server messages, read markers and
    /// history floors. The outbox, optimistic messages and the meta record stay. The engine writes
    /// it with the cursor reset when the server refuses the cursor (its database was replaced), so
    /// the sync from the start leaves nothing of the old database behind.
    ForgetServerData,
    /// Keeps the newest `keep` server messages (tombstones included) of each conversation and
    /// removes older ones; optimistic messages are never removed. Each conversation that lost
    /// messages counts as whole from its oldest kept one: its floor is forgotten where it lies
    /// below that ([`HistoryFloor::is_below`]).
    EvictHistory {
        /// Server messages kept per conversation.
        keep: usize,
    },
    /// Removes tombstones whose `updated_ts` is older than `before`.
    CompactTombstones {
        /// Server stamp bound.
        before: Millis,
    },
}

/// Identifies a batch so its result can be matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId(pub u64);

/// Writes applied atomically: all or none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Reported back with the result.
    pub id: BatchId,
    /// The writes, in order.
    pub ops: Vec<StoreOp>,
}

/// What a batch removed, expired or retried, and the outbox entries it left as they were
/// (maintenance ops, the outbox ops that act by what the store holds, and
/// [`StoreOp::ForgetServerData`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    /// Server messages evicted by [`StoreOp::EvictHistory`].
    pub evicted_messages: u64,
    /// The conversations they were evicted from, sorted. (Not part of the `maintenance` event.)
    #[serde(skip)]
    pub evicted_from: Vec<ConversationId>,
    /// Tombstones removed by [`StoreOp::CompactTombstones`].
    pub compacted_tombstones: u64,
    /// Outbox entries [`StoreOp::ExpireOutbox`] marked failed, in the order of the ops. (Not
    /// part of the `maintenance` event.)
    #[serde(skip)]
    pub outbox_expired: Vec<ClientMessageId>,
    /// Failed outbox entries it removed, in the order of the ops. (Not part of the
    /// `maintenance` event.)
    #[serde(skip)]
    pub outbox_removed: Vec<ClientMessageId>,
    /// Failed outbox entries [`StoreOp::RetryOutbox`] queued again, in the order of the ops.
    /// (Not part of the `maintenance` event.)
    #[serde(skip)]
    pub outbox_retried: Vec<ClientMessageId>,
    /// Failed outbox entries [`StoreOp::DiscardOutbox`] removed, in the order of the ops. (Not
    /// part of the `maintenance` event.)
    #[serde(skip)]
    pub outbox_discarded: Vec<ClientMessageId>,
    /// The outbox entries an [`StoreOp::ExpireOutbox`], [`StoreOp::RetryOutbox`] or
    /// [`StoreOp::DiscardOutbox`] left as they were, as the store holds them, in the order of
    /// the ops (one it does not hold is not named): the engine that wrote the op takes them, its
    /// copy being behind the store's. (Not part of the `maintenance` event.)
    #[serde(skip)]
    pub outbox_held: Vec<OutboxEntry>,
    /// Bytes the origin used before a batch with maintenance ops, where the store can tell
    /// (`navigator.storage.estimate()`).
    pub storage_used_before: Option<u64>,
    /// The same, after the batch.
    pub storage_used_after: Option<u64>,
    /// What [`StoreOp::ForgetServerData`] removed: the conversations it emptied (sorted) and how
    /// many messages. (Not part of the `maintenance` event.)
    #[serde(skip)]
    pub forgotten: ChangeSet,
}

/// A conversation as a conversation list shows it: [`Store::conversation_summaries`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationSummary {
    /// The conversation.
    pub conversation: Conversation,
    /// Its newest message that [`Store::messages`] shows and that is not deleted; an optimistic
    /// one included.
    pub last_message: Option<LocalMessage>,
    /// Its unread messages ([`UnreadCount`]), up to [`ConversationSummary::UNREAD_MAX`].
    pub unread: usize,
}

impl ConversationSummary {
    /// Where counting unread messages stops (a badge shows "99+"), so that a conversation with
    /// thousands never read costs no more to list than one with a hundred.
    pub const UNREAD_MAX: usize = 100;
}

/// Counts a conversation's unread messages, given the messages [`Store::messages`] shows (deleted
/// ones included) newest first: other members' messages, not deleted, above the user's read
/// marker (the stored one, or a [`PendingReadMarker`] ahead of it) and above the user's own
/// newest message (sent or not: replying counts as reading what came before), up to
/// [`ConversationSummary::UNREAD_MAX`]. Both stores count with it.
#[derive(Debug)]
pub struct UnreadCount<'a> {
    me: &'a UserId,
    read_up_to: Option<Millis>,
    /// The messages counted so far.
    pub count: usize,
}

impl<'a> UnreadCount<'a> {
    /// Nothing counted yet, for `me`, who has read up to `read_up_to` (a `server_ts`; `None`:
    /// nothing).
    pub fn new(me: &'a UserId, read_up_to: Option<Millis>) -> Self {
        Self {
            me,
            read_up_to,
            count: 0,
        }
    }

    /// Takes the next message down; `false` once no message further down can count.
    pub fn next(&mut self, message: &LocalMessage) -> bool {
        let read = (message.server_ts).is_none_or(|ts| self.read_up_to.is_some_and(|r| ts <= r));
        if &message.sender_id == self.me || read {
            return false;
        }
        if !message.deleted {
            self.count += 1;
        }
        self.count < ConversationSummary::UNREAD_MAX
    }
}

/// Why a store call failed. The batch was rolled back in every case.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage quota is used up. The engine runs maintenance and retries.
    #[error("storage quota exceeded")]
    QuotaExceeded,
    /// The database is closed, blocked or being upgraded. The engine retries later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the engine retries later and reports it.
    #[error("store failure: {0}")]
    Failed(String),
}

/// The local store. Implementations: [`crate::MemoryStore`] and the IndexedDB store of the wasm
/// client; both pass the shared contract suite (`contract` module, feature `contract-tests`).
#[allow(async_fn_in_trait)]
pub trait Store {
    /// Reads the engine's persisted state.
    async fn load(&self) -> Result<PersistedState, StoreError>;

    /// Applies `ops` atomically, in order.
    async fn apply(&self, ops: &[StoreOp]) -> Result<ApplyReport, StoreError>;

    /// Every conversation, most recent activity first. A conversation's activity is the highest
    /// of its `updated_ts`, its server messages' `server_ts` and its optimistic messages'
    /// `composed_at`; ties go by id.
    async fn conversations(&self) -> Result<Vec<Conversation>, StoreError>;

    /// Up to `limit` messages of a conversation that sort before `before` (all when `None`) and
    /// not below its [`HistoryFloor`], as the newest ones in ascending order; tombstones included.
    async fn messages(
        &self,
        conversation: &ConversationId,
        before: Option<Millis>,
        limit: usize,
    ) -> Result<Vec<LocalMessage>, StoreError>;

    /// [`Store::conversations`], each with its last message and how many messages `me` has not
    /// read ([`ConversationSummary`]), read at once.
    async fn conversation_summaries(
        &self,
        me: &UserId,
    ) -> Result<Vec<ConversationSummary>, StoreError>;

    /// How far down [`Store::messages`] shows a conversation, and where back-fill goes on from.
    /// Without a recorded floor (see [`HistoryFloor`]): its oldest cached server message, or
    /// `Unknown` when there is none.
    async fn history_floor(
        &self,
        conversation: &ConversationId,
    ) -> Result<HistoryFloor, StoreError>;

    /// The read markers of a conversation.
    async fn read_markers(
        &self,
        conversation: &ConversationId,
    ) -> Result<Vec<ReadMarker>, StoreError>;
}
