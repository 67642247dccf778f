//! [`Engine`]: the sync state machine. See the crate docs for the run-loop contract.

mod maintenance;
mod outbox;
mod persist;

pub use persist::QUOTA_EVICTION_KEEP;
mod pull;
mod read_markers;
mod requests;
pub use requests::MAX_RETRY_AFTER_MS;

use crate::config::Config;
use crate::event::{Event, Ticket};
use crate::rng::Rng;
use crate::status::{Phase, Stats, Status, SyncError, Trigger};
use crate::store::{Batch, PersistedState, StoreOp};
use crate::transport::{HttpOutcome, HttpRequest, RequestId};
use crate::{BatchId, StoreError};
use chat_sync_protocol::{ConversationId, Cursor, Millis, ValidationError};
use litemap::LiteMap;
use std::collections::VecDeque;

use outbox::{outbox_key, OutboxItem, OutboxKey};
use persist::{AfterPersist, PendingBatch};
use pull::{HistoryJob, PullJob, Run};
use requests::{InFlight, Purpose};

/// A command that would wait longer than this for the server's `Retry-After` fails at once
/// instead (see `command_blocker`).
const LONG_SERVER_WAIT_MS: Millis = 10_000;

/// The least change in how far the engine's clock runs ahead of the device's that is a clock set
/// back or forward ([`Engine::handle_clock_ahead`]): less is how the two clocks' readings differ
/// without one (they are read one after the other, a busy thread reads them apart, and they
/// drift), and moving every stamp and storing them again for it would rewrite the outbox.
pub const CLOCK_MOVE_MIN_MS: Millis = 1_000;

/// What the engine wants done next; drain with [`Engine::poll_output`] until `Timeout`.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Apply this batch atomically, then report with [`Engine::handle_persisted`]. Batches come
    /// one at a time: the next follows only after this one's result.
    Persist(Batch),
    /// Send this request, then report with [`Engine::handle_response`].
    Send(HttpRequest),
    /// Tell the app.
    Event(Event),
    /// Read what the store holds that other tabs write too, and give it back as after another
    /// tab's note: [`Engine::handle_outbox_reloaded`], [`Engine::handle_last_sync_reloaded`]
    /// and [`Engine::handle_pending_read_markers`]. Nothing waits for it. Asked as each sync
    /// run starts, once this engine's own writes are stored: a tab that stored a message may
    /// have closed before it could tell this one.
    Reload,
    /// Nothing more to do until this time (call [`Engine::handle_timeout`] then), or until the
    /// next input when `None`.
    Timeout(Option<Millis>),
}

/// Misuse of a command; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The persisted state is not loaded yet ([`Engine::handle_loaded`]).
    #[error("the engine is not initialized yet")]
    NotInitialized,
    /// The message breaks the protocol's limits.
    #[error("invalid message: {0}")]
    InvalidMessage(#[from] ValidationError),
    /// No outbox entry has this client message id.
    #[error("no message in the outbox has this id")]
    UnknownMessage,
    /// The message is being sent right now or is not failed, so it cannot be retried or
    /// discarded.
    #[error("the message is not failed")]
    NotFailed,
    /// What becomes of the message is being stored (maintenance is removing it, or a retry or
    /// discard of it is under way): the event that follows tells the outcome; act on that.
    #[error("the message is being updated")]
    Settling,
}

/// Connection quality, from `navigator.connection` where the browser has it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionQuality {
    /// The effective connection type.
    pub effective_type: EffectiveType,
    /// The user asked to save data.
    pub save_data: bool,
}

/// `navigator.connection.effectiveType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EffectiveType {
    /// `slow-2g`.
    Slow2g,
    /// `2g`.
    TwoG,
    /// `3g`.
    ThreeG,
    /// `4g`, or faster.
    FourG,
    /// Not reported.
    #[default]
    Unknown,
}

impl ConnectionQuality {
    /// How much to stretch the periodic interval and shrink pages: 1 on good links.
    fn slowdown(self) -> u32 {
        match (self.effective_type, self.save_data) {
            (EffectiveType::Slow2g | EffectiveType::TwoG, _) | (_, true) => 4,
            (EffectiveType::ThreeG, false) => 2,
            _ => 1,
        }
    }
}

/// The sans-IO sync engine.
///
/// Methods come in four kinds: getters ([`status`](Self::status), [`stats`](Self::stats)),
/// inputs (`handle_*`), commands ([`send`](Self::send), [`request_sync`](Self::request_sync),
/// …), and the output queue ([`poll_output`](Self::poll_output)).
pub struct Engine {
    config: Config,
    rng: Rng,
    now: Millis,
    /// How far `now` runs ahead of the device's clock ([`Engine::handle_clock_ahead`]).
    clock_ahead: Millis,
    loaded: bool,
    started: bool,
    online: bool,
    visible: bool,
    auth_required: bool,
    storage_full: bool,
    quality: ConnectionQuality,

    cursor: Option<Cursor>,
    /// The cursor a write of feed pages in flight stores: the feed is fetched on from there
    /// meanwhile, and no other feed pages are written until it is stored.
    feed_writing: Option<Cursor>,
    /// Feed pages a sync run held when a pull failed for good while a write of feed pages was
    /// in flight: written with their cursor right after that write (and dropped if it fails).
    held_after_run: Option<persist::HeldPages>,
    last_sync: Option<Millis>,
    last_maintenance: Option<Millis>,
    maintenance_running: bool,
    maintenance_retry_at: Option<Millis>,
    /// The newest server stamp (`updated_ts`) an answer carried since the engine was created: the
    /// server's clock read at least this. Tombstones (server-stamped) are compacted by it, never
    /// by the device's clock, which may run far ahead of the server's.
    server_time: Option<Millis>,
    /// A maintenance ran before any server stamp was known: its tombstone compaction waits for
    /// one.
    compaction_owed: bool,

    /// Keyed by compose order, then client id (tabs composing at once may share a `seq`).
    outbox: LiteMap<OutboxKey, OutboxItem>,
    next_seq: u64,

    run: Option<Run>,
    /// The id of the next sync run ([`Run`]'s `id`).
    next_run_id: u64,
    /// A few at a time: `Vec`s, not `VecDeque`s (whose code is larger, per element type).
    conversation_jobs: Vec<PullJob>,
    history_jobs: Vec<HistoryJob>,
    /// Per conversation, where its own feed continues; sorted by conversation id (a sorted
    /// `Vec`: one `BTreeMap` type less in the wasm).
    conversation_cursors: Vec<(ConversationId, Cursor)>,
    open_conversation: Option<ConversationId>,
    pull_attempts: u32,
    pull_retry_at: Millis,
    /// No request goes before this: the server's `Retry-After` (whichever request it answered;
    /// also work made since, such as a message composed or a read marker set).
    server_retry_at: Millis,
    /// The error whose `Retry-After` set `server_retry_at`.
    server_wait_error: Option<SyncError>,
    /// The cache is to be emptied of the server's data and synced from the start once no sync
    /// run or feed write is under way (why, for the log): the store's database was deleted under
    /// the engine, or such a reset could not be stored.
    reset_owed: Option<&'static str>,
    /// A reset's write is in flight: sync runs wait for it, conversations are synced after it.
    resetting: bool,
    next_periodic: Option<Millis>,

    /// Requests sent and not answered yet, in the order sent (their ids ascend). A `Vec`, not a
    /// map: a handful at a time, and it keeps the wasm smaller.
    in_flight: Vec<(RequestId, InFlight)>,
    next_request_id: u64,
    /// Read markers set with [`Engine::mark_read`] that the server does not have yet; a
    /// handful, by conversation.
    unsent_read_markers: Vec<read_markers::UnsentReadMarker>,
    /// The last write of [`Self::unsent_read_markers`] failed: the store's list is stale until
    /// the next batch carries it again.
    unsent_read_markers_unsaved: bool,

    batches: VecDeque<PendingBatch>,
    persisting: Option<(BatchId, PendingBatch)>,
    next_batch_id: u64,
    /// A sync run started: [`Output::Reload`] goes once this engine's own writes are stored (a
    /// read before them would bring back what they change: a clock's restamp, a read marker
    /// answered).
    reload_owed: bool,

    outputs: VecDeque<Output>,
    next_ticket: u64,
    last_error: Option<SyncError>,
    last_trigger: Option<Trigger>,
    last_status: Option<Status>,
    stats: Stats,
    durations: VecDeque<Millis>,
}

impl Engine {
    /// A new engine; it does nothing until [`handle_loaded`](Self::handle_loaded) and
    /// [`start`](Self::start).
    pub fn new(config: Config, now: Millis) -> Self {
        Self {
            rng: Rng::new(config.seed),
            config,
            now,
            clock_ahead: 0,
            loaded: false,
            started: false,
            online: true,
            visible: true,
            auth_required: false,
            storage_full: false,
            quality: ConnectionQuality::default(),
            cursor: None,
            feed_writing: None,
            held_after_run: None,
            last_sync: None,
            last_maintenance: None,
            maintenance_running: false,
            maintenance_retry_at: None,
            server_time: None,
            compaction_owed: false,
            outbox: LiteMap::new(),
            next_seq: 1,
            run: None,
            next_run_id: 1,
            conversation_jobs: Vec::new(),
            history_jobs: Vec::new(),
            conversation_cursors: Vec::new(),
            open_conversation: None,
            pull_attempts: 0,
            pull_retry_at: Millis::MIN,
            server_retry_at: Millis::MIN,
            server_wait_error: None,
            reset_owed: None,
            resetting: false,
            next_periodic: None,
            in_flight: Vec::new(),
            next_request_id: 1,
            unsent_read_markers: Vec::new(),
            unsent_read_markers_unsaved: false,
            batches: VecDeque::new(),
            persisting: None,
            reload_owed: false,
            next_batch_id: 1,
            outputs: VecDeque::new(),
            next_ticket: 1,
            last_error: None,
            last_trigger: None,
            last_status: None,
            stats: Stats::default(),
            durations: VecDeque::new(),
        }
    }

    // ----- getters -----

    /// The current status.
    pub fn status(&self) -> Status {
        let pending_outbox = self
            .outbox
            .values()
            .filter(|item| item.entry.failure.is_none())
            .count();
        let failed_outbox = self.outbox.len() - pending_outbox;
        let pulling = self.run.is_some()
            || !self.conversation_jobs.is_empty()
            || !self.history_jobs.is_empty();
        let phase = if !self.loaded {
            Phase::Initializing
        } else if !self.started {
            Phase::Stopped
        } else if self.auth_required {
            Phase::AuthRequired
        } else if !self.online {
            Phase::Offline
        } else if pulling && self.pull_retry_at > self.now {
            // Our own backoff, or the server's Retry-After that outlives a reset of it.
            Phase::Backoff
        } else if pulling {
            Phase::Syncing
        } else {
            Phase::Idle
        };
        let next_sync_at = match phase {
            Phase::Backoff => Some(self.pull_retry_at),
            Phase::Idle => self.next_periodic,
            _ => None,
        }
        .map(|at| self.on_device_clock(at));
        Status {
            is_initialized: self.loaded,
            is_running: pulling && self.network_allowed(),
            is_online: self.online,
            last_sync_time: self.last_sync,
            last_error: self.last_error.clone(),
            pending_outbox,
            failed_outbox,
            pending_read_markers: match self.started {
                true => self.unsent_read_markers.len(),
                false => 0,
            },
            phase,
            last_trigger: self.last_trigger,
            next_sync_at,
            storage_full: self.storage_full,
        }
    }

    /// Counters and durations.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The engine's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ----- inputs -----

    /// The persisted state, read from the store at start.
    pub fn handle_loaded(&mut self, state: PersistedState, now: Millis) {
        self.cursor = state.cursor;
        // Recorded by a clock that was ahead then: they ran no later than now.
        let device_now = self.on_device_clock(now);
        self.last_sync = state.last_sync.map(|at| at.min(device_now));
        self.last_maintenance = state.last_maintenance.map(|at| at.min(device_now));
        self.adopt_pending_read_markers(state.pending_read_markers);
        for entry in state.outbox {
            self.next_seq = self.next_seq.max(entry.seq + 1);
            self.outbox
                .insert(outbox_key(&entry), OutboxItem::durable(entry));
        }
        self.loaded = true;
        self.advance(now);
        if self.started {
            self.trigger(Trigger::Start, None);
        }
    }

    /// When the last sync finished as the store now holds it, read after another tab's write
    /// (with the outbox): a follower tab, which never syncs itself, takes its leader's, so that
    /// every tab's status says when the data was last synced. A leading tab's own may be newer
    /// (its write still on the way): it keeps the later of the two.
    pub fn handle_last_sync_reloaded(&mut self, last_sync: Option<Millis>, now: Millis) {
        self.advance(now);
        self.last_sync = match self.started {
            true => self.last_sync.max(last_sync),
            false => last_sync.or(self.last_sync),
        };
    }

    /// Starts network sync and timers (an immediate sync first).
    pub fn start(&mut self, now: Millis) {
        self.started = true;
        self.advance(now);
        self.trigger(Trigger::Start, None);
    }

    /// Stops network sync and timers; open commands finish with [`SyncError::Stopped`].
    /// Writes already asked for still complete, and feed pages held in memory are stored (unless
    /// a write of feed pages is in flight: then they are fetched again next time, as a write
    /// begun after that one could come after the pages of a tab that took the lead meanwhile and
    /// move the shared cursor back).
    pub fn stop(&mut self, now: Millis) {
        self.started = false;
        self.advance(now);
        self.fail_ticketed_jobs(&SyncError::Stopped);
        self.store_held_pages();
        self.held_after_run = None;
        // Pulls under way are forgotten: a run started later must not take their answers for
        // its own. (Sends and read markers go on: their outcome is stored.)
        self.in_flight.retain(|(_, flight)| {
            matches!(flight.purpose, Purpose::Send(_) | Purpose::MarkRead(_))
        });
        self.run = None;
        self.conversation_jobs.clear();
        self.history_jobs.clear();
        self.next_periodic = None;
    }

    /// How far `now` (a clock that never goes back, which every wake-up is on) runs ahead of the
    /// device's clock: 0 unless the device's clock was set back. What the engine stores or
    /// shows as a time (a message's compose time, the last sync and maintenance, the next sync)
    /// is on the device's clock, so it means the same to every tab and after a reload.
    /// Moves smaller than [`CLOCK_MOVE_MIN_MS`] are not taken for a clock set back or forward.
    pub fn handle_clock_ahead(&mut self, ahead: Millis) {
        let ahead = ahead.max(0);
        // The device's clock moved under the engine's: the last sync and maintenance, stamped
        // on it before, move with it (maintenance keeps its pace, the status its meaning).
        let moved = ahead - self.clock_ahead;
        if moved.abs() >= CLOCK_MOVE_MIN_MS {
            self.last_sync = self.last_sync.map(|at| at - moved);
            self.last_maintenance = self.last_maintenance.map(|at| at - moved);
            self.clock_ahead = ahead;
            // The leading tab moves the stored one too: the other tabs show it.
            if let (true, Some(at)) = (self.started, self.last_sync) {
                self.persist(vec![StoreOp::SetLastSync(at)], AfterPersist::Nothing);
            }
            self.restamp_outbox(moved);
        }
    }

    /// `at`, a time on the engine's clock, as the device's clock reads it.
    fn on_device_clock(&self, at: Millis) -> Millis {
        at.saturating_sub(self.clock_ahead)
    }

    /// Now by the device's clock: the time stamps are taken on.
    fn device_now(&self) -> Millis {
        self.on_device_clock(self.now)
    }

    /// The network went up or down (`online` / `offline` events).
    pub fn handle_online(&mut self, online: bool, now: Millis) {
        let was_online = self.online;
        self.online = online;
        self.advance(now);
        if online && !was_online {
            self.reset_backoff();
            self.trigger(Trigger::Online, None);
        } else if !online {
            self.fail_ticketed_jobs(&SyncError::Offline);
        }
    }

    /// The app became visible or hidden (`visibilitychange`); becoming visible syncs at once.
    pub fn handle_visibility(&mut self, visible: bool, now: Millis) {
        let was_visible = self.visible;
        self.visible = visible;
        self.advance(now);
        if visible && !was_visible {
            self.trigger(Trigger::Resume, None);
        }
    }

    /// The connection quality changed; slow links sync less often, in smaller pages. The next
    /// periodic sync stays counted from the last one: it moves by the change of the interval
    /// only (the browser reports every change of the connection, most with the same quality).
    pub fn handle_connection_quality(&mut self, quality: ConnectionQuality, now: Millis) {
        let old_interval = self.periodic_interval();
        self.quality = quality;
        let change = self.periodic_interval() - old_interval;
        if let Some(at) = &mut self.next_periodic {
            *at += change;
        }
        self.advance(now);
    }

    /// New credentials are in place after [`Event::AuthRequired`]; sync resumes.
    pub fn handle_credentials_changed(&mut self, now: Millis) {
        let was_required = self.auth_required;
        self.auth_required = false;
        self.advance(now);
        if was_required {
            self.reset_backoff();
            self.trigger(Trigger::Retry, None);
        }
    }

    /// The time given in [`Output::Timeout`] has come.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.advance(now);
    }

    /// A request's outcome. Outcomes of requests the engine gave up on (timed out) are ignored.
    pub fn handle_response(&mut self, id: RequestId, outcome: HttpOutcome, now: Millis) {
        self.advance(now);
        if let Some(flight) = self.take_in_flight(id) {
            self.dispatch_outcome(flight, outcome);
        }
    }

    /// A batch's result.
    pub fn handle_persisted(
        &mut self,
        id: BatchId,
        result: Result<crate::ApplyReport, StoreError>,
        now: Millis,
    ) {
        self.advance(now);
        self.on_persisted(id, result);
    }

    // ----- commands -----

    /// Asks for a sync now; joins the running one if there is one. The ticket finishes with
    /// [`Event::CommandFinished`] when the sync finished or failed.
    pub fn request_sync(&mut self, trigger: Trigger, now: Millis) -> Ticket {
        self.advance(now);
        let ticket = self.new_ticket();
        if trigger == Trigger::Force {
            self.reset_backoff();
        }
        self.trigger(trigger, Some(ticket));
        ticket
    }

    /// Marks the conversation on screen (or none); its sync goes before the global feed.
    pub fn set_open_conversation(&mut self, conversation: Option<ConversationId>, now: Millis) {
        self.advance(now);
        self.open_conversation = conversation;
    }

    // ----- outputs -----

    /// The next thing to do. Call until it returns [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if self.outputs.is_empty() {
            self.schedule();
        }
        if let Some(output) = self.outputs.pop_front() {
            return output;
        }
        let status = self.status();
        if self.last_status.as_ref() != Some(&status) {
            self.last_status = Some(status.clone());
            return Output::Event(Event::StatusChanged(status));
        }
        Output::Timeout(self.next_wakeup())
    }

    // ----- internals shared by the submodules -----

    fn new_ticket(&mut self) -> Ticket {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        ticket
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn finish_ticket(&mut self, ticket: Ticket, result: Result<crate::SyncSummary, SyncError>) {
        self.emit(Event::CommandFinished { ticket, result });
    }

    fn network_allowed(&self) -> bool {
        self.loaded && self.started && self.online && !self.auth_required
    }

    /// Why a command that needs the network fails at once, if it does: the network is not
    /// allowed, or the server asked (`Retry-After`) to wait longer than [`LONG_SERVER_WAIT_MS`],
    /// and then the error that asked (the app's spinner stops; the sync goes when the wait ends).
    fn command_blocker(&self) -> Option<SyncError> {
        if !self.loaded || !self.started {
            Some(SyncError::Stopped)
        } else if self.auth_required {
            Some(SyncError::Auth)
        } else if !self.online {
            Some(SyncError::Offline)
        } else if self.server_retry_at > self.now.saturating_add(LONG_SERVER_WAIT_MS) {
            self.server_wait_error.clone()
        } else {
            None
        }
    }

    fn periodic_interval(&self) -> Millis {
        self.config.periodic_sync_ms * Millis::from(self.quality.slowdown())
    }

    fn page_size(&self) -> u32 {
        self.shrunk_on_slow_links(self.config.page_size)
    }

    fn catch_up_page_size(&self) -> u32 {
        self.shrunk_on_slow_links(self.config.catch_up_page_size)
    }

    /// A page size on this link: smaller on slow ones, to no fewer than 10 changes (or the size
    /// configured, when it is smaller).
    fn shrunk_on_slow_links(&self, size: u32) -> u32 {
        (size / self.quality.slowdown()).max(size.min(10))
    }

    /// Records failed attempt number `attempt` of a request that will be retried, and returns
    /// when it may go again: after a backoff with jitter, and no sooner than `retry_after`.
    fn retry_time(
        &mut self,
        attempt: u32,
        error: SyncError,
        retry_after: Option<Millis>,
    ) -> Millis {
        let delay =
            crate::backoff::delay(&self.config.backoff, attempt, retry_after, &mut self.rng);
        log::debug!(attempt = attempt, delay_ms = delay; "request failed; retrying");
        self.stats.retries += 1;
        self.last_error = Some(error);
        // Not before the server said to come back, whichever request it told.
        (self.now + delay).max(self.server_retry_at)
    }

    fn reset_backoff(&mut self) {
        self.pull_attempts = 0;
        self.pull_retry_at = self.server_retry_at.max(self.now);
        for item in self.outbox.iter_mut().map(|(_, item)| item) {
            item.not_before = item.not_before.min(self.server_retry_at.max(self.now));
        }
        self.reset_read_marker_backoff(self.server_retry_at.max(self.now));
    }

    /// Moves the clock and acts on what came due: request deadlines, the periodic sync,
    /// maintenance.
    fn advance(&mut self, now: Millis) {
        self.now = self.now.max(now);
        self.expire_requests();
        if self.network_allowed() && self.run.is_none() {
            if let Some(at) = self.next_periodic {
                if at <= self.now {
                    self.trigger(Trigger::Periodic, None);
                }
            }
        }
        if self.maintenance_due() {
            self.start_maintenance(None);
        }
    }

    fn next_wakeup(&self) -> Option<Millis> {
        let mut next: Option<Millis> = None;
        let mut consider = |at: Millis| next = Some(next.map_or(at, |n: Millis| n.min(at)));
        for (_, flight) in &self.in_flight {
            consider(flight.deadline);
        }
        if self.loaded && self.started {
            if let Some(at) = self.maintenance_next() {
                consider(at);
            }
        }
        if self.network_allowed() {
            if self.run.is_none() {
                if let Some(at) = self.next_periodic {
                    consider(at);
                }
            }
            let pulling = self.run.is_some()
                || self.reset_owed.is_some()
                || !self.conversation_jobs.is_empty()
                || !self.history_jobs.is_empty();
            if pulling && self.pull_retry_at > self.now {
                consider(self.pull_retry_at);
            }
            if let Some(at) = self.next_send_time() {
                consider(at);
            }
            if let Some(at) = self.next_read_marker_time() {
                consider(at);
            }
        }
        next.map(|at| at.max(self.now))
    }

    /// Runs what can run now: the next batch, then requests up to the concurrency limit.
    fn schedule(&mut self) {
        if !self.loaded {
            return;
        }
        self.start_over_if_owed();
        self.compact_if_owed();
        self.emit_next_batch();
        if self.reload_owed && self.batches.is_empty() && self.persisting.is_none() {
            self.reload_owed = false;
            self.outputs.push_back(Output::Reload);
        }
        if !self.network_allowed() {
            return;
        }
        while self.in_flight.len() < self.config.max_concurrent_requests.max(1) {
            let sent = self.send_conversation_page()
                || self.send_next_outbox()
                || self.send_next_read_marker()
                || self.send_history_page()
                || self.send_feed_page();
            if !sent {
                break;
            }
        }
    }
}
