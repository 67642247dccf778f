//! Requests in flight: issuing them, their deadlines, and sorting outcomes into what they mean.

use super::Engine;
use crate::status::SyncError;
use crate::store::HistoryFloor;
use crate::transport::{HttpOutcome, HttpRequest, Method, RequestId};
use chat_sync_protocol::{
    ClientMessageId, ConversationId, ErrorCode, Millis, RequestBody, ResponseBody, ResponseKind,
};

/// What a request is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    /// A page of the global feed (the running sync).
    FeedPage,
    /// A page of one conversation's feed.
    ConversationPage(ConversationId),
    /// A page of one conversation's history below a floor (which names its job).
    History(ConversationId, HistoryFloor),
    /// Delivering an outbox entry.
    Send(ClientMessageId),
    /// Setting this user's read marker in a conversation.
    MarkRead(ConversationId),
}

/// A request the engine waits for.
#[derive(Clone, Debug)]
pub(super) struct InFlight {
    pub(super) purpose: Purpose,
    pub(super) deadline: Millis,
}

/// What an outcome means for the engine.
pub(super) enum Verdict {
    /// The expected body.
    Success(ResponseBody),
    /// Worth retrying after backoff (at least `retry_after` later).
    Retry {
        error: SyncError,
        retry_after: Option<Millis>,
    },
    /// 401: pause until new credentials.
    Auth,
    /// The feed cursor is not valid on this server: sync from the start.
    InvalidCursor,
    /// Will not succeed by retrying.
    Permanent(SyncError),
}

impl Engine {
    /// Queues a request and tracks it until its outcome or deadline.
    pub(super) fn issue(
        &mut self,
        purpose: Purpose,
        method: Method,
        path: String,
        body: Option<RequestBody>,
        expects: ResponseKind,
    ) {
        let id = RequestId(self.next_request_id);
        self.next_request_id += 1;
        let timeout_ms = self.config.request_timeout_ms;
        log::debug!(request = id.0, path = path.as_str(); "sending request");
        self.in_flight.push((
            id,
            InFlight {
                purpose,
                deadline: self.now + timeout_ms,
            },
        ));
        self.outputs.push_back(super::Output::Send(HttpRequest {
            id,
            method,
            path,
            body,
            expects,
            timeout_ms,
        }));
    }

    /// Requests past their deadline count as timed out; late answers are ignored.
    pub(super) fn expire_requests(&mut self) {
        let now = self.now;
        let expired: Vec<RequestId> = self
            .in_flight
            .iter()
            .filter(|(_, flight)| flight.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(flight) = self.take_in_flight(id) {
                log::debug!(request = id.0; "request timed out");
                self.dispatch_outcome(flight, HttpOutcome::Timeout);
            }
        }
    }

    /// Removes request `id` from those in flight; what it was for, if it was in flight.
    pub(super) fn take_in_flight(&mut self, id: RequestId) -> Option<InFlight> {
        let index = self.in_flight.iter().position(|(sent, _)| *sent == id)?;
        Some(self.in_flight.remove(index).1)
    }

    pub(super) fn dispatch_outcome(&mut self, flight: InFlight, outcome: HttpOutcome) {
        if let HttpOutcome::Response { bytes, body, .. } = &outcome {
            self.stats.bytes_received += bytes;
            self.note_server_time(body);
        }
        let verdict = verdict(outcome);
        if let Verdict::Retry {
            retry_after: Some(after),
            error,
        } = &verdict
        {
            let until = self.now + crate::backoff::server_wait(*after, &mut self.rng);
            if until > self.server_retry_at {
                self.server_retry_at = until;
                self.server_wait_error = Some(error.clone());
                // No pull goes before (sends and read markers check it themselves).
                self.pull_retry_at = self.pull_retry_at.max(self.server_retry_at);
            }
        }
        if matches!(verdict, Verdict::Auth) && !self.auth_required {
            log::warn!("server refused the credentials; sync paused");
            self.auth_required = true;
            self.emit(crate::Event::AuthRequired);
            self.fail_ticketed_jobs(&SyncError::Auth);
        }
        match flight.purpose {
            Purpose::FeedPage => self.on_feed_outcome(verdict),
            Purpose::ConversationPage(id) => self.on_conversation_outcome(id, verdict),
            Purpose::History(id, before) => self.on_history_outcome(id, before, verdict),
            Purpose::Send(client_id) => self.on_send_outcome(client_id, verdict),
            Purpose::MarkRead(conversation) => self.on_read_marker_outcome(conversation, verdict),
        }
    }
}

/// The longest `Retry-After` honoured (1 h): a longer one (a misconfigured proxy's, or a date
/// far ahead of a skewed clock) would stop sending and syncing for days. The request goes again
/// after an hour, and waits again if told to.
pub const MAX_RETRY_AFTER_MS: Millis = 60 * 60 * 1000;

/// Sorts an outcome into success, retry, auth, cursor reset or permanent failure.
pub(super) fn verdict(outcome: HttpOutcome) -> Verdict {
    match outcome {
        HttpOutcome::Timeout => Verdict::Retry {
            error: SyncError::Timeout,
            retry_after: None,
        },
        HttpOutcome::Network(message) => Verdict::Retry {
            error: SyncError::Network { message },
            retry_after: None,
        },
        HttpOutcome::Response {
            status,
            retry_after_ms,
            body,
            ..
        } => {
            if (200..300).contains(&status) {
                return match body {
                    ResponseBody::Invalid(message) => Verdict::Retry {
                        error: SyncError::Protocol { message },
                        retry_after: None,
                    },
                    ResponseBody::Error(_) => Verdict::Retry {
                        error: SyncError::Protocol {
                            message: format!("an error body with status {status}"),
                        },
                        retry_after: None,
                    },
                    body => Verdict::Success(body),
                };
            }
            let (code, message) = match body {
                ResponseBody::Error(error) => (Some(error.error.code), error.error.message),
                _ => (None, "no protocol error body".to_owned()),
            };
            let retry_after_ms = retry_after_ms.map(|ms| ms.min(MAX_RETRY_AFTER_MS));
            if status == 401 {
                Verdict::Auth
            } else if code == Some(ErrorCode::InvalidCursor) {
                Verdict::InvalidCursor
            } else if chat_sync_protocol::is_retryable_status(status) {
                Verdict::Retry {
                    error: SyncError::server(status, code, message),
                    retry_after: retry_after_ms,
                }
            } else if code.is_none() {
                // Something on the way answered in the server's place (a proxy, a firewall, a
                // captive portal): that says nothing of the request, which is tried again, as
                // after a network error.
                Verdict::Retry {
                    error: SyncError::Protocol {
                        message: format!(
                            "HTTP {status} with {message}: from a proxy, firewall or captive \
                             portal between this device and the server?"
                        ),
                    },
                    retry_after: retry_after_ms,
                }
            } else {
                Verdict::Permanent(SyncError::server(status, code, message))
            }
        }
    }
}
