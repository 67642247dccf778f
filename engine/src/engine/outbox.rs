//! The outbox: composing, delivering exactly once and in compose order per conversation,
//! retrying, failing, and the app's retry and discard.

use super::persist::AfterPersist;
use super::requests::{Purpose, Verdict};
use super::{Engine, EngineError};
use crate::config::BrokenVariant;
use crate::event::{ChangeSet, Ticket};
use crate::status::SyncError;
use crate::store::{Failure, LocalMessage, OutboxEntry, StoreOp};
use crate::transport::Method;
use chat_sync_protocol::{
    paths, validate_message_body, ClientMessageId, ConversationId, Millis, RequestBody,
    ResponseBody, ResponseKind, SendMessageRequest,
};

/// An outbox entry and its delivery state (the state lives in memory only).
#[derive(Clone, Debug)]
pub(super) struct OutboxItem {
    pub(super) entry: OutboxEntry,
    /// The store holds the entry; only durable entries are sent.
    pub(super) durable: bool,
    /// A request for it is in flight.
    pub(super) sending: bool,
    /// Its outcome (delivered or refused) is being persisted; it is not sent meanwhile.
    pub(super) settling: bool,
    /// Failed attempts so far.
    pub(super) attempts: u32,
    /// No attempt before this time (backoff).
    pub(super) not_before: Millis,
}

/// Where an entry sits in the outbox: compose order, then client id.
pub(super) type OutboxKey = (u64, ClientMessageId);

/// The outbox key of an entry.
pub(super) fn outbox_key(entry: &OutboxEntry) -> OutboxKey {
    (entry.seq, entry.client_message_id.clone())
}

impl OutboxItem {
    pub(super) fn durable(entry: OutboxEntry) -> Self {
        Self {
            entry,
            durable: true,
            sending: false,
            settling: false,
            attempts: 0,
            not_before: Millis::MIN,
        }
    }
}

impl Engine {
    /// Composes a message: it goes to the durable outbox first ([`crate::Event::MessageQueued`]
    /// once stored), then to the server. Returns the optimistic message and a ticket that
    /// finishes when the message is stored (not when it is delivered).
    pub fn send(
        &mut self,
        conversation: ConversationId,
        body: String,
        now: Millis,
    ) -> Result<(LocalMessage, Ticket), EngineError> {
        self.advance(now);
        if !self.loaded {
            return Err(EngineError::NotInitialized);
        }
        validate_message_body(&body)?;
        let entry = OutboxEntry {
            client_message_id: self.new_client_message_id(),
            conversation_id: conversation,
            body,
            seq: self.next_seq,
            composed_at: self.device_now(),
            failure: None,
        };
        self.next_seq += 1;
        let message = LocalMessage::optimistic(&entry, &self.config.user_id);
        let ticket = self.new_ticket();
        let mut item = OutboxItem::durable(entry.clone());
        item.durable = false;
        self.outbox.insert(outbox_key(&entry), item);
        self.persist(
            vec![
                StoreOp::PutOutbox(entry),
                StoreOp::PutMessage(message.clone()),
            ],
            AfterPersist::Queued {
                message: message.clone(),
                ticket,
            },
        );
        Ok((message, ticket))
    }

    /// Puts a failed message back in the queue. The ticket finishes once that is stored; with
    /// [`SyncError::NotFailed`] when the store no longer holds the message failed (another tab
    /// retried, discarded or delivered it, or maintenance removed it, before this engine heard),
    /// which it then leaves as it is: the engine takes the store's copy.
    pub fn retry_message(
        &mut self,
        client_message_id: &ClientMessageId,
        now: Millis,
    ) -> Result<Ticket, EngineError> {
        self.advance(now);
        let mut entry = self.settle_failed(client_message_id)?;
        entry.failure = None;
        // A fresh start for the expiry clock: the user asked again.
        entry.composed_at = self.device_now();
        let ticket = self.new_ticket();
        self.persist(
            vec![StoreOp::RetryOutbox {
                client_message_id: entry.client_message_id.clone(),
                conversation: entry.conversation_id.clone(),
                sender: self.config.user_id.clone(),
                composed_at: entry.composed_at,
            }],
            AfterPersist::Retried { entry, ticket },
        );
        Ok(ticket)
    }

    /// Removes a failed message from the outbox and the store. The ticket finishes once stored;
    /// with [`SyncError::NotFailed`] when the store no longer holds the message failed (another
    /// tab retried, discarded or delivered it, or maintenance removed it, before this engine
    /// heard), which it then leaves as it is (a message retried elsewhere is still sent, a
    /// delivered one stays): the engine takes the store's copy.
    pub fn discard_message(
        &mut self,
        client_message_id: &ClientMessageId,
        now: Millis,
    ) -> Result<Ticket, EngineError> {
        self.advance(now);
        let entry = self.settle_failed(client_message_id)?;
        let ticket = self.new_ticket();
        self.persist(
            vec![StoreOp::DiscardOutbox {
                client_message_id: entry.client_message_id.clone(),
                conversation: entry.conversation_id.clone(),
                sender: self.config.user_id.clone(),
            }],
            AfterPersist::Discarded { entry, ticket },
        );
        Ok(ticket)
    }

    /// Writes the outbox, and the read markers not sent yet, into the store again: its database
    /// was deleted under the engine. Meanwhile the entries are not sent, and a reload of the
    /// outbox (another tab wrote to the new database) keeps them. An entry being sent goes on
    /// (its outcome is stored after this write); one whose outcome is being stored is left out.
    pub(super) fn write_outbox_again(&mut self) {
        let mut ops = Vec::new();
        let mut keys = Vec::new();
        for (key, item) in self.outbox.iter_mut() {
            if !item.durable || item.settling {
                continue;
            }
            item.durable = item.sending;
            ops.push(StoreOp::PutOutbox(item.entry.clone()));
            let message = LocalMessage::optimistic(&item.entry, &self.config.user_id);
            ops.push(StoreOp::PutMessage(message));
            keys.push(key.clone());
        }
        if !keys.is_empty() || !self.unsent_read_markers.is_empty() {
            self.store_unsent_read_markers(ops, AfterPersist::WrittenAgain(keys));
        }
    }

    /// The device's clock was set back by `moved` (forward when negative): the compose times of
    /// the pending entries, taken on it before, move with it, so a pending message does not show
    /// (nor list its conversation) as composed in the future, and expires when it would have. A
    /// leading engine moves them (and their optimistic messages) in the store too, where the
    /// store still holds them pending: this engine's outbox may be behind the store's (the tab
    /// that led before delivered, failed or discarded one; the reload that follows its note
    /// brings that here). Not failed entries (another tab may retry or discard one meanwhile),
    /// nor those whose write or outcome is being stored.
    pub(super) fn restamp_outbox(&mut self, moved: Millis) {
        let mut ops = Vec::new();
        let mut changed = ChangeSet::default();
        for item in self.outbox.iter_mut().map(|(_, item)| item) {
            if !item.durable || item.settling || item.entry.failure.is_some() {
                continue;
            }
            item.entry.composed_at -= moved;
            ops.push(StoreOp::RestampOutbox {
                client_message_id: item.entry.client_message_id.clone(),
                conversation: item.entry.conversation_id.clone(),
                sender: self.config.user_id.clone(),
                by: moved,
            });
            changed.add(&item.entry.conversation_id);
            changed.messages += 1;
        }
        if self.started && !ops.is_empty() {
            self.persist(ops, AfterPersist::Restamped(changed));
        }
    }

    /// The entries `keys` are in the store (or, after a failed write, go from memory all the
    /// same): they are sent.
    pub(super) fn mark_durable(&mut self, keys: &[OutboxKey]) {
        for (key, item) in self.outbox.iter_mut() {
            if keys.contains(key) {
                item.durable = true;
            }
        }
    }

    /// The outbox as the store now holds it, after another tab changed it: a follower tab queued,
    /// retried or discarded a message, or the leader tab delivered one. Entries this engine did
    /// not know are added; entries the store no longer holds are dropped, unless this engine is
    /// sending them or storing their outcome; a known entry takes the stored failure state.
    /// `entries` must be read after every write whose outcome the engine was given: an older
    /// read would bring back an entry delivered since, to be sent again. (IndexedDB starts a
    /// write only after the reads begun before it end, so a read handed over at once is.)
    pub fn handle_outbox_reloaded(&mut self, entries: Vec<OutboxEntry>, now: Millis) {
        self.advance(now);
        let stored: Vec<(OutboxKey, OutboxEntry)> = entries
            .into_iter()
            .map(|entry| (outbox_key(&entry), entry))
            .collect();
        self.outbox.retain(|key, item| {
            stored.iter().any(|(stored, _)| stored == key)
                || !item.durable
                || item.sending
                || item.settling
        });
        for (key, entry) in stored {
            self.next_seq = self.next_seq.max(entry.seq + 1);
            match self.outbox.get_mut(&key) {
                Some(item) if !item.sending && !item.settling => item.entry = entry,
                Some(_) => {}
                None => {
                    self.outbox.insert(key, OutboxItem::durable(entry));
                }
            }
        }
    }

    /// The failed entry the app retries or discards, marked settling until that is stored (so
    /// maintenance leaves it alone meanwhile); not while something else settles it.
    fn settle_failed(
        &mut self,
        client_message_id: &ClientMessageId,
    ) -> Result<OutboxEntry, EngineError> {
        if !self.loaded {
            return Err(EngineError::NotInitialized);
        }
        let item = self
            .outbox
            .iter_mut()
            .map(|(_, item)| item)
            .find(|item| &item.entry.client_message_id == client_message_id)
            .ok_or(EngineError::UnknownMessage)?;
        if item.settling {
            return Err(EngineError::Settling);
        }
        if item.entry.failure.is_none() {
            return Err(EngineError::NotFailed);
        }
        item.settling = true;
        Ok(item.entry.clone())
    }

    /// The write settling entry `key` failed: it is as it was.
    pub(super) fn unsettle_entry(&mut self, key: &OutboxKey) {
        if let Some(item) = self.outbox.get_mut(key) {
            item.settling = false;
        }
    }

    /// A client message id nobody else uses: this device's time and 64 random bits.
    fn new_client_message_id(&mut self) -> ClientMessageId {
        let random = self.rng.next_u64();
        ClientMessageId::new(format!("{:x}-{random:016x}", self.now.max(0)))
    }

    /// The entry each conversation delivers next: its oldest entry not failed. Entries behind
    /// it wait, so delivery follows compose order; they wait too while its outcome is being
    /// stored, as a failure that cannot be stored puts it back in the queue.
    fn queue_heads(&self) -> Vec<OutboxKey> {
        let mut seen: Vec<&ConversationId> = Vec::new();
        let mut heads = Vec::new();
        for (key, item) in &self.outbox {
            if item.entry.failure.is_some() {
                continue;
            }
            if seen.contains(&&item.entry.conversation_id) {
                continue;
            }
            seen.push(&item.entry.conversation_id);
            heads.push(key.clone());
        }
        heads
    }

    /// Sends the next deliverable entry, if any; true when a request went out. None goes while
    /// the server's `Retry-After` holds, also one composed since.
    pub(super) fn send_next_outbox(&mut self) -> bool {
        let now = self.now;
        if self.server_retry_at > now {
            return false;
        }
        let next = self.queue_heads().into_iter().find(|key| {
            let item = &self.outbox[key];
            item.durable && !item.sending && !item.settling && item.not_before <= now
        });
        let Some(key) = next else {
            return false;
        };
        let fresh_id = (self.config.broken == Some(BrokenVariant::NewClientIdPerAttempt))
            .then(|| self.new_client_message_id());
        let Some(item) = self.outbox.get_mut(&key) else {
            return false;
        };
        item.sending = true;
        let entry = item.entry.clone();
        let request = SendMessageRequest {
            client_message_id: fresh_id.unwrap_or_else(|| entry.client_message_id.clone()),
            body: entry.body.clone(),
        };
        self.issue(
            Purpose::Send(entry.client_message_id),
            Method::Post,
            paths::messages(&entry.conversation_id),
            Some(RequestBody::Send(request)),
            ResponseKind::Message,
        );
        true
    }

    /// When the next entry in backoff (its own or the server's) may go, if one waits.
    pub(super) fn next_send_time(&self) -> Option<Millis> {
        self.queue_heads()
            .into_iter()
            .map(|key| &self.outbox[&key])
            .filter(|item| item.durable && !item.sending && !item.settling)
            .map(|item| item.not_before.max(self.server_retry_at))
            .filter(|at| *at > self.now)
            .min()
    }

    pub(super) fn outbox_key_of(&self, client_message_id: &ClientMessageId) -> Option<OutboxKey> {
        self.outbox
            .keys()
            .find(|(_, id)| id == client_message_id)
            .cloned()
    }

    pub(super) fn on_send_outcome(&mut self, client_message_id: ClientMessageId, verdict: Verdict) {
        let Some(key) = self.outbox_key_of(&client_message_id) else {
            // Delivered meanwhile (the feed brought it): nothing to do.
            return;
        };
        let item = self.outbox.get_mut(&key).expect("key found above");
        item.sending = false;
        match verdict {
            Verdict::Success(ResponseBody::Message(response)) => {
                item.settling = true;
                let message = response.message;
                let mut ops = vec![
                    StoreOp::PutMessage(LocalMessage::from_server(message.clone())),
                    StoreOp::RemoveOutbox(client_message_id.clone()),
                ];
                // Shown at once, also as the first message of a conversation new here.
                ops.extend(super::pull::history_from_unedited(&message));
                self.persist(
                    ops,
                    AfterPersist::Sent {
                        client_message_id,
                        message,
                    },
                );
            }
            Verdict::Success(_) => self.retry_send(
                key,
                SyncError::Protocol {
                    message: "the send answer is not a message".into(),
                },
                None,
            ),
            Verdict::Retry { error, retry_after } => self.retry_send(key, error, retry_after),
            // Sync is paused; the entry goes again with new credentials.
            Verdict::Auth => {}
            // A write queued before stores it delivered (a feed page showed it, its earlier
            // answer lost): that settles it, and should the write fail, it goes again.
            Verdict::InvalidCursor | Verdict::Permanent(_)
                if self.outcome_being_stored(&client_message_id) => {}
            Verdict::InvalidCursor | Verdict::Permanent(_) => {
                let error = match verdict {
                    Verdict::Permanent(error) => error,
                    _ => SyncError::Protocol {
                        message: "unexpected invalid_cursor".into(),
                    },
                };
                self.fail_entry(key, &error);
            }
        }
    }

    /// Counts a failed attempt and backs the entry off.
    pub(super) fn retry_send(
        &mut self,
        key: OutboxKey,
        error: SyncError,
        retry_after: Option<Millis>,
    ) {
        let Some(item) = self.outbox.get_mut(&key) else {
            return;
        };
        item.attempts += 1;
        let attempt = item.attempts;
        log::warn!(error = error.to_string().as_str(), attempt; "send failed; trying again");
        let not_before = self.retry_time(attempt, error, retry_after);
        self.outbox.get_mut(&key).expect("checked above").not_before = not_before;
    }

    /// A permanent refusal: the entry becomes failed, the app decides.
    fn fail_entry(&mut self, key: OutboxKey, error: &SyncError) {
        let Some(item) = self.outbox.get_mut(&key) else {
            return;
        };
        item.settling = true;
        let failure = Failure {
            code: error.server_code().unwrap_or("refused").to_owned(),
            message: error.to_string(),
        };
        log::warn!(code = failure.code.as_str(); "server refused a message");
        let mut entry = item.entry.clone();
        entry.failure = Some(failure);
        let message = LocalMessage::optimistic(&entry, &self.config.user_id);
        self.persist(
            vec![
                StoreOp::PutOutbox(entry.clone()),
                StoreOp::PutMessage(message),
            ],
            AfterPersist::Failed {
                entry,
                retryable: false,
            },
        );
    }
}
