//! Writes: batches go to the store one at a time, and what they mean for memory and the app
//! happens only after the store holds them (persist before notify).

use super::outbox::{outbox_key, OutboxKey};
use super::{Engine, Output};
use crate::event::{ChangeSet, DiscardReason, Event, SyncSummary, Ticket};
use crate::status::SyncError;
use crate::store::{
    ApplyReport, Batch, BatchId, HistoryFloor, LocalMessage, OutboxEntry, StoreError, StoreOp,
};
use chat_sync_protocol::{ClientMessageId, ConversationId, Cursor, Message, Millis};

/// Server messages each conversation keeps when the quota runs out and history is evicted.
pub const QUOTA_EVICTION_KEEP: usize = 200;

/// A batch waiting for (or being applied by) the store.
pub(super) struct PendingBatch {
    pub(super) ops: Vec<StoreOp>,
    pub(super) then: AfterPersist,
    /// Already retried once after evicting history for quota.
    pub(super) retried_after_eviction: bool,
}

/// What a batch means, acted on once the store holds it.
#[derive(Debug)]
pub(super) enum AfterPersist {
    /// A composed message is in the outbox.
    Queued {
        message: LocalMessage,
        ticket: Ticket,
    },
    /// A page of changes (feed, conversation feed or history) is stored.
    Page(PageWrite),
    /// The server's copy replaced the optimistic one.
    Sent {
        client_message_id: ClientMessageId,
        message: Message,
    },
    /// An entry is marked failed.
    Failed { entry: OutboxEntry, retryable: bool },
    /// The app's retry of a failed entry (`entry` as queued again), where the store held it
    /// failed (its report says whether).
    Retried { entry: OutboxEntry, ticket: Ticket },
    /// The app's discard of a failed entry, where the store held it failed (its report says
    /// whether).
    Discarded { entry: OutboxEntry, ticket: Ticket },
    /// The feed cursor was forgotten; the sync starts over.
    CursorReset,
    /// Outbox entries are written again, into a database deleted under the engine.
    WrittenAgain(Vec<OutboxKey>),
    /// Outbox entries carry their compose time moved with the device's clock.
    Restamped(ChangeSet),
    /// Maintenance ran; it expired `entries` where the store held them pending or failed (its
    /// report says which).
    Maintenance {
        ticket: Option<Ticket>,
        entries: Vec<OutboxEntry>,
    },
    /// History was evicted to make room after a quota error.
    Evicted,
    /// Tombstones were compacted, after a maintenance that ran before the server's time was
    /// known.
    Compacted,
    /// The server's answer to a read marker is stored.
    ReadMarker(ConversationId),
    /// A write with nothing to follow up (a broken variant's extra batch, read markers to send).
    Nothing,
    /// A write a command waits for.
    Ticket(Ticket),
}

/// A stored page and what to do next.
#[derive(Debug)]
pub(super) struct PageWrite {
    pub(super) source: PageSource,
    pub(super) changes: ChangeSet,
    pub(super) messages_pulled: usize,
    /// Outbox entries the page showed delivered (their ack was lost).
    pub(super) delivered: Vec<(ClientMessageId, Message)>,
    pub(super) has_more: bool,
}

impl AfterPersist {
    /// Whether the write stores what became of outbox entry `id`.
    fn settles(&self, id: &ClientMessageId) -> bool {
        let named = |entries: &[OutboxEntry]| entries.iter().any(|e| e.client_message_id == *id);
        match self {
            AfterPersist::Sent {
                client_message_id, ..
            } => client_message_id == id,
            AfterPersist::Failed { entry, .. }
            | AfterPersist::Retried { entry, .. }
            | AfterPersist::Discarded { entry, .. } => named(std::slice::from_ref(entry)),
            AfterPersist::Maintenance { entries, .. } => named(entries),
            AfterPersist::Page(write) => write.delivered.iter().any(|(known, _)| known == id),
            _ => false,
        }
    }
}

/// Feed pages held in memory: their ops and their write.
pub(super) type HeldPages = (Vec<StoreOp>, PageWrite);

/// `held` pages (if any) followed by the `next` ones: one write of both.
pub(super) fn after_held(held: Option<HeldPages>, (ops, write): HeldPages) -> HeldPages {
    match held {
        Some((mut held_ops, held)) => {
            held_ops.extend(ops);
            (held_ops, held.followed_by(write))
        }
        None => (ops, write),
    }
}

impl PageWrite {
    /// This (held) feed page's write followed by the next page's: one write of both.
    pub(super) fn followed_by(mut self, next: PageWrite) -> PageWrite {
        for conversation in next.changes.conversations {
            if !self.changes.conversations.contains(&conversation) {
                self.changes.conversations.push(conversation);
            }
        }
        self.changes.messages += next.changes.messages;
        self.messages_pulled += next.messages_pulled;
        self.delivered.extend(next.delivered);
        self.has_more = next.has_more;
        self.source = next.source;
        self
    }
}

/// Which pull a page belongs to.
#[derive(Debug)]
pub(super) enum PageSource {
    /// The global feed, continuing at `cursor`; `synced_at` is set on the last page (the sync
    /// time stored with it). `run` is the id of the sync run that fetched it.
    Feed {
        cursor: Cursor,
        synced_at: Option<Millis>,
        run: u64,
    },
    /// One conversation's feed, continuing at the cursor.
    Conversation(ConversationId, Cursor),
    /// One conversation's history below a floor.
    History(ConversationId, HistoryFloor),
}

impl PageSource {
    /// Where the global feed continues after this page (`None` for other pulls).
    pub(super) fn feed_cursor(&self) -> Option<&Cursor> {
        match self {
            PageSource::Feed { cursor, .. } => Some(cursor),
            _ => None,
        }
    }
}

impl Engine {
    /// Queues a batch; it goes out after the ones before it.
    pub(super) fn persist(&mut self, ops: Vec<StoreOp>, then: AfterPersist) {
        self.batches.push_back(PendingBatch {
            ops,
            then,
            retried_after_eviction: false,
        });
    }

    /// Queues a page's write. The outbox entries it shows delivered settle meanwhile: they are
    /// not sent, and maintenance does not expire them.
    pub(super) fn persist_page(&mut self, ops: Vec<StoreOp>, write: PageWrite) {
        self.settle_delivered(&write.delivered, true);
        self.persist(ops, AfterPersist::Page(write));
    }

    /// Marks the outbox entries of `delivered` settling, or no longer (unless another write
    /// settles them: [`Self::outcome_being_stored`]).
    fn settle_delivered(&mut self, delivered: &[(ClientMessageId, Message)], settling: bool) {
        let ids: Vec<&ClientMessageId> = (delivered.iter())
            .map(|(id, _)| id)
            .filter(|id| settling || !self.outcome_being_stored(id))
            .collect();
        for (_, item) in self.outbox.iter_mut() {
            if ids.contains(&&item.entry.client_message_id) {
                item.settling = settling;
            }
        }
    }

    /// Whether a batch queued or being applied stores what became of outbox entry `id` (its
    /// delivery, failure or removal): after another such write failed, it stays settling (not
    /// sent again, not expired) until that one ends.
    pub(super) fn outcome_being_stored(&self, id: &ClientMessageId) -> bool {
        let persisting = self.persisting.as_ref().map(|(_, batch)| batch);
        (self.batches.iter().chain(persisting)).any(|batch| batch.then.settles(id))
    }

    pub(super) fn emit_next_batch(&mut self) {
        if self.persisting.is_some() {
            return;
        }
        if let Some(mut batch) = self.batches.pop_front() {
            batch.ops = self.with_unsaved_read_markers(batch.ops);
            let id = BatchId(self.next_batch_id);
            self.next_batch_id += 1;
            self.outputs.push_back(Output::Persist(Batch {
                id,
                ops: batch.ops.clone(),
            }));
            self.persisting = Some((id, batch));
        }
    }

    pub(super) fn on_persisted(&mut self, id: BatchId, result: Result<ApplyReport, StoreError>) {
        let batch = match self.persisting.take() {
            Some((pending, batch)) if pending == id => batch,
            other => {
                log::error!(batch = id.0; "result for a batch that is not being applied");
                self.persisting = other;
                return;
            }
        };
        match result {
            Ok(report) => {
                self.storage_full = false;
                self.after_persist(batch.then, report);
            }
            Err(error) => self.on_batch_failed(batch, error),
        }
    }

    /// Out of quota: evict history, then try the batch once more. Otherwise give up on it.
    fn on_batch_failed(&mut self, mut batch: PendingBatch, error: StoreError) {
        log::warn!(error = error.to_string().as_str(); "store write failed");
        if error == StoreError::QuotaExceeded {
            // The status says so until a write succeeds, also when this one is given up.
            self.storage_full = true;
        }
        if error == StoreError::QuotaExceeded && !batch.retried_after_eviction {
            self.emit(Event::StorageFull);
            batch.retried_after_eviction = true;
            // A claim that a history is whole, made before the eviction, may not hold after it
            // (a back-fill finds out again).
            self.before_eviction();
            batch.ops.retain(|op| {
                !matches!(op, StoreOp::ExtendHistory { to, .. } if *to == HistoryFloor::Complete)
            });
            self.batches.push_front(batch);
            self.batches.push_front(PendingBatch {
                ops: vec![StoreOp::EvictHistory {
                    keep: QUOTA_EVICTION_KEEP,
                }],
                then: AfterPersist::Evicted,
                retried_after_eviction: true,
            });
            return;
        }
        let sync_error = SyncError::from_store(&error);
        self.last_error = Some(sync_error.clone());
        self.note_failed_read_markers_write(&batch.ops);
        match batch.then {
            AfterPersist::Queued { message, ticket } => {
                // Not stored, so not queued: the app keeps the text and hears why.
                self.outbox
                    .retain(|_, item| item.entry.client_message_id != message.client_message_id);
                self.finish_ticket(ticket, Err(sync_error));
            }
            AfterPersist::Page(page) => {
                self.settle_delivered(&page.delivered, false);
                self.on_page_write_failed(page.source, sync_error)
            }
            AfterPersist::Sent {
                client_message_id, ..
            } => self.unsettle(&client_message_id, sync_error),
            AfterPersist::Failed { entry, .. } => {
                self.unsettle(&entry.client_message_id, sync_error)
            }
            AfterPersist::Retried { entry, ticket } | AfterPersist::Discarded { entry, ticket } => {
                self.unsettle_entry(&outbox_key(&entry));
                self.finish_ticket(ticket, Err(sync_error));
            }
            // The feed brings the marker on the next sync.
            AfterPersist::ReadMarker(_) => {}
            AfterPersist::Ticket(ticket) => self.finish_ticket(ticket, Err(sync_error)),
            AfterPersist::CursorReset => self.on_cursor_reset_failed(sync_error),
            // Sent from memory all the same.
            AfterPersist::WrittenAgain(keys) => self.mark_durable(&keys),
            // The next maintenance compacts them. (A compose time not moved shows as it was.)
            AfterPersist::Evicted
            | AfterPersist::Compacted
            | AfterPersist::Restamped(_)
            | AfterPersist::Nothing => {}
            AfterPersist::Maintenance { ticket, entries } => {
                self.on_maintenance_failed(ticket, &entries, sync_error);
            }
        }
    }

    /// The outcome of an entry could not be stored: it goes again (sends are idempotent), after
    /// a backoff, as after a failed send (a store that keeps failing must not make a loop).
    fn unsettle(&mut self, client_message_id: &ClientMessageId, error: SyncError) {
        let Some(key) = self.outbox_key_of(client_message_id) else {
            return;
        };
        let settled_elsewhere = self.outcome_being_stored(client_message_id);
        if let Some(item) = self.outbox.get_mut(&key) {
            item.settling = settled_elsewhere;
        }
        self.retry_send(key, error, None);
    }

    fn after_persist(&mut self, then: AfterPersist, report: ApplyReport) {
        match then {
            AfterPersist::Queued { message, ticket } => {
                if let Some(item) = self
                    .outbox
                    .iter_mut()
                    .map(|(_, item)| item)
                    .find(|item| item.entry.client_message_id == message.client_message_id)
                {
                    item.durable = true;
                }
                self.emit_changed(vec![message.conversation_id.clone()], 1);
                self.emit(Event::MessageQueued { message });
                self.finish_ticket(ticket, Ok(SyncSummary::default()));
            }
            AfterPersist::Page(page) => self.after_page(page),
            AfterPersist::Sent {
                client_message_id,
                message,
            } => {
                self.mark_delivered(vec![(client_message_id, message)]);
            }
            AfterPersist::Failed { entry, retryable } => {
                let failure = entry.failure.clone().unwrap_or_else(|| crate::Failure {
                    code: "refused".into(),
                    message: "refused".into(),
                });
                let conversation = entry.conversation_id.clone();
                let client_message_id = entry.client_message_id.clone();
                if let Some(item) = self.outbox.get_mut(&super::outbox::outbox_key(&entry)) {
                    item.entry = entry;
                    item.settling = false;
                }
                self.emit_changed(vec![conversation.clone()], 1);
                self.emit(Event::MessageFailed {
                    client_message_id,
                    conversation_id: conversation,
                    failure,
                    retryable,
                });
            }
            // The store held it otherwise than failed: nothing was done.
            AfterPersist::Retried { entry, ticket }
                if !report.outbox_retried.contains(&entry.client_message_id) =>
            {
                self.not_failed_in_store(&entry, ticket, &report)
            }
            AfterPersist::Discarded { entry, ticket }
                if !report.outbox_discarded.contains(&entry.client_message_id) =>
            {
                self.not_failed_in_store(&entry, ticket, &report)
            }
            AfterPersist::Retried { entry, ticket } => {
                let conversation = entry.conversation_id.clone();
                if let Some(item) = self.outbox.get_mut(&super::outbox::outbox_key(&entry)) {
                    *item = super::outbox::OutboxItem::durable(entry);
                }
                self.emit_changed(vec![conversation], 1);
                self.finish_ticket(ticket, Ok(SyncSummary::default()));
            }
            AfterPersist::Discarded { entry, ticket } => {
                self.after_removed(vec![entry], DiscardReason::Discarded);
                self.finish_ticket(ticket, Ok(SyncSummary::default()));
            }
            AfterPersist::CursorReset => self.after_cursor_reset(report.forgotten),
            AfterPersist::WrittenAgain(keys) => self.mark_durable(&keys),
            AfterPersist::Restamped(changed) => self.emit(Event::Changed(changed)),
            AfterPersist::Maintenance { ticket, entries } => {
                self.after_maintenance(ticket, entries, report)
            }
            AfterPersist::Evicted => self.after_eviction(&report),
            AfterPersist::Compacted => {
                log::info!(compacted = report.compacted_tombstones; "tombstones compacted");
            }
            AfterPersist::ReadMarker(conversation) => self.emit_changed(vec![conversation], 0),
            AfterPersist::Ticket(ticket) => self.finish_ticket(ticket, Ok(SyncSummary::default())),
            AfterPersist::Nothing => {}
        }
    }

    /// The app's retry or discard of `entry` found the store holding it otherwise than failed
    /// (another tab retried, discarded or delivered it, or maintenance removed it, before this
    /// engine heard): nothing was written, and the command fails. The entry is as the store
    /// holds it ([`Self::take_held`]).
    fn not_failed_in_store(&mut self, entry: &OutboxEntry, ticket: Ticket, report: &ApplyReport) {
        self.take_held(entry, report);
        self.finish_ticket(ticket, Err(SyncError::NotFailed));
    }

    /// A write that acts on outbox entry `entry` by what the store holds (a retry, a discard,
    /// maintenance's expiry) left it as it was: this engine's copy, behind the store's, takes
    /// the store's (`report` names it; one the store does not hold, delivered or discarded, goes
    /// from memory), and is released. A reload after another tab's note is not applied to an
    /// entry whose write is under way, so one that came meanwhile is not waited for again. A
    /// write queued behind this one that stores the entry's outcome settles it instead.
    pub(super) fn take_held(&mut self, entry: &OutboxEntry, report: &ApplyReport) {
        let id = &entry.client_message_id;
        if self.outcome_being_stored(id) {
            return;
        }
        let key = outbox_key(entry);
        let held = (report.outbox_held.iter()).find(|held| &held.client_message_id == id);
        match held {
            Some(held) => {
                if let Some(item) = self.outbox.get_mut(&key) {
                    item.entry = held.clone();
                    item.settling = false;
                }
            }
            None => {
                self.outbox.remove(&key);
            }
        }
    }

    /// Outbox entries the server holds: out of memory, and the app hears they were sent.
    pub(super) fn mark_delivered(&mut self, delivered: Vec<(ClientMessageId, Message)>) {
        for (client_message_id, message) in delivered {
            let before = self.outbox.len();
            self.outbox
                .retain(|_, item| item.entry.client_message_id != client_message_id);
            if self.outbox.len() < before {
                self.stats.messages_pushed += 1;
                self.emit_changed(vec![message.conversation_id.clone()], 1);
                self.emit(Event::MessageSent {
                    client_message_id,
                    message,
                });
            }
        }
    }

    pub(super) fn after_removed(&mut self, entries: Vec<OutboxEntry>, reason: DiscardReason) {
        for entry in entries {
            self.outbox.remove(&super::outbox::outbox_key(&entry));
            self.emit_changed(vec![entry.conversation_id.clone()], 1);
            self.emit(Event::MessageDiscarded {
                client_message_id: entry.client_message_id,
                conversation_id: entry.conversation_id,
                body: entry.body,
                reason,
            });
        }
    }

    /// Counts what an eviction removed, and tells the app which conversations it removed from.
    pub(super) fn after_eviction(&mut self, report: &ApplyReport) {
        self.stats.messages_evicted += report.evicted_messages;
        if !report.evicted_from.is_empty() {
            let evicted_from = report.evicted_from.clone();
            self.emit_changed(evicted_from, report.evicted_messages as usize);
        }
    }

    pub(super) fn emit_changed(&mut self, conversations: Vec<ConversationId>, messages: usize) {
        self.emit(Event::Changed(ChangeSet {
            conversations,
            messages,
        }));
    }
}
