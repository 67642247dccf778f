//! Engine configuration: intervals, limits, backoff, and the random seed.

use chat_sync_protocol::{Millis, UserId};

/// How the engine behaves. [`Config::new`] gives the documented defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The signed-in user (the sender of every message composed here).
    pub user_id: UserId,
    /// Seed of the engine's randomness (backoff jitter, client message ids). Give a fresh random
    /// value at every start in production; tests fix it to replay a run.
    pub seed: u64,
    /// Periodic sync interval while online (default 5 min).
    pub periodic_sync_ms: Millis,
    /// Maintenance interval (default 24 h).
    pub maintenance_interval_ms: Millis,
    /// Undelivered optimistic messages older than this become failed (default 7 days).
    pub optimistic_ttl_ms: Millis,
    /// Tombstones older than this by the server's clock (as far as its stamps tell) are
    /// compacted away (default 30 days).
    pub tombstone_ttl_ms: Millis,
    /// Server messages kept per conversation by maintenance; `None` keeps all (default 5,000).
    pub retention_per_conversation: Option<usize>,
    /// Changes per feed page (default 100; the server caps it at 500): a sync's first page, and
    /// every page of a per-conversation sync.
    pub page_size: u32,
    /// Changes per feed page after a sync run's first (default 500, the protocol's most): a
    /// backlog (a first sync, a device back after days offline) comes in a fifth of the round
    /// trips, and the run holds its pages until 2,000 writes anyway.
    pub catch_up_page_size: u32,
    /// Messages per history page (default 50).
    pub history_page_size: u32,
    /// Most HTTP requests in flight at once (default 2).
    pub max_concurrent_requests: usize,
    /// A request without an answer after this long counts as timed out (default 30 s).
    pub request_timeout_ms: Millis,
    /// Retry backoff.
    pub backoff: BackoffConfig,
    /// Deliberately broken behaviours, so tests can show the simulation catches them.
    #[doc(hidden)]
    pub broken: Option<BrokenVariant>,
}

/// Exponential backoff with full jitter: a retry waits a random time in
/// `[0, min(cap, base * 2^(attempt-1))]`, and at least as long as the server's `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first retry's upper bound (default 1 s).
    pub base_ms: Millis,
    /// The largest upper bound (default 5 min).
    pub cap_ms: Millis,
}

/// Broken variants of the engine, for tests that prove the simulation catches bugs.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokenVariant {
    /// Commits the feed cursor in its own batch, before the page's changes.
    CursorBeforeData,
    /// Gives every send attempt a fresh client message id.
    NewClientIdPerAttempt,
}

impl Config {
    /// The defaults for `user_id`, with `seed` as the randomness.
    pub fn new(user_id: UserId, seed: u64) -> Self {
        Self {
            user_id,
            seed,
            periodic_sync_ms: 5 * 60 * 1000,
            maintenance_interval_ms: 24 * 60 * 60 * 1000,
            optimistic_ttl_ms: 7 * 24 * 60 * 60 * 1000,
            tombstone_ttl_ms: 30 * 24 * 60 * 60 * 1000,
            retention_per_conversation: Some(5_000),
            page_size: 100,
            catch_up_page_size: chat_sync_protocol::limits::FEED_PAGE_MAX,
            history_page_size: 50,
            max_concurrent_requests: 2,
            request_timeout_ms: 30_000,
            backoff: BackoffConfig {
                base_ms: 1_000,
                cap_ms: 5 * 60 * 1000,
            },
            broken: None,
        }
    }
}
