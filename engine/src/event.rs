//! What the engine tells the app, always after the store holds what the event describes.

use crate::status::{Status, SyncError};
use crate::store::{ApplyReport, Failure, LocalMessage};
use chat_sync_protocol::{ClientMessageId, ConversationId, Message};

/// Identifies a command (`force_sync`, `sync_conversation`, `load_older`, `sync_once`) so the app
/// learns when it finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

/// What a finished command did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Messages written to the store (new, edited or deleted).
    pub changes: usize,
    /// For history back-fill: whether older messages remain on the server.
    pub has_more: bool,
}

/// What changed in the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Conversations whose data (the conversation, its messages or read markers) changed.
    pub conversations: Vec<ConversationId>,
    /// Messages written (received, sent, queued, failed or removed).
    pub messages: usize,
}

impl ChangeSet {
    /// Names `conversation` among the changed ones (once, in the order first named).
    pub fn add(&mut self, conversation: &ConversationId) {
        if !self.conversations.contains(conversation) {
            self.conversations.push(conversation.clone());
        }
    }
}

/// Why a message left the outbox without being delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscardReason {
    /// The app discarded it.
    Discarded,
    /// Maintenance removed it: it failed and stayed undelivered past the optimistic TTL.
    Expired,
}

/// An event for the app.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The status changed (emitted once per change, not per input).
    StatusChanged(Status),
    /// Data in the store changed; re-read what is on screen.
    Changed(ChangeSet),
    /// A composed message is in the durable outbox and shown as pending.
    MessageQueued {
        /// The optimistic message as stored.
        message: LocalMessage,
    },
    /// The server holds the message; the optimistic copy was replaced.
    MessageSent {
        /// The message's client id.
        client_message_id: ClientMessageId,
        /// The server's copy.
        message: Message,
    },
    /// The message failed and waits for the app to retry or discard it.
    MessageFailed {
        /// The message's client id.
        client_message_id: ClientMessageId,
        /// Its conversation.
        conversation_id: ConversationId,
        /// Why.
        failure: Failure,
        /// Whether retrying may succeed (an expired message may; a refused one will not).
        retryable: bool,
    },
    /// The message left the outbox undelivered and was removed from the store.
    MessageDiscarded {
        /// The message's client id.
        client_message_id: ClientMessageId,
        /// Its conversation.
        conversation_id: ConversationId,
        /// The text, so nothing the user wrote is lost without a trace.
        body: String,
        /// Why.
        reason: DiscardReason,
    },
    /// A command finished.
    CommandFinished {
        /// The command's ticket.
        ticket: Ticket,
        /// Its result.
        result: Result<SyncSummary, SyncError>,
    },
    /// The server refused the credentials; sync is paused until
    /// [`crate::Engine::handle_credentials_changed`].
    AuthRequired,
    /// A write failed for lack of storage quota; maintenance runs and the write is retried.
    StorageFull,
    /// Maintenance finished.
    MaintenanceFinished(ApplyReport),
}
