//! Read markers this user moves: [`Engine::mark_read`] keeps the newest per conversation until
//! the server has it, sends it when the network allows (with backoff, like the outbox), and
//! stores the server's answer at once (the feed would bring it on the next sync anyway).
//!
//! While this engine leads (is started), the markers not sent yet are stored too
//! ([`StoreOp::SetPendingReadMarkers`]), so a reload sends them; a follower tab's driver hands
//! its markers to the leading tab instead.

use super::persist::AfterPersist;
use super::requests::{Purpose, Verdict};
use super::{Engine, EngineError};
use crate::event::{SyncSummary, Ticket};
use crate::status::SyncError;
use crate::store::{PendingReadMarker, StoreOp};
use crate::transport::Method;
use chat_sync_protocol::{
    paths, ConversationId, MarkReadRequest, MessageId, Millis, RequestBody, ResponseBody,
    ResponseKind,
};

/// A read marker the server does not have yet, and how sending it goes.
#[derive(Clone, Debug)]
pub(super) struct UnsentReadMarker {
    marker: PendingReadMarker,
    /// The message of the request in flight, if one is.
    sending: Option<MessageId>,
    attempts: u32,
    not_before: Millis,
}

impl Engine {
    /// Records that the user has read `conversation` up to `message` (a server message id,
    /// stamped `server_ts`), to send when the network allows. Markers only move forward: per
    /// conversation the furthest one not sent yet is kept (a call below it changes nothing, so a
    /// marker once stored is never lost to an older one). The server, too, keeps a marker only
    /// when it moves forward, and answers with the one it keeps. The ticket finishes once the
    /// marker is stored (at once when not leading: nothing is stored then).
    pub fn mark_read(
        &mut self,
        conversation: ConversationId,
        message: MessageId,
        server_ts: Millis,
        now: Millis,
    ) -> Result<Ticket, EngineError> {
        self.advance(now);
        if !self.loaded {
            return Err(EngineError::NotInitialized);
        }
        self.keep_unsent(PendingReadMarker {
            conversation_id: conversation,
            message_id: message,
            server_ts,
        });
        let ticket = self.new_ticket();
        if self.started {
            self.store_unsent_read_markers(Vec::new(), AfterPersist::Ticket(ticket));
        } else {
            self.finish_ticket(ticket, Ok(SyncSummary::default()));
        }
        Ok(ticket)
    }

    /// The message (and its `server_ts`) `mark_read` last set for `conversation` while the
    /// server does not have it yet: the app shows it in place of the stored marker.
    pub fn unsent_read_marker(
        &self,
        conversation: &ConversationId,
    ) -> Option<(&MessageId, Millis)> {
        self.unsent_read_markers
            .iter()
            .find(|unsent| unsent.marker.conversation_id == *conversation)
            .map(|unsent| (&unsent.marker.message_id, unsent.marker.server_ts))
    }

    /// The read markers the store holds unsent ([`crate::PersistedState::pending_read_markers`]),
    /// as this tab starts leading or, leading, reloads what other tabs stored (a tab that led
    /// beside it for a while, taken over, may have stored some): kept where this tab has no
    /// newer one, and stored again with this tab's own where the store's list differs.
    pub fn handle_pending_read_markers(&mut self, markers: Vec<PendingReadMarker>, now: Millis) {
        self.advance(now);
        let stored = markers.clone();
        self.adopt_pending_read_markers(markers);
        let same = stored.len() == self.unsent_read_markers.len()
            && (self.unsent_read_markers.iter()).all(|unsent| stored.contains(&unsent.marker));
        if !same {
            self.store_unsent_read_markers(Vec::new(), AfterPersist::Nothing);
        }
    }

    /// Takes stored markers in where they are ahead of the ones in memory.
    pub(super) fn adopt_pending_read_markers(&mut self, markers: Vec<PendingReadMarker>) {
        for marker in markers {
            self.keep_unsent(marker);
        }
    }

    /// Keeps `marker` as its conversation's marker to send, at once, unless the one kept there
    /// is as far or further.
    fn keep_unsent(&mut self, marker: PendingReadMarker) {
        let now = self.now;
        let index = self
            .unsent_read_markers
            .iter()
            .position(|unsent| unsent.marker.conversation_id == marker.conversation_id);
        if index.is_some_and(|i| self.unsent_read_markers[i].marker.server_ts >= marker.server_ts) {
            return;
        }
        let unsent = UnsentReadMarker {
            marker,
            sending: None,
            attempts: 0,
            not_before: now,
        };
        match index {
            // A request in flight for the old marker stays in flight.
            Some(index) => {
                let sending = self.unsent_read_markers[index].sending.take();
                self.unsent_read_markers[index] = UnsentReadMarker { sending, ..unsent };
            }
            None => self.unsent_read_markers.push(unsent),
        }
    }

    /// Applies `ops` and, while leading, stores the markers not sent yet in the same batch (a
    /// follower's markers go through the leader, which stores them).
    pub(super) fn store_unsent_read_markers(&mut self, mut ops: Vec<StoreOp>, then: AfterPersist) {
        if self.started {
            ops.push(self.unsent_read_markers_op());
        }
        if !ops.is_empty() {
            self.persist(ops, then);
        }
    }

    /// The write that stores the markers not sent yet (all of them: it replaces the list).
    fn unsent_read_markers_op(&self) -> StoreOp {
        let pending = self
            .unsent_read_markers
            .iter()
            .map(|unsent| unsent.marker.clone())
            .collect();
        StoreOp::SetPendingReadMarkers(pending)
    }

    /// After a failed write of `ops`: when it carried the markers not sent yet, the store's list
    /// is stale (a sent marker still in it would go again after a reload, a new one would be
    /// lost), so the next batch carries them ([`Self::with_unsaved_read_markers`]). Not at once:
    /// a store that keeps failing would be written in a loop.
    pub(super) fn note_failed_read_markers_write(&mut self, ops: &[StoreOp]) {
        if ops
            .iter()
            .any(|op| matches!(op, StoreOp::SetPendingReadMarkers(_)))
        {
            self.unsent_read_markers_unsaved = true;
        }
    }

    /// `ops` with the markers not sent yet added when their last write failed (while leading:
    /// a follower stores none).
    pub(super) fn with_unsaved_read_markers(&mut self, mut ops: Vec<StoreOp>) -> Vec<StoreOp> {
        if self.unsent_read_markers_unsaved && self.started {
            self.unsent_read_markers_unsaved = false;
            ops.push(self.unsent_read_markers_op());
        }
        ops
    }

    /// Sends the next read marker due, if any; true when a request went out. None goes while the
    /// server's `Retry-After` holds.
    pub(super) fn send_next_read_marker(&mut self) -> bool {
        let now = self.now;
        if self.server_retry_at > now {
            return false;
        }
        let Some(unsent) = self
            .unsent_read_markers
            .iter_mut()
            .find(|unsent| unsent.sending.is_none() && unsent.not_before <= now)
        else {
            return false;
        };
        unsent.sending = Some(unsent.marker.message_id.clone());
        let conversation = unsent.marker.conversation_id.clone();
        let request = MarkReadRequest {
            message_id: unsent.marker.message_id.clone(),
        };
        self.issue(
            Purpose::MarkRead(conversation.clone()),
            Method::Post,
            paths::read_marker(&conversation),
            Some(RequestBody::MarkRead(request)),
            ResponseKind::ReadMarker,
        );
        true
    }

    /// When the next read marker in backoff (its own or the server's) may go, if one waits.
    pub(super) fn next_read_marker_time(&self) -> Option<Millis> {
        self.unsent_read_markers
            .iter()
            .filter(|unsent| unsent.sending.is_none())
            .map(|unsent| unsent.not_before.max(self.server_retry_at))
            .filter(|at| *at > self.now)
            .min()
    }

    /// The requests of the markers being sent are forgotten (the server's database was
    /// replaced under them): the markers go again.
    pub(super) fn resend_read_markers_in_flight(&mut self) {
        for unsent in &mut self.unsent_read_markers {
            unsent.sending = None;
        }
    }

    /// After a forced sync or a change of credentials, markers in backoff go at once.
    pub(super) fn reset_read_marker_backoff(&mut self, at: Millis) {
        for unsent in &mut self.unsent_read_markers {
            unsent.not_before = unsent.not_before.min(at);
        }
    }

    pub(super) fn on_read_marker_outcome(
        &mut self,
        conversation: ConversationId,
        verdict: Verdict,
    ) {
        let Some(index) = self
            .unsent_read_markers
            .iter()
            .position(|unsent| unsent.marker.conversation_id == conversation)
        else {
            return;
        };
        let unsent = &mut self.unsent_read_markers[index];
        // A newer `mark_read` while this one was out still has to go.
        let done = unsent.sending.take().as_ref() == Some(&unsent.marker.message_id);
        match verdict {
            Verdict::Success(ResponseBody::ReadMarker(response)) => {
                if done {
                    self.unsent_read_markers.remove(index);
                }
                self.store_unsent_read_markers(
                    vec![StoreOp::PutReadMarker(response.read_marker)],
                    AfterPersist::ReadMarker(conversation),
                );
            }
            Verdict::Success(_) => {
                let error = SyncError::Protocol {
                    message: "the read marker answer is not a read marker".into(),
                };
                self.retry_read_marker(index, error, None);
            }
            Verdict::Retry { error, retry_after } => {
                self.retry_read_marker(index, error, retry_after)
            }
            // Paused until new credentials; the marker goes then.
            Verdict::Auth => {}
            // Refused (an unknown message, a conversation left): retrying would not help.
            Verdict::InvalidCursor | Verdict::Permanent(_) => {
                log::warn!(conversation = conversation.as_str(); "the server refused a read marker");
                if done {
                    self.unsent_read_markers.remove(index);
                    self.store_unsent_read_markers(Vec::new(), AfterPersist::Nothing);
                }
            }
        }
    }

    fn retry_read_marker(&mut self, index: usize, error: SyncError, retry_after: Option<Millis>) {
        self.unsent_read_markers[index].attempts += 1;
        let attempt = self.unsent_read_markers[index].attempts;
        self.unsent_read_markers[index].not_before = self.retry_time(attempt, error, retry_after);
    }
}
