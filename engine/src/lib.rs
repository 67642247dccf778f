//! The sans-IO sync core of chat-sync.
//!
//! [`Engine`] is a pure, deterministic state machine: inputs (app commands, browser events, HTTP
//! outcomes, store results and the current time) go in; outputs (store batches, HTTP requests,
//! app events and the next wake-up) come out. It performs no I/O, reads no clock and draws no
//! randomness of its own (a seed comes in the [`Config`]), so it runs natively under `cargo test`
//! — with deterministic simulation of networks, crashes and clocks — and in the browser unchanged.
//! It is not a client by itself: a driver (the wasm crate, or a test harness) performs its
//! outputs.
//!
//! # The run-loop contract
//!
//! 1. Create the engine with [`Engine::new`], read the store with [`Store::load`] and pass the
//!    result to [`Engine::handle_loaded`]; then call [`Engine::start`].
//! 2. After **any** input or command, call [`Engine::poll_output`] until it returns
//!    [`Output::Timeout`], and perform each output in the order given:
//!    - [`Output::Persist`]: apply the batch atomically with [`Store::apply`] and report the result
//!      with [`Engine::handle_persisted`]. Only one batch is out at a time.
//!    - [`Output::Send`]: send the request and report with [`Engine::handle_response`].
//!    - [`Output::Event`]: hand it to the app. Events come after the store holds what they
//!      describe (persist before notify).
//!    - [`Output::Reload`]: read the store again and give the engine what other tabs may have
//!      changed ([`Engine::handle_outbox_reloaded`] and the others it names); nothing waits.
//! 3. When the time from `Timeout(Some(at))` comes, call [`Engine::handle_timeout`]; a new input
//!    before then supersedes the timeout.
//! 4. Pass the current time to every input; it may stand still or jump, never needs to be exact.
//! 5. Requests the engine stopped waiting for (past their timeout) may still be reported; their
//!    outcomes are ignored.
//!
//! # Example
//!
//! ```
//! use chat_sync_engine::{Config, Engine, MemoryStore, Output, Store};
//!
//! # pollster::block_on(async {
//! let store = MemoryStore::new();
//! let mut engine = Engine::new(Config::new("u-alice".into(), 7), 0);
//! engine.handle_loaded(store.load().await.unwrap(), 0);
//! let (message, _ticket) = engine.send("c-general".into(), "hi".into(), 0).unwrap();
//! // Offline and not started: the only output is the outbox write.
//! match engine.poll_output() {
//!     Output::Persist(batch) => {
//!         let result = store.apply(&batch.ops).await;
//!         engine.handle_persisted(batch.id, result, 1);
//!     }
//!     other => panic!("{other:?}"),
//! }
//! assert_eq!(store.load().await.unwrap().outbox[0].client_message_id, message.client_message_id);
//! # });
//! ```

mod backoff;
mod config;
mod engine;
mod event;
mod memory_store;
mod rng;
pub mod sort;
mod status;
mod store;
mod time;
mod transport;

#[cfg(feature = "contract-tests")]
pub mod contract;

pub use chat_sync_protocol as protocol;
pub use config::{BackoffConfig, BrokenVariant, Config};
pub use engine::{
    ConnectionQuality, EffectiveType, Engine, EngineError, Output, CLOCK_MOVE_MIN_MS,
    MAX_RETRY_AFTER_MS, QUOTA_EVICTION_KEEP,
};
pub use event::{ChangeSet, DiscardReason, Event, SyncSummary, Ticket};
pub use memory_store::{MemorySnapshot, MemoryStore};
pub use status::{Phase, Stats, Status, SyncError, Trigger};
pub use store::{
    conversation_order, ApplyReport, Batch, BatchId, ConversationSummary, Failure, HistoryFloor,
    LocalMessage, MessageStatus, OutboxEntry, PendingReadMarker, PersistedState, Store, StoreError,
    StoreOp, UnreadCount, OPTIMISTIC_SORT_BASE,
};
pub use time::iso8601;
pub use transport::{HttpOutcome, HttpRequest, Method, RequestId};
