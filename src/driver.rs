//! The driver: the only code that feeds the engine and performs its outputs (the run loop of
//! the engine's crate docs). Store writes and requests run as spawned tasks whose results come
//! back as inputs; the engine's wake-up is one owned timer.

use crate::runtime::{
    self, Ask, Channel, Leadership, Lifecycle, NetworkCommand, Note, NOTES_VERSION,
};
use crate::store::IndexedDbStore;
use crate::transport::FetchTransport;
use chat_sync_engine::protocol::{
    Conversation, ConversationId, MessageId, Millis, ReadMarker, UserId,
};
use chat_sync_engine::{
    ApplyReport, ChangeSet, ConversationSummary, Engine, EngineError, Event, HistoryFloor,
    LocalMessage, MemoryStore, Output, PersistedState, Store, StoreError, StoreOp, SyncError,
    SyncSummary, Ticket, Trigger,
};
use futures_channel::oneshot;
use gloo_timers::callback::{Interval, Timeout};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use wasm_bindgen::JsValue;

/// How long a follower waits for the leading tab to answer [`Note::Ping`] before it takes the
/// lead over (a running tab answers at once, also in the background).
const LEADER_ANSWER_MS: u32 = 5_000;

/// How often a visible follower checks that the leading tab runs ([`Note::Ping`]): the user
/// looks at it, and a leading tab the browser suspended without a word would leave it showing
/// nothing new.
const LEADER_WATCH_MS: u32 = 15_000;

/// How often a follower asks the leading tab again for a command it has not answered yet
/// ([`Note::Ask`]): a tab that took the lead meanwhile never heard the first ask. While the
/// leader runs a command, it does not run it again when asked again.
const ASK_AGAIN_MS: u32 = 10_000;

/// How many of its last answers the leading tab keeps for asks repeated as they went.
const ANSWERS_KEPT: usize = 16;

/// How many times a follower asks (every [`ASK_AGAIN_MS`]: 5 min) before the command fails.
const ASKS: u32 = 30;

/// Where the data lives: IndexedDB, or memory where IndexedDB is unavailable (some private
/// modes); the status says which.
pub(crate) enum AnyStore {
    IndexedDb(IndexedDbStore),
    Memory(MemoryStore),
}

impl Store for AnyStore {
    async fn load(&self) -> Result<PersistedState, StoreError> {
        match self {
            AnyStore::IndexedDb(store) => store.load().await,
            AnyStore::Memory(store) => store.load().await,
        }
    }

    async fn apply(&self, ops: &[StoreOp]) -> Result<ApplyReport, StoreError> {
        match self {
            AnyStore::IndexedDb(store) => store.apply(ops).await,
            AnyStore::Memory(store) => store.apply(ops).await,
        }
    }

    async fn conversations(&self) -> Result<Vec<Conversation>, StoreError> {
        match self {
            AnyStore::IndexedDb(store) => store.conversations().await,
            AnyStore::Memory(store) => store.conversations().await,
        }
    }

    async fn conversation_summaries(
        &self,
        me: &UserId,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        match self {
            AnyStore::IndexedDb(store) => store.conversation_summaries(me).await,
            AnyStore::Memory(store) => store.conversation_summaries(me).await,
        }
    }

    async fn messages(
        &self,
        conversation: &ConversationId,
        before: Option<Millis>,
        limit: usize,
    ) -> Result<Vec<LocalMessage>, StoreError> {
        match self {
            AnyStore::IndexedDb(store) => store.messages(conversation, before, limit).await,
            AnyStore::Memory(store) => store.messages(conversation, before, limit).await,
        }
    }

    async fn history_floor(
        &self,
        conversation: &ConversationId,
    ) -> Result<HistoryFloor, StoreError> {
        match self {
            AnyStore::IndexedDb(store) => store.history_floor(conversation).await,
            AnyStore::Memory(store) => store.history_floor(conversation).await,
        }
    }

    async fn read_markers(
        &self,
        conversation: &ConversationId,
    ) -> Result<Vec<ReadMarker>, StoreError> {
        match self {
            AnyStore::IndexedDb(store) => store.read_markers(conversation).await,
            AnyStore::Memory(store) => store.read_markers(conversation).await,
        }
    }
}

impl AnyStore {
    /// Whether the store holds the conversation `id` (in IndexedDB one keyed read, where
    /// [`Store::conversations`] reads and sorts them all).
    pub(crate) async fn has_conversation(&self, id: &ConversationId) -> Result<bool, StoreError> {
        match self {
            AnyStore::IndexedDb(store) => store.has_conversation(id).await,
            AnyStore::Memory(store) => Ok(store.conversations().await?.iter().any(|c| &c.id == id)),
        }
    }
}

/// A command's result, once the engine finishes its ticket.
pub(crate) type Finished = oneshot::Receiver<Result<SyncSummary, SyncError>>;

/// Where a command's result goes (the other end of [`Finished`]).
type Finish = oneshot::Sender<Result<SyncSummary, SyncError>>;

/// A command a follower asked of the leading tab, waiting for its [`Note::Answer`] (or, in a
/// tab that keeps its data in memory and leads only itself, waiting until it leads again).
struct AskedOfLeader {
    request_id: String,
    command: NetworkCommand,
    finish: Finish,
    /// Asks again until answered (and fails the command after [`ASKS`] asks); none in a tab that
    /// asks no other tab.
    again: Option<Interval>,
}

/// Hears an event's `detail`.
type OnDetail = Box<dyn Fn(&JsValue)>;

/// The engine with its store, transport, timer and browser listeners.
pub(crate) struct Driver {
    engine: RefCell<Engine>,
    pub(crate) store: AnyStore,
    transport: FetchTransport,
    token: RefCell<String>,
    wake: RefCell<Option<Timeout>>,
    /// The commands waiting for their result (a few at a time, so a `Vec`, not a map).
    tickets: RefCell<Vec<(Ticket, Finish)>>,
    on_event: Box<dyn Fn(&Event)>,
    lifecycle: RefCell<Option<Lifecycle>>,
    leadership: RefCell<Option<Leadership>>,
    /// A request for the lock is under way (a page restored from the back/forward cache hears
    /// `resume` and `pageshow`: one request, not two).
    seeking: Cell<bool>,
    channel: RefCell<Option<Channel>>,
    is_leader: Cell<bool>,
    /// Commands this tab asked of the leading tab, waiting for its answer.
    asked: RefCell<Vec<AskedOfLeader>>,
    /// The request ids of the commands other tabs asked that this tab runs now.
    answering: RefCell<Vec<String>>,
    /// The last answers this tab gave ([`ANSWERS_KEPT`]): an ask repeated as its answer was on
    /// its way gets it again, instead of running the command twice.
    answered: RefCell<Vec<Note>>,
    /// A follower's check that the leading tab runs: the lead is taken over when it fires, and
    /// the leading tab's [`Note::Pong`] cancels it.
    leader_check: RefCell<Option<Timeout>>,
    /// Runs [`check_leader`](Self::check_leader) every [`LEADER_WATCH_MS`] while the page is
    /// visible.
    leader_watch: RefCell<Option<Interval>>,
    /// The database name: the leader lock and the tab channel are named after it.
    name: RefCell<String>,
    disposed: Cell<bool>,
    /// A batch is being stored (the engine asks for one at a time). [`dispose`](Self::dispose)
    /// lets it finish: the commands it stores settle by it, and the other tabs hear of it.
    writing: Cell<bool>,
    /// Told once another tab cleared this user's data ([`Note::Cleared`]).
    on_cleared: RefCell<Option<Box<dyn Fn()>>>,
    /// Hears the leading tab's `message` events ([`Note::MessageEvent`]).
    on_leaders_message: RefCell<Option<OnDetail>>,
}

impl Driver {
    /// A driver for `engine` (loaded from `store`); `on_event` hears every engine event.
    pub(crate) fn new(
        engine: Engine,
        store: AnyStore,
        transport: FetchTransport,
        token: String,
        on_event: impl Fn(&Event) + 'static,
    ) -> Rc<Self> {
        Rc::new(Self {
            engine: RefCell::new(engine),
            store,
            transport,
            token: RefCell::new(token),
            wake: RefCell::new(None),
            tickets: RefCell::new(Vec::new()),
            on_event: Box::new(on_event),
            lifecycle: RefCell::new(None),
            leadership: RefCell::new(None),
            seeking: Cell::new(false),
            channel: RefCell::new(None),
            is_leader: Cell::new(false),
            asked: RefCell::new(Vec::new()),
            answering: RefCell::new(Vec::new()),
            answered: RefCell::new(Vec::new()),
            leader_check: RefCell::new(None),
            leader_watch: RefCell::new(None),
            name: RefCell::new(String::new()),
            disposed: Cell::new(false),
            writing: Cell::new(false),
            on_cleared: RefCell::new(None),
            on_leaders_message: RefCell::new(None),
        })
    }

    /// Starts: browser events in, the other tabs of this database (`name`) heard, and syncing
    /// once this tab leads (one tab at a time does).
    pub(crate) async fn start(self: &Rc<Self>, name: &str) {
        *self.name.borrow_mut() = name.to_owned();
        let weak = Rc::downgrade(self);
        let lifecycle = Lifecycle::listen(move |event| {
            if let Some(driver) = weak.upgrade() {
                driver.on_browser_event(event);
            }
        });
        *self.lifecycle.borrow_mut() = Some(lifecycle);
        let weak = Rc::downgrade(self);
        let watch = Interval::new(LEADER_WATCH_MS, move || {
            if let Some(driver) = weak.upgrade().filter(|_| runtime::is_visible()) {
                driver.check_leader();
            }
        });
        *self.leader_watch.borrow_mut() = Some(watch);
        self.hear_other_tabs();
        if let AnyStore::IndexedDb(store) = &self.store {
            // A read the engine does not see may find the database deleted too: an input hands
            // that on at once (Self::now), in a task of its own, as the store is mid-operation.
            let weak = Rc::downgrade(self);
            store.on_wiped(move || {
                let Some(driver) = weak.upgrade().filter(|driver| !driver.is_disposed()) else {
                    return;
                };
                wasm_bindgen_futures::spawn_local(async move { driver.input(|_, _| ()) });
            });
        }
        self.input(|engine, now| {
            engine.handle_online(runtime::is_online(), now);
            engine.handle_visibility(runtime::is_visible(), now);
            if let Some(quality) = runtime::connection_quality() {
                engine.handle_connection_quality(quality, now);
            }
        });
        self.seek_leadership(Ask::Queue).await;
    }

    /// The name of the channel to the other tabs of this database.
    fn channel_name(&self) -> String {
        format!("chat-sync|{}", self.name.borrow())
    }

    /// Opens the channel to the other tabs of this database.
    fn hear_other_tabs(self: &Rc<Self>) {
        let weak = Rc::downgrade(self);
        let channel = Channel::open(&self.channel_name(), move |note| {
            if let Some(driver) = weak.upgrade() {
                driver.on_note(note);
            }
        });
        *self.channel.borrow_mut() = Some(channel);
    }

    /// Takes the leader lock if free (or from the tab that holds it, with [`Ask::TakeOver`]),
    /// or queues for it and checks that the leading tab runs. A tab that keeps its data in
    /// memory shares no outbox with other tabs, so it leads on its own (a lock of its own).
    async fn seek_leadership(self: &Rc<Self>, ask: Ask) {
        // (A disposed tab asks for nothing: a takeover queued before would end the lead of a
        // tab that runs.)
        if self.disposed.get() || self.seeking.replace(true) {
            return;
        }
        let name = match &self.store {
            AnyStore::IndexedDb(_) => format!("chat-sync-leader|{}", self.name.borrow()),
            AnyStore::Memory(_) => format!(
                "chat-sync-leader|{}|memory-{:x}",
                self.name.borrow(),
                runtime::random_seed()
            ),
        };
        let weak = Rc::downgrade(self);
        let on_acquired = move || {
            if let Some(driver) = weak.upgrade() {
                driver.lead();
            }
        };
        let weak = Rc::downgrade(self);
        let on_lost = move || {
            if let Some(driver) = weak.upgrade() {
                driver.lost_lead();
            }
        };
        let leadership = Leadership::acquire(&name, ask, on_acquired, on_lost).await;
        self.seeking.set(false);
        if self.disposed.get() {
            return; // (dropped: the lock, or the place in line, goes)
        }
        *self.leadership.borrow_mut() = Some(leadership);
        self.check_leader();
    }

    /// Another tab took the lock over (this one did not answer it in time, say while the
    /// browser had it suspended): stop syncing, and queue for the lock again.
    fn lost_lead(self: &Rc<Self>) {
        if self.disposed.get() {
            return;
        }
        log::warn!("another tab took over syncing: this tab follows it");
        self.stop_leading();
        self.seek_leadership_later(Ask::Queue);
    }

    /// Lets go of the lock (or of its place in line for it) and stops syncing.
    fn stop_leading(self: &Rc<Self>) {
        self.leadership.borrow_mut().take();
        self.is_leader.set(false);
        self.input(|engine, now| engine.stop(now));
    }

    /// [`seek_leadership`](Self::seek_leadership) in a task of its own (one task type for every
    /// caller: each would otherwise copy its code into the wasm).
    fn seek_leadership_later(self: &Rc<Self>, ask: Ask) {
        let driver = self.clone();
        wasm_bindgen_futures::spawn_local(async move { driver.seek_leadership(ask).await });
    }

    /// A follower checks that the leading tab runs. A tab the browser suspended without a word
    /// (Safari suspends background tabs, and fires no `freeze`) keeps the lock and would leave
    /// every other tab waiting, their messages unsent. Without an answer within
    /// [`LEADER_ANSWER_MS`], this tab takes the lock over. (A tab that hears no other tab never
    /// checks: it would take the lock over and over.)
    fn check_leader(self: &Rc<Self>) {
        let hears = (self.channel.borrow().as_ref()).is_some_and(Channel::is_open);
        if !self.follows() || !hears || self.leader_check.borrow().is_some() {
            return;
        }
        let weak = Rc::downgrade(self);
        let silent = Timeout::new(LEADER_ANSWER_MS, move || {
            let Some(driver) = weak.upgrade() else {
                return;
            };
            driver.leader_check.borrow_mut().take();
            if driver.follows() {
                log::warn!("the leading tab does not answer: this tab takes over syncing");
                driver.take_over();
            }
        });
        *self.leader_check.borrow_mut() = Some(silent);
        self.post(&Note::Ping);
    }

    /// Takes the lock from the leading tab, which hears of it (`on_lost`) and follows.
    fn take_over(self: &Rc<Self>) {
        self.leadership.borrow_mut().take();
        self.seek_leadership_later(Ask::TakeOver);
    }

    /// The page goes away, into the back/forward cache, or is frozen: let another tab lead (a
    /// frozen tab holding the lock would keep every other tab waiting), stop timers and
    /// requests, and close the database so other tabs' upgrades are not blocked.
    fn step_down(self: &Rc<Self>) {
        self.stop_leading();
        if let AnyStore::IndexedDb(store) = &self.store {
            store.close();
        }
    }

    /// The page is back (shown or resumed): queue for leadership again (the database reopens on
    /// its next use).
    fn resume(self: &Rc<Self>) {
        if self.disposed.get() || self.leadership.borrow().is_some() {
            return;
        }
        if let AnyStore::IndexedDb(store) = &self.store {
            store.keep_open();
        }
        self.seek_leadership_later(Ask::Queue);
    }

    /// Whether this tab waits in line behind a leading tab.
    fn follows(&self) -> bool {
        self.leadership.borrow().is_some() && !self.is_leader() && !self.disposed.get()
    }

    /// Whether this tab syncs (holds the leader lock).
    pub(crate) fn is_leader(&self) -> bool {
        self.is_leader.get()
    }

    /// Whether this tab syncs for the other tabs of its database: it leads, and keeps its data
    /// there. A tab that keeps its data in memory leads only itself (beside it may be tabs of a
    /// newer version of the app, with the database): it answers no other tab's note.
    fn leads_others(&self) -> bool {
        self.is_leader() && matches!(self.store, AnyStore::IndexedDb(_))
    }

    /// This tab leads now: sync, and catch up with what other tabs put in the outbox.
    fn lead(self: &Rc<Self>) {
        if self.disposed.get() {
            return;
        }
        log::info!("this tab leads syncing");
        self.is_leader.set(true);
        self.input(|engine, now| engine.start(now));
        let driver = self.clone();
        wasm_bindgen_futures::spawn_local(async move { driver.reload_shared_state().await });
        // What this tab asked of the tab that led (which left, or stopped answering) is its own
        // to run now.
        for asked in self.asked.take() {
            self.run_here(asked.command, asked.finish);
        }
    }

    /// Gives the engine the outbox and the last sync's time as the shared store holds them and,
    /// while this tab leads, the read markers left unsent there (by the tab that led before it,
    /// or one that led beside it for a while).
    pub(crate) async fn reload_shared_state(self: &Rc<Self>) {
        match self.store.load().await {
            Ok(state) => self.input(|engine, now| {
                engine.handle_outbox_reloaded(state.outbox, now);
                engine.handle_last_sync_reloaded(state.last_sync, now);
                if self.is_leader() {
                    engine.handle_pending_read_markers(state.pending_read_markers, now);
                }
            }),
            Err(error) => {
                log::warn!(error = error.to_string().as_str(); "cannot reload the state other tabs share")
            }
        }
    }

    /// Another tab's note.
    fn on_note(self: &Rc<Self>, note: Note) {
        if self.disposed.get() {
            return; // (its channel stays open only for a write under way to be told)
        }
        match note {
            Note::Stored { .. } if matches!(self.store, AnyStore::Memory(_)) => {}
            Note::Stored { conversation_ids } => {
                let driver = self.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    driver.reload_shared_state().await;
                    let changes = ChangeSet {
                        conversations: conversation_ids.into_iter().map(Into::into).collect(),
                        messages: 0,
                    };
                    if !driver.is_disposed() {
                        (driver.on_event)(&Event::Changed(changes));
                    }
                });
            }
            Note::Ask {
                request_id,
                command,
            } if self.leads_others() => {
                if self.answering.borrow().contains(&request_id) {
                    return; // asked again while it runs
                }
                let given = (self.answered.borrow().iter())
                    .find(|answer| matches!(answer, Note::Answer { request_id: id, .. } if *id == request_id))
                    .cloned();
                if let Some(answer) = given {
                    return self.post(&answer); // asked again as the answer went
                }
                self.answering.borrow_mut().push(request_id.clone());
                let (finish, finished) = oneshot::channel();
                self.run_network_command(&command, finish);
                let driver = self.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    // (Stopped, when this tab stops leading first: the asking tab asks again.)
                    let result = finished.await.unwrap_or(Err(SyncError::Stopped));
                    driver.answering.borrow_mut().retain(|id| *id != request_id);
                    let summary = result.clone().unwrap_or_default();
                    let answer = Note::Answer {
                        request_id,
                        changes: summary.changes,
                        has_more: summary.has_more,
                        error: result.err(),
                    };
                    driver.post(&answer);
                    if matches!(
                        answer,
                        Note::Answer {
                            error: Some(SyncError::Stopped),
                            ..
                        }
                    ) {
                        return; // (asked again, of the tab that leads then)
                    }
                    let mut answered = driver.answered.borrow_mut();
                    if answered.len() == ANSWERS_KEPT {
                        answered.remove(0);
                    }
                    answered.push(answer);
                });
            }
            Note::Ask { .. } => {}
            Note::Answer {
                request_id,
                changes,
                has_more,
                error,
            } => {
                // A leading tab that stopped before it finished: the command stays asked, for
                // the tab that leads next.
                if error == Some(SyncError::Stopped) {
                    return;
                }
                if let Some(asked) = self.take_asked(&request_id) {
                    let summary = SyncSummary { changes, has_more };
                    // What the leader stored is this tab's status (last sync, outbox) first.
                    let driver = self.clone();
                    wasm_bindgen_futures::spawn_local(async move {
                        driver.reload_shared_state().await;
                        let _ = asked.finish.send(error.map_or(Ok(summary), Err));
                    });
                }
            }
            Note::MarkRead {
                conversation_id,
                message_id,
                server_ts,
            } if self.leads_others() => {
                let marked = self.input(|engine, now| {
                    engine.mark_read(conversation_id.into(), message_id.into(), server_ts, now)
                });
                if let Err(error) = marked {
                    let error = error.to_string();
                    log::warn!(error = error.as_str(); "cannot take another tab's read marker");
                }
            }
            Note::MarkRead { .. } => {}
            Note::Cleared => {
                log::info!("another tab cleared this user's data: stopping");
                let driver = self.clone();
                wasm_bindgen_futures::spawn_local(async move { driver.stop_cleared().await });
            }
            Note::Wiped if self.leads_others() => {
                self.input(|engine, now| engine.handle_store_wiped(now));
            }
            Note::Wiped => {}
            // (A tab that keeps its data in memory has messages of its own.)
            Note::MessageEvent { detail }
                if !self.is_leader() && matches!(self.store, AnyStore::IndexedDb(_)) =>
            {
                if let Some(callback) = self.on_leaders_message.borrow().as_ref() {
                    callback(&detail);
                }
            }
            Note::MessageEvent { .. } => {}
            Note::Ping if self.leads_others() => self.post(&Note::Pong {
                version: NOTES_VERSION,
            }),
            Note::Ping => {}
            Note::Resumed if self.leads_others() => {
                self.input(|engine, now| engine.request_sync(Trigger::Resume, now));
            }
            Note::Resumed => {}
            Note::Pong { version } => {
                // The leading tab runs: the check is off.
                self.leader_check.borrow_mut().take();
                if version < NOTES_VERSION && self.follows() {
                    log::warn!(version; "the leading tab runs an older version of the app: this tab takes over syncing");
                    self.take_over();
                }
            }
        }
    }

    /// Calls `callback` with the `detail` of each `message` event the leading tab's app gets
    /// for a message it delivered, that failed or went (this tab's engine sends nothing).
    pub(crate) fn on_leaders_message(&self, callback: impl Fn(&JsValue) + 'static) {
        *self.on_leaders_message.borrow_mut() = Some(Box::new(callback));
    }

    /// Tells the other tabs of the database of the `message` event `detail` this leading tab's
    /// app got.
    pub(crate) fn tell_followers(self: &Rc<Self>, detail: &JsValue) {
        if self.leads_others() {
            self.post(&Note::MessageEvent {
                detail: detail.clone(),
            });
        }
    }

    /// Calls `callback` once another tab cleared this user's data (`clear()`, a logout): by
    /// then this driver has stopped for good and the database is deleted.
    pub(crate) fn on_cleared(&self, callback: impl Fn() + 'static) {
        *self.on_cleared.borrow_mut() = Some(Box::new(callback));
    }

    /// Stops for good and tells the other tabs of this database to stop too, as the caller
    /// deletes the user's data (a logout): they would write it back otherwise.
    pub(crate) fn clear(self: &Rc<Self>) {
        match self.channel.borrow().as_ref() {
            Some(channel) => channel.post(&Note::Cleared),
            // Disposed already: the other tabs are told all the same.
            None => Channel::open(&self.channel_name(), |_| ()).post(&Note::Cleared),
        }
        self.dispose();
    }

    /// Deletes this user's database.
    pub(crate) async fn delete_database(&self) -> Result<(), StoreError> {
        let name = self.name.borrow().clone();
        if let AnyStore::IndexedDb(store) = &self.store {
            store.retire();
        }
        let deleted = IndexedDbStore::delete(&name).await;
        match &self.store {
            AnyStore::IndexedDb(_) => deleted,
            // Beside a memory store may be a database a newer version of the app keeps: it goes
            // all the same. Where the browser gives no IndexedDB there is nothing to delete.
            AnyStore::Memory(_) => {
                if let Err(error) = deleted {
                    log::debug!(error = error.to_string().as_str(); "no database deleted");
                }
                Ok(())
            }
        }
    }

    /// Another tab cleared the data: stop, delete the database as well (what this tab had under
    /// way may have opened it again after the other tab deleted it), and tell the app.
    async fn stop_cleared(self: &Rc<Self>) {
        self.dispose();
        if let Err(error) = self.delete_database().await {
            log::warn!(error = error.to_string().as_str(); "cannot delete the cleared database");
        }
        if let Some(callback) = self.on_cleared.borrow().as_ref() {
            callback();
        }
    }

    /// Sets this user's read marker (see [`Engine::mark_read`]); the receiver resolves once it
    /// is stored. A follower keeps it too (shown at once; sent should this tab lead) and hands it
    /// to the leading tab, which stores and sends it.
    pub(crate) fn mark_read(
        self: &Rc<Self>,
        conversation: ConversationId,
        message: MessageId,
        server_ts: Millis,
    ) -> Result<Finished, EngineError> {
        let note = Note::MarkRead {
            conversation_id: conversation.to_string(),
            message_id: message.to_string(),
            server_ts,
        };
        let ((), finished) = self.command(|engine, now| {
            engine
                .mark_read(conversation, message, server_ts, now)
                .map(|ticket| ((), ticket))
        })?;
        if !self.is_leader() {
            self.post(&note);
        }
        Ok(finished)
    }

    /// Runs a command that talks to the server: this tab's engine does when this tab leads (or
    /// keeps its data in memory, and leads only itself), else the leading tab, which this tab
    /// asks ([`Note::Ask`]) until it answers (for up to 5 min).
    pub(crate) fn network_command(self: &Rc<Self>, command: NetworkCommand) -> Finished {
        let (finish, finished) = oneshot::channel();
        if self.is_disposed() {
            let _ = finish.send(Err(SyncError::Stopped));
        } else if self.is_leader() {
            self.run_here(command, finish);
        } else if matches!(self.store, AnyStore::Memory(_)) {
            // Frozen, or resumed and not leading yet: it runs when this tab leads again.
            self.asked.borrow_mut().push(AskedOfLeader {
                request_id: String::new(),
                command,
                finish,
                again: None,
            });
        } else {
            self.ask_leader(command, finish);
        }
        finished
    }

    /// Runs `command` on this tab's engine. When this tab stops leading before it finishes
    /// (another tab took over, or the browser froze this one), the tab that leads now runs it.
    fn run_here(self: &Rc<Self>, command: NetworkCommand, finish: Finish) {
        let (here, result) = oneshot::channel();
        self.run_network_command(&command, here);
        let driver = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let result = match result.await {
                Ok(Err(SyncError::Stopped)) if !driver.is_disposed() => {
                    driver.network_command(command).await
                }
                result => result,
            };
            if let Ok(result) = result {
                let _ = finish.send(result);
            }
        });
    }

    /// Asks the leading tab to run `command`, again every [`ASK_AGAIN_MS`] until it answers
    /// (its result goes to `finish`), and fails it after [`ASKS`] asks.
    fn ask_leader(self: &Rc<Self>, command: NetworkCommand, finish: Finish) {
        let request_id = format!("{:x}", runtime::random_seed());
        let note = Note::Ask {
            request_id: request_id.clone(),
            command: command.clone(),
        };
        let weak = Rc::downgrade(self);
        let id = request_id.clone();
        let again_note = note.clone();
        let mut asks = 1;
        let again = Interval::new(ASK_AGAIN_MS, move || {
            let Some(driver) = weak.upgrade() else {
                return;
            };
            asks += 1;
            if asks <= ASKS {
                driver.post(&again_note);
                return;
            }
            if let Some(AskedOfLeader { finish, again, .. }) = driver.take_asked(&id) {
                let message = "the leading tab did not answer for 5 min".to_owned();
                let _ = finish.send(Err(SyncError::Network { message }));
                // (Not dropped inside its own callback.)
                wasm_bindgen_futures::spawn_local(async move { drop(again) });
            }
        });
        self.asked.borrow_mut().push(AskedOfLeader {
            request_id,
            command,
            finish,
            again: Some(again),
        });
        self.post(&note);
    }

    /// Takes the command this tab asked as `request_id` off the list waiting for an answer.
    fn take_asked(&self, request_id: &str) -> Option<AskedOfLeader> {
        let mut asked = self.asked.borrow_mut();
        let index = asked.iter().position(|a| a.request_id == request_id)?;
        Some(asked.remove(index))
    }

    /// Runs a [`NetworkCommand`] on this tab's engine; its result goes to `finish`.
    fn run_network_command(self: &Rc<Self>, command: &NetworkCommand, finish: Finish) {
        let now = self.now();
        let ticket = {
            let mut engine = self.engine.borrow_mut();
            match command {
                NetworkCommand::Sync => engine.request_sync(Trigger::Force, now),
                NetworkCommand::SyncConversation(id) => engine.sync_conversation(id.clone(), now),
                NetworkCommand::LoadOlder(id, before) => {
                    engine.load_older(id.clone(), before.clone(), now)
                }
            }
        };
        self.await_ticket(ticket, finish);
        self.pump();
    }

    /// Tells the other tabs. A follower's note asks the leading tab to act (send what this tab
    /// stored, sync, store a read marker): the follower checks that it runs.
    fn post(self: &Rc<Self>, note: &Note) {
        if let Some(channel) = self.channel.borrow().as_ref() {
            channel.post(note);
        }
        if !matches!(note, Note::Ping | Note::Pong { .. } | Note::Cleared) {
            self.check_leader();
        }
    }

    fn on_browser_event(self: &Rc<Self>, event: runtime::BrowserEvent) {
        use runtime::BrowserEvent;
        match event {
            BrowserEvent::Online(online) => self.input(|e, now| e.handle_online(online, now)),
            BrowserEvent::Visible(visible) => {
                self.input(|e, now| e.handle_visibility(visible, now));
                // The user is back: the leading tab syncs for them (and is checked to run).
                if visible && self.follows() {
                    self.post(&Note::Resumed);
                }
            }
            // The page may be frozen or discarded: nothing to flush (every write is already a
            // committed batch), but stop timers and requests from piling up.
            BrowserEvent::Suspended => self.step_down(),
            BrowserEvent::Resumed => self.resume(),
            BrowserEvent::Connection(quality) => {
                self.input(|e, now| e.handle_connection_quality(quality, now))
            }
        }
    }

    /// Now for the engine ([`engine_now`]). A database the store found deleted while in use
    /// (site data cleared) is synced again from the start: by this tab when it leads, else by
    /// the leading tab, which this tab tells.
    fn now(self: &Rc<Self>) -> Millis {
        let now = engine_now(&mut self.engine.borrow_mut());
        if matches!(&self.store, AnyStore::IndexedDb(store) if store.take_wiped()) {
            if self.is_leader() {
                self.engine.borrow_mut().handle_store_wiped(now);
            } else {
                self.post(&Note::Wiped);
            }
        }
        now
    }

    /// Gives the engine an input, then performs what it asks for.
    pub(crate) fn input<T>(self: &Rc<Self>, input: impl FnOnce(&mut Engine, Millis) -> T) -> T {
        let now = self.now();
        let value = input(&mut self.engine.borrow_mut(), now);
        self.pump();
        value
    }

    /// Runs a command that yields a ticket (and a value); the receiver resolves when the engine
    /// finishes it. The ticket is registered before the engine's outputs run, so no result is
    /// missed. A refused command changes nothing.
    pub(crate) fn command<T, E>(
        self: &Rc<Self>,
        command: impl FnOnce(&mut Engine, Millis) -> Result<(T, Ticket), E>,
    ) -> Result<(T, Finished), E> {
        let now = self.now();
        let (value, ticket) = command(&mut self.engine.borrow_mut(), now)?;
        let (sender, receiver) = oneshot::channel();
        self.await_ticket(ticket, sender);
        self.pump();
        Ok((value, receiver))
    }

    /// Sends the result of `ticket` to `finish` once the engine finishes it. (Before the
    /// engine's outputs run, so no result is missed.)
    fn await_ticket(&self, ticket: Ticket, finish: Finish) {
        // (A disposed manager writes nothing more: the engine would never finish it.)
        if self.disposed.get() {
            let _ = finish.send(Err(SyncError::Stopped));
            return;
        }
        let mut tickets = self.tickets.borrow_mut();
        tickets.retain(|(waiting, _)| *waiting != ticket);
        tickets.push((ticket, finish));
    }

    /// [`command`](Self::command) for commands that cannot be refused.
    pub(crate) fn ticketed(
        self: &Rc<Self>,
        command: impl FnOnce(&mut Engine, Millis) -> Ticket,
    ) -> Finished {
        let accepted = self
            .command(|engine, now| Ok::<_, std::convert::Infallible>(((), command(engine, now))));
        match accepted {
            Ok(((), receiver)) => receiver,
            Err(never) => match never {},
        }
    }

    /// Reads the engine (status, stats) without an input.
    pub(crate) fn engine(&self) -> std::cell::Ref<'_, Engine> {
        self.engine.borrow()
    }

    /// Whether requests carry `token` now.
    pub(crate) fn has_token(&self, token: &str) -> bool {
        *self.token.borrow() == token
    }

    /// Replaces the bearer token; sync resumes if it was waiting for one.
    pub(crate) fn set_token(self: &Rc<Self>, token: String) {
        *self.token.borrow_mut() = token;
        self.input(|engine, now| engine.handle_credentials_changed(now));
    }

    /// Stops everything: timers, listeners, the engine's network; open commands fail, but for
    /// those a write under way stores (a sent message): they settle once it ends.
    pub(crate) fn dispose(self: &Rc<Self>) {
        if self.disposed.replace(true) {
            return;
        }
        self.lifecycle.borrow_mut().take();
        self.leader_check.borrow_mut().take();
        self.leader_watch.borrow_mut().take();
        self.wake.borrow_mut().take();
        for asked in self.asked.take() {
            let _ = asked.finish.send(Err(SyncError::Stopped));
        }
        self.stop_leading();
        if !self.writing.get() {
            self.end_after_dispose();
        }
        if let AnyStore::IndexedDb(store) = &self.store {
            store.close();
        }
    }

    /// The last of a disposed manager: the tab channel closes, and the commands still waiting
    /// end (a disposed manager writes nothing more).
    fn end_after_dispose(&self) {
        self.channel.borrow_mut().take();
        for (_, finish) in self.tickets.take() {
            let _ = finish.send(Err(SyncError::Stopped));
        }
    }

    /// Stops hearing the other tabs, as a tab the browser suspended does (it keeps the lock).
    #[cfg(all(test, target_arch = "wasm32"))]
    pub(crate) fn stop_hearing(&self) {
        self.channel.borrow_mut().take();
    }

    /// Hears the other tabs again, as a suspended tab does once the browser runs it again.
    #[cfg(all(test, target_arch = "wasm32"))]
    pub(crate) fn hear_again(self: &Rc<Self>) {
        self.hear_other_tabs();
    }

    /// Whether [`dispose`](Self::dispose) ran.
    pub(crate) fn is_disposed(&self) -> bool {
        self.disposed.get()
    }

    /// Performs the engine's outputs until it waits.
    fn pump(self: &Rc<Self>) {
        loop {
            let output = self.engine.borrow_mut().poll_output();
            match output {
                // A disposed manager writes nothing more (after `clear()`, a write would make the
                // deleted database anew): what it had not stored is stored, or fetched, again by
                // the next manager (sends are idempotent).
                Output::Persist(_) if self.disposed.get() => {}
                Output::Persist(batch) => {
                    self.writing.set(true);
                    let driver = self.clone();
                    wasm_bindgen_futures::spawn_local(async move {
                        let result = driver.store.apply(&batch.ops).await;
                        // (What a tab keeps in memory is its own.)
                        let shared = matches!(driver.store, AnyStore::IndexedDb(_));
                        if let (Ok(report), true) = (&result, shared) {
                            driver.post(&Note::Stored {
                                conversation_ids: touched(&batch.ops, report),
                            });
                        }
                        driver.writing.set(false);
                        driver.input(|engine, now| engine.handle_persisted(batch.id, result, now));
                        if driver.disposed.get() {
                            driver.end_after_dispose();
                        }
                    });
                }
                Output::Send(request) => {
                    if self.disposed.get() {
                        continue;
                    }
                    let driver = self.clone();
                    wasm_bindgen_futures::spawn_local(async move {
                        let token = driver.token.borrow().clone();
                        let outcome = driver.transport.perform(&request, &token).await;
                        driver
                            .input(|engine, now| engine.handle_response(request.id, outcome, now));
                    });
                }
                // (What a tab keeps in memory no other tab writes.)
                Output::Reload if self.disposed.get() => {}
                Output::Reload if matches!(self.store, AnyStore::IndexedDb(_)) => {
                    let driver = self.clone();
                    wasm_bindgen_futures::spawn_local(
                        async move { driver.reload_shared_state().await },
                    );
                }
                Output::Reload => {}
                Output::Event(event) => self.deliver(event),
                Output::Timeout(at) => {
                    self.schedule_wake(at);
                    return;
                }
            }
        }
    }

    fn deliver(&self, event: Event) {
        if let Event::CommandFinished { ticket, result } = &event {
            let sender = {
                let mut tickets = self.tickets.borrow_mut();
                let index = tickets.iter().position(|(waiting, _)| waiting == ticket);
                index.map(|index| tickets.swap_remove(index).1)
            };
            if let Some(sender) = sender {
                let _ = sender.send(result.clone());
            }
        }
        if !self.disposed.get() {
            (self.on_event)(&event);
        }
    }

    /// One timer for the engine's next wake-up; replacing it cancels the previous one.
    fn schedule_wake(self: &Rc<Self>, at: Option<Millis>) {
        let timer = match at {
            Some(at) if !self.disposed.get() => {
                let delay = (at - runtime::now()).clamp(0, i64::from(i32::MAX)) as u32;
                let weak: Weak<Self> = Rc::downgrade(self);
                Some(Timeout::new(delay, move || {
                    if let Some(driver) = weak.upgrade() {
                        driver.input(|engine, now| engine.handle_timeout(now));
                    }
                }))
            }
            _ => None,
        };
        *self.wake.borrow_mut() = timer;
    }
}

/// The conversations whose data a stored batch changed: those its ops write, those
/// [`StoreOp::ForgetServerData`] emptied and those [`StoreOp::EvictHistory`] took messages from.
fn touched(ops: &[StoreOp], report: &ApplyReport) -> Vec<String> {
    let mut touched = report.forgotten.clone();
    for id in &report.evicted_from {
        touched.add(id);
    }
    for op in ops {
        let id = match op {
            StoreOp::PutConversation(conversation) => &conversation.id,
            StoreOp::PutMessage(message) => &message.conversation_id,
            StoreOp::PutReadMarker(marker) => &marker.conversation_id,
            StoreOp::PutOutbox(entry) => &entry.conversation_id,
            StoreOp::ExtendHistory { conversation, .. }
            | StoreOp::RestartHistory { conversation, .. }
            | StoreOp::RestampOutbox { conversation, .. }
            | StoreOp::ExpireOutbox { conversation, .. }
            | StoreOp::RetryOutbox { conversation, .. }
            | StoreOp::DiscardOutbox { conversation, .. } => conversation,
            _ => continue,
        };
        touched.add(id);
    }
    let ids = touched.conversations.iter();
    ids.map(|id| id.as_str().to_owned()).collect()
}

/// Now on the engine's clock ([`runtime::now`]), after telling the engine how far that runs
/// ahead of the device's clock.
pub(crate) fn engine_now(engine: &mut Engine) -> Millis {
    let (now, ahead) = runtime::clock();
    engine.handle_clock_ahead(ahead);
    now
}
