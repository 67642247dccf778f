//! Read markers this user moves: [`Engine::mark_read`] keeps the newest per conversation until
//! the server has it, sends it when the network allows (with backoff, like the outbox), and
//! stores the server's answer at once (the feed would bring it on the next sync anyway).

use super::persist::AfterPersist;
use super::requests::{Purpose, Verdict};
use super::{Engine, EngineError};
use crate::status::SyncError;
use crate::store::StoreOp;
use crate::transport::Method;
use chat_sync_protocol::{
    paths, ConversationId, MarkReadRequest, MessageId, Millis, RequestBody, ResponseBody,
    ResponseKind,
};

/// A read marker the server does not have yet.
#[derive(Clone, Debug)]
pub(super) struct UnsentReadMarker {
    /// The newest message the user has read.
    message_id: MessageId,
    /// That message's `server_ts`.
    server_ts: Millis,
    /// The message of the request in flight, if one is.
    sending: Option<MessageId>,
    attempts: u32,
    not_before: Millis,
}

impl Engine {
    /// Records that the user has read `conversation` up to `message` (a server message id,
    /// stamped `server_ts`), to send when the network allows; the newest call per conversation
    /// wins. The server keeps a marker only when it moves forward, and answers with the one it
    /// keeps.
    pub fn mark_read(
        &mut self,
        conversation: ConversationId,
        message: MessageId,
        server_ts: Millis,
        now: Millis,
    ) -> Result<(), EngineError> {
        self.advance(now);
        if !self.loaded {
            return Err(EngineError::NotInitialized);
        }
        let now = self.now;
        match self
            .unsent_read_markers
            .iter_mut()
            .find(|(id, _)| *id == conversation)
        {
            Some((_, unsent)) => {
                unsent.message_id = message;
                unsent.server_ts = server_ts;
                unsent.attempts = 0;
                unsent.not_before = now;
            }
            None => self.unsent_read_markers.push((
                conversation,
                UnsentReadMarker {
                    message_id: message,
                    server_ts,
                    sending: None,
                    attempts: 0,
                    not_before: now,
                },
            )),
        }
        Ok(())
    }

    /// The message (and its `server_ts`) `mark_read` last set for `conversation` while the
    /// server does not have it yet: the app shows it in place of the stored marker.
    pub fn unsent_read_marker(
        &self,
        conversation: &ConversationId,
    ) -> Option<(&MessageId, Millis)> {
        self.unsent_read_markers
            .iter()
            .find(|(id, _)| id == conversation)
            .map(|(_, unsent)| (&unsent.message_id, unsent.server_ts))
    }

    /// Sends the next read marker due, if any; true when a request went out.
    pub(super) fn send_next_read_marker(&mut self) -> bool {
        let now = self.now;
        let Some((conversation, unsent)) = self
            .unsent_read_markers
            .iter_mut()
            .find(|(_, unsent)| unsent.sending.is_none() && unsent.not_before <= now)
        else {
            return false;
        };
        unsent.sending = Some(unsent.message_id.clone());
        let conversation = conversation.clone();
        let request = MarkReadRequest {
            message_id: unsent.message_id.clone(),
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

    /// When the next read marker in backoff may go, if one waits.
    pub(super) fn next_read_marker_time(&self) -> Option<Millis> {
        self.unsent_read_markers
            .iter()
            .filter(|(_, unsent)| unsent.sending.is_none() && unsent.not_before > self.now)
            .map(|(_, unsent)| unsent.not_before)
            .min()
    }

    /// After a forced sync or a change of credentials, markers in backoff go at once.
    pub(super) fn reset_read_marker_backoff(&mut self, at: Millis) {
        for (_, unsent) in &mut self.unsent_read_markers {
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
            .position(|(id, _)| *id == conversation)
        else {
            return;
        };
        let unsent = &mut self.unsent_read_markers[index].1;
        // A newer `mark_read` while this one was out still has to go.
        let superseded = unsent.sending.take().as_ref() != Some(&unsent.message_id);
        match verdict {
            Verdict::Success(ResponseBody::ReadMarker(response)) => {
                if !superseded {
                    self.unsent_read_markers.remove(index);
                }
                self.persist(
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
                if !superseded {
                    self.unsent_read_markers.remove(index);
                }
            }
        }
    }

    fn retry_read_marker(&mut self, index: usize, error: SyncError, retry_after: Option<Millis>) {
        let unsent = &mut self.unsent_read_markers[index].1;
        unsent.attempts += 1;
        let delay = crate::backoff::delay(
            &self.config.backoff,
            unsent.attempts,
            retry_after,
            &mut self.rng,
        );
        unsent.not_before = self.now + delay;
        self.stats.retries += 1;
        self.last_error = Some(error);
    }
}
