//! What the engine reports about itself: status, statistics, triggers and errors.

use crate::store::StoreError;
use chat_sync_protocol::{ErrorCode, Millis};
use serde::Serialize;

/// Why a sync ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    /// The engine started.
    Start,
    /// The periodic timer.
    Periodic,
    /// The app became visible again.
    Resume,
    /// The network came back.
    Online,
    /// The app asked (`forceSync`; `syncOnce` in a service worker too).
    Force,
    /// The app asked for one conversation.
    Conversation,
    /// Retrying after a failure.
    Retry,
}

/// What the engine is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Reading its state from the store.
    Initializing,
    /// Stopped: no network, no timers.
    Stopped,
    /// Offline: composing works, nothing is sent.
    Offline,
    /// The server refused the credentials; waiting for new ones.
    AuthRequired,
    /// Pulling changes.
    Syncing,
    /// Waiting to retry after a failure.
    Backoff,
    /// Up to date, waiting for the next trigger.
    Idle,
}

/// A snapshot of the engine's state for the app (`getSyncStatus()`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The persisted state has been loaded.
    pub is_initialized: bool,
    /// A sync is in progress.
    pub is_running: bool,
    /// The engine believes the network is up.
    pub is_online: bool,
    /// When the last sync finished, by this device's clock.
    pub last_sync_time: Option<Millis>,
    /// The most recent error, cleared by the next successful sync.
    pub last_error: Option<SyncError>,
    /// Messages waiting to be delivered (not failed).
    pub pending_outbox: usize,
    /// Messages that failed and wait for retry or discard.
    pub failed_outbox: usize,
    /// Read markers ([`crate::Engine::mark_read`]) the server does not have yet, while this
    /// engine is started (leads); 0 otherwise: a follower hands its markers to the leader.
    pub pending_read_markers: usize,
    /// What the engine is doing.
    pub phase: Phase,
    /// Why the last sync ran.
    pub last_trigger: Option<Trigger>,
    /// When the next sync is planned, when one is.
    pub next_sync_at: Option<Millis>,
    /// The last write failed for lack of storage quota.
    pub storage_full: bool,
}

/// Counters and durations (`getStats()`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Syncs that finished.
    pub syncs_completed: u64,
    /// Syncs that failed (each counted once, however often it was retried).
    pub syncs_failed: u64,
    /// Messages received from the feed and history.
    pub messages_pulled: u64,
    /// Messages delivered from the outbox.
    pub messages_pushed: u64,
    /// Response bytes received.
    pub bytes_received: u64,
    /// Requests retried after a retryable failure.
    pub retries: u64,
    /// Duration of the last finished sync.
    pub last_sync_duration_ms: Option<Millis>,
    /// Mean duration of the recent syncs (up to 100).
    pub mean_sync_duration_ms: Option<Millis>,
    /// 95th percentile duration of the recent syncs (up to 100).
    pub p95_sync_duration_ms: Option<Millis>,
    /// Maintenance runs that finished.
    pub maintenance_runs: u64,
    /// Server messages evicted by maintenance.
    pub messages_evicted: u64,
}

/// Why a sync, a send or a command failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "camelCase")]
#[non_exhaustive]
pub enum SyncError {
    /// The device is offline.
    #[error("offline")]
    Offline,
    /// The server refused the credentials (401).
    #[error("the server refused the credentials")]
    Auth,
    /// The server answered with an error status.
    #[error("server error {status}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The protocol error code (`unknown` when the body had none).
        error_code: String,
        /// The server's message.
        message: String,
    },
    /// No answer in time.
    #[error("the request timed out")]
    Timeout,
    /// The connection failed.
    #[error("network error: {message}")]
    Network {
        /// What the transport said.
        message: String,
    },
    /// The answer did not match the protocol.
    #[error("unexpected answer: {message}")]
    Protocol {
        /// What was wrong.
        message: String,
    },
    /// The local store failed.
    #[error("storage error: {message}")]
    Storage {
        /// What the store said.
        message: String,
        /// The quota is exhausted.
        quota: bool,
    },
    /// The engine was stopped before the command finished.
    #[error("stopped")]
    Stopped,
    /// A retry or discard found the message no longer failed in the store: another tab
    /// retried, discarded or delivered it, or maintenance removed it, before this one heard.
    /// Nothing changed; the engine now holds the message as the store does.
    #[error("the message is not failed")]
    NotFailed,
}

impl SyncError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Server { status, .. } => chat_sync_protocol::is_retryable_status(*status),
            SyncError::Auth | SyncError::Stopped | SyncError::NotFailed => false,
            _ => true,
        }
    }

    /// The server's error code, when the server sent one.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            SyncError::Server { error_code, .. } => Some(error_code),
            _ => None,
        }
    }

    pub(crate) fn from_store(error: &StoreError) -> Self {
        SyncError::Storage {
            message: error.to_string(),
            quota: matches!(error, StoreError::QuotaExceeded),
        }
    }

    pub(crate) fn server(status: u16, code: Option<ErrorCode>, message: String) -> Self {
        let error_code = code.map_or("unknown", ErrorCode::as_str).to_owned();
        SyncError::Server {
            status,
            error_code,
            message,
        }
    }
}
