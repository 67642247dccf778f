//! The maintenance policy, executed by the store: expire undelivered messages, evict history
//! past retention (never the outbox), compact tombstones. Runs every
//! `maintenance_interval_ms`, at start when overdue, and on demand.

use super::persist::AfterPersist;
use super::Engine;
use crate::event::{DiscardReason, Event, SyncSummary, Ticket};
use crate::status::SyncError;
use crate::store::{ApplyReport, Failure, OutboxEntry, StoreOp};
use chat_sync_protocol::{Millis, ResponseBody};

/// How long a failed maintenance waits before it runs again.
const MAINTENANCE_RETRY_MS: Millis = 5 * 60 * 1000;

/// Why maintenance fails a message.
fn expiry() -> Failure {
    Failure {
        code: "expired".into(),
        message: "not delivered within the optimistic message lifetime".into(),
    }
}

impl Engine {
    /// Runs maintenance now. The ticket finishes when the store has done it.
    pub fn run_maintenance(&mut self, now: Millis) -> Ticket {
        self.advance(now);
        let ticket = self.new_ticket();
        if self.loaded {
            self.start_maintenance(Some(ticket));
        } else {
            self.finish_ticket(ticket, Err(SyncError::Stopped));
        }
        ticket
    }

    pub(super) fn maintenance_due(&self) -> bool {
        self.loaded && self.started && self.maintenance_next().is_some_and(|at| at <= self.now)
    }

    /// When maintenance runs next (none while it runs).
    pub(super) fn maintenance_next(&self) -> Option<Millis> {
        if self.maintenance_running {
            return None;
        }
        self.maintenance_retry_at
            .or(Some(self.last_maintenance.map_or(Millis::MIN, |last| {
                // On the device's clock: a wake-up is on the engine's.
                last + self.config.maintenance_interval_ms + self.clock_ahead
            })))
    }

    /// Expires the old outbox entries (each by what the store holds: [`StoreOp::ExpireOutbox`]),
    /// evicts history, compacts tombstones.
    pub(super) fn start_maintenance(&mut self, ticket: Option<Ticket>) {
        self.maintenance_running = true;
        self.maintenance_retry_at = None;
        let cutoff = self.device_now() - self.config.optimistic_ttl_ms;
        let mut ops = Vec::new();
        let mut entries: Vec<OutboxEntry> = Vec::new();
        for item in self.outbox.iter_mut().map(|(_, item)| item) {
            let old = item.entry.composed_at < cutoff;
            if !old || item.sending || item.settling || !item.durable {
                continue;
            }
            item.settling = true;
            // Pending, it fails; reported as failed already, it goes. This engine's outbox may
            // be behind the store's (another tab delivered, retried, discarded or failed it):
            // the store decides by what it holds, and removes a failed one only where this
            // engine held it failed (one failed a moment ago waits for the next run).
            ops.push(StoreOp::ExpireOutbox {
                client_message_id: item.entry.client_message_id.clone(),
                conversation: item.entry.conversation_id.clone(),
                sender: self.config.user_id.clone(),
                composed_before: cutoff,
                failure: expiry(),
                failed: item.entry.failure.is_some(),
            });
            entries.push(item.entry.clone());
        }
        if let Some(keep) = self.config.retention_per_conversation {
            self.before_eviction();
            ops.push(StoreOp::EvictHistory { keep });
        }
        match self.compaction_bound() {
            Some(before) => ops.push(StoreOp::CompactTombstones { before }),
            None => self.compaction_owed = true,
        }
        ops.push(StoreOp::SetLastMaintenance(self.device_now()));
        self.persist(ops, AfterPersist::Maintenance { ticket, entries });
    }

    /// Maintenance is stored: the app hears of the `entries` it named as the store expired or
    /// removed them ([`ApplyReport`]). One the store held otherwise than this engine (another
    /// tab settled it) is as it was: this engine takes the store's copy ([`Self::take_held`]).
    pub(super) fn after_maintenance(
        &mut self,
        ticket: Option<Ticket>,
        entries: Vec<OutboxEntry>,
        report: ApplyReport,
    ) {
        self.maintenance_running = false;
        self.last_maintenance = Some(self.device_now());
        self.stats.maintenance_runs += 1;
        for entry in entries {
            let id = &entry.client_message_id;
            if report.outbox_removed.contains(id) {
                self.after_removed(vec![entry], DiscardReason::Expired);
                continue;
            }
            // A write queued behind this one stores its delivery: it settles it.
            if self.outcome_being_stored(id) {
                continue;
            }
            if !report.outbox_expired.contains(id) {
                self.take_held(&entry, &report);
                continue;
            }
            let item = self.outbox.get_mut(&super::outbox::outbox_key(&entry));
            if let Some(item) = item {
                item.settling = false;
                item.entry.failure = Some(expiry());
            }
            self.emit_changed(vec![entry.conversation_id.clone()], 1);
            self.emit(Event::MessageFailed {
                client_message_id: entry.client_message_id,
                conversation_id: entry.conversation_id,
                failure: expiry(),
                retryable: true,
            });
        }
        self.after_eviction(&report);
        log::info!(
            evicted = report.evicted_messages,
            compacted = report.compacted_tombstones;
            "maintenance finished"
        );
        self.emit(Event::MaintenanceFinished(report));
        if let Some(ticket) = ticket {
            self.finish_ticket(ticket, Ok(SyncSummary::default()));
        }
    }

    pub(super) fn on_maintenance_failed(
        &mut self,
        ticket: Option<Ticket>,
        entries: &[OutboxEntry],
        error: SyncError,
    ) {
        self.maintenance_running = false;
        self.maintenance_retry_at = Some(self.now + MAINTENANCE_RETRY_MS);
        for entry in entries {
            if self.outcome_being_stored(&entry.client_message_id) {
                continue;
            }
            if let Some(item) = self.outbox.get_mut(&super::outbox::outbox_key(entry)) {
                item.settling = false;
            }
        }
        if let Some(ticket) = ticket {
            self.finish_ticket(ticket, Err(error));
        }
    }

    /// Notes the server stamps of an answer: the server's clock read at least the newest.
    pub(super) fn note_server_time(&mut self, body: &ResponseBody) {
        let newest = match body {
            ResponseBody::Feed(page) => page.changes.iter().map(|c| c.updated_ts()).max(),
            ResponseBody::History(page) => page.messages.iter().map(|m| m.updated_ts).max(),
            ResponseBody::Message(response) => Some(response.message.updated_ts),
            ResponseBody::ReadMarker(response) => Some(response.read_marker.updated_ts),
            ResponseBody::Error(_) | ResponseBody::Invalid(_) => None,
        };
        self.server_time = self.server_time.max(newest);
    }

    /// Tombstones stamped before this are compacted: the tombstone lifetime before now by the
    /// server's clock as far as the engine knows it (the newest server stamp seen, or the
    /// device's clock where that is behind it). `None` before any server stamp is known: a
    /// device clock running ahead would compact fresh tombstones, and an older copy of a deleted
    /// message (a late page) would bring it back.
    fn compaction_bound(&self) -> Option<Millis> {
        let server_now = self.server_time?.min(self.device_now());
        Some(server_now - self.config.tombstone_ttl_ms)
    }

    /// The compaction a maintenance left owed, once a server stamp is known.
    pub(super) fn compact_if_owed(&mut self) {
        if !self.compaction_owed {
            return;
        }
        if let Some(before) = self.compaction_bound() {
            self.compaction_owed = false;
            let ops = vec![StoreOp::CompactTombstones { before }];
            self.persist(ops, AfterPersist::Compacted);
        }
    }
}
