//! A deterministic simulated world: several engines (devices of several users) with in-memory
//! stores, the reference server's own request handling on in-memory SQLite, and a network that
//! delays, reorders, drops and fails requests and loses acknowledgements. Some browsers have two
//! tabs on one store (one leads; the other composes into the shared outbox and hands read
//! markers over; the lead passes on when the leading tab closes, or goes into the back/forward
//! cache and comes back, or is taken over from a tab the browser suspended, which leads on for a
//! while before it hears of it). Tabs crash and restart (memory lost, store kept); clocks are
//! skewed, and set back or forward while tabs run (their engines' clocks go on, ahead), also as
//! the lead changes (a device waking from sleep). Users compose messages, retry or discard failed
//! ones (now and then in two tabs at once) and read conversations (read markers); others edit and
//! delete messages and start new conversations on the server. Some seeds give messages, history
//! and tombstones short lifetimes, so maintenance expires, evicts and compacts during the run;
//! three seeds in four give the engines feed pages of a few changes, so syncs run over many pages
//! (held, then stored together). Everything draws from one seed, so a failing seed replays
//! exactly.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{header, Request};
use chat_sync_engine::{
    BrokenVariant, Config, Engine, Event, HttpOutcome, HttpRequest, MemorySnapshot, MemoryStore,
    Output, Store, StoreError, Ticket, Trigger,
};
use chat_sync_protocol::{
    decode_response, encode_request, ClientMessageId, ConversationId, ErrorBody, ErrorCode,
    ErrorDetail, Message, Millis, ReadMarker, ResponseBody, User, UserId,
};
use chat_sync_server::storage::FeedScope;
use chat_sync_server::{app, AppState, Config as ServerConfig, ManualClock, SqliteStorage};
use http_body_util::BodyExt;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tower::ServiceExt;

const USERS: [&str; 3] = ["u-alice", "u-bob", "u-carol"];
/// Conversations and their members (indexes into `USERS`).
const CONVERSATIONS: [(&str, &[usize]); 3] =
    [("all", &[0, 1, 2]), ("ab", &[0, 1]), ("bc", &[1, 2])];
const SECOND: Millis = 1_000;
const MINUTE: Millis = 60 * SECOND;
/// Sim time starts here (any realistic epoch time).
const EPOCH: Millis = 1_790_000_000_000;

/// How rough the world is; drawn from the seed.
#[derive(Clone, Debug)]
pub(crate) struct Faults {
    pub(crate) drop_request: f64,
    pub(crate) error_before: f64,
    pub(crate) lost_ack: f64,
    pub(crate) slow: f64,
    pub(crate) crash: f64,
    pub(crate) offline: f64,
    /// A back-fill below a message is answered `404 message_not_found`, as by a server that
    /// purged old history.
    pub(crate) purged_anchor: f64,
}

/// Short lifetimes, drawn for some seeds, so maintenance acts within a run: undelivered messages
/// expire, history is evicted down to a few messages per conversation, tombstones are compacted.
#[derive(Clone, Debug)]
pub(crate) struct Lifetimes {
    pub(crate) optimistic_ttl_ms: Millis,
    pub(crate) maintenance_interval_ms: Millis,
    pub(crate) retention: usize,
    pub(crate) tombstone_ttl_ms: Millis,
}

/// What the harness remembers of each composed message.
#[derive(Clone, Debug)]
struct Composed {
    device: usize,
    user: usize,
    conversation: ConversationId,
    body: String,
    client_message_id: ClientMessageId,
    /// Sent to a conversation the user is not in: the server refuses it.
    doomed: bool,
    queued: bool,
    failed_reported: bool,
    /// Left the outbox undelivered (discarded by the user, or expired).
    discarded: bool,
}

/// What the harness remembers of each read marker a device set.
#[derive(Clone, Debug)]
struct Marked {
    device: usize,
    incarnation: u32,
    user: usize,
    conversation: ConversationId,
    server_ts: Millis,
    ticket: Ticket,
    /// The engine said it is stored.
    stored: bool,
}

/// One tab of a browser: tabs of one browser share its store, and one of them leads (syncs and
/// sends); the others compose into the shared outbox and hand read markers to the leader.
struct Device {
    /// The browser (the index of its first tab).
    browser: usize,
    leader: bool,
    user: usize,
    store: MemoryStore,
    engine: Option<Engine>,
    incarnation: u32,
    /// How far the tab's engine clock runs off the world's: the device's clock skew, and how far
    /// the engine's clock runs ahead of the device's after the device's clock was set back.
    skew: Millis,
    /// How far the engine's clock runs ahead of the device's ([`Engine::handle_clock_ahead`]):
    /// an engine's clock never goes back.
    ahead: Millis,
    online: bool,
    visible: bool,
    wake: Option<Millis>,
    restarts: u32,
}

#[derive(Debug)]
enum Happening {
    Wake {
        device: usize,
        incarnation: u32,
    },
    Persisted {
        device: usize,
        incarnation: u32,
        batch: chat_sync_engine::Batch,
    },
    AtServer {
        device: usize,
        incarnation: u32,
        request: HttpRequest,
    },
    AtDevice {
        device: usize,
        incarnation: u32,
        id: chat_sync_engine::RequestId,
        outcome: HttpOutcome,
    },
    Compose {
        device: usize,
    },
    MarkRead {
        device: usize,
    },
    Toggle {
        device: usize,
    },
    Visibility {
        device: usize,
    },
    Crash {
        device: usize,
    },
    /// A leading tab goes into the back/forward cache (`pagehide`): it stops and lets another
    /// tab of its browser lead; it comes back (`pageshow`) and queues for the lead again.
    StepDown {
        device: usize,
    },
    /// The browser suspends a leading tab without a word, and another tab of its browser takes
    /// the lead over (`steal`); the suspended tab, running again, goes on with what it had under
    /// way, as a second leader, until it hears it lost the lock ([`Happening::LoseLead`]).
    TakenOver {
        device: usize,
    },
    /// A tab whose lead was taken over hears of it: it stops, and queues for the lead again.
    LoseLead {
        device: usize,
        incarnation: u32,
    },
    Restart {
        device: usize,
    },
    Force {
        device: usize,
    },
    SyncConversation {
        device: usize,
    },
    /// The user retries one of the device's failed messages.
    Retry {
        device: usize,
    },
    /// The user discards one of the device's failed messages.
    Discard {
        device: usize,
    },
    /// The user retries or discards a failed message in another tab too, a moment after the
    /// first: that tab shows it failed still if the first tab's note has not reached it.
    ActAgain {
        device: usize,
        incarnation: u32,
        client_message_id: ClientMessageId,
        retry: bool,
    },
    /// Somebody starts a new conversation on the server.
    NewConversation,
    LoadOlder {
        device: usize,
    },
    /// Another tab of the browser stored something: this tab reloads the outbox.
    Reload {
        device: usize,
        incarnation: u32,
    },
    /// The leading tab of the browser is gone: this tab takes the lead.
    Lead {
        device: usize,
        incarnation: u32,
    },
    /// A follower tab's read marker reaches the leading tab.
    HandMarker {
        browser: usize,
        marker: chat_sync_engine::PendingReadMarker,
    },
    StoreFault {
        device: usize,
    },
    /// The device's clock is set back (`by` below 0) or forward: each tab's engine clock goes
    /// on, ahead of it, and the engine hears how far ([`Engine::handle_clock_ahead`]).
    ClockMoved {
        browser: usize,
        by: Millis,
    },
    ServerActor,
}

/// The world of one seed.
pub(crate) struct World {
    seed: u64,
    rng: SmallRng,
    now: Millis,
    next_event: u64,
    events: BTreeMap<(Millis, u64), Happening>,
    runtime: tokio::runtime::Runtime,
    server: axum::Router,
    state: AppState,
    clock: Arc<ManualClock>,
    server_skew: Millis,
    devices: Vec<Device>,
    conversations: Vec<(ConversationId, Vec<usize>)>,
    composed: Vec<Composed>,
    marked: Vec<Marked>,
    faults: Faults,
    lifetimes: Option<Lifetimes>,
    /// Feed page sizes (a sync's first page, its later ones) other than the defaults.
    pages: Option<(u32, u32)>,
    healed: bool,
    /// Rules broken during the run (the final check reports the first).
    violations: Vec<String>,
    broken: Option<BrokenVariant>,
    pub(crate) log: Vec<String>,
}

impl World {
    /// A world for `seed`; `broken` makes every engine a deliberately broken variant.
    pub(crate) fn new(seed: u64, broken: Option<BrokenVariant>) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let rough = rng.random_range(0.0..1.0_f64);
        let faults = Faults {
            drop_request: rough * 0.1,
            error_before: rough * 0.15,
            lost_ack: rough * 0.15,
            slow: rough * 0.05,
            crash: rough * 0.3,
            offline: rough * 0.3,
            purged_anchor: rough * 0.2,
        };
        let lifetimes = rng.random_bool(0.3).then(|| Lifetimes {
            optimistic_ttl_ms: rng.random_range(20 * SECOND..2 * MINUTE),
            maintenance_interval_ms: rng.random_range(10 * SECOND..MINUTE),
            retention: rng.random_range(2..8),
            tombstone_ttl_ms: rng.random_range(10 * SECOND..MINUTE),
        });
        let clock = Arc::new(ManualClock::new(EPOCH));
        let storage = SqliteStorage::open(":memory:").expect("in-memory database");
        let state = AppState::new(storage, ServerConfig::default()).with_clock(clock.clone());
        let server = app(state.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut conversations = Vec::new();
        for (id, name) in USERS.iter().enumerate() {
            let user = User {
                id: UserId::new(*name),
                display_name: name.to_string(),
            };
            state
                .storage()
                .create_user(&user, &token(id), EPOCH)
                .expect("user");
        }
        for (title, members) in CONVERSATIONS {
            let others: Vec<UserId> = members[1..]
                .iter()
                .map(|&m| UserId::new(USERS[m]))
                .collect();
            let conversation = state
                .storage()
                .create_conversation(&UserId::new(USERS[members[0]]), title, &others, EPOCH)
                .expect("conversation");
            conversations.push((conversation.id, members.to_vec()));
        }
        let device_count = rng.random_range(2..=4);
        let mut devices = Vec::new();
        for index in 0..device_count {
            // Every user has a device; extra devices go to random users.
            let user = if index < USERS.len().min(device_count) {
                index
            } else {
                rng.random_range(0..USERS.len())
            };
            devices.push(Device {
                browser: index,
                leader: false,
                user,
                store: MemoryStore::new(),
                engine: None,
                incarnation: 0,
                skew: rng.random_range(-5 * MINUTE..=5 * MINUTE),
                ahead: 0,
                online: true,
                visible: true,
                wake: None,
                restarts: 0,
            });
        }
        // Some browsers have a second tab.
        for browser in 0..device_count {
            if rng.random_bool(0.25) {
                let first = &devices[browser];
                devices.push(Device {
                    browser,
                    leader: false,
                    user: first.user,
                    store: first.store.clone(),
                    engine: None,
                    incarnation: 0,
                    skew: first.skew - first.ahead,
                    ahead: 0,
                    online: true,
                    visible: true,
                    wake: None,
                    restarts: 0,
                });
            }
        }
        let server_skew = rng.random_range(-MINUTE..=MINUTE);
        let mut world = Self {
            seed,
            rng,
            now: EPOCH,
            next_event: 0,
            events: BTreeMap::new(),
            runtime,
            server,
            state,
            clock,
            server_skew,
            devices,
            conversations,
            composed: Vec::new(),
            marked: Vec::new(),
            faults,
            lifetimes,
            // From the seed itself, not its random stream: the rest of each world stays as it was.
            pages: (!seed.is_multiple_of(4)).then(|| {
                let first = 1 + (seed / 4 % 3) as u32;
                (first, first + (seed / 12 % 4) as u32)
            }),
            healed: false,
            violations: Vec::new(),
            broken,
            log: Vec::new(),
        };
        for device in 0..world.devices.len() {
            world.boot(device);
        }
        world.plan_workload();
        world
    }

    fn at(&mut self, time: Millis, happening: Happening) {
        self.next_event += 1;
        self.events
            .insert((time.max(self.now), self.next_event), happening);
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.min(1.0))
    }

    /// The random actions of the first three simulated minutes.
    fn plan_workload(&mut self) {
        let end = EPOCH + 3 * MINUTE;
        let actions = self.rng.random_range(20..60);
        for _ in 0..actions {
            let time = self.rng.random_range(EPOCH..end);
            let device = self.rng.random_range(0..self.devices.len());
            let roll = self.rng.random_range(0..100);
            let happening = match roll {
                0..=42 => Happening::Compose { device },
                43..=44 => Happening::Retry { device },
                45 => Happening::Discard { device },
                46 => Happening::NewConversation,
                47..=54 => Happening::MarkRead { device },
                55..=59 => Happening::Force { device },
                60..=63 => Happening::SyncConversation { device },
                64..=65 => Happening::LoadOlder { device },
                66 => Happening::StoreFault { device },
                67..=68 => Happening::Visibility { device },
                69 => Happening::ClockMoved {
                    browser: self.devices[device].browser,
                    by: match self.rng.random_bool(0.7) {
                        true => -self.rng.random_range(MINUTE..2 * 60 * MINUTE),
                        false => self.rng.random_range(MINUTE..2 * 60 * MINUTE),
                    },
                },
                70..=71 => Happening::StepDown { device },
                72 => Happening::TakenOver { device },
                73..=84 => Happening::ServerActor,
                85..=92 if self.chance(self.faults.offline * 3.0) => Happening::Toggle { device },
                93..=99 if self.chance(self.faults.crash * 3.0) => Happening::Crash { device },
                _ => Happening::Compose { device },
            };
            self.at(time, happening);
        }
    }

    fn device_now(&self, device: usize) -> Millis {
        self.now + self.devices[device].skew
    }

    fn boot(&mut self, device: usize) {
        // A new tab's clock is the device's.
        let d = &mut self.devices[device];
        d.skew -= d.ahead;
        d.ahead = 0;
        let now = self.device_now(device);
        let seed = self.rng.random();
        let d = &mut self.devices[device];
        d.incarnation += 1;
        let mut config = Config::new(UserId::new(USERS[d.user]), seed);
        config.broken = self.broken;
        if let Some((first, later)) = self.pages {
            config.page_size = first;
            config.catch_up_page_size = later;
        }
        if let Some(lifetimes) = &self.lifetimes {
            config.optimistic_ttl_ms = lifetimes.optimistic_ttl_ms;
            config.maintenance_interval_ms = lifetimes.maintenance_interval_ms;
            config.retention_per_conversation = Some(lifetimes.retention);
            config.tombstone_ttl_ms = lifetimes.tombstone_ttl_ms;
        }
        let mut engine = Engine::new(config, now);
        let state = pollster::block_on(d.store.load()).expect("load");
        engine.handle_loaded(state, now);
        engine.handle_online(d.online, now);
        d.engine = Some(engine);
        if self.leader_of(self.devices[device].browser).is_none() {
            self.devices[device].leader = true;
            self.engine(device).start(now);
        }
        self.drain(device);
    }

    /// The alive tab leading `browser`'s syncing, if one does.
    fn leader_of(&self, browser: usize) -> Option<usize> {
        (0..self.devices.len()).find(|&d| {
            let tab = &self.devices[d];
            tab.browser == browser && tab.leader && tab.engine.is_some()
        })
    }

    /// The other alive tabs of `device`'s browser.
    fn siblings(&self, device: usize) -> Vec<usize> {
        let browser = self.devices[device].browser;
        (0..self.devices.len())
            .filter(|&d| d != device && self.devices[d].browser == browser)
            .filter(|&d| self.devices[d].engine.is_some())
            .collect()
    }

    /// Performs the engine's outputs until it waits.
    fn drain(&mut self, device: usize) {
        loop {
            let incarnation = self.devices[device].incarnation;
            let Some(engine) = self.devices[device].engine.as_mut() else {
                return;
            };
            match engine.poll_output() {
                Output::Persist(batch) => {
                    self.check_compaction(device, &batch);
                    let delay = self.rng.random_range(0..20);
                    self.at(
                        self.now + delay,
                        Happening::Persisted {
                            device,
                            incarnation,
                            batch,
                        },
                    );
                }
                Output::Send(request) => self.network_out(device, incarnation, request),
                Output::Reload => self.reload_shared_state(device),
                Output::Event(event) => self.observe(device, event),
                Output::Timeout(at) => {
                    let skew = self.devices[device].skew;
                    let wake = at.map(|at| at - skew);
                    if wake != self.devices[device].wake {
                        self.devices[device].wake = wake;
                        if let Some(wake) = wake {
                            self.at(
                                wake,
                                Happening::Wake {
                                    device,
                                    incarnation,
                                },
                            );
                        }
                    }
                    return;
                }
            }
        }
    }

    /// Tombstones are compacted only once older than their lifetime by the server's clock
    /// (which stamped them), whatever the device's clock says.
    fn check_compaction(&mut self, device: usize, batch: &chat_sync_engine::Batch) {
        let Some(ttl) = self.lifetimes.as_ref().map(|l| l.tombstone_ttl_ms) else {
            return;
        };
        for op in &batch.ops {
            let chat_sync_engine::StoreOp::CompactTombstones { before } = op else {
                continue;
            };
            let stamps = self.server_changes().iter().map(|c| c.updated_ts()).max();
            let server_now = stamps.unwrap_or(0).max(self.now + self.server_skew);
            if *before > server_now - ttl {
                self.violations.push(format!(
                    "device {device} compacts tombstones before {before}, {} ms after the server's clock less their lifetime",
                    *before - (server_now - ttl)
                ));
            }
        }
    }

    /// A write that queues an outbox entry (composing, retrying), marks it failed (refused,
    /// expired) or moves its compose time with the clock never puts back one the store holds
    /// delivered, to be sent, or shown failed, again: a tab that takes the lead may hold it
    /// pending still, and one where the user retries may hold it failed still.
    fn check_no_delivered_entry_back(&mut self, device: usize, batch: &chat_sync_engine::Batch) {
        let written: Vec<&ClientMessageId> = (batch.ops.iter())
            .filter_map(|op| match op {
                chat_sync_engine::StoreOp::PutOutbox(entry) => Some(&entry.client_message_id),
                chat_sync_engine::StoreOp::RestampOutbox {
                    client_message_id, ..
                }
                | chat_sync_engine::StoreOp::ExpireOutbox {
                    client_message_id, ..
                }
                | chat_sync_engine::StoreOp::RetryOutbox {
                    client_message_id, ..
                } => Some(client_message_id),
                _ => None,
            })
            .collect();
        if written.is_empty() {
            return;
        }
        let snapshot = self.devices[device].store.snapshot();
        let me = USERS[self.devices[device].user];
        let back = snapshot.outbox.iter().find(|entry| {
            written.contains(&&entry.client_message_id)
                && snapshot.messages.iter().any(|m| {
                    m.is_from_server()
                        && m.sender_id.as_str() == me
                        && m.client_message_id == entry.client_message_id
                })
        });
        if let Some(entry) = back {
            self.violations.push(format!(
                "device {device} put back an outbox entry its store holds delivered: {entry:?}"
            ));
        }
    }

    /// A write that removes outbox entries takes none the store holds pending unless it is
    /// delivered (the server's copy is stored): a tab that takes the lead, or where the user
    /// discards, may still hold failed a message another tab retried meanwhile, which the user
    /// asked to send again. `before` is the store as it was before the write.
    fn check_no_pending_entry_removed(&mut self, device: usize, before: &MemorySnapshot) {
        let after = self.devices[device].store.snapshot();
        let me = USERS[self.devices[device].user];
        let removed = before.outbox.iter().find(|entry| {
            let id = &entry.client_message_id;
            entry.failure.is_none()
                && !after.outbox.iter().any(|e| &e.client_message_id == id)
                && !(after.messages.iter()).any(|m| {
                    m.is_from_server() && m.sender_id.as_str() == me && &m.client_message_id == id
                })
        });
        if let Some(entry) = removed {
            self.violations.push(format!(
                "device {device} removed an outbox entry its store holds pending: {entry:?}"
            ));
        }
    }

    fn observe(&mut self, device: usize, event: Event) {
        match event {
            Event::MessageQueued { message } => {
                if let Some(composed) = self.composed_mut(&message.client_message_id) {
                    composed.queued = true;
                }
            }
            Event::CommandFinished {
                ticket,
                result: Ok(_),
            } => {
                let incarnation = self.devices[device].incarnation;
                if let Some(marked) = self.marked.iter_mut().find(|m| {
                    m.device == device && m.incarnation == incarnation && m.ticket == ticket
                }) {
                    marked.stored = true;
                }
            }
            // (The leading tab reports it, whichever tab of the browser composed it.)
            Event::MessageDiscarded {
                client_message_id, ..
            } => {
                if let Some(composed) = self.composed_mut(&client_message_id) {
                    composed.discarded = true;
                }
            }
            Event::MessageFailed {
                client_message_id, ..
            } => {
                if let Some(composed) = self.composed_mut(&client_message_id) {
                    composed.failed_reported = true;
                }
            }
            _ => {}
        }
    }

    fn composed_mut(&mut self, client_message_id: &ClientMessageId) -> Option<&mut Composed> {
        (self.composed.iter_mut()).find(|c| &c.client_message_id == client_message_id)
    }

    fn latency(&mut self) -> Millis {
        if self.chance(self.faults.slow) {
            self.rng.random_range(20 * SECOND..45 * SECOND)
        } else {
            self.rng.random_range(5..400)
        }
    }

    fn network_out(&mut self, device: usize, incarnation: u32, request: HttpRequest) {
        if !self.healed && self.chance(self.faults.drop_request) {
            return;
        }
        let latency = self.latency();
        let anchored = request.path.contains("beforeMessage=");
        let refusal = if !self.healed && anchored && self.chance(self.faults.purged_anchor) {
            let error = ErrorDetail {
                code: ErrorCode::MessageNotFound,
                message: "purged".into(),
            };
            Some(HttpOutcome::Response {
                status: 404,
                retry_after_ms: None,
                body: ResponseBody::Error(ErrorBody { error }),
                bytes: 60,
            })
        } else if !self.healed && self.chance(self.faults.error_before) {
            // Server errors, and a proxy's or firewall's refusal (no protocol error body).
            let statuses = [500, 503, 429, 502, 403, 407];
            let status = statuses[self.rng.random_range(0..statuses.len())];
            let retry_after_ms = (status != 500).then(|| {
                // Now and then a long one (a server down for maintenance): forced syncs fail at
                // once rather than wait it out, and the sync goes when it ends.
                if self.chance(0.05) {
                    MINUTE
                } else {
                    self.rng.random_range(0..5) * SECOND
                }
            });
            Some(HttpOutcome::Response {
                status,
                retry_after_ms,
                body: ResponseBody::Invalid("proxy error page".into()),
                bytes: 20,
            })
        } else {
            None
        };
        if let Some(outcome) = refusal {
            self.at(
                self.now + latency,
                Happening::AtDevice {
                    device,
                    incarnation,
                    id: request.id,
                    outcome,
                },
            );
            return;
        }
        self.at(
            self.now + latency,
            Happening::AtServer {
                device,
                incarnation,
                request,
            },
        );
    }

    /// The reference server handles the request now, with its own skewed clock.
    fn at_server(&mut self, device: usize, incarnation: u32, request: HttpRequest) {
        self.clock.set(self.now + self.server_skew);
        let mut builder = Request::builder()
            .method(request.method.as_str())
            .uri(&request.path)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", token(self.devices[device].user)),
            );
        let body = match &request.body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(encode_request(body))
            }
            None => Body::empty(),
        };
        let http = builder.body(body).expect("request");
        let router = self.server.clone();
        let (status, retry_after, bytes) = self.runtime.block_on(async move {
            let response = router.oneshot(http).await.expect("infallible");
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Millis>().ok());
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            (status, retry_after, bytes)
        });
        let is_write = request.method == chat_sync_engine::Method::Post;
        if !self.healed && is_write && self.chance(self.faults.lost_ack) {
            // Committed, but the answer never arrives (or arrives as a broken connection).
            if self.rng.random_bool(0.5) {
                let latency = self.latency();
                let outcome = HttpOutcome::Network("connection reset".into());
                self.at(
                    self.now + latency,
                    Happening::AtDevice {
                        device,
                        incarnation,
                        id: request.id,
                        outcome,
                    },
                );
            }
            return;
        }
        let outcome = HttpOutcome::Response {
            status,
            retry_after_ms: retry_after.map(|s| s * SECOND),
            body: decode_response(request.expects, status, &bytes),
            bytes: bytes.len() as u64,
        };
        let latency = self.latency();
        self.at(
            self.now + latency,
            Happening::AtDevice {
                device,
                incarnation,
                id: request.id,
                outcome,
            },
        );
    }

    fn alive(&self, device: usize, incarnation: u32) -> bool {
        let d = &self.devices[device];
        d.engine.is_some() && d.incarnation == incarnation
    }

    fn step(&mut self, happening: Happening) {
        match happening {
            Happening::Wake {
                device,
                incarnation,
            } => {
                if !self.alive(device, incarnation) || self.devices[device].wake != Some(self.now) {
                    return;
                }
                self.devices[device].wake = None;
                let now = self.device_now(device);
                self.engine(device).handle_timeout(now);
            }
            Happening::Persisted {
                device,
                incarnation,
                batch,
            } => {
                if !self.alive(device, incarnation) {
                    // The process died before the transaction committed.
                    return;
                }
                if !self.healed && self.chance(self.faults.crash * 0.1) {
                    // Killed in the middle of the transaction: it never commits.
                    self.step(Happening::Crash { device });
                    return;
                }
                let removes = (batch.ops.iter()).any(|op| {
                    matches!(
                        op,
                        chat_sync_engine::StoreOp::RemoveOutbox(_)
                            | chat_sync_engine::StoreOp::ExpireOutbox { .. }
                            | chat_sync_engine::StoreOp::DiscardOutbox { .. }
                    )
                });
                let before = removes.then(|| self.devices[device].store.snapshot());
                let result = pollster::block_on(self.devices[device].store.apply(&batch.ops));
                if result.is_ok() {
                    self.check_no_delivered_entry_back(device, &batch);
                    if let Some(before) = before {
                        self.check_no_pending_entry_removed(device, &before);
                    }
                    // The tab's broadcast: the others reload the outbox.
                    for sibling in self.siblings(device) {
                        let incarnation = self.devices[sibling].incarnation;
                        let delay = self.rng.random_range(0..5);
                        self.at(
                            self.now + delay,
                            Happening::Reload {
                                device: sibling,
                                incarnation,
                            },
                        );
                    }
                }
                let now = self.device_now(device);
                self.engine(device).handle_persisted(batch.id, result, now);
            }
            Happening::AtServer {
                device,
                incarnation,
                request,
            } => {
                self.at_server(device, incarnation, request);
                return;
            }
            Happening::AtDevice {
                device,
                incarnation,
                id,
                outcome,
            } => {
                if !self.alive(device, incarnation) {
                    return;
                }
                let now = self.device_now(device);
                self.engine(device).handle_response(id, outcome, now);
            }
            Happening::Compose { device } => self.compose(device),
            Happening::MarkRead { device } => self.mark_read(device),
            Happening::Retry { device } => self.act_on_failed(device, true),
            Happening::Discard { device } => self.act_on_failed(device, false),
            Happening::ActAgain {
                device,
                incarnation,
                client_message_id,
                retry,
            } => {
                if !self.alive(device, incarnation) {
                    return;
                }
                self.act_on(device, &client_message_id, retry);
            }
            Happening::NewConversation => {
                self.new_conversation();
                return;
            }
            Happening::Toggle { device } => {
                let online = !self.devices[device].online;
                self.devices[device].online = online;
                let now = self.device_now(device);
                if let Some(engine) = self.devices[device].engine.as_mut() {
                    engine.handle_online(online, now);
                }
                if !online {
                    let back = self.now + self.rng.random_range(SECOND..MINUTE);
                    self.at(back, Happening::Toggle { device });
                }
            }
            Happening::ClockMoved { browser, by } => {
                let tabs: Vec<usize> = (0..self.devices.len())
                    .filter(|&d| self.devices[d].browser == browser)
                    .collect();
                for device in tabs {
                    let d = &mut self.devices[device];
                    // Set back, the engine's clock runs further ahead of the device's; set
                    // forward, less far, and past the device's clock it jumps forward with it.
                    let ahead = d.ahead - by;
                    d.skew += (-ahead).max(0);
                    d.ahead = ahead.max(0);
                    let ahead = d.ahead;
                    if let Some(engine) = d.engine.as_mut() {
                        engine.handle_clock_ahead(ahead);
                        self.drain(device);
                    }
                }
            }
            Happening::Visibility { device } => {
                let visible = !self.devices[device].visible;
                self.devices[device].visible = visible;
                let now = self.device_now(device);
                if let Some(engine) = self.devices[device].engine.as_mut() {
                    engine.handle_visibility(visible, now);
                }
            }
            Happening::Reload {
                device,
                incarnation,
            } => {
                if !self.alive(device, incarnation) {
                    return;
                }
                self.reload_shared_state(device);
            }
            Happening::Lead {
                device,
                incarnation,
            } => {
                let browser = self.devices[device].browser;
                if !self.alive(device, incarnation) || self.leader_of(browser).is_some() {
                    return;
                }
                self.devices[device].leader = true;
                let now = self.device_now(device);
                self.engine(device).start(now);
                self.reload_shared_state(device);
            }
            Happening::HandMarker { browser, marker } => {
                let Some(leader) = self.leader_of(browser) else {
                    return;
                };
                self.mark_read_with(leader, marker);
            }
            Happening::Crash { device } => {
                if self.devices[device].engine.take().is_some() {
                    self.pass_lead(device);
                    self.devices[device].wake = None;
                    let back = self.now + self.rng.random_range(0..30 * SECOND);
                    self.at(back, Happening::Restart { device });
                }
                return;
            }
            Happening::StepDown { device } => {
                if !self.devices[device].leader || self.devices[device].engine.is_none() {
                    return;
                }
                self.pass_lead(device);
                let now = self.device_now(device);
                self.engine(device).stop(now);
                let incarnation = self.devices[device].incarnation;
                let back = self.now + self.rng.random_range(0..30 * SECOND);
                self.at(
                    back,
                    Happening::Lead {
                        device,
                        incarnation,
                    },
                );
            }
            Happening::TakenOver { device } => {
                let d = &self.devices[device];
                if !d.leader || d.engine.is_none() || self.siblings(device).is_empty() {
                    return;
                }
                self.pass_lead(device);
                let incarnation = self.devices[device].incarnation;
                let heard = self.now + self.rng.random_range(0..10 * SECOND);
                self.at(
                    heard,
                    Happening::LoseLead {
                        device,
                        incarnation,
                    },
                );
            }
            Happening::LoseLead {
                device,
                incarnation,
            } => {
                // A tab that leads again was handed the lock after it stopped (the harness
                // hands it over without asking).
                if !self.alive(device, incarnation) || self.devices[device].leader {
                    return;
                }
                let now = self.device_now(device);
                self.engine(device).stop(now);
                let queued = self.now + self.rng.random_range(0..100);
                self.at(
                    queued,
                    Happening::Lead {
                        device,
                        incarnation,
                    },
                );
            }
            Happening::Restart { device } => {
                if self.devices[device].engine.is_none() {
                    self.devices[device].restarts += 1;
                    self.boot(device);
                }
                return;
            }
            Happening::Force { device } => {
                let now = self.device_now(device);
                if let Some(engine) = self.devices[device].engine.as_mut() {
                    engine.request_sync(Trigger::Force, now);
                }
            }
            Happening::SyncConversation { device } => {
                let conversation = self.member_conversation(device);
                let now = self.device_now(device);
                if let Some(engine) = self.devices[device].engine.as_mut() {
                    engine.sync_conversation(conversation, now);
                }
            }
            Happening::LoadOlder { device } => {
                let conversation = self.member_conversation(device);
                let now = self.device_now(device);
                let store = &self.devices[device].store;
                let floor = pollster::block_on(store.history_floor(&conversation)).expect("floor");
                if let Some(engine) = self.devices[device].engine.as_mut() {
                    engine.load_older(conversation, floor, now);
                }
            }
            Happening::StoreFault { device } => {
                // The next write fails: out of quota, or the database is briefly unavailable.
                let error = if self.rng.random_bool(0.5) {
                    StoreError::QuotaExceeded
                } else {
                    StoreError::Unavailable("database closed by a version change".into())
                };
                self.devices[device].store.fail_next_apply(error);
                return;
            }
            Happening::ServerActor => {
                self.server_actor();
                return;
            }
        }
        self.drain_all();
    }

    /// `device` leads no more: the Web Lock passes to another tab of its browser.
    fn pass_lead(&mut self, device: usize) {
        self.devices[device].leader = false;
        if let Some(&sibling) = self.siblings(device).first() {
            let incarnation = self.devices[sibling].incarnation;
            let delay = self.rng.random_range(0..100);
            self.at(
                self.now + delay,
                Happening::Lead {
                    device: sibling,
                    incarnation,
                },
            );
            // A device waking from sleep has its clock corrected as the lead changes: the tab
            // that leads next may hold pending still what the one before settles meanwhile.
            if self.chance(0.2) {
                let at = self.now + self.rng.random_range(0..2 * SECOND);
                let by = -self.rng.random_range(MINUTE..2 * 60 * MINUTE);
                let browser = self.devices[device].browser;
                self.at(at, Happening::ClockMoved { browser, by });
            }
        }
    }

    /// Tab `device` reads what its browser's tabs share, as the driver does after another tab's
    /// write, when it starts leading and as a sync run starts: the outbox and, while it leads, the
    /// unsent read markers.
    fn reload_shared_state(&mut self, device: usize) {
        let state = pollster::block_on(self.devices[device].store.load()).expect("load");
        let now = self.device_now(device);
        let leads = self.devices[device].leader;
        let engine = self.engine(device);
        engine.handle_outbox_reloaded(state.outbox, now);
        if leads {
            engine.handle_pending_read_markers(state.pending_read_markers, now);
        }
    }

    fn drain_all(&mut self) {
        for device in 0..self.devices.len() {
            self.drain(device);
        }
    }

    fn engine(&mut self, device: usize) -> &mut Engine {
        self.devices[device].engine.as_mut().expect("alive")
    }

    fn member_conversation(&mut self, device: usize) -> ConversationId {
        let options: Vec<ConversationId> = self
            .conversations_of(self.devices[device].user)
            .cloned()
            .collect();
        options[self.rng.random_range(0..options.len())].clone()
    }

    /// The conversations `user` is a member of.
    fn conversations_of(&self, user: usize) -> impl Iterator<Item = &ConversationId> {
        self.conversations
            .iter()
            .filter(move |(_, members)| members.contains(&user))
            .map(|(id, _)| id)
    }

    fn compose(&mut self, device: usize) {
        if self.devices[device].engine.is_none() {
            return;
        }
        let user = self.devices[device].user;
        let doomed = self.chance(0.05);
        let conversation = if doomed {
            match self
                .conversations
                .iter()
                .find(|(_, members)| !members.contains(&user))
            {
                Some((id, _)) => id.clone(),
                None => return,
            }
        } else {
            self.member_conversation(device)
        };
        let body = format!("d{device}-{}", self.composed.len());
        let now = self.device_now(device);
        let (message, _) = self
            .engine(device)
            .send(conversation.clone(), body.clone(), now)
            .expect("valid message");
        self.composed.push(Composed {
            device,
            user,
            conversation,
            body,
            client_message_id: message.client_message_id,
            doomed,
            queued: false,
            failed_reported: false,
            discarded: false,
        });
    }

    /// The user reads a conversation up to the newest message the device holds.
    fn mark_read(&mut self, device: usize) {
        if self.devices[device].engine.is_none() {
            return;
        }
        let conversation = self.member_conversation(device);
        let newest = self.devices[device]
            .store
            .snapshot()
            .messages
            .into_iter()
            .filter(|m| m.conversation_id == conversation && m.is_from_server())
            .max_by_key(|m| m.server_ts);
        let Some(message) = newest else {
            return;
        };
        let (Some(id), Some(server_ts)) = (message.id, message.server_ts) else {
            return;
        };
        let marker = chat_sync_engine::PendingReadMarker {
            conversation_id: conversation,
            message_id: id,
            server_ts,
        };
        self.mark_read_with(device, marker.clone());
        if !self.devices[device].leader {
            // A follower keeps it in memory (nothing stored) and hands it to the leading tab.
            let browser = self.devices[device].browser;
            let delay = self.rng.random_range(0..5);
            self.at(self.now + delay, Happening::HandMarker { browser, marker });
        }
    }

    /// Tab `device` sets `marker`. When it leads, the harness expects the server to get it once
    /// the engine says it is stored.
    fn mark_read_with(&mut self, device: usize, marker: chat_sync_engine::PendingReadMarker) {
        let now = self.device_now(device);
        let ticket = self
            .engine(device)
            .mark_read(
                marker.conversation_id.clone(),
                marker.message_id,
                marker.server_ts,
                now,
            )
            .expect("loaded");
        if !self.devices[device].leader {
            return;
        }
        self.marked.push(Marked {
            device,
            incarnation: self.devices[device].incarnation,
            user: self.devices[device].user,
            conversation: marker.conversation_id,
            server_ts: marker.server_ts,
            ticket,
            stored: false,
        });
    }

    /// The user retries (or discards) one of the device's failed messages, if it has any; now
    /// and then retries or discards it in another tab of the browser too, within the time the
    /// first tab's write and note take to reach that tab (up to 25 ms here): it may act on the
    /// message as it was before.
    fn act_on_failed(&mut self, device: usize, retry: bool) {
        if self.devices[device].engine.is_none() {
            return;
        }
        let failed: Vec<ClientMessageId> = (self.devices[device].store.snapshot().outbox)
            .into_iter()
            .filter(|entry| entry.failure.is_some())
            .map(|entry| entry.client_message_id)
            .collect();
        if failed.is_empty() {
            return;
        }
        let chosen = failed[self.rng.random_range(0..failed.len())].clone();
        // The app shows what the store holds: failed, even if a crash lost the event.
        if let Some(composed) = self.composed_mut(&chosen) {
            composed.failed_reported = true;
        }
        self.act_on(device, &chosen, retry);
        let siblings = self.siblings(device);
        if !siblings.is_empty() && self.chance(0.3) {
            let sibling = siblings[self.rng.random_range(0..siblings.len())];
            let at = self.now + self.rng.random_range(0..40);
            let happening = Happening::ActAgain {
                device: sibling,
                incarnation: self.devices[sibling].incarnation,
                client_message_id: chosen,
                retry: self.rng.random_bool(0.5),
            };
            self.at(at, happening);
        }
    }

    /// The user retries (or discards) message `chosen` in `device`'s tab.
    fn act_on(&mut self, device: usize, chosen: &ClientMessageId, retry: bool) {
        let now = self.device_now(device);
        let engine = self.engine(device);
        // Refused when the engine is still storing the failure, or does not hold the message
        // failed: the user tries again later.
        let _ = match retry {
            true => engine.retry_message(chosen, now),
            false => engine.discard_message(chosen, now),
        };
    }

    /// Somebody starts a conversation with some of the users on the server.
    fn new_conversation(&mut self) {
        self.clock.set(self.now + self.server_skew);
        let mut members: Vec<usize> = (0..USERS.len()).filter(|_| self.chance(0.6)).collect();
        if members.len() < 2 {
            members = vec![0, 1 + self.rng.random_range(0..USERS.len() - 1)];
        }
        let others: Vec<UserId> = members[1..]
            .iter()
            .map(|&m| UserId::new(USERS[m]))
            .collect();
        let title = format!("new {}", self.conversations.len());
        let creator = UserId::new(USERS[members[0]]);
        let conversation = (self.state.storage())
            .create_conversation(&creator, &title, &others, self.now + self.server_skew)
            .expect("conversation");
        self.conversations.push((conversation.id, members));
    }

    /// Another client of some user edits or deletes one of their messages on the server.
    fn server_actor(&mut self) {
        self.clock.set(self.now + self.server_skew);
        let messages = self.server_messages();
        if messages.is_empty() {
            return;
        }
        let message = messages[self.rng.random_range(0..messages.len())].clone();
        let storage = self.state.storage();
        let result = if self.rng.random_bool(0.3) {
            storage.delete_message(
                &message.sender_id,
                &message.conversation_id,
                &message.id,
                self.now + self.server_skew,
            )
        } else {
            let body = format!("{} (edited {})", message.body, self.now);
            storage.edit_message(
                &message.sender_id,
                &message.conversation_id,
                &message.id,
                &body,
                self.now + self.server_skew,
            )
        };
        // Editing a deleted message is refused; that is fine here.
        let _ = result;
    }

    /// Every change in every user's feed (a change visible to several users comes once each).
    fn server_changes(&self) -> Vec<chat_sync_protocol::Change> {
        USERS
            .iter()
            .flat_map(|user| {
                self.state
                    .storage()
                    .feed(
                        &UserId::new(*user),
                        &FeedScope::AllConversations,
                        0,
                        100_000,
                    )
                    .expect("feed")
                    .changes
            })
            .collect()
    }

    /// Every message the server holds, in server order.
    fn server_messages(&self) -> Vec<Message> {
        let mut all: BTreeMap<String, Message> = BTreeMap::new();
        for change in self.server_changes() {
            if let chat_sync_protocol::Change::Message { message } = change {
                all.insert(message.id.to_string(), message);
            }
        }
        let mut messages: Vec<Message> = all.into_values().collect();
        messages.sort_by_key(|m| (m.server_ts, m.id.clone()));
        messages
    }

    /// Every read marker the server holds, by conversation then user.
    fn server_read_markers(&self) -> BTreeMap<(String, String), ReadMarker> {
        let mut markers = BTreeMap::new();
        for change in self.server_changes() {
            if let chat_sync_protocol::Change::ReadMarker { read_marker } = change {
                let key = (
                    read_marker.conversation_id.to_string(),
                    read_marker.user_id.to_string(),
                );
                let newer = markers
                    .get(&key)
                    .is_none_or(|kept: &ReadMarker| kept.updated_ts < read_marker.updated_ts);
                if newer {
                    markers.insert(key, read_marker);
                }
            }
        }
        markers
    }

    /// Runs the workload, heals the world, lets it settle, and checks every invariant.
    /// Returns a summary of the world, and the first broken invariant if any.
    pub(crate) fn run(mut self) -> (String, Result<(), String>) {
        self.run_until(EPOCH + 4 * MINUTE);
        self.heal();
        self.run_until(self.now + 15 * MINUTE);
        (self.summary(), self.check())
    }

    fn run_until(&mut self, end: Millis) {
        while let Some(entry) = self.events.first_entry() {
            let (time, _) = *entry.key();
            if time > end {
                break;
            }
            let happening = entry.remove();
            self.now = time;
            self.step(happening);
        }
        self.now = end;
    }

    /// No more faults: every device restarts if down, goes online and syncs.
    fn heal(&mut self) {
        self.healed = true;
        for device in 0..self.devices.len() {
            if self.devices[device].engine.is_none() {
                self.boot(device);
            }
            let now = self.device_now(device);
            self.devices[device].online = true;
            let engine = self.engine(device);
            engine.handle_online(true, now);
            engine.request_sync(Trigger::Force, now);
        }
        self.drain_all();
    }

    fn check(&self) -> Result<(), String> {
        if let Some(violation) = self.violations.first() {
            return Err(violation.clone());
        }
        let server = self.server_messages();
        // Exactly once (by client id, or by text for copies made under other ids), or reported
        // failed.
        for composed in self.composed.iter().filter(|c| c.queued) {
            let sender = USERS[composed.user];
            let edited_prefix = format!("{} (edited", composed.body);
            let copies = server
                .iter()
                .filter(|m| m.sender_id.as_str() == sender)
                .filter(|m| {
                    m.client_message_id == composed.client_message_id
                        || m.body == composed.body
                        || m.body.starts_with(&edited_prefix)
                })
                .count();
            let failed_in_store = self.devices[composed.device]
                .store
                .snapshot()
                .outbox
                .iter()
                .any(|e| e.client_message_id == composed.client_message_id && e.failure.is_some());
            let reported = composed.failed_reported || composed.discarded || failed_in_store;
            let fine = match (composed.doomed, self.lifetimes.is_some()) {
                (false, false) => copies == 1 && !reported,
                // Expired before it was delivered, or delivered (an acknowledgement lost) and
                // expired all the same; never twice.
                (false, true) => copies == 1 || (copies == 0 && reported),
                (true, _) => copies == 0 && reported,
            };
            if !fine {
                return Err(format!(
                    "message {} (doomed: {}) is on the server {copies} times; failure reported: {reported}",
                    composed.body, composed.doomed
                ));
            }
        }
        // Compose order per device and conversation.
        for device in 0..self.devices.len() {
            for (conversation, _) in &self.conversations {
                // (A message that failed or expired may go later, when the user retries it.)
                let composed: Vec<&ClientMessageId> = self
                    .composed
                    .iter()
                    .filter(|c| c.queued && !c.doomed && c.device == device)
                    .filter(|c| !c.failed_reported && !c.discarded)
                    .filter(|c| &c.conversation == conversation)
                    .map(|c| &c.client_message_id)
                    .collect();
                let delivered: Vec<&ClientMessageId> = server
                    .iter()
                    .filter(|m| &m.conversation_id == conversation)
                    .map(|m| &m.client_message_id)
                    .filter(|id| composed.contains(id))
                    .collect();
                if delivered != composed {
                    return Err(format!(
                        "device {device} composed {composed:?} in {conversation}, the server holds them as {delivered:?}"
                    ));
                }
            }
        }
        // Every device converged to the server's state of its user's conversations.
        for (index, device) in self.devices.iter().enumerate() {
            let snapshot: MemorySnapshot = device.store.snapshot();
            let user = device.user;
            let visible: BTreeSet<&ConversationId> = self.conversations_of(user).collect();
            let mut local: Vec<&chat_sync_engine::LocalMessage> = snapshot
                .messages
                .iter()
                .filter(|m| m.is_from_server())
                .collect();
            local.sort_by_key(|m| (m.server_ts, m.id.clone()));
            match &self.lifetimes {
                Some(lifetimes) => {
                    for conversation in &visible {
                        let retention = lifetimes.retention;
                        self.check_cached_history(index, conversation, &server, &local, retention)?;
                    }
                }
                None => {
                    let expected: Vec<String> = (server.iter())
                        .filter(|m| visible.contains(&m.conversation_id))
                        .map(describe)
                        .collect();
                    let local: Vec<String> = local.iter().map(|m| describe_local(m)).collect();
                    if local != expected {
                        return Err(format!(
                            "device {index} ({}) did not converge:\n local: {local:?}\nserver: {expected:?}",
                            USERS[user]
                        ));
                    }
                }
            }
            for conversation in &visible {
                self.check_shown_history(index, conversation, &server)?;
            }
            let stray: Vec<&chat_sync_engine::LocalMessage> = snapshot
                .messages
                .iter()
                .filter(|m| !m.is_from_server() && m.failure.is_none())
                .collect();
            if !stray.is_empty() {
                return Err(format!(
                    "device {index} still shows pending messages: {stray:?}"
                ));
            }
            let delivered = snapshot.outbox.iter().find(|entry| {
                server.iter().any(|m| {
                    m.sender_id.as_str() == USERS[user]
                        && m.client_message_id == entry.client_message_id
                })
            });
            if let Some(entry) = delivered {
                return Err(format!(
                    "device {index} keeps an outbox entry the server has delivered: {entry:?}"
                ));
            }
            if snapshot.outbox.iter().any(|e| e.failure.is_none()) {
                return Err(format!(
                    "device {index} has undelivered outbox entries: {:?}",
                    snapshot.outbox
                ));
            }
            let conversations: BTreeSet<&ConversationId> =
                snapshot.conversations.iter().map(|c| &c.id).collect();
            if conversations != visible {
                return Err(format!(
                    "device {index} did not converge: it holds conversations {conversations:?}, expected {visible:?}"
                ));
            }
        }
        self.check_read_markers()
    }

    /// With maintenance evicting and compacting, a device holds the newest part of each
    /// conversation: every cached message as the server has it now (a late, stale copy never
    /// wins), and every live message among the server's newest `retention` ones (maintenance
    /// keeps those; the feed brings everything newer). Back-fill brings the rest.
    fn check_cached_history(
        &self,
        device: usize,
        conversation: &ConversationId,
        server: &[Message],
        local: &[&chat_sync_engine::LocalMessage],
        retention: usize,
    ) -> Result<(), String> {
        let server: Vec<&Message> = (server.iter())
            .filter(|m| &m.conversation_id == conversation)
            .collect();
        let local: Vec<&&chat_sync_engine::LocalMessage> = (local.iter())
            .filter(|m| &m.conversation_id == conversation)
            .collect();
        for cached in &local {
            let current = server.iter().find(|m| cached.id.as_ref() == Some(&m.id));
            if current.map(|m| describe(m)) != Some(describe_local(cached)) {
                return Err(format!(
                    "device {device} did not converge: it caches {} in {conversation}, the server has {:?}",
                    describe_local(cached),
                    current.map(|m| describe(m))
                ));
            }
        }
        let missing: Vec<String> = (server.iter().rev().take(retention))
            .filter(|m| !m.deleted)
            .filter(|m| !local.iter().any(|l| l.id.as_ref() == Some(&m.id)))
            .map(|m| describe(m))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "device {device} did not converge: of the newest messages of {conversation}, it lacks {missing:?}"
            ));
        }
        Ok(())
    }

    /// What the app is shown of a conversation (the store's messages, down to its history floor)
    /// has no gap: every live message of the server at or above the floor, none missing.
    fn check_shown_history(
        &self,
        device: usize,
        conversation: &ConversationId,
        server: &[Message],
    ) -> Result<(), String> {
        let store = &self.devices[device].store;
        let floor = pollster::block_on(store.history_floor(conversation)).expect("floor");
        let shown =
            pollster::block_on(store.messages(conversation, None, usize::MAX)).expect("messages");
        let missing: Vec<String> = (server.iter())
            .filter(|m| &m.conversation_id == conversation && !m.deleted)
            .filter(|m| m.server_ts >= floor.shows_from())
            .filter(|m| !shown.iter().any(|l| l.id.as_ref() == Some(&m.id)))
            .map(describe)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "device {device} shows {conversation} down to {floor:?} with a gap: it lacks {missing:?}"
            ));
        }
        Ok(())
    }

    /// Every read marker a device stored reached the server (which keeps the furthest), and
    /// every device holds the server's markers of its user's conversations, with none left to
    /// send.
    fn check_read_markers(&self) -> Result<(), String> {
        let server = self.server_read_markers();
        for marked in self.marked.iter().filter(|m| m.stored) {
            let key = (
                marked.conversation.to_string(),
                USERS[marked.user].to_string(),
            );
            let reached = server
                .get(&key)
                .is_some_and(|kept| kept.last_read_server_ts >= marked.server_ts);
            if !reached {
                return Err(format!(
                    "the read marker {marked:?} is not on the server, which holds {:?}",
                    server.get(&key)
                ));
            }
        }
        for (index, device) in self.devices.iter().enumerate() {
            let visible: BTreeSet<String> = self
                .conversations_of(device.user)
                .map(ToString::to_string)
                .collect();
            let expected: Vec<&ReadMarker> = server
                .iter()
                .filter(|((conversation, _), _)| visible.contains(conversation))
                .map(|(_, marker)| marker)
                .collect();
            let snapshot = device.store.snapshot();
            let local: Vec<&ReadMarker> = snapshot.read_markers.iter().collect();
            if local != expected {
                return Err(format!(
                    "device {index} read markers did not converge:\n local: {local:?}\nserver: {expected:?}"
                ));
            }
            let pending = pollster::block_on(device.store.load())
                .expect("load")
                .pending_read_markers;
            if !pending.is_empty() {
                return Err(format!(
                    "device {index} still has read markers to send: {pending:?}"
                ));
            }
        }
        Ok(())
    }

    /// A summary for failure messages.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} tabs in {} browsers, {} conversations, {} composed ({} queued, {} failed, {} discarded), {} on the server, restarts {:?}, faults {:?}, lifetimes {:?}",
            self.devices.len(),
            (self.devices.iter().enumerate()).filter(|(i, d)| d.browser == *i).count(),
            self.conversations.len(),
            self.composed.len(),
            self.composed.iter().filter(|c| c.queued).count(),
            self.composed.iter().filter(|c| c.failed_reported).count(),
            self.composed.iter().filter(|c| c.discarded).count(),
            self.server_messages().len(),
            self.devices.iter().map(|d| d.restarts).collect::<Vec<_>>(),
            self.faults,
            self.lifetimes
        )
    }
}

fn token(user: usize) -> String {
    format!("t-{}", USERS[user])
}

fn describe(message: &Message) -> String {
    format!(
        "{}:{}:{}:{}:{}",
        message.id, message.body, message.deleted, message.edited, message.updated_ts
    )
}

fn describe_local(message: &chat_sync_engine::LocalMessage) -> String {
    format!(
        "{}:{}:{}:{}:{}",
        message.id.as_ref().map(|id| id.as_str()).unwrap_or("?"),
        message.body,
        message.deleted,
        message.edited,
        message.updated_ts.unwrap_or(0)
    )
}
