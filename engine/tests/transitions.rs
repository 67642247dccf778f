//! Focused tests of the engine's state transitions and rules, one per behaviour.
//!
//! Each test drives ONE [`Engine`] through a small scripted [`Driver`]: it drains the outputs,
//! applies store batches to a [`MemoryStore`] at once (or holds them, to look between a write and
//! its acknowledgement), collects requests for the test to answer by hand, and records events.

use chat_sync_engine::{
    ApplyReport, BackoffConfig, Batch, ChangeSet, Config, ConnectionQuality, DiscardReason,
    EffectiveType, Engine, EngineError, Event, HistoryFloor, HttpOutcome, HttpRequest,
    LocalMessage, MemoryStore, MessageStatus, OutboxEntry, Output, PendingReadMarker, Phase,
    RequestId, Store, StoreError, StoreOp, SyncError, SyncSummary, Ticket, Trigger,
    CLOCK_MOVE_MIN_MS, MAX_RETRY_AFTER_MS, QUOTA_EVICTION_KEEP,
};
use chat_sync_protocol::{
    Change, ClientMessageId, Conversation, Cursor, ErrorBody, ErrorCode, ErrorDetail, FeedPage,
    HistoryPage, MarkReadRequest, Message, MessageId, MessageResponse, Millis, ReadMarker,
    ReadMarkerResponse, RequestBody, ResponseBody, SendMessageRequest,
};

const T0: Millis = 1_790_000_000_000;
const SEC: Millis = 1_000;
const MIN: Millis = 60 * SEC;
const HOUR: Millis = 60 * MIN;
const DAY: Millis = 24 * HOUR;
const ME: &str = "u-alice";

// ----- the driver -----

/// What the driver saw, in order.
#[derive(Clone, Debug)]
enum Seen {
    /// A batch the store applied.
    Applied(Batch),
    /// A batch the store refused.
    Refused(Batch),
    Event(Event),
    /// The engine was given what the store holds, as it asked ([`Output::Reload`]).
    Reloaded,
}

struct Driver {
    engine: Engine,
    store: MemoryStore,
    now: Millis,
    /// Hold each batch in `held` until the test calls [`Driver::ack`].
    hold_batches: bool,
    held: Option<Batch>,
    /// Every request issued, in order.
    requests: Vec<HttpRequest>,
    answered: Vec<RequestId>,
    /// Batches and events since the last [`Driver::clear`].
    seen: Vec<Seen>,
    /// The last `Timeout` the engine asked for.
    wake: Option<Millis>,
}

impl Driver {
    /// A loaded, not started engine for `ME` over `store`, at `T0`.
    fn with_store(config: Config, store: MemoryStore) -> Self {
        Self::with_store_at(config, store, T0)
    }

    /// Like [`Driver::with_store`], at `now`.
    fn with_store_at(config: Config, store: MemoryStore, now: Millis) -> Self {
        let mut engine = Engine::new(config, now);
        engine.handle_loaded(pollster::block_on(store.load()).unwrap(), now);
        let mut driver = Self {
            engine,
            store,
            now,
            hold_batches: false,
            held: None,
            requests: Vec::new(),
            answered: Vec::new(),
            seen: Vec::new(),
            wake: None,
        };
        driver.drain();
        driver
    }

    /// Like [`Driver::with_store`], with maintenance done at `T0` so it stays away for a day.
    fn new(config: Config) -> Self {
        let store = MemoryStore::new();
        pollster::block_on(store.apply(&[StoreOp::SetLastMaintenance(T0)])).unwrap();
        Self::with_store(config, store)
    }

    /// Started, online, and the start sync answered with an empty page ending at `k0`.
    fn idle(config: Config) -> Self {
        let mut driver = Self::new(config);
        driver.start();
        let sync = driver.only_open("GET /v1/sync");
        driver.respond(&sync, feed(vec![], "k0", false));
        assert_eq!(driver.engine.status().phase, Phase::Idle);
        driver.clear();
        driver
    }

    /// Performs outputs until the engine waits.
    fn drain(&mut self) {
        loop {
            match self.engine.poll_output() {
                Output::Persist(batch) if self.hold_batches => {
                    assert!(self.held.is_none(), "a second batch while one is out");
                    self.held = Some(batch);
                }
                Output::Persist(batch) => self.apply(batch),
                Output::Send(request) => self.requests.push(request),
                Output::Reload => self.reload(),
                Output::Event(event) => {
                    self.check_persisted(&event);
                    self.seen.push(Seen::Event(event));
                }
                Output::Timeout(at) => {
                    self.wake = at;
                    return;
                }
            }
        }
    }

    /// Another tab stores `entry` with its optimistic message (this engine hears nothing of
    /// it); returns that message.
    fn stored_by_another_tab(&self, entry: &OutboxEntry) -> LocalMessage {
        let optimistic = LocalMessage::optimistic(entry, &ME.into());
        let ops = [
            StoreOp::PutOutbox(entry.clone()),
            StoreOp::PutMessage(optimistic.clone()),
        ];
        pollster::block_on(self.store.apply(&ops)).unwrap();
        optimistic
    }

    /// Gives the engine what the store holds, as the driver does when asked.
    fn reload(&mut self) {
        let state = pollster::block_on(self.store.load()).expect("load");
        let now = self.now;
        self.engine.handle_outbox_reloaded(state.outbox, now);
        self.engine.handle_last_sync_reloaded(state.last_sync, now);
        (self.engine).handle_pending_read_markers(state.pending_read_markers, now);
        self.seen.push(Seen::Reloaded);
    }

    fn apply(&mut self, batch: Batch) {
        let result = pollster::block_on(self.store.apply(&batch.ops));
        self.seen.push(match result {
            Ok(_) => Seen::Applied(batch.clone()),
            Err(_) => Seen::Refused(batch.clone()),
        });
        self.engine.handle_persisted(batch.id, result, self.now);
    }

    /// Applies the held batch (the store may refuse it) and drains; returns the batch.
    fn ack(&mut self) -> Batch {
        let batch = self.held.take().expect("a held batch");
        self.apply(batch.clone());
        self.drain();
        batch
    }

    /// Persist before notify: what a message event describes is in the store already.
    fn check_persisted(&self, event: &Event) {
        let snapshot = self.store.snapshot();
        let stored = |id: &ClientMessageId| {
            snapshot
                .messages
                .iter()
                .find(|m| m.sender_id.as_str() == ME && &m.client_message_id == id)
        };
        let in_outbox =
            |id: &ClientMessageId| snapshot.outbox.iter().find(|e| &e.client_message_id == id);
        match event {
            Event::MessageQueued { message } => {
                assert_eq!(stored(&message.client_message_id), Some(message));
                assert!(in_outbox(&message.client_message_id).is_some());
            }
            Event::MessageSent {
                client_message_id, ..
            } => {
                assert!(stored(client_message_id).is_some_and(|m| m.is_from_server()));
                assert!(in_outbox(client_message_id).is_none());
            }
            Event::MessageFailed {
                client_message_id, ..
            } => {
                assert!(in_outbox(client_message_id).is_some_and(|e| e.failure.is_some()));
                assert_eq!(
                    stored(client_message_id).unwrap().status,
                    MessageStatus::Failed
                );
            }
            Event::MessageDiscarded {
                client_message_id, ..
            } => {
                assert!(in_outbox(client_message_id).is_none());
                assert!(stored(client_message_id).is_none());
            }
            _ => {}
        }
    }

    /// Runs an engine command or input at the current time, then drains.
    fn act<T>(&mut self, command: impl FnOnce(&mut Engine, Millis) -> T) -> T {
        let result = command(&mut self.engine, self.now);
        self.drain();
        result
    }

    fn start(&mut self) {
        self.act(|engine, now| engine.start(now));
    }

    fn go_online(&mut self, online: bool) {
        self.act(|engine, now| engine.handle_online(online, now));
    }

    fn send(&mut self, conversation: &str, body: &str) -> ClientMessageId {
        let (message, _) = self
            .act(|engine, now| engine.send(conversation.into(), body.into(), now))
            .expect("send");
        message.client_message_id
    }

    fn force(&mut self) -> Ticket {
        self.act(|engine, now| engine.request_sync(Trigger::Force, now))
    }

    fn advance_to(&mut self, at: Millis) {
        self.now = at;
        self.act(|engine, now| engine.handle_timeout(now));
    }

    fn wait(&mut self, ms: Millis) {
        self.advance_to(self.now + ms);
    }

    /// Moves to the time the engine asked to be woken at.
    fn wake_up(&mut self) {
        self.advance_to(self.wake.expect("a wake-up time"));
    }

    fn respond(&mut self, request: &HttpRequest, outcome: HttpOutcome) {
        self.answered.push(request.id);
        self.act(|engine, now| engine.handle_response(request.id, outcome, now));
    }

    /// Issued requests whose `"METHOD path"` starts with `prefix`.
    fn issued(&self, prefix: &str) -> Vec<HttpRequest> {
        self.requests
            .iter()
            .filter(|r| format!("{} {}", r.method.as_str(), r.path).starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Like [`Driver::issued`], only those not answered yet.
    fn open(&self, prefix: &str) -> Vec<HttpRequest> {
        let mut open = self.issued(prefix);
        open.retain(|r| !self.answered.contains(&r.id));
        open
    }

    fn only_open(&self, prefix: &str) -> HttpRequest {
        let open = self.open(prefix);
        assert_eq!(open.len(), 1, "open requests {prefix}: {open:#?}");
        open.into_iter().next().unwrap()
    }

    fn clear(&mut self) {
        self.seen.clear();
    }

    /// Events since the last clear, without the `StatusChanged` and `Changed` noise.
    fn events(&self) -> Vec<Event> {
        self.seen
            .iter()
            .filter_map(|seen| match seen {
                Seen::Event(Event::StatusChanged(_) | Event::Changed(_)) => None,
                Seen::Event(event) => Some(event.clone()),
                _ => None,
            })
            .collect()
    }

    /// The `Changed` events since the last clear.
    fn changes(&self) -> Vec<ChangeSet> {
        self.seen
            .iter()
            .filter_map(|seen| match seen {
                Seen::Event(Event::Changed(changes)) => Some(changes.clone()),
                _ => None,
            })
            .collect()
    }

    fn count(&self, matches: impl Fn(&Event) -> bool) -> usize {
        self.events().iter().filter(|e| matches(e)).count()
    }

    /// Batches the store applied since the last clear.
    fn applied(&self) -> Vec<Batch> {
        self.seen
            .iter()
            .filter_map(|seen| match seen {
                Seen::Applied(batch) => Some(batch.clone()),
                _ => None,
            })
            .collect()
    }
}

// ----- protocol fixtures -----

fn config() -> Config {
    Config::new(ME.into(), 7)
}

fn response(status: u16, body: ResponseBody) -> HttpOutcome {
    HttpOutcome::Response {
        status,
        retry_after_ms: None,
        body,
        bytes: 100,
    }
}

fn feed(changes: Vec<Change>, next_cursor: &str, has_more: bool) -> HttpOutcome {
    response(
        200,
        ResponseBody::Feed(FeedPage {
            changes,
            next_cursor: Cursor::new(next_cursor),
            has_more,
        }),
    )
}

fn created(message: Message) -> HttpOutcome {
    response(201, ResponseBody::Message(MessageResponse { message }))
}

fn error(status: u16, code: ErrorCode) -> HttpOutcome {
    response(
        status,
        ResponseBody::Error(ErrorBody {
            error: ErrorDetail {
                code,
                message: format!("{} from the test server", code.as_str()),
            },
        }),
    )
}

/// When the wait the server asked for at `told_at` with `Retry-After: wait_ms` ends, as the
/// engine's next wake-up: not before, and at most a tenth later (the engine spreads its clients).
fn server_wait_end(d: &Driver, told_at: Millis, wait_ms: Millis) -> Millis {
    let end = d.wake.expect("a wake-up at the end of the wait");
    let allowed = told_at + wait_ms..=told_at + wait_ms + wait_ms / 10;
    assert!(allowed.contains(&end), "{end} not in {allowed:?}");
    end
}

fn with_retry_after(mut outcome: HttpOutcome, ms: Millis) -> HttpOutcome {
    if let HttpOutcome::Response { retry_after_ms, .. } = &mut outcome {
        *retry_after_ms = Some(ms);
    }
    outcome
}

/// A server message; `id` also names its client id (`x-<id>`).
fn message(id: &str, conversation: &str, sender: &str, body: &str, ts: Millis) -> Message {
    Message {
        id: MessageId::new(id),
        conversation_id: conversation.into(),
        client_message_id: ClientMessageId::new(format!("x-{id}")),
        sender_id: sender.into(),
        body: body.into(),
        server_ts: ts,
        updated_ts: ts,
        edited: false,
        deleted: false,
    }
}

/// The server's copy of a message we composed.
fn ours(
    client_message_id: &ClientMessageId,
    conversation: &str,
    body: &str,
    ts: Millis,
) -> Message {
    Message {
        client_message_id: client_message_id.clone(),
        ..message(&format!("m-{ts}"), conversation, ME, body, ts)
    }
}

fn message_change(message: Message) -> Change {
    Change::Message { message }
}

fn conversation_change(id: &str, ts: Millis) -> Change {
    Change::Conversation {
        conversation: Conversation {
            id: id.into(),
            title: format!("title of {id}"),
            members: Vec::new(),
            created_ts: ts,
            updated_ts: ts,
        },
    }
}

fn client_id(request: &HttpRequest) -> ClientMessageId {
    match &request.body {
        Some(RequestBody::Send(send)) => send.client_message_id.clone(),
        other => panic!("not a send: {other:?}"),
    }
}

fn finished(ticket: Ticket, result: Result<SyncSummary, SyncError>) -> Event {
    Event::CommandFinished { ticket, result }
}

fn stored_message(driver: &Driver, id: &ClientMessageId) -> LocalMessage {
    driver
        .store
        .snapshot()
        .messages
        .into_iter()
        .find(|m| &m.client_message_id == id)
        .expect("the message is stored")
}

/// Maintenance's writes at `now` (by the device's clock) before the engine has seen any server
/// stamp: its tombstone compaction waits for one.
fn maintenance_ops(config: &Config, now: Millis) -> Vec<StoreOp> {
    vec![
        StoreOp::EvictHistory {
            keep: config.retention_per_conversation.unwrap(),
        },
        StoreOp::SetLastMaintenance(now),
    ]
}

/// A tombstone of `message`, deleted at `ts`.
fn tombstone(message: Message, ts: Millis) -> Message {
    Message {
        body: String::new(),
        updated_ts: ts,
        deleted: true,
        ..message
    }
}

// ----- sending -----

#[test]
fn send_offline_stores_the_outbox_entry_before_announcing_it_and_sends_nothing() {
    let mut d = Driver::new(config());
    d.go_online(false);
    d.start();
    assert_eq!(d.engine.status().phase, Phase::Offline);
    d.hold_batches = true;

    let (message, ticket) = d
        .act(|e, now| e.send("c-1".into(), "hello".into(), now))
        .unwrap();
    assert_eq!(message.status, MessageStatus::Pending);
    let batch = d.held.clone().expect("the outbox write");
    let [StoreOp::PutOutbox(entry), StoreOp::PutMessage(optimistic)] = &batch.ops[..] else {
        panic!("unexpected batch {batch:?}");
    };
    assert_eq!(entry.client_message_id, message.client_message_id);
    assert_eq!(optimistic, &message);
    // Not acknowledged yet: nothing announced, nothing in the store.
    assert_eq!(d.events(), vec![]);
    assert!(d.store.snapshot().outbox.is_empty());

    d.ack();
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.outbox, vec![entry.clone()]);
    assert_eq!(snapshot.messages, vec![message.clone()]);
    assert_eq!(
        d.events(),
        vec![
            Event::MessageQueued { message },
            finished(ticket, Ok(SyncSummary::default())),
        ]
    );
    d.wait(10 * MIN);
    let force = d.force();
    assert_eq!(
        d.events().last(),
        Some(&finished(force, Err(SyncError::Offline)))
    );
    assert!(d.requests.is_empty(), "{:?}", d.requests);
    assert_eq!(d.engine.status().pending_outbox, 1);
}

#[test]
fn going_online_sends_the_queued_message_and_201_replaces_the_optimistic_copy() {
    let mut d = Driver::new(config());
    d.go_online(false);
    d.start();
    let id = d.send("c-1", "hello");
    assert!(d.requests.is_empty());

    d.go_online(true);
    let post = d.only_open("POST ");
    assert_eq!(post.path, "/v1/conversations/c-1/messages");
    assert_eq!(
        post.body,
        Some(RequestBody::Send(SendMessageRequest {
            client_message_id: id.clone(),
            body: "hello".into(),
        }))
    );

    d.clear();
    let server = ours(&id, "c-1", "hello", T0 + 5);
    d.respond(&post, created(server.clone()));
    let snapshot = d.store.snapshot();
    assert!(snapshot.outbox.is_empty());
    // Same key, so the server copy replaced the optimistic one.
    assert_eq!(
        snapshot.messages,
        vec![LocalMessage::from_server(server.clone())]
    );
    assert_eq!(
        d.events(),
        vec![Event::MessageSent {
            client_message_id: id,
            message: server,
        }]
    );
    assert_eq!(d.engine.status().pending_outbox, 0);
    assert_eq!(d.engine.stats().messages_pushed, 1);
}

#[test]
fn the_first_message_sent_in_a_conversation_new_here_stays_shown_once_sent() {
    let mut d = Driver::new(config());
    d.start();
    let sync = d.only_open("GET /v1/sync");
    // Joined: nothing of its history is known yet.
    d.respond(
        &sync,
        feed(vec![conversation_change("c-new", T0 - 10)], "k1", false),
    );
    let conversation = "c-new".into();
    let floor = pollster::block_on(d.store.history_floor(&conversation)).expect("floor");
    assert_eq!(floor, HistoryFloor::Unknown);

    let id = d.send("c-new", "first!");
    let post = d.only_open("POST ");
    let server = ours(&id, "c-new", "first!", T0 + 5);
    d.respond(&post, created(server.clone()));
    let shown = pollster::block_on(d.store.messages(&conversation, None, 10)).expect("read");
    assert_eq!(shown, vec![LocalMessage::from_server(server)]);
}

#[test]
fn second_message_of_a_conversation_waits_until_the_first_is_acknowledged() {
    let mut d = Driver::idle(config());
    let first = d.send("c-a", "first");
    let second = d.send("c-a", "second");
    let post = d.only_open("POST ");
    assert_eq!(client_id(&post), first);

    // A retryable failure keeps the first at the head of the queue.
    d.respond(&post, error(500, ErrorCode::Internal));
    while d.open("POST ").is_empty() {
        d.wake_up();
    }
    let retry = d.only_open("POST ");
    assert_eq!(client_id(&retry), first);
    assert_eq!(d.issued("POST ").len(), 2);

    d.respond(&retry, created(ours(&first, "c-a", "first", T0 + 10)));
    let next = d.only_open("POST ");
    assert_eq!(client_id(&next), second);
}

#[test]
fn messages_to_different_conversations_go_concurrently_up_to_the_request_limit() {
    let mut d = Driver::idle(config());
    assert_eq!(d.engine.config().max_concurrent_requests, 2);
    let a1 = d.send("c-a", "a1");
    let a2 = d.send("c-a", "a2");
    let b1 = d.send("c-b", "b1");
    let c1 = d.send("c-c", "c1");
    let open = |d: &Driver| d.open("POST ").iter().map(client_id).collect::<Vec<_>>();
    assert_eq!(open(&d), vec![a1.clone(), b1.clone()]);

    let post_b1 = d.open("POST /v1/conversations/c-b/").remove(0);
    d.respond(&post_b1, created(ours(&b1, "c-b", "b1", T0 + 1)));
    assert_eq!(open(&d), vec![a1.clone(), c1.clone()]);

    let post_a1 = d.open("POST /v1/conversations/c-a/").remove(0);
    d.respond(&post_a1, created(ours(&a1, "c-a", "a1", T0 + 2)));
    assert_eq!(open(&d), vec![c1, a2]);
}

/// An idle engine whose send of "hi" in c-1 was answered `status` (429 or 503) with
/// `Retry-After: wait_ms`: the message's id, the request, and when.
fn send_answered_with_retry_after(
    status: u16,
    wait_ms: Millis,
) -> (Driver, ClientMessageId, HttpRequest, Millis) {
    let mut d = Driver::idle(config());
    let id = d.send("c-1", "hi");
    let post = d.only_open("POST ");
    let told_at = d.now;
    let code = match status {
        429 => ErrorCode::RateLimited,
        _ => ErrorCode::Unavailable,
    };
    d.respond(&post, with_retry_after(error(status, code), wait_ms));
    (d, id, post, told_at)
}

#[test]
fn send_503_with_retry_after_waits_30_s_and_retries_with_the_same_client_message_id() {
    let (mut d, id, first, failed_at) = send_answered_with_retry_after(503, 30 * SEC);
    assert!(d.open("POST ").is_empty());
    let end = server_wait_end(&d, failed_at, 30 * SEC);

    d.advance_to(end - 1);
    assert_eq!(d.issued("POST ").len(), 1);
    d.advance_to(end);
    let second = d.only_open("POST ");
    assert_eq!(client_id(&second), id);
    assert_eq!((&second.path, &second.body), (&first.path, &first.body));
    assert_eq!(d.engine.stats().retries, 1);

    // The server holds it at last (an idempotent 200 with the original).
    let server = ours(&id, "c-1", "hi", T0 + 3);
    d.respond(
        &second,
        response(
            200,
            ResponseBody::Message(MessageResponse { message: server }),
        ),
    );
    assert!(d.store.snapshot().outbox.is_empty());
    assert_eq!(d.count(|e| matches!(e, Event::MessageSent { .. })), 1);
}

#[test]
fn a_retry_after_on_a_send_holds_the_other_requests_too() {
    let (mut d, _, _, told_at) = send_answered_with_retry_after(429, 5 * SEC);
    // The periodic sync and a conversation's sync come due meanwhile: they wait with the send.
    d.act(|e, now| e.request_sync(Trigger::Periodic, now));
    let conversation = d.act(|e, now| e.sync_conversation("c-2".into(), now));
    assert!(d.open("GET ").is_empty(), "{:?}", d.open("GET "));
    assert!(
        d.events().iter().all(
            |e| !matches!(e, Event::CommandFinished { ticket, .. } if *ticket == conversation)
        ),
        "a short wait is waited out"
    );

    d.advance_to(server_wait_end(&d, told_at, 5 * SEC));
    assert_eq!(d.open("GET /v1/conversations/c-2/sync").len(), 1);
    assert_eq!(d.open("POST ").len(), 1);
}

#[test]
fn a_message_and_a_read_marker_made_during_a_retry_after_wait_for_it() {
    let (mut d, first, _, told_at) = send_answered_with_retry_after(503, 30 * SEC);
    d.wait(SEC);
    let second = d.send("c-2", "composed during the wait");
    d.act(|e, now| e.mark_read("c-3".into(), "m-9".into(), T0 - 1, now))
        .unwrap();
    assert!(d.open("POST ").is_empty(), "{:#?}", d.open("POST "));
    server_wait_end(&d, told_at, 30 * SEC);

    d.wake_up();
    let sends: Vec<_> = d.open("POST ").iter().map(client_id).collect();
    assert_eq!(sends, vec![first.clone(), second], "two at a time");
    let post = d.only_open("POST /v1/conversations/c-1/");
    d.respond(&post, created(ours(&first, "c-1", "hi", T0 + 31 * SEC)));
    assert_eq!(
        marked(&d.only_open("POST /v1/conversations/c-3/read")),
        "m-9".into()
    );
}

#[test]
fn unanswered_send_times_out_is_retried_and_its_late_answer_is_ignored() {
    let mut d = Driver::idle(config());
    let id = d.send("c-1", "hi");
    let first = d.only_open("POST ");
    let sent_at = d.now;
    assert_eq!(d.wake, Some(sent_at + 30 * SEC));

    d.advance_to(sent_at + 30 * SEC - 1);
    assert_eq!(d.issued("POST ").len(), 1);
    d.advance_to(sent_at + 30 * SEC);
    assert_eq!(d.engine.status().last_error, Some(SyncError::Timeout));
    while d.issued("POST ").len() == 1 {
        d.wake_up();
    }
    // The first retry waits at most the base backoff (1 s).
    assert!(d.now <= sent_at + 31 * SEC);
    let second = d.issued("POST ").pop().unwrap();
    assert_eq!(client_id(&second), id);

    // The answer to the abandoned request arrives late: ignored.
    d.clear();
    d.respond(&first, created(ours(&id, "c-1", "hi", T0 + 1)));
    assert_eq!(d.events(), vec![]);
    assert!(d.applied().is_empty());
    assert_eq!(d.store.snapshot().outbox.len(), 1);
    assert_eq!(stored_message(&d, &id).status, MessageStatus::Pending);
    assert_eq!(d.engine.status().pending_outbox, 1);

    d.respond(&second, created(ours(&id, "c-1", "hi", T0 + 1)));
    assert_eq!(d.count(|e| matches!(e, Event::MessageSent { .. })), 1);
    assert_eq!(stored_message(&d, &id).status, MessageStatus::Sent);
}

#[test]
fn permanent_422_fails_the_message_with_the_server_code_and_later_ones_still_go() {
    let mut d = Driver::idle(config());
    let bad = d.send("c-1", "refused");
    let good = d.send("c-1", "fine");
    let post = d.only_open("POST ");
    assert_eq!(client_id(&post), bad);

    d.clear();
    d.respond(&post, error(422, ErrorCode::InvalidField));
    let failure = d.store.snapshot().outbox[0]
        .failure
        .clone()
        .expect("failed");
    assert_eq!(failure.code, "invalid_field");
    let stored = stored_message(&d, &bad);
    assert_eq!(
        (stored.status, stored.failure),
        (MessageStatus::Failed, Some(failure.clone()))
    );
    assert_eq!(
        d.events(),
        vec![Event::MessageFailed {
            client_message_id: bad.clone(),
            conversation_id: "c-1".into(),
            failure,
            retryable: false,
        }]
    );
    let status = d.engine.status();
    assert_eq!((status.pending_outbox, status.failed_outbox), (1, 1));

    let next = d.only_open("POST ");
    assert_eq!(client_id(&next), good);
    d.respond(&next, created(ours(&good, "c-1", "fine", T0 + 1)));
    // The failed one waits for the app: no further attempts on its own.
    d.wait(HOUR);
    assert_eq!(d.issued("POST ").len(), 2);
}

#[test]
fn an_error_status_without_the_protocol_body_is_retried_not_failed() {
    // A firewall answers in the server's place: 403 with a page of HTML.
    let blocked = || response(403, ResponseBody::Invalid("not JSON: <html>".into()));
    let mut d = Driver::idle(config());
    let id = d.send("c-1", "through the firewall");
    let first = d.only_open("POST ");
    d.clear();
    d.respond(&first, blocked());
    assert_eq!(stored_message(&d, &id).status, MessageStatus::Pending);
    assert_eq!(d.count(|e| matches!(e, Event::MessageFailed { .. })), 0);
    let status = d.engine.status();
    assert_eq!((status.pending_outbox, status.failed_outbox), (1, 0));
    assert!(
        matches!(&status.last_error, Some(SyncError::Protocol { message }) if message.starts_with("HTTP 403 ")),
        "{:?}",
        status.last_error
    );

    // A pull answered so fails the forced sync, as a network error would, and is tried again.
    let ticket = d.force();
    let pull = d.only_open("GET /v1/sync");
    d.respond(&pull, blocked());
    assert_eq!(
        d.count(|e| matches!(e, Event::CommandFinished { ticket: t, result: Err(SyncError::Protocol { .. }) } if *t == ticket)),
        1
    );
    while d.open("GET /v1/sync").is_empty() {
        d.wake_up();
    }

    // Let through again: the same message is delivered once.
    while d.open("POST ").is_empty() {
        d.wake_up();
    }
    let again = d.only_open("POST ");
    assert_eq!(client_id(&again), id);
    d.respond(
        &again,
        created(ours(&id, "c-1", "through the firewall", T0 + 1)),
    );
    assert_eq!(stored_message(&d, &id).status, MessageStatus::Sent);
    assert_eq!(d.count(|e| matches!(e, Event::MessageSent { .. })), 1);
}

#[test]
fn a_send_whose_outcome_cannot_be_stored_goes_again_after_a_growing_backoff() {
    let mut d = Driver::idle(config());
    let id = d.send("c-1", "hi");
    let delivered = created(ours(&id, "c-1", "hi", T0 + 1));
    for attempt in 1..=6 {
        let post = d.only_open("POST ");
        d.store
            .fail_next_apply(StoreError::Unavailable("closed by a version change".into()));
        d.respond(&post, delivered.clone());
        assert!(
            d.open("POST ").is_empty(),
            "attempt {attempt}: sent again at once"
        );
        // Again within the backoff's bound for this attempt: 1 s, 2 s, 4 s, …
        d.wait(SEC << (attempt - 1));
    }
    assert_eq!(d.issued("POST ").len(), 7);
    assert!(matches!(
        d.engine.status().last_error,
        Some(SyncError::Storage { .. })
    ));

    let post = d.only_open("POST ");
    d.respond(&post, delivered);
    assert!(d.store.snapshot().outbox.is_empty());
    assert!(stored_message(&d, &id).is_from_server());
    assert_eq!(d.count(|e| matches!(e, Event::MessageSent { .. })), 1);
}

#[test]
fn retry_message_requeues_a_failed_message_under_the_same_client_message_id() {
    let mut d = Driver::idle(config());
    let id = d.send("c-1", "again");
    let post = d.only_open("POST ");
    d.respond(&post, error(422, ErrorCode::InvalidField));
    assert_eq!(
        d.act(|e, now| e.retry_message(&ClientMessageId::new("nope"), now)),
        Err(EngineError::UnknownMessage)
    );

    d.clear();
    let ticket = d.act(|e, now| e.retry_message(&id, now)).unwrap();
    assert_eq!(d.store.snapshot().outbox[0].failure, None);
    assert_eq!(stored_message(&d, &id).status, MessageStatus::Pending);
    assert_eq!(
        d.events(),
        vec![finished(ticket, Ok(SyncSummary::default()))]
    );
    assert_eq!(
        d.act(|e, now| e.retry_message(&id, now)),
        Err(EngineError::NotFailed)
    );

    let again = d.only_open("POST ");
    assert_eq!((client_id(&again), &again.body), (id.clone(), &post.body));
    d.respond(&again, created(ours(&id, "c-1", "again", T0 + 1)));
    assert!(d.store.snapshot().outbox.is_empty());
    assert_eq!(stored_message(&d, &id).status, MessageStatus::Sent);
}

/// A store holding `entry` in its outbox, with its optimistic message, and its last maintenance
/// at `last_maintenance`.
fn store_holding(entry: &OutboxEntry, last_maintenance: Millis) -> MemoryStore {
    let store = MemoryStore::new();
    pollster::block_on(store.apply(&[
        StoreOp::SetLastMaintenance(last_maintenance),
        StoreOp::PutOutbox(entry.clone()),
        StoreOp::PutMessage(LocalMessage::optimistic(entry, &ME.into())),
    ]))
    .unwrap();
    store
}

/// A pending message composed a week and a minute before `T0`: past its lifetime.
fn pending_a_week_and_a_minute() -> OutboxEntry {
    OutboxEntry {
        client_message_id: ClientMessageId::new("c1-abc"),
        conversation_id: "c-1".into(),
        body: "hello".into(),
        seq: 1,
        composed_at: T0 - 7 * DAY - MIN,
        failure: None,
    }
}

/// A started engine, offline, with a message composed 8 days ago that failed; maintenance is due
/// `due_in` from now (it removes the message).
fn offline_with_a_failed_message_a_week_old(due_in: Millis) -> (Driver, OutboxEntry) {
    let entry = OutboxEntry {
        client_message_id: ClientMessageId::new("old-1"),
        conversation_id: "c-1".into(),
        body: "written a week ago".into(),
        seq: 1,
        composed_at: T0 - 8 * DAY,
        failure: Some(chat_sync_engine::Failure {
            code: "expired".into(),
            message: "expired".into(),
        }),
    };
    let store = store_holding(&entry, T0 - DAY + due_in);
    let mut d = Driver::with_store(config(), store);
    d.go_online(false);
    d.start();
    (d, entry)
}

#[test]
fn a_retry_as_maintenance_comes_due_to_remove_the_failed_message_is_refused() {
    let (mut d, entry) = offline_with_a_failed_message_a_week_old(HOUR);
    d.clear();
    // An hour later the user taps "retry" as maintenance comes due: it removes the message.
    d.now += HOUR;
    let retried = d.act(|e, now| e.retry_message(&entry.client_message_id, now));
    assert_eq!(retried, Err(EngineError::Settling));
    assert_eq!(
        d.events()[0],
        Event::MessageDiscarded {
            client_message_id: entry.client_message_id.clone(),
            conversation_id: "c-1".into(),
            body: entry.body.clone(),
            reason: DiscardReason::Expired,
        }
    );
    let snapshot = d.store.snapshot();
    assert!(snapshot.outbox.is_empty() && snapshot.messages.is_empty());
    let status = d.engine.status();
    assert_eq!((status.pending_outbox, status.failed_outbox), (0, 0));
    d.go_online(true);
    assert!(d.issued("POST ").is_empty());
}

/// And a retry under way keeps maintenance off the message.
#[test]
fn maintenance_coming_due_while_a_retry_is_stored_leaves_the_message_queued() {
    let (mut d, entry) = offline_with_a_failed_message_a_week_old(MIN);
    d.hold_batches = true;
    d.act(|e, now| e.retry_message(&entry.client_message_id, now))
        .unwrap();
    assert_eq!(
        d.act(|e, now| e.discard_message(&entry.client_message_id, now)),
        Err(EngineError::Settling)
    );
    d.now += MIN;
    d.act(|e, now| e.handle_timeout(now));
    while d.held.is_some() {
        d.ack();
    }
    assert_eq!(d.count(|e| matches!(e, Event::MessageDiscarded { .. })), 0);
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.outbox.len(), 1);
    assert_eq!(snapshot.outbox[0].failure, None);
    assert_eq!(d.engine.status().pending_outbox, 1);
    d.go_online(true);
    assert_eq!(client_id(&d.only_open("POST ")), entry.client_message_id);
}

#[test]
fn discard_message_removes_a_failed_message_from_outbox_and_store() {
    let mut d = Driver::idle(config());
    let id = d.send("c-gone", "hello?");
    let post = d.only_open("POST ");
    d.clear();
    d.respond(&post, error(404, ErrorCode::ConversationNotFound));
    let failure = d.store.snapshot().outbox[0].failure.clone().unwrap();
    assert_eq!(failure.code, "conversation_not_found");
    assert!(matches!(
        &d.events()[..],
        [Event::MessageFailed { retryable: false, failure: f, .. }] if f == &failure
    ));

    d.clear();
    let ticket = d.act(|e, now| e.discard_message(&id, now)).unwrap();
    let snapshot = d.store.snapshot();
    assert!(snapshot.outbox.is_empty());
    assert!(snapshot.messages.is_empty());
    assert_eq!(
        d.events(),
        vec![
            Event::MessageDiscarded {
                client_message_id: id.clone(),
                conversation_id: "c-gone".into(),
                body: "hello?".into(),
                reason: DiscardReason::Discarded,
            },
            finished(ticket, Ok(SyncSummary::default())),
        ]
    );
    assert_eq!(d.engine.status().failed_outbox, 0);
    assert_eq!(
        d.act(|e, now| e.discard_message(&id, now)),
        Err(EngineError::UnknownMessage)
    );
}

/// Failed outbox entries in `c-1`, composed a minute before `T0`, with their optimistic
/// messages, and a tab that loaded them (a follower: not started) and has not reloaded since.
fn a_tab_holding_failed(ids: &[&str]) -> (Driver, Vec<OutboxEntry>) {
    let entries: Vec<OutboxEntry> = (ids.iter().zip(1..))
        .map(|(&id, seq)| OutboxEntry {
            client_message_id: ClientMessageId::new(id),
            conversation_id: "c-1".into(),
            body: id.into(),
            seq,
            composed_at: T0 - MIN,
            failure: Some(chat_sync_engine::Failure {
                code: "forbidden".into(),
                message: "refused".into(),
            }),
        })
        .collect();
    let store = MemoryStore::new();
    let mut ops = vec![StoreOp::SetLastMaintenance(T0)];
    for entry in &entries {
        ops.extend([
            StoreOp::PutOutbox(entry.clone()),
            StoreOp::PutMessage(LocalMessage::optimistic(entry, &ME.into())),
        ]);
    }
    pollster::block_on(store.apply(&ops)).unwrap();
    let d = Driver::with_store(config(), store);
    assert_eq!(d.engine.status().failed_outbox, ids.len());
    (d, entries)
}

/// What another tab writes when the user retries `entry` there: the entry pending again, from
/// `at`, with its optimistic message.
fn retried_elsewhere(d: &Driver, entry: &OutboxEntry, at: Millis) -> OutboxEntry {
    let retried = OutboxEntry {
        failure: None,
        composed_at: at,
        ..entry.clone()
    };
    d.stored_by_another_tab(&retried);
    retried
}

/// What the leading tab writes when it delivers `entry` (retried in some tab): the server's copy,
/// the entry gone.
fn delivered_elsewhere(d: &Driver, entry: &OutboxEntry) -> LocalMessage {
    let body = entry.body.as_str();
    let sent = LocalMessage::from_server(ours(&entry.client_message_id, "c-1", body, T0));
    let delivery = [
        StoreOp::PutMessage(sent.clone()),
        StoreOp::RemoveOutbox(entry.client_message_id.clone()),
    ];
    pollster::block_on(d.store.apply(&delivery)).unwrap();
    sent
}

/// The user retries a failed message in one tab and discards it in another that has not heard
/// of the retry yet (its note is on the way); or discards it after the leading tab delivered
/// the retried message. The discard goes by what the store holds: the retried message stays
/// queued, the delivered one stays (the app is not told it was discarded); the command fails as
/// for a message that is not failed.
#[test]
fn a_discard_in_a_tab_behind_the_store_leaves_a_message_retried_or_delivered_meanwhile() {
    let (mut d, entries) = a_tab_holding_failed(&["retried", "delivered"]);
    let [retried, delivered] = &entries[..] else {
        unreachable!()
    };
    let retried = retried_elsewhere(&d, retried, T0);
    retried_elsewhere(&d, delivered, T0);
    let sent = delivered_elsewhere(&d, delivered);

    d.clear();
    let tickets: Vec<Ticket> = [&retried, delivered]
        .iter()
        .map(|entry| {
            let id = &entry.client_message_id;
            d.act(|e, now| e.discard_message(id, now)).unwrap()
        })
        .collect();
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.outbox, vec![retried.clone()]);
    let optimistic = LocalMessage::optimistic(&retried, &ME.into());
    assert_eq!(snapshot.messages, vec![sent, optimistic]);
    let not_failed = |ticket| finished(ticket, Err(SyncError::NotFailed));
    assert_eq!(
        d.events(),
        vec![not_failed(tickets[0]), not_failed(tickets[1])]
    );
    assert!(d.changes().is_empty());

    // The other tab's note comes: this tab's outbox is the store's.
    d.act(|e, now| e.handle_outbox_reloaded(snapshot.outbox, now));
    let status = d.engine.status();
    assert_eq!((status.pending_outbox, status.failed_outbox), (1, 0));
}

/// The other tab's note may come while the discard is being written: the reload leaves alone
/// an entry whose write is under way. The tab then takes the store's copy from the write itself:
/// as it takes the lead, it sends the message retried in the other tab.
#[test]
fn a_discard_behind_the_store_takes_the_stored_copy_when_the_note_came_meanwhile() {
    let (mut d, entries) = a_tab_holding_failed(&["retried"]);
    let retried = retried_elsewhere(&d, &entries[0], T0);

    d.hold_batches = true;
    let id = retried.client_message_id.clone();
    let ticket = d.act(|e, now| e.discard_message(&id, now)).unwrap();
    let outbox = d.store.snapshot().outbox;
    d.act(|e, now| e.handle_outbox_reloaded(outbox, now));
    d.ack();
    d.hold_batches = false;
    assert_eq!(d.store.snapshot().outbox, vec![retried.clone()]);
    assert_eq!(
        d.count(|e| *e == finished(ticket, Err(SyncError::NotFailed))),
        1
    );
    let status = d.engine.status();
    assert_eq!((status.pending_outbox, status.failed_outbox), (1, 0));

    d.start();
    assert_eq!(client_id(&d.only_open("POST ")), retried.client_message_id);
}

/// The user discards a failed message in one tab and retries it in another that has not heard
/// of that yet; or retries it there after the leading tab delivered it, retried in a third. The
/// retry goes by what the store holds: the discarded message does not come back, the delivered
/// one is not queued to be sent again; the command fails as for a message that is not failed.
#[test]
fn a_retry_in_a_tab_behind_the_store_does_not_bring_back_a_message_discarded_or_delivered() {
    let (mut d, entries) = a_tab_holding_failed(&["discarded", "delivered"]);
    let [discarded, delivered] = &entries[..] else {
        unreachable!()
    };
    let discard = [
        StoreOp::RemoveOutbox(discarded.client_message_id.clone()),
        StoreOp::RemoveOptimistic {
            sender: ME.into(),
            client_message_id: discarded.client_message_id.clone(),
        },
    ];
    pollster::block_on(d.store.apply(&discard)).unwrap();
    retried_elsewhere(&d, delivered, T0);
    let sent = delivered_elsewhere(&d, delivered);

    d.clear();
    d.now += MIN;
    let tickets: Vec<Ticket> = entries
        .iter()
        .map(|entry| {
            let id = &entry.client_message_id;
            d.act(|e, now| e.retry_message(id, now)).unwrap()
        })
        .collect();
    let snapshot = d.store.snapshot();
    assert!(snapshot.outbox.is_empty(), "{:?}", snapshot.outbox);
    assert_eq!(snapshot.messages, vec![sent]);
    let not_failed = |ticket| finished(ticket, Err(SyncError::NotFailed));
    assert_eq!(
        d.events(),
        vec![not_failed(tickets[0]), not_failed(tickets[1])]
    );
    assert!(d.changes().is_empty());

    // The other tabs' notes come; this tab takes the lead: nothing is sent.
    d.act(|e, now| e.handle_outbox_reloaded(snapshot.outbox, now));
    let status = d.engine.status();
    assert_eq!((status.pending_outbox, status.failed_outbox), (0, 0));
    d.start();
    let sync = d.only_open("GET /v1/sync");
    d.respond(&sync, feed(vec![], "k0", false));
    assert!(d.issued("POST ").is_empty());
}

// ----- auth -----

/// The server's answer to a read marker for `ME`.
fn marker_kept(conversation: &str, message: &str, updated_ts: Millis) -> HttpOutcome {
    response(
        200,
        ResponseBody::ReadMarker(ReadMarkerResponse {
            read_marker: ReadMarker {
                conversation_id: conversation.into(),
                user_id: ME.into(),
                last_read_message_id: message.into(),
                last_read_server_ts: updated_ts - 1,
                updated_ts,
            },
        }),
    )
}

fn marked(request: &HttpRequest) -> MessageId {
    match &request.body {
        Some(RequestBody::MarkRead(MarkReadRequest { message_id })) => message_id.clone(),
        other => panic!("not a read marker: {other:?}"),
    }
}

#[test]
fn mark_read_sends_the_newest_marker_per_conversation_and_stores_the_servers_answer() {
    let mut d = Driver::idle(config());
    d.act(|e, now| e.mark_read("c-1".into(), "m-1".into(), T0 - 9, now))
        .unwrap();
    let first = d.only_open("POST ");
    assert_eq!(first.path, "/v1/conversations/c-1/read");
    assert_eq!(marked(&first), MessageId::from("m-1"));

    // Read further while the first is out: the newer one goes after it.
    d.act(|e, now| e.mark_read("c-1".into(), "m-2".into(), T0 - 8, now))
        .unwrap();
    assert_eq!(
        d.open("POST ").len(),
        1,
        "one request per conversation at a time"
    );
    assert_eq!(
        d.engine.unsent_read_marker(&"c-1".into()),
        Some((&MessageId::from("m-2"), T0 - 8))
    );
    d.respond(&first, marker_kept("c-1", "m-1", T0 + 5));
    let second = d.only_open("POST ");
    assert_eq!(marked(&second), MessageId::from("m-2"));
    d.clear();
    d.respond(&second, marker_kept("c-1", "m-2", T0 + 9));

    assert_eq!(d.engine.unsent_read_marker(&"c-1".into()), None);
    let markers = d.store.snapshot().read_markers;
    assert_eq!(markers.len(), 1);
    assert_eq!(markers[0].last_read_message_id, MessageId::from("m-2"));
    assert_eq!(markers[0].updated_ts, T0 + 9);
    let changed = d.changes();
    let c1 = changed
        .iter()
        .filter(|set| set.conversations == ["c-1".into()]);
    assert_eq!(c1.count(), 1, "the app hears the marker moved");
}

/// Markers only move forward: a marker below the one waiting to be sent (the newest message was
/// deleted, and the app marks the one before it) changes nothing, and the one stored goes out.
/// (The simulation found the stored marker lost to the older one, seed 219508.)
#[test]
fn a_marker_below_the_one_waiting_to_be_sent_does_not_replace_it() {
    let mut d = Driver::idle(config());
    d.go_online(false);
    d.act(|e, now| e.mark_read("c-1".into(), "m-3".into(), T0 - 7, now))
        .unwrap();
    d.act(|e, now| e.mark_read("c-1".into(), "m-2".into(), T0 - 8, now))
        .unwrap();
    assert_eq!(
        d.engine.unsent_read_marker(&"c-1".into()),
        Some((&MessageId::from("m-3"), T0 - 7))
    );
    let pending = pollster::block_on(d.store.load())
        .unwrap()
        .pending_read_markers;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].message_id, MessageId::from("m-3"));
    d.go_online(true);
    assert_eq!(marked(&d.only_open("POST ")), MessageId::from("m-3"));
}

#[test]
fn a_read_marker_set_offline_goes_when_online_and_retries_after_a_503() {
    let mut d = Driver::new(config());
    d.go_online(false);
    d.start();
    d.act(|e, now| e.mark_read("c-1".into(), "m-7".into(), T0 - 7, now))
        .unwrap();
    assert!(d.requests.is_empty());
    assert_eq!(
        d.engine.unsent_read_marker(&"c-1".into()),
        Some((&MessageId::from("m-7"), T0 - 7))
    );
    assert_eq!(d.engine.status().pending_read_markers, 1);

    d.go_online(true);
    let post = d.only_open("POST ");
    d.respond(
        &post,
        with_retry_after(error(503, ErrorCode::Unavailable), 30 * SEC),
    );
    d.wait(29 * SEC);
    assert_eq!(d.issued("POST ").len(), 1, "Retry-After is honoured");
    // (A tenth more at most: the engine spreads its clients' returns.)
    d.wait(4 * SEC);
    let again = d.only_open("POST ");
    assert_eq!(marked(&again), MessageId::from("m-7"));
    d.respond(&again, marker_kept("c-1", "m-7", T0 + 40 * SEC));
    assert_eq!(d.store.snapshot().read_markers.len(), 1);
    assert_eq!(d.engine.unsent_read_marker(&"c-1".into()), None);
    assert_eq!(d.engine.status().pending_read_markers, 0);
}

#[test]
fn a_read_marker_set_offline_is_stored_and_a_reloaded_engine_sends_it() {
    let mut d = Driver::new(config());
    d.go_online(false);
    d.start();
    d.hold_batches = true;
    let ticket = d
        .act(|e, now| e.mark_read("c-1".into(), "m-7".into(), T0 - 7, now))
        .unwrap();
    assert_eq!(d.events(), vec![], "not stored yet, not finished");
    d.ack();
    assert_eq!(
        d.events(),
        vec![finished(ticket, Ok(SyncSummary::default()))]
    );
    d.hold_batches = false;
    let stored = |store: &MemoryStore| {
        pollster::block_on(store.load())
            .unwrap()
            .pending_read_markers
    };
    assert_eq!(
        stored(&d.store),
        vec![PendingReadMarker {
            conversation_id: "c-1".into(),
            message_id: "m-7".into(),
            server_ts: T0 - 7,
        }]
    );

    // The page closes before the network returns; the app opens again, online.
    let mut reopened = Driver::with_store(config(), d.store.clone());
    assert_eq!(
        reopened.engine.unsent_read_marker(&"c-1".into()),
        Some((&MessageId::from("m-7"), T0 - 7))
    );
    reopened.start();
    let post = reopened.only_open("POST /v1/conversations/c-1/read");
    assert_eq!(marked(&post), MessageId::from("m-7"));
    reopened.respond(&post, marker_kept("c-1", "m-7", T0 + 3));
    assert_eq!(stored(&reopened.store), vec![]);
    assert_eq!(reopened.store.snapshot().read_markers.len(), 1);
}

#[test]
fn a_follower_keeps_its_read_marker_in_memory_only() {
    // Not started: another tab leads, and the driver hands the marker to it.
    let mut d = Driver::new(config());
    let ticket = d
        .act(|e, now| e.mark_read("c-1".into(), "m-7".into(), T0 - 7, now))
        .unwrap();
    assert!(d.applied().is_empty(), "{:?}", d.applied());
    assert_eq!(
        d.events(),
        vec![finished(ticket, Ok(SyncSummary::default()))]
    );
    assert!(d.requests.is_empty());
    assert_eq!(
        d.engine.unsent_read_marker(&"c-1".into()),
        Some((&MessageId::from("m-7"), T0 - 7))
    );
    assert_eq!(
        d.engine.status().pending_read_markers,
        0,
        "the leading tab's to send"
    );
}

#[test]
fn a_tab_taking_the_lead_adopts_the_read_markers_its_predecessor_left_unsent() {
    let pending = |conversation: &str, message: &str, server_ts| PendingReadMarker {
        conversation_id: conversation.into(),
        message_id: message.into(),
        server_ts,
    };
    // The old leader stored two markers it could not send.
    let store = MemoryStore::new();
    pollster::block_on(store.apply(&[StoreOp::SetPendingReadMarkers(vec![
        pending("c-1", "m-7", T0 - 7),
        pending("c-2", "m-3", T0 - 30),
    ])]))
    .unwrap();
    // This tab, a follower until now, read c-2 further meanwhile.
    let mut d = Driver::with_store(config(), MemoryStore::new());
    d.go_online(false);
    d.act(|e, now| e.mark_read("c-2".into(), "m-4".into(), T0 - 20, now))
        .unwrap();
    d.start();
    let left = pollster::block_on(store.load())
        .unwrap()
        .pending_read_markers;
    d.act(|e, now| e.handle_pending_read_markers(left, now));
    assert_eq!(
        d.engine.unsent_read_marker(&"c-1".into()),
        Some((&MessageId::from("m-7"), T0 - 7))
    );
    assert_eq!(
        d.engine.unsent_read_marker(&"c-2".into()),
        Some((&MessageId::from("m-4"), T0 - 20)),
        "its own newer marker stays"
    );
    let mut kept = pollster::block_on(d.store.load())
        .unwrap()
        .pending_read_markers;
    kept.sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
    assert_eq!(
        kept,
        vec![
            pending("c-1", "m-7", T0 - 7),
            pending("c-2", "m-4", T0 - 20)
        ]
    );
}

/// A message another tab stored without a word reaching this one (it closed as its write
/// ended) is sent by this tab's next sync run, which reloads what the tabs share as it starts.
#[test]
fn each_sync_run_reloads_the_outbox_and_sends_what_another_tab_stored_untold() {
    let mut d = Driver::idle(config());
    let entry = OutboxEntry {
        client_message_id: ClientMessageId::new("from-a-closed-tab"),
        conversation_id: "c-1".into(),
        body: "sent as the tab closed".into(),
        seq: 1,
        composed_at: T0,
        failure: None,
    };
    d.stored_by_another_tab(&entry);
    d.wait(MIN);
    assert!(d.open("POST /v1/conversations/c-1/").is_empty());
    assert_eq!(d.engine.status().pending_outbox, 0);

    // The periodic sync comes due.
    d.wake_up();
    assert!(d.seen.iter().any(|seen| matches!(seen, Seen::Reloaded)));
    let post = d.only_open("POST /v1/conversations/c-1/messages");
    assert_eq!(client_id(&post), entry.client_message_id);
    d.respond(
        &post,
        created(ours(&entry.client_message_id, "c-1", "sent", T0 + 5 * MIN)),
    );
    assert!(d.store.snapshot().outbox.is_empty());
}

/// A tab whose clock was set back as a run starts: offline, with a message refused once for
/// now (503), and the clock moved back an hour in the input that brings it online.
fn clock_set_back_as_a_run_starts() -> (Driver, ClientMessageId) {
    let mut d = Driver::idle(config());
    assert_eq!(d.engine.status().last_sync_time, Some(T0));
    let id = d.send("c-1", "hi");
    let post = d.only_open("POST /v1/conversations/c-1/messages");
    d.respond(&post, error(503, ErrorCode::Unavailable));
    d.go_online(false);
    d.now = T0 + MIN;
    d.act(|e, now| {
        e.handle_clock_ahead(HOUR);
        e.handle_online(true, now)
    });
    assert!(d.seen.iter().any(|seen| matches!(seen, Seen::Reloaded)));
    (d, id)
}

/// The run's reload reads the store after this engine's own writes: the last sync time the
/// clock moved stays moved.
#[test]
fn the_reload_as_a_run_starts_keeps_the_last_sync_the_clock_moved() {
    let (mut d, _) = clock_set_back_as_a_run_starts();
    assert_eq!(d.store.snapshot().last_sync, Some(T0 - HOUR));
    let sync = d.only_open("GET /v1/sync");
    d.respond(&sync, error(503, ErrorCode::Unavailable));
    assert_eq!(d.engine.status().phase, Phase::Backoff);
    assert_eq!(d.engine.status().last_sync_time, Some(T0 - HOUR));
}

/// Likewise the compose time the clock moved: a refusal after the reload stores it moved.
#[test]
fn the_reload_as_a_run_starts_keeps_the_compose_time_the_clock_moved() {
    let (mut d, id) = clock_set_back_as_a_run_starts();
    assert_eq!(d.store.snapshot().outbox[0].composed_at, T0 - HOUR);
    let post = d.only_open("POST /v1/conversations/c-1/messages");
    assert_eq!(client_id(&post), id);
    d.respond(&post, error(404, ErrorCode::ConversationNotFound));
    assert_eq!(d.store.snapshot().outbox[0].composed_at, T0 - HOUR);
    assert_eq!(stored_message(&d, &id).composed_at, Some(T0 - HOUR));
}

/// A read marker answered in the input that starts a run is not brought back by the run's
/// reload, nor sent again.
#[test]
fn a_read_marker_answered_as_a_run_starts_is_not_sent_again() {
    let mut config = config();
    config.periodic_sync_ms = 20 * SEC;
    let mut d = Driver::idle(config);
    d.act(|e, now| e.mark_read("c-1".into(), "m-7".into(), T0 - 7, now))
        .unwrap();
    let post = d.only_open("POST ");
    d.now = T0 + 20 * SEC;
    d.respond(&post, marker_kept("c-1", "m-7", T0 + SEC));
    assert!(d.seen.iter().any(|seen| matches!(seen, Seen::Reloaded)));
    assert!(d.store.snapshot().pending_read_markers.is_empty());
    assert_eq!(d.engine.unsent_read_marker(&"c-1".into()), None);
    assert_eq!(d.issued("POST ").len(), 1);
}

/// A send refused while a feed page that shows it delivered (its first answer lost) is being
/// stored stays delivered: the refusal of the retry does not fail it after the page.
#[test]
fn a_refusal_while_the_feed_shows_the_message_delivered_does_not_fail_it() {
    let mut d = Driver::idle(config());
    let id = d.send("c-1", "hi");
    let first = d.only_open("POST /v1/conversations/c-1/messages");
    d.respond(&first, HttpOutcome::Timeout);
    d.wake_up();
    let second = d.only_open("POST /v1/conversations/c-1/messages");
    d.force();
    let sync = d.only_open("GET /v1/sync");
    d.hold_batches = true;
    d.respond(
        &sync,
        feed(
            vec![message_change(ours(&id, "c-1", "hi", T0))],
            "k1",
            false,
        ),
    );
    d.respond(&second, error(404, ErrorCode::ConversationNotFound));
    d.clear();
    d.ack(); // the page: delivered
    if d.held.is_some() {
        d.ack();
    }
    assert!(d.store.snapshot().outbox.is_empty());
    assert_eq!(d.count(|e| matches!(e, Event::MessageFailed { .. })), 0);
    assert_eq!(stored_message(&d, &id).status, MessageStatus::Sent);
}

/// A tab that led beside this one for a while (taken over while suspended, it went on until it
/// heard of it) may replace the store's unsent markers with its own: the leading tab takes them
/// in when it reloads the store and stores the list again with its own, and writes nothing when
/// the store's list is its own.
#[test]
fn a_leading_tab_reloading_the_store_adopts_markers_left_there_and_stores_its_own_again() {
    let mut d = Driver::idle(config());
    d.act(|e, now| e.mark_read("c-1".into(), "m-7".into(), T0 - 7, now))
        .unwrap();
    d.clear();
    let own = pollster::block_on(d.store.load())
        .unwrap()
        .pending_read_markers;
    d.act(|e, now| e.handle_pending_read_markers(own.clone(), now));
    assert!(d.applied().is_empty(), "the store's list is its own");

    // The other tab stored its list over this one's.
    let left = PendingReadMarker {
        conversation_id: "c-2".into(),
        message_id: "m-3".into(),
        server_ts: T0 - 30,
    };
    d.act(|e, now| e.handle_pending_read_markers(vec![left.clone()], now));
    assert_eq!(
        d.engine.unsent_read_marker(&"c-2".into()),
        Some((&left.message_id, left.server_ts))
    );
    let mut stored = pollster::block_on(d.store.load())
        .unwrap()
        .pending_read_markers;
    stored.sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
    assert_eq!(stored, vec![own[0].clone(), left], "both, stored again");
}

#[test]
fn a_refused_read_marker_is_dropped_not_retried() {
    let mut d = Driver::idle(config());
    d.act(|e, now| e.mark_read("c-1".into(), "m-unknown".into(), T0, now))
        .unwrap();
    let post = d.only_open("POST ");
    d.respond(&post, error(404, ErrorCode::NotFound));
    assert_eq!(d.engine.unsent_read_marker(&"c-1".into()), None);
    d.wait(HOUR);
    assert_eq!(d.issued("POST ").len(), 1);
    assert!(d.store.snapshot().read_markers.is_empty());
}

#[test]
fn a_failed_write_of_the_markers_to_send_is_made_good_by_the_next_batch() {
    let stored = |store: &MemoryStore| {
        pollster::block_on(store.load())
            .unwrap()
            .pending_read_markers
    };
    let mut d = Driver::idle(config());
    d.go_online(false);
    d.act(|e, now| e.mark_read("c-1".into(), "m-7".into(), T0 - 7, now))
        .unwrap();
    assert_eq!(stored(&d.store).len(), 1, "stored while it waits");
    d.go_online(true);
    let post = d.only_open("POST ");
    // Sent, but the write of the server's answer (and of the now empty list) fails.
    d.store
        .fail_next_apply(StoreError::Unavailable("closed by a version change".into()));
    d.respond(&post, marker_kept("c-1", "m-7", T0 + 5));
    assert_eq!(d.engine.unsent_read_marker(&"c-1".into()), None);
    assert_eq!(stored(&d.store).len(), 1, "the failed write left the list");

    // The next write (a sync's page) carries the list again: a reload does not send it twice.
    let ticket = d.force();
    let sync = d.only_open("GET /v1/sync");
    d.respond(&sync, feed(vec![], "k1", false));
    assert!(d
        .events()
        .contains(&finished(ticket, Ok(SyncSummary::default()))));
    assert_eq!(stored(&d.store), vec![]);
    let reopened = Driver::with_store(config(), d.store.clone());
    assert_eq!(reopened.engine.unsent_read_marker(&"c-1".into()), None);
}

#[test]
fn unauthorized_pauses_all_requests_until_the_credentials_change() {
    let mut d = Driver::new(config());
    d.start();
    let sync = d.only_open("GET /v1/sync");
    let id = d.send("c-1", "hi");
    let post = d.only_open("POST ");
    let force = d.force();

    d.clear();
    d.respond(&sync, error(401, ErrorCode::Unauthorized));
    assert_eq!(
        d.events(),
        vec![Event::AuthRequired, finished(force, Err(SyncError::Auth))]
    );
    assert_eq!(d.engine.status().phase, Phase::AuthRequired);
    d.respond(&post, error(401, ErrorCode::Unauthorized));
    assert_eq!(d.count(|e| matches!(e, Event::AuthRequired)), 1);

    let issued = d.requests.len();
    d.wait(HOUR);
    let refused = d.force();
    assert_eq!(
        d.events().last(),
        Some(&finished(refused, Err(SyncError::Auth)))
    );
    assert_eq!(
        d.requests.len(),
        issued,
        "no request while auth is required"
    );
    assert_eq!(d.store.snapshot().outbox.len(), 1);

    d.act(|e, now| e.handle_credentials_changed(now));
    assert_ne!(d.engine.status().phase, Phase::AuthRequired);
    assert_eq!(client_id(&d.only_open("POST ")), id);
    assert_eq!(d.only_open("GET /v1/sync").path, "/v1/sync?limit=100");
}

#[test]
fn unauthorized_send_requires_auth_and_keeps_the_message_pending() {
    let mut d = Driver::idle(config());
    let id = d.send("c-1", "hi");
    let post = d.only_open("POST ");
    d.clear();
    d.respond(&post, error(401, ErrorCode::Unauthorized));
    assert_eq!(d.events(), vec![Event::AuthRequired]);
    assert_eq!(d.engine.status().phase, Phase::AuthRequired);
    assert_eq!(d.store.snapshot().outbox[0].failure, None);
    assert_eq!(stored_message(&d, &id).status, MessageStatus::Pending);
    d.wait(HOUR);
    assert_eq!(d.requests.len(), 2, "the start sync and the one send");

    d.act(|e, now| e.handle_credentials_changed(now));
    let again = d.only_open("POST ");
    assert_eq!(client_id(&again), id);
    d.respond(&again, created(ours(&id, "c-1", "hi", T0 + 1)));
    assert!(d.store.snapshot().outbox.is_empty());
}

// ----- pulling -----

/// What a feed page that brings `message` unedited says of its conversation's history: the cache
/// holds everything from there up.
fn history_from(message: &Message) -> StoreOp {
    StoreOp::ExtendHistory {
        conversation: message.conversation_id.clone(),
        from: HistoryFloor::Unknown,
        to: HistoryFloor::From {
            sort_ts: message.server_ts,
            id: message.id.clone(),
        },
    }
}

/// A sync from the beginning of the feed brings every message of every conversation, edited old
/// ones last: when it ends, each conversation's history is complete, and the app shows it all
/// without back-filling. Where eviction took messages during the run, the floor stays above them.
#[test]
fn a_sync_from_the_beginning_leaves_each_history_complete_unless_eviction_took_part_of_it() {
    let mut d = Driver::new(config());
    d.start();
    let page1 = d.only_open("GET /v1/sync");
    assert_eq!(page1.path, "/v1/sync?limit=100");
    let m1 = message("m-1", "c-1", "u-bob", "one", T0 - 50);
    let n1 = message("n-1", "c-2", "u-bob", "first", T0 - 40);
    let n2 = message("n-2", "c-2", "u-bob", "second", T0 - 30);
    let changes = vec![
        conversation_change("c-1", T0 - 100),
        message_change(m1.clone()),
        conversation_change("c-2", T0 - 100),
        message_change(n1),
        message_change(n2.clone()),
    ];
    d.respond(&page1, feed(changes, "k1", true));
    // Maintenance keeps one message per conversation, in the middle of the run.
    pollster::block_on(d.store.apply(&[StoreOp::EvictHistory { keep: 1 }])).unwrap();

    // An old message of c-1, edited since, comes last in the feed.
    let old = Message {
        body: "zero, edited".into(),
        edited: true,
        updated_ts: T0 - 10,
        ..message("m-0", "c-1", "u-bob", "zero", T0 - 80)
    };
    let page2 = d.only_open("GET /v1/sync");
    d.respond(&page2, feed(vec![message_change(old.clone())], "k2", false));

    let floor = |id: &str| pollster::block_on(d.store.history_floor(&id.into())).unwrap();
    assert_eq!(floor("c-1"), HistoryFloor::Complete);
    let shown = pollster::block_on(d.store.messages(&"c-1".into(), None, 10)).unwrap();
    let shown: Vec<_> = shown.into_iter().map(|m| m.body).collect();
    assert_eq!(shown, ["zero, edited", "one"]);
    assert_eq!(
        floor("c-2"),
        HistoryFloor::at(&LocalMessage::from_server(n2)).expect("server"),
        "eviction took n-1: c-2 is whole from n-2 only"
    );
}

/// An eviction of the engine's own in the middle of such a run may take what the run wrote below
/// the floor it saw first in a conversation (an old message, edited since, that came late in the
/// feed, while the floor stays): the run then marks no history whole.
#[test]
fn a_sync_from_the_beginning_marks_no_history_whole_after_an_eviction_in_its_middle() {
    let mut d = Driver::new(config());
    d.start();
    let page1 = d.only_open("GET /v1/sync");
    let m5 = message("m-5", "c-1", "u-bob", "five", T0 - 50);
    let changes = vec![
        conversation_change("c-1", T0 - 100),
        message_change(m5.clone()),
    ];
    d.respond(&page1, feed(changes, "k1", true));
    let old = Message {
        body: "three, edited".into(),
        edited: true,
        updated_ts: T0 - 10,
        ..message("m-3", "c-1", "u-bob", "three", T0 - 80)
    };
    let page2 = d.only_open("GET /v1/sync");
    d.respond(&page2, feed(vec![message_change(old)], "k2", true));
    d.act(|e, now| e.run_maintenance(now));
    let page3 = d.only_open("GET /v1/sync");
    d.respond(&page3, feed(vec![], "k3", false));

    assert_eq!(d.store.snapshot().cursor, Some(Cursor::new("k3")));
    let floor = pollster::block_on(d.store.history_floor(&"c-1".into())).unwrap();
    let m5 = LocalMessage::from_server(m5);
    assert_eq!(floor, HistoryFloor::at(&m5).expect("server"));
    let claims = d.applied().into_iter().flat_map(|batch| batch.ops).filter(
        |op| matches!(op, StoreOp::ExtendHistory { to, .. } if *to == HistoryFloor::Complete),
    );
    assert_eq!(claims.count(), 0);
}

/// Likewise when the run's last page is fetched while an earlier write is in flight, and an
/// eviction is asked for before it is written: the claim is made when the page is written.
#[test]
fn a_last_page_held_behind_a_write_marks_no_history_whole_after_an_eviction_asked_meanwhile() {
    let mut d = Driver::new(Config {
        retention_per_conversation: Some(2),
        ..config()
    });
    d.start();
    d.hold_batches = true;
    let page1 = d.only_open("GET /v1/sync");
    let f = message("m-10", "c-1", "u-bob", "F", T0 + 10);
    let g = message("m-11", "c-1", "u-bob", "G", T0 + 11);
    let old = Message {
        body: "O, edited".into(),
        edited: true,
        updated_ts: T0 + 12,
        ..message("m-5", "c-1", "u-bob", "O", T0 + 5)
    };
    let changes = vec![
        conversation_change("c-1", T0),
        message_change(f.clone()),
        message_change(g),
        message_change(old),
    ];
    d.respond(&page1, feed(changes, "k1", true));
    assert!(d.held.is_some(), "the first page's write is in flight");
    let page2 = d.only_open("GET /v1/sync");
    let h = message("m-13", "c-1", "u-bob", "H", T0 + 13);
    d.respond(&page2, feed(vec![message_change(h)], "k2", false));
    d.act(|e, now| e.run_maintenance(now));
    while d.held.is_some() {
        d.ack();
    }

    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.cursor, Some(Cursor::new("k2")));
    let ids: Vec<_> = snapshot.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(
        ids,
        ["m-10", "m-11", "m-13"].map(|id| Some(MessageId::new(id))),
        "the eviction took m-5"
    );
    let floor = pollster::block_on(d.store.history_floor(&"c-1".into())).unwrap();
    let f = LocalMessage::from_server(f);
    assert_eq!(floor, HistoryFloor::at(&f).expect("server"));
    let claims = d.applied().into_iter().flat_map(|batch| batch.ops).filter(
        |op| matches!(op, StoreOp::ExtendHistory { to, .. } if *to == HistoryFloor::Complete),
    );
    assert_eq!(claims.count(), 0);
}

/// Likewise when the run's last write fails for want of space: it is written again after the
/// eviction, without the claim.
#[test]
fn a_last_write_retried_after_a_quota_eviction_marks_no_history_whole() {
    let mut d = Driver::new(config());
    d.start();
    let page1 = d.only_open("GET /v1/sync");
    let m5 = message("m-5", "c-1", "u-bob", "five", T0 - 50);
    d.respond(&page1, feed(vec![message_change(m5.clone())], "k1", true));
    let page2 = d.only_open("GET /v1/sync");
    d.store.fail_next_apply(StoreError::QuotaExceeded);
    d.respond(&page2, feed(vec![], "k2", false));

    assert_eq!(d.store.snapshot().cursor, Some(Cursor::new("k2")));
    let floor = pollster::block_on(d.store.history_floor(&"c-1".into())).unwrap();
    let m5 = LocalMessage::from_server(m5);
    assert_eq!(floor, HistoryFloor::at(&m5).expect("server"));
    let batches = d.applied();
    assert!(batches.iter().any(|batch| batch
        .ops
        .iter()
        .any(|op| matches!(op, StoreOp::EvictHistory { .. }))));
    let claims = batches.into_iter().flat_map(|batch| batch.ops).filter(
        |op| matches!(op, StoreOp::ExtendHistory { to, .. } if *to == HistoryFloor::Complete),
    );
    assert_eq!(
        claims.count(),
        0,
        "the write retried after the eviction claims nothing"
    );
}

#[test]
fn feed_pages_commit_changes_and_cursor_in_one_batch_until_has_more_is_false() {
    let mut d = Driver::new(config());
    d.hold_batches = true;
    d.start();
    let page1 = d.only_open("GET /v1/sync");
    assert_eq!(page1.path, "/v1/sync?limit=100");
    let force = d.force();
    assert_eq!(d.requests.len(), 1);

    let m1 = message("m-1", "c-1", "u-bob", "one", T0 - 50);
    let conversation = conversation_change("c-1", T0 - 100);
    d.respond(
        &page1,
        feed(
            vec![conversation.clone(), message_change(m1.clone())],
            "k1",
            true,
        ),
    );
    let Change::Conversation { conversation } = conversation else {
        unreachable!()
    };
    assert_eq!(
        d.held.as_ref().expect("page 1").ops,
        vec![
            StoreOp::PutConversation(conversation),
            StoreOp::PutMessage(LocalMessage::from_server(m1.clone())),
            // Everything created after an unedited message comes later in the feed.
            history_from(&m1),
            StoreOp::SetCursor(Some(Cursor::new("k1"))),
        ]
    );
    // Until the page is stored the cursor does not move. The next page is fetched meanwhile,
    // from the cursor being written, and asks for more: only a backlog has it.
    assert_eq!(d.store.snapshot().cursor, None);
    let page2 = d.only_open("GET /v1/sync");
    assert_eq!(page2.path, "/v1/sync?cursor=k1&limit=500");

    d.ack();
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.cursor, Some(Cursor::new("k1")));
    assert_eq!(
        (snapshot.conversations.len(), snapshot.messages.len()),
        (1, 1)
    );
    assert_eq!(snapshot.last_sync, None);
    assert_eq!(d.open("GET ").len(), 1, "still only page 2 in flight");

    d.wait(2 * SEC);
    let m2 = message("m-2", "c-1", "u-bob", "two", T0 + 1);
    d.respond(&page2, feed(vec![message_change(m2.clone())], "k2", false));
    let finished_at = d.now;
    assert_eq!(
        d.held.as_ref().expect("page 2").ops,
        vec![
            StoreOp::PutMessage(LocalMessage::from_server(m2.clone())),
            history_from(&m2),
            // A feed read from its beginning brought every message.
            StoreOp::ExtendHistory {
                conversation: "c-1".into(),
                from: HistoryFloor::at(&LocalMessage::from_server(m1)).expect("server"),
                to: HistoryFloor::Complete,
            },
            StoreOp::SetCursor(Some(Cursor::new("k2"))),
            StoreOp::SetLastSync(finished_at),
        ]
    );
    assert_eq!(d.count(|e| matches!(e, Event::CommandFinished { .. })), 0);

    d.ack();
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.cursor, Some(Cursor::new("k2")));
    assert_eq!(snapshot.last_sync, Some(finished_at));
    let results: Vec<_> = d
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::CommandFinished { ticket, result } if ticket == force => Some(result),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            results[..],
            [Ok(SyncSummary {
                has_more: false,
                ..
            })]
        ),
        "{results:?}"
    );
    let status = d.engine.status();
    assert_eq!(status.phase, Phase::Idle);
    assert_eq!(status.last_sync_time, Some(finished_at));
    assert_eq!(d.wake, Some(finished_at + 5 * MIN));
    assert_eq!(status.next_sync_at, Some(finished_at + 5 * MIN));

    d.wake_up();
    assert_eq!(
        d.only_open("GET /v1/sync").path,
        "/v1/sync?cursor=k2&limit=100"
    );
    assert_eq!(d.engine.status().last_trigger, Some(Trigger::Periodic));
}

/// Bob's message number `n` in `c-1`, as a feed change (one per page in the held-pages tests).
fn page(n: usize) -> Change {
    let id = format!("m-{n}");
    message_change(message(&id, "c-1", "u-bob", "hi", T0 + n as Millis))
}

/// A link too slow to bring a page within the timeout: each feed request of the run that times
/// out halves the pages asked for (to a sixteenth); the next run asks for full pages again.
#[test]
fn feed_requests_that_time_out_ask_for_smaller_pages() {
    let mut d = Driver::new(config());
    d.start();
    let first = d.only_open("GET /v1/sync");
    d.respond(&first, feed(vec![page(1)], "k1", true));
    let latest = |d: &Driver| d.issued("GET /v1/sync").pop().expect("a feed request");
    let mut limits = Vec::new();
    for _ in 0..6 {
        let asked = d.issued("GET /v1/sync").len();
        limits.push(latest(&d).path.rsplit('=').next().unwrap().to_owned());
        d.advance_to(d.now + 30 * SEC);
        while d.issued("GET /v1/sync").len() == asked {
            d.wake_up();
        }
    }
    assert_eq!(limits, ["500", "250", "125", "62", "31", "31"]);
    d.respond(&latest(&d), feed(vec![page(2)], "k2", false));
    assert_eq!(d.engine.status().phase, Phase::Idle);

    d.force();
    assert_eq!(latest(&d).path, "/v1/sync?cursor=k2&limit=100");
}

#[test]
fn pages_fetched_while_a_write_is_in_flight_wait_for_it_and_the_last_one_ends_the_feed() {
    let mut d = Driver::new(config());
    d.hold_batches = true;
    d.start();
    let first = d.only_open("GET /v1/sync");
    d.respond(&first, feed(vec![page(1)], "k1", true));
    assert!(d.held.is_some(), "page 1 is being written");

    // Pages 2 and 3 come while page 1 is written: held, no second write; page 3 ends the feed,
    // so nothing more is asked for.
    let second = d.only_open("GET /v1/sync");
    d.respond(&second, feed(vec![page(2)], "k2", true));
    let third = d.only_open("GET /v1/sync");
    assert_eq!(third.path, "/v1/sync?cursor=k2&limit=500");
    d.respond(&third, feed(vec![page(3)], "k3", false));
    assert!(d.open("GET ").is_empty(), "the feed ended: no request");
    assert_eq!(d.engine.status().phase, Phase::Syncing);

    // Page 1 stored: pages 2 and 3 go in one write, with the last cursor; then the run ends.
    d.ack();
    assert_eq!(d.store.snapshot().cursor, Some(Cursor::new("k1")));
    let rest = d.ack();
    let puts = rest
        .ops
        .iter()
        .filter(|op| matches!(op, StoreOp::PutMessage(_)));
    assert_eq!(puts.count(), 2);
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.cursor, Some(Cursor::new("k3")));
    assert_eq!(snapshot.messages.len(), 3);
    assert!(snapshot.last_sync.is_some());
    assert!(d.held.is_none() && d.open("GET ").is_empty());
    assert_eq!(d.engine.status().phase, Phase::Idle);
}

#[test]
fn a_failed_write_drops_the_pages_fetched_after_it_and_the_feed_goes_on_from_the_stored_cursor() {
    let mut d = Driver::new(config());
    d.hold_batches = true;
    d.start();
    let first = d.only_open("GET /v1/sync");
    d.respond(&first, feed(vec![page(1)], "k1", true));
    d.ack();
    let second = d.only_open("GET /v1/sync");
    d.respond(&second, feed(vec![page(2)], "k2", true));
    let third = d.only_open("GET /v1/sync");
    d.respond(&third, feed(vec![page(3)], "k3", true));
    let fourth = d.only_open("GET /v1/sync");
    d.respond(&fourth, feed(vec![page(4)], "k4", false));
    // Pages 2-4 (page 4 ends the feed) are written together, and the write fails.
    d.store
        .fail_next_apply(StoreError::Unavailable("closed by a version change".into()));
    d.ack();
    assert_eq!(d.store.snapshot().cursor, Some(Cursor::new("k1")));
    assert_eq!(d.store.snapshot().messages.len(), 1);

    // After the backoff the feed goes on from the stored cursor, and brings pages 2-4 again.
    d.wake_up();
    let again = d.only_open("GET /v1/sync");
    assert_eq!(again.path, "/v1/sync?cursor=k1&limit=500");
    d.respond(&again, feed(vec![page(2), page(3), page(4)], "k4", false));
    d.ack();
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.cursor, Some(Cursor::new("k4")));
    assert_eq!(snapshot.messages.len(), 4);
    assert_eq!(d.engine.status().phase, Phase::Idle);
}

#[test]
fn the_answer_to_a_request_that_went_on_from_a_failed_write_is_dropped() {
    let mut d = Driver::new(config());
    d.hold_batches = true;
    d.start();
    let first = d.only_open("GET /v1/sync");
    d.respond(&first, feed(vec![page(1)], "k1", true));
    // Page 1 is being written; page 2 is asked for from its cursor, k1.
    let second = d.only_open("GET /v1/sync");
    assert_eq!(second.path, "/v1/sync?cursor=k1&limit=500");
    d.store
        .fail_next_apply(StoreError::Unavailable("closed by a version change".into()));
    d.ack();
    assert_eq!(d.store.snapshot().cursor, None);

    // Page 2 follows page 1, which is not stored: storing it (and k2) would skip page 1.
    d.respond(&second, feed(vec![page(2)], "k2", true));
    assert!(d.held.is_none(), "nothing written");
    assert!(d.open("GET ").is_empty(), "no request before the backoff");
    d.wake_up();
    let again = d.only_open("GET /v1/sync");
    assert_eq!(
        again.path, "/v1/sync?limit=100",
        "from the start: nothing is stored"
    );
    d.respond(&again, feed(vec![page(1), page(2)], "k2", false));
    d.ack();
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.cursor, Some(Cursor::new("k2")));
    assert_eq!(snapshot.messages.len(), 2);
}

#[test]
fn a_sync_stores_its_first_page_alone_then_holds_pages_and_stores_them_together() {
    let mut d = Driver::new(config());
    d.start();
    // The messages each `Changed` event since the last clear counts.
    let changed =
        |d: &Driver| -> Vec<usize> { d.changes().iter().map(|set| set.messages).collect() };
    let first = d.only_open("GET /v1/sync");
    d.respond(&first, feed(vec![page(1)], "k1", true));
    assert_eq!(
        d.store.snapshot().cursor,
        Some(Cursor::new("k1")),
        "page 1 stored at once"
    );
    assert_eq!(changed(&d), [1]);

    // Pages 2 and 3 are held: nothing is written, and the feed goes on from the held cursor.
    d.clear();
    let second = d.only_open("GET /v1/sync");
    d.respond(&second, feed(vec![page(2)], "k2", true));
    let third = d.only_open("GET /v1/sync");
    assert_eq!(third.path, "/v1/sync?cursor=k2&limit=500");
    assert!(d.applied().is_empty());

    // A failed pull stores what was held, with its cursor: the retry goes on from there.
    d.respond(&third, error(503, ErrorCode::Unavailable));
    assert_eq!(d.store.snapshot().cursor, Some(Cursor::new("k2")));
    assert_eq!(d.applied().len(), 1);
    d.wake_up();
    let retry = d.only_open("GET /v1/sync");
    assert_eq!(retry.path, "/v1/sync?cursor=k2&limit=500");
    d.clear();
    d.respond(&retry, feed(vec![page(3)], "k3", true));
    let fourth = d.only_open("GET /v1/sync");
    d.respond(&fourth, feed(vec![page(4)], "k4", false));

    // The last page stores everything held with it, in one batch, and the run ends.
    let batches = d.applied();
    assert_eq!(batches.len(), 1, "{batches:?}");
    let puts = batches[0]
        .ops
        .iter()
        .filter(|op| matches!(op, StoreOp::PutMessage(_)));
    assert_eq!(puts.count(), 2);
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.cursor, Some(Cursor::new("k4")));
    assert_eq!(snapshot.messages.len(), 4);
    assert!(snapshot.last_sync.is_some());
    assert_eq!(changed(&d), [2], "one change event for the held pages");
    assert_eq!(d.engine.status().phase, Phase::Idle);

    // An incremental sync (from the stored cursor) of one page stores it at once.
    d.clear();
    d.force();
    let next = d.only_open("GET /v1/sync");
    assert_eq!(next.path, "/v1/sync?cursor=k4&limit=100");
    d.respond(&next, feed(vec![page(5)], "k5", false));
    assert_eq!(d.applied().len(), 1);
    assert_eq!(d.store.snapshot().cursor, Some(Cursor::new("k5")));

    // One with a backlog (a device back after days offline) is written like a full sync: its
    // first page alone, then the held pages together.
    d.clear();
    d.force();
    d.respond(
        &d.only_open("GET /v1/sync"),
        feed(vec![page(6)], "k6", true),
    );
    assert_eq!(d.applied().len(), 1, "the first page at once");
    d.respond(
        &d.only_open("GET /v1/sync"),
        feed(vec![page(7)], "k7", true),
    );
    assert_eq!(d.applied().len(), 1, "page 7 is held");
    d.respond(
        &d.only_open("GET /v1/sync"),
        feed(vec![page(8)], "k8", false),
    );
    let batches = d.applied();
    assert_eq!(batches.len(), 2, "pages 7 and 8 in one batch: {batches:?}");
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.cursor, Some(Cursor::new("k8")));
    assert_eq!(snapshot.messages.len(), 8);
    assert_eq!(d.engine.status().phase, Phase::Idle);
}

#[test]
fn stopping_during_a_sync_stores_the_pages_held_in_memory() {
    let mut d = Driver::new(config());
    d.start();
    let first = d.only_open("GET /v1/sync");
    d.respond(&first, feed(vec![page(1)], "k1", true));
    let second = d.only_open("GET /v1/sync");
    d.respond(&second, feed(vec![page(2)], "k2", true));
    let third = d.only_open("GET /v1/sync");
    d.clear();
    assert!(d.applied().is_empty(), "page 2 is held");

    d.act(|e, now| e.stop(now));
    // The answer to the pull in flight comes after the stop: it is ignored.
    d.respond(&third, feed(vec![page(3)], "k3", true));
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.cursor, Some(Cursor::new("k2")));
    assert_eq!(snapshot.messages.len(), 2);
    assert_eq!(d.engine.status().phase, Phase::Stopped);

    // Started again, the feed goes on after the stored pages.
    d.start();
    assert_eq!(
        d.only_open("GET /v1/sync").path,
        "/v1/sync?cursor=k2&limit=100"
    );
}

/// A started engine whose sync run, page 1 being written (the write held), held page 2 behind it
/// and was then refused for good (400) on its next pull.
fn refused_for_good_behind_a_write() -> Driver {
    let mut d = Driver::new(config());
    d.start();
    d.hold_batches = true;
    let first = d.only_open("GET /v1/sync");
    d.respond(&first, feed(vec![page(1)], "k1", true));
    assert!(d.held.is_some(), "page 1 is being written");
    let second = d.only_open("GET /v1/sync");
    d.respond(&second, feed(vec![page(2)], "k2", true));
    let third = d.only_open("GET /v1/sync");
    assert_eq!(third.path, "/v1/sync?cursor=k2&limit=500");
    d.respond(&third, error(400, ErrorCode::InvalidQuery));
    d
}

/// A pull refused for good while a page is being written: the pages held behind that write are
/// stored after it, with their cursor, not fetched again.
#[test]
fn a_permanent_pull_failure_during_a_write_stores_the_pages_held_behind_it() {
    let mut d = refused_for_good_behind_a_write();

    d.ack();
    d.ack();
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.cursor, Some(Cursor::new("k2")));
    assert_eq!(snapshot.messages.len(), 2);
    assert!(d.held.is_none());

    // The next sync goes on after them.
    d.hold_batches = false;
    d.force();
    assert_eq!(
        d.only_open("GET /v1/sync").path,
        "/v1/sync?cursor=k2&limit=100"
    );
}

/// Unless that write fails: the pages held behind it are dropped with it (their cursor would
/// skip its pages), and fetched again.
#[test]
fn pages_held_behind_a_write_that_fails_after_a_permanent_failure_are_dropped() {
    let mut d = refused_for_good_behind_a_write();

    d.store
        .fail_next_apply(StoreError::Unavailable("closed by a version change".into()));
    d.ack();
    assert!(d.held.is_none(), "nothing written after the failed write");
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.cursor, None);
    assert!(snapshot.messages.is_empty());

    // The next sync fetches them again, from the stored cursor.
    d.hold_batches = false;
    d.force();
    d.wake_up();
    let next = d.only_open("GET /v1/sync");
    assert_eq!(next.path, "/v1/sync?limit=100");
}

/// A sync started while those pages wait for the write goes on after them, and its own pages
/// are written after theirs.
#[test]
fn a_sync_after_a_permanent_failure_goes_on_after_the_pages_held_behind_a_write() {
    let mut d = refused_for_good_behind_a_write();

    let ticket = d.force();
    let next = d.only_open("GET /v1/sync");
    assert_eq!(next.path, "/v1/sync?cursor=k2&limit=500");
    d.respond(&next, feed(vec![page(3)], "k3", false));
    d.clear();
    let cursors: Vec<Option<Cursor>> = (0..3)
        .map(|_| {
            let batch = d.ack();
            batch.ops.iter().rev().find_map(|op| match op {
                StoreOp::SetCursor(cursor) => cursor.clone(),
                _ => None,
            })
        })
        .collect();
    let k = |name: &str| Some(Cursor::new(name));
    assert_eq!(cursors, vec![k("k1"), k("k2"), k("k3")]);
    assert_eq!(d.store.snapshot().messages.len(), 3);
    let summary = SyncSummary {
        changes: 1,
        has_more: false,
    };
    assert_eq!(d.events(), vec![finished(ticket, Ok(summary))]);
}

/// And when that next sync fails for good too, still behind the same write: both runs' held
/// pages are stored after it, in order (the second run's replaced the first's, and the cursor
/// moved past changes never stored).
#[test]
fn two_runs_failing_for_good_behind_one_write_store_both_runs_held_pages() {
    let mut d = refused_for_good_behind_a_write();

    d.force();
    let next = d.only_open("GET /v1/sync");
    assert_eq!(next.path, "/v1/sync?cursor=k2&limit=500");
    d.respond(&next, feed(vec![page(3)], "k3", true));
    let last = d.only_open("GET /v1/sync");
    assert_eq!(last.path, "/v1/sync?cursor=k3&limit=500");
    d.respond(&last, error(400, ErrorCode::InvalidQuery));

    while d.held.is_some() {
        d.ack();
    }
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.cursor, Some(Cursor::new("k3")));
    assert_eq!(snapshot.messages.len(), 3, "pages 1, 2 and 3 all stored");
}

#[test]
fn forced_syncs_during_a_run_join_it_and_finish_with_it() {
    let mut d = Driver::new(config());
    d.start();
    let first = d.force();
    let second = d.force();
    let page = d.only_open("GET /v1/sync");
    assert_eq!(d.requests.len(), 1);

    d.clear();
    d.respond(&page, feed(vec![], "k1", false));
    let done = |ticket| {
        d.events().iter().any(
            |e| matches!(e, Event::CommandFinished { ticket: t, result: Ok(_) } if *t == ticket),
        )
    };
    assert!(done(first) && done(second), "{:?}", d.events());
    assert_eq!(d.requests.len(), 1);
}

#[test]
fn conversation_sync_goes_before_the_global_feed_when_one_slot_is_free() {
    let mut config = config();
    config.max_concurrent_requests = 1;
    let mut d = Driver::new(config);
    d.start();
    let page1 = d.only_open("GET /v1/sync");
    let ticket = d.act(|e, now| e.sync_conversation("c-1".into(), now));
    assert_eq!(d.requests.len(), 1, "the only slot is taken");

    // Now the feed's next page and the conversation both wait for the one slot.
    d.respond(&page1, feed(vec![], "k1", true));
    assert_eq!(d.open("GET ").len(), 1);
    let conversation = d.only_open("GET /v1/conversations/c-1/sync");
    // The slot freed when page 1 arrived, before it was stored: no cursor is known yet.
    assert_eq!(conversation.path, "/v1/conversations/c-1/sync?limit=100");

    d.clear();
    let m = message("m-1", "c-1", "u-bob", "hi", T0);
    d.respond(&conversation, feed(vec![message_change(m)], "k1b", false));
    assert_eq!(
        d.events(),
        vec![finished(
            ticket,
            Ok(SyncSummary {
                changes: 1,
                has_more: false
            })
        )]
    );
    assert_eq!(
        d.only_open("GET /v1/sync").path,
        "/v1/sync?cursor=k1&limit=500"
    );
}

/// The server refused the cursor (its database was replaced): what the cache holds of the old
/// database goes with the cursor, in one batch, and the sync starts from the beginning.
#[test]
fn invalid_cursor_forgets_the_cursor_and_the_servers_data_and_restarts_the_sync_without_one() {
    let store = MemoryStore::new();
    let Change::Conversation { conversation } = conversation_change("c-1", T0 - 10) else {
        unreachable!()
    };
    let old = message("m-1", "c-1", "u-bob", "from the old database", T0 - 5);
    pollster::block_on(store.apply(&[
        StoreOp::SetLastMaintenance(T0),
        StoreOp::PutConversation(conversation),
        StoreOp::PutMessage(LocalMessage::from_server(old)),
        StoreOp::SetCursor(Some(Cursor::new("stale"))),
    ]))
    .unwrap();
    let mut d = Driver::with_store(config(), store);
    d.start();
    let force = d.force();
    let first = d.only_open("GET /v1/sync");
    assert_eq!(first.path, "/v1/sync?cursor=stale&limit=100");

    d.clear();
    d.respond(&first, error(400, ErrorCode::InvalidCursor));
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.cursor, None);
    assert!(snapshot.conversations.is_empty() && snapshot.messages.is_empty());
    let ops: Vec<_> = d.applied().into_iter().map(|b| b.ops).collect();
    assert_eq!(
        ops,
        vec![vec![StoreOp::ForgetServerData, StoreOp::SetCursor(None)]]
    );
    assert_eq!(d.only_open("GET /v1/sync").path, "/v1/sync?limit=100");
    assert_eq!(
        d.changes(),
        vec![ChangeSet {
            conversations: vec!["c-1".into()],
            messages: 1,
        }],
        "the app hears what the cache no longer holds"
    );
    assert_eq!(d.events(), vec![], "the run goes on; the ticket stays open");

    let restart = d.only_open("GET /v1/sync");
    d.respond(&restart, feed(vec![], "k1", false));
    assert_eq!(d.store.snapshot().cursor, Some(Cursor::new("k1")));
    assert!(matches!(
        d.events()[..],
        [Event::CommandFinished { ticket, result: Ok(_) }] if ticket == force
    ));
}

#[test]
fn pull_failures_back_off_with_growing_bounds_that_stay_under_the_cap() {
    let mut config = config();
    config.backoff = BackoffConfig {
        base_ms: 1_000,
        cap_ms: 8_000,
    };
    let mut d = Driver::new(config);
    d.start();
    let mut delays = Vec::new();
    for attempt in 1..=12u32 {
        let request = d.only_open("GET /v1/sync");
        let failed_at = d.now;
        d.respond(&request, error(500, ErrorCode::Internal));
        while d.open("GET /v1/sync").is_empty() {
            let status = d.engine.status();
            assert_eq!(status.phase, Phase::Backoff);
            assert_eq!(status.next_sync_at, d.wake);
            d.wake_up();
        }
        let delay = d.now - failed_at;
        let bound = (1_000 << (attempt - 1)).min(8_000);
        assert!(
            delay <= bound,
            "attempt {attempt}: waited {delay} ms > {bound} ms"
        );
        delays.push(delay);
    }
    // Later delays go beyond what the first retries' bounds allowed.
    assert!(delays[4..].iter().any(|&delay| delay > 2_000), "{delays:?}");
    assert_eq!(d.engine.stats().syncs_failed, 1);

    let request = d.only_open("GET /v1/sync");
    d.respond(&request, feed(vec![], "k1", false));
    let status = d.engine.status();
    assert_eq!((status.phase, status.last_error), (Phase::Idle, None));
}

/// A started engine whose first pull was answered 503 with `Retry-After: wait_ms`; and when.
fn pull_answered_503(wait_ms: Millis) -> (Driver, Millis) {
    pull_answered_503_with(config(), wait_ms)
}

fn pull_answered_503_with(config: Config, wait_ms: Millis) -> (Driver, Millis) {
    let mut d = Driver::new(config);
    d.start();
    let first = d.only_open("GET /v1/sync");
    let failed_at = d.now;
    d.respond(
        &first,
        with_retry_after(error(503, ErrorCode::Unavailable), wait_ms),
    );
    (d, failed_at)
}

#[test]
fn retry_after_on_a_pull_is_honoured_even_by_a_forced_sync() {
    let (mut d, failed_at) = pull_answered_503(60 * SEC);
    let end = server_wait_end(&d, failed_at, 60 * SEC);
    let status = d.engine.status();
    assert_eq!(
        (status.phase, status.next_sync_at),
        (Phase::Backoff, Some(end))
    );

    // A forced sync (and a conversation's, and a back-fill) would wait 50 s: each fails at once
    // with the error that asked for the wait, and the sync still goes when the wait ends.
    d.advance_to(failed_at + 10 * SEC);
    d.clear();
    let forced = d.force();
    let conversation = d.act(|e, now| e.sync_conversation("c-1".into(), now));
    let older = d.act(|e, now| e.load_older("c-1".into(), HistoryFloor::Unknown, now));
    let unavailable = |ticket| move |e: &Event| matches!(e, Event::CommandFinished { ticket: t, result: Err(SyncError::Server { status: 503, error_code, .. }) } if *t == ticket && error_code == "unavailable");
    for ticket in [forced, conversation, older] {
        assert_eq!(d.count(unavailable(ticket)), 1, "{:?}", d.events());
    }
    let status = d.engine.status();
    assert_eq!(
        (status.phase, status.next_sync_at),
        (Phase::Backoff, Some(end))
    );
    assert_eq!(d.wake, Some(end));
    d.advance_to(end - 1);
    assert_eq!(d.requests.len(), 1);
    d.advance_to(end);
    assert_eq!(d.open("GET /v1/sync").len(), 1);
    assert_eq!(d.requests.len(), 2);
}

/// Clients the server told to wait alike (a 503 to all of them) come back spread over a tenth of
/// the wait, not all in the same millisecond.
#[test]
fn clients_told_to_wait_alike_come_back_spread_out() {
    let mut ends: Vec<Millis> = (0..20)
        .map(|seed| {
            let (d, failed_at) = pull_answered_503_with(Config { seed, ..config() }, 60 * SEC);
            server_wait_end(&d, failed_at, 60 * SEC) - failed_at
        })
        .collect();
    ends.sort_unstable();
    ends.dedup();
    assert!(ends.len() > 15, "{ends:?}");
}

#[test]
fn a_retry_after_of_a_day_is_honoured_for_an_hour() {
    let (mut d, failed_at) = pull_answered_503(24 * 60 * 60 * SEC);
    let end = server_wait_end(&d, failed_at, MAX_RETRY_AFTER_MS);
    assert_eq!(MAX_RETRY_AFTER_MS, 60 * 60 * SEC);
    d.advance_to(end - 1);
    assert_eq!(d.requests.len(), 1);
    d.advance_to(end);
    assert_eq!(d.open("GET /v1/sync").len(), 1, "asked again after an hour");
}

#[test]
fn a_forced_sync_waits_out_a_short_retry_after() {
    let (mut d, failed_at) = pull_answered_503(5 * SEC);
    d.clear();
    let forced = d.force();
    assert_eq!(d.events(), vec![], "waits");
    d.advance_to(server_wait_end(&d, failed_at, 5 * SEC));
    let again = d.only_open("GET /v1/sync");
    d.respond(&again, feed(vec![], "k1", false));
    assert_eq!(
        d.count(
            |e| matches!(e, Event::CommandFinished { ticket, result: Ok(_) } if *ticket == forced)
        ),
        1
    );
}

/// A sync whose pulls failed five times in a row: it waits out a backoff of its own.
fn in_pull_backoff() -> Driver {
    let mut d = Driver::idle(config());
    d.force();
    for _ in 0..5 {
        let pull = d.only_open("GET /v1/sync");
        d.respond(&pull, error(503, ErrorCode::Unavailable));
        d.wake_up();
    }
    let pull = d.only_open("GET /v1/sync");
    d.respond(&pull, error(503, ErrorCode::Unavailable));
    assert_eq!(d.engine.status().phase, Phase::Backoff);
    d
}

/// Like `forceSync`, a conversation sync and a back-fill the app asks for go at once, not after
/// the engine's own backoff (the user is waiting for them).
#[test]
fn a_conversation_sync_and_a_back_fill_skip_the_engines_own_backoff() {
    let mut d = in_pull_backoff();
    d.act(|e, now| e.sync_conversation("c-1".into(), now));
    assert_eq!(d.open("GET /v1/conversations/c-1/sync").len(), 1);

    let mut d = in_pull_backoff();
    d.act(|e, now| e.load_older("c-1".into(), HistoryFloor::Unknown, now));
    assert_eq!(d.open("GET /v1/conversations/c-1/messages").len(), 1);
}

/// But they wait out a short `Retry-After` of the server's.
#[test]
fn a_back_fill_waits_out_a_short_retry_after() {
    let (mut d, failed_at) = pull_answered_503(5 * SEC);
    d.act(|e, now| e.load_older("c-1".into(), HistoryFloor::Unknown, now));
    assert!(d.open("GET /v1/conversations/").is_empty());
    d.advance_to(server_wait_end(&d, failed_at, 5 * SEC));
    assert_eq!(d.open("GET /v1/conversations/c-1/messages").len(), 1);
}

#[test]
fn feed_page_with_our_unacknowledged_message_settles_it_exactly_once() {
    let mut d = Driver::idle(config());
    let id = d.send("c-1", "hi");
    let post = d.only_open("POST ");
    d.force();
    let page = d.only_open("GET /v1/sync");
    assert_eq!(page.path, "/v1/sync?cursor=k0&limit=100");

    d.clear();
    let server = ours(&id, "c-1", "hi", T0 + 5);
    d.respond(
        &page,
        feed(vec![message_change(server.clone())], "k1", false),
    );
    let batch = d.applied().remove(0);
    assert!(batch.ops.contains(&StoreOp::RemoveOutbox(id.clone())));
    assert!(batch
        .ops
        .contains(&StoreOp::PutMessage(LocalMessage::from_server(
            server.clone()
        ))));
    assert!(batch
        .ops
        .contains(&StoreOp::SetCursor(Some(Cursor::new("k1")))));
    let snapshot = d.store.snapshot();
    assert!(snapshot.outbox.is_empty());
    assert_eq!(
        snapshot.messages,
        vec![LocalMessage::from_server(server.clone())]
    );
    assert_eq!(d.count(|e| matches!(e, Event::MessageSent { .. })), 1);
    assert_eq!(d.engine.status().pending_outbox, 0);

    // The send's own answer comes in after all: nothing more happens.
    let batches = d.applied().len();
    d.respond(&post, created(server));
    assert_eq!(d.count(|e| matches!(e, Event::MessageSent { .. })), 1);
    assert_eq!(d.applied().len(), batches);
    assert_eq!(d.issued("POST ").len(), 1);
}

/// The send's answer is being stored when the write of a feed page that shows the message
/// delivered fails: the message is still settled by the answer, so it is not sent again.
#[test]
fn a_failed_page_write_leaves_a_message_whose_answer_is_being_stored_settled() {
    let mut d = Driver::idle(config());
    let id = d.send("c-1", "hi");
    let post = d.only_open("POST ");
    d.force();
    let page = d.only_open("GET /v1/sync");
    d.hold_batches = true;
    let server = ours(&id, "c-1", "hi", T0 + 5);
    d.respond(
        &page,
        feed(vec![message_change(server.clone())], "k1", false),
    );
    d.respond(&post, created(server.clone()));
    d.store
        .fail_next_apply(StoreError::Unavailable("closed by a version change".into()));
    d.ack();
    assert!(
        d.open("POST ").is_empty(),
        "sent again: {:?}",
        d.open("POST ")
    );

    // The answer's write goes on, and settles it once.
    d.clear();
    d.ack();
    assert_eq!(d.count(|e| matches!(e, Event::MessageSent { .. })), 1);
    assert!(d.store.snapshot().outbox.is_empty());
    assert_eq!(d.issued("POST ").len(), 1);
}

/// And the other way round: the answer's write fails while a feed page that shows the message
/// delivered is being written; it is not sent again meanwhile.
#[test]
fn a_failed_answer_write_leaves_a_message_a_page_write_delivers_settled() {
    let mut d = Driver::idle(config());
    let id = d.send("c-1", "hi");
    let post = d.only_open("POST ");
    d.hold_batches = true;
    let server = ours(&id, "c-1", "hi", T0 + 5);
    d.respond(&post, created(server.clone()));
    d.force();
    let page = d.only_open("GET /v1/sync");
    d.respond(
        &page,
        feed(vec![message_change(server.clone())], "k1", false),
    );
    d.store
        .fail_next_apply(StoreError::Unavailable("closed by a version change".into()));
    d.ack();
    d.wait(10 * SEC);
    assert!(
        d.open("POST ").is_empty(),
        "sent again: {:?}",
        d.open("POST ")
    );

    d.clear();
    d.ack();
    assert_eq!(d.count(|e| matches!(e, Event::MessageSent { .. })), 1);
    assert!(d.store.snapshot().outbox.is_empty());
}

#[test]
fn a_message_the_feed_shows_delivered_is_not_expired_while_that_page_is_written() {
    let entry = pending_a_week_and_a_minute();
    let store = store_holding(&entry, T0 - DAY + MIN);
    let mut d = Driver::with_store(config(), store);
    d.start();
    let post = d.only_open("POST ");
    let sync = d.only_open("GET /v1/sync");
    // The ack is lost (503), but the server holds the message and the feed brings it.
    d.respond(&post, error(503, ErrorCode::Unavailable));
    d.hold_batches = true;
    let server = ours(&entry.client_message_id, "c-1", "hello", T0 + 5);
    d.respond(&sync, feed(vec![message_change(server)], "k1", false));
    assert!(d.held.is_some(), "the page's write is in flight");
    // Maintenance, which would expire the message, comes due meanwhile.
    d.now += MIN;
    d.act(|e, now| e.handle_timeout(now));
    while d.held.is_some() {
        d.ack();
    }

    assert!(d.store.snapshot().outbox.is_empty());
    assert!(stored_message(&d, &entry.client_message_id).is_from_server());
    assert_eq!(d.count(|e| matches!(e, Event::MessageSent { .. })), 1);
    assert_eq!(d.count(|e| matches!(e, Event::MessageFailed { .. })), 0);
    let status = d.engine.status();
    assert_eq!((status.pending_outbox, status.failed_outbox), (0, 0));
}

/// And the other way round: maintenance that expires the message is being written when the
/// feed shows it delivered. The page's write, queued behind it, settles it: it is neither
/// reported failed in between (where Retry or Discard would act on a delivered message) nor
/// sent again.
#[test]
fn a_message_expired_while_a_page_that_delivers_it_is_queued_is_not_reported_failed() {
    let entry = pending_a_week_and_a_minute();
    let store = store_holding(&entry, T0 - DAY - MIN);
    let mut d = Driver::with_store(config(), store);
    d.hold_batches = true;
    d.start();
    let maintenance = d.held.clone().expect("maintenance is being written");
    assert!(
        (maintenance.ops.iter()).any(|op| matches!(op, StoreOp::ExpireOutbox { .. })),
        "{maintenance:?}"
    );
    let sync = d.only_open("GET /v1/sync");
    let server = ours(&entry.client_message_id, "c-1", "hello", T0 + 5);
    d.respond(&sync, feed(vec![message_change(server)], "k1", false));
    d.ack();
    assert_eq!(d.count(|e| matches!(e, Event::MessageFailed { .. })), 0);
    assert!(d.open("POST ").is_empty(), "{:?}", d.open("POST "));
    while d.held.is_some() {
        d.ack();
    }

    assert!(d.store.snapshot().outbox.is_empty());
    assert!(stored_message(&d, &entry.client_message_id).is_from_server());
    assert_eq!(d.count(|e| matches!(e, Event::MessageSent { .. })), 1);
    assert_eq!(d.count(|e| matches!(e, Event::MessageFailed { .. })), 0);
    let status = d.engine.status();
    assert_eq!((status.pending_outbox, status.failed_outbox), (0, 0));
}

#[test]
fn an_older_history_version_does_not_overwrite_a_newer_feed_version() {
    let mut d = Driver::idle(config());
    let edited = Message {
        body: "edited".into(),
        updated_ts: T0 - 10,
        edited: true,
        ..message("m-1", "c-1", "u-bob", "original", T0 - 1_000)
    };
    let original = message("m-1", "c-1", "u-bob", "original", T0 - 1_000);
    d.force();
    let page = d.only_open("GET /v1/sync");
    d.respond(
        &page,
        feed(vec![message_change(edited.clone())], "k1", false),
    );

    d.clear();
    let ticket = d.act(|e, now| e.load_older("c-1".into(), HistoryFloor::Unknown, now));
    let history = d.only_open("GET /v1/conversations/c-1/messages");
    assert_eq!(history.path, "/v1/conversations/c-1/messages?limit=50");
    d.respond(
        &history,
        response(
            200,
            ResponseBody::History(HistoryPage {
                messages: vec![original],
                next_before: None,
                has_more: false,
            }),
        ),
    );
    assert_eq!(
        d.events(),
        vec![finished(
            ticket,
            Ok(SyncSummary {
                changes: 1,
                has_more: false
            })
        )]
    );
    assert_eq!(
        d.store.snapshot().messages,
        vec![LocalMessage::from_server(edited)]
    );
}

/// A history page `messages` (newest first), with more below it or not.
fn history_page(messages: Vec<Message>, has_more: bool) -> HttpOutcome {
    response(
        200,
        ResponseBody::History(HistoryPage {
            messages,
            next_before: None,
            has_more,
        }),
    )
}

#[test]
fn a_history_page_moves_the_floor_it_was_asked_below_down_to_its_oldest_message() {
    let mut d = Driver::idle(config());
    let floor = HistoryFloor::From {
        sort_ts: T0 - 100,
        id: MessageId::new("m-100"),
    };
    let m1 = message("m-1", "c-1", "u-bob", "one", T0 - 300);
    let m2 = message("m-2", "c-1", "u-bob", "two", T0 - 200);
    d.act(|e, now| e.load_older("c-1".into(), floor.clone(), now));
    let request = d.only_open("GET /v1/conversations/c-1/messages");
    assert_eq!(
        request.path,
        "/v1/conversations/c-1/messages?beforeMessage=m-100&limit=50"
    );
    d.clear();
    d.respond(&request, history_page(vec![m2.clone(), m1.clone()], true));
    let batches = d.applied();
    assert_eq!(
        batches.last().expect("the page is stored").ops,
        vec![
            StoreOp::PutMessage(LocalMessage::from_server(m2)),
            StoreOp::PutMessage(LocalMessage::from_server(m1.clone())),
            StoreOp::ExtendHistory {
                conversation: "c-1".into(),
                from: floor,
                to: HistoryFloor::From {
                    sort_ts: m1.server_ts,
                    id: m1.id,
                },
            },
        ]
    );

    // The last page: below it, nothing.
    let floor = HistoryFloor::Unknown;
    d.act(|e, now| e.load_older("c-1".into(), floor.clone(), now));
    let request = d.only_open("GET /v1/conversations/c-1/messages");
    assert_eq!(request.path, "/v1/conversations/c-1/messages?limit=50");
    d.clear();
    d.respond(&request, history_page(vec![], false));
    assert_eq!(
        d.applied().last().expect("the page is stored").ops,
        vec![StoreOp::ExtendHistory {
            conversation: "c-1".into(),
            from: floor,
            to: HistoryFloor::Complete,
        }]
    );
}

/// Two loads below different floors may be in flight at once (here the app asked below the floor
/// it read before an eviction raised it, then below the new one). Each answer goes with the floor
/// it was asked below, whatever the order they come in: the first load's empty bottom page does
/// not mark the history whole above the gap the eviction left.
#[test]
fn history_pages_answered_out_of_order_each_extend_from_the_floor_they_were_asked_below() {
    let mut d = Driver::idle(config());
    let at = |m: &Message| HistoryFloor::at(&LocalMessage::from_server(m.clone())).unwrap();
    let old: Vec<Message> = (0..5)
        .map(|n| message(&format!("m-{n}"), "c-1", "u-bob", "old", T0 - 500 + n * 100))
        .collect();
    let mut cached: Vec<StoreOp> = old[1..]
        .iter()
        .map(|m| StoreOp::PutMessage(LocalMessage::from_server(m.clone())))
        .collect();
    cached.push(StoreOp::ExtendHistory {
        conversation: "c-1".into(),
        from: HistoryFloor::Unknown,
        to: at(&old[1]),
    });
    pollster::block_on(d.store.apply(&cached)).unwrap();
    let below_m1 = d.act(|e, now| e.load_older("c-1".into(), at(&old[1]), now));
    // Another tab's maintenance keeps only m-4, and the app asks below it.
    pollster::block_on(d.store.apply(&[StoreOp::EvictHistory { keep: 1 }])).unwrap();
    let store = d.store.clone();
    let floor = || pollster::block_on(store.history_floor(&"c-1".into())).unwrap();
    assert_eq!(floor(), at(&old[4]));
    let below_m4 = d.act(|e, now| e.load_older("c-1".into(), at(&old[4]), now));
    let path = "GET /v1/conversations/c-1/messages?beforeMessage=";
    let (first, second) = (
        d.only_open(&format!("{path}m-1")),
        d.only_open(&format!("{path}m-4")),
    );

    d.clear();
    d.respond(&second, history_page(vec![old[3].clone()], true));
    d.respond(&first, history_page(vec![old[0].clone()], false));
    assert_eq!(
        floor(),
        at(&old[3]),
        "m-2 is not cached: the history is not whole"
    );
    let summary = |has_more| SyncSummary {
        changes: 1,
        has_more,
    };
    assert_eq!(
        d.events(),
        vec![
            finished(below_m4, Ok(summary(true))),
            finished(below_m1, Ok(summary(false))),
        ]
    );
}

/// A server that purged old history (or whose database was replaced) no longer knows the message
/// back-fill is anchored at: the floor goes back to `Unknown`, so the next back-fill starts again
/// from the newest message, and the command finishes without an error. Any other 404 fails it.
#[test]
fn a_back_fill_below_a_message_the_server_no_longer_has_starts_again_from_the_newest() {
    let mut d = Driver::idle(config());
    let floor = HistoryFloor::From {
        sort_ts: T0 - 100,
        id: MessageId::new("m-purged"),
    };
    let ticket = d.act(|e, now| e.load_older("c-1".into(), floor.clone(), now));
    let request = d.only_open("GET /v1/conversations/c-1/messages");
    d.clear();
    d.respond(&request, error(404, ErrorCode::MessageNotFound));
    assert_eq!(
        d.applied().last().expect("the restart is stored").ops,
        vec![StoreOp::RestartHistory {
            conversation: "c-1".into(),
            from: floor.clone(),
        }]
    );
    let summary = SyncSummary {
        changes: 0,
        has_more: true,
    };
    assert!(d.events().contains(&finished(ticket, Ok(summary))));

    let ticket = d.act(|e, now| e.load_older("c-1".into(), floor.clone(), now));
    let request = d.only_open("GET /v1/conversations/c-1/messages");
    d.clear();
    d.respond(&request, error(404, ErrorCode::ConversationNotFound));
    assert!(d.applied().is_empty(), "nothing stored");
    let failed = d.events().into_iter().any(|event| {
        matches!(event, Event::CommandFinished { ticket: t, result: Err(SyncError::Server { status: 404, .. }) } if t == ticket)
    });
    assert!(failed, "the command failed");
}

#[test]
fn below_a_complete_floor_nothing_is_asked_for() {
    let mut d = Driver::idle(config());
    let issued = d.requests.len();
    let ticket = d.act(|e, now| e.load_older("c-1".into(), HistoryFloor::Complete, now));
    assert_eq!(d.requests.len(), issued);
    assert_eq!(
        d.events(),
        vec![finished(
            ticket,
            Ok(SyncSummary {
                changes: 0,
                has_more: false
            })
        )]
    );
}

#[test]
fn a_feed_page_moves_floors_only_down_to_messages_it_brings_unedited() {
    let mut d = Driver::idle(config());
    // An old message edited now, then (in feed order) a new one; in c-2 only an edit.
    let old_edit = Message {
        body: "edited".into(),
        edited: true,
        updated_ts: T0 - 5,
        ..message("m-1", "c-1", "u-bob", "one", T0 - 1_000)
    };
    let fresh = message("m-9", "c-1", "u-bob", "new", T0 - 10);
    let other_edit = Message {
        deleted: true,
        body: String::new(),
        updated_ts: T0 - 4,
        ..message("m-2", "c-2", "u-bob", "gone", T0 - 900)
    };
    let later = message("m-10", "c-1", "u-bob", "newer", T0 - 3);
    d.force();
    let page = d.only_open("GET /v1/sync");
    d.clear();
    d.respond(
        &page,
        feed(
            vec![
                message_change(old_edit.clone()),
                message_change(fresh.clone()),
                message_change(other_edit.clone()),
                message_change(later.clone()),
            ],
            "k1",
            false,
        ),
    );
    let ops = d.applied().last().expect("the page is stored").ops.clone();
    let extensions: Vec<&StoreOp> = (ops.iter())
        .filter(|op| matches!(op, StoreOp::ExtendHistory { .. }))
        .collect();
    assert_eq!(extensions, vec![&history_from(&fresh)]);
}

// ----- maintenance -----

#[test]
fn maintenance_runs_at_start_when_it_never_ran_and_then_every_interval() {
    let config = config();
    let mut d = Driver::with_store(config.clone(), MemoryStore::new());
    d.go_online(false);
    d.start();
    let ops: Vec<_> = d.applied().into_iter().map(|b| b.ops).collect();
    assert_eq!(ops, vec![maintenance_ops(&config, T0)]);
    assert_eq!(d.store.snapshot().last_maintenance, Some(T0));
    assert_eq!(
        d.events(),
        vec![Event::MaintenanceFinished(Default::default())]
    );
    assert_eq!(d.wake, Some(T0 + DAY));

    d.clear();
    d.advance_to(T0 + DAY - 1);
    assert!(d.applied().is_empty());
    d.advance_to(T0 + DAY);
    let ops: Vec<_> = d.applied().into_iter().map(|b| b.ops).collect();
    assert_eq!(ops, vec![maintenance_ops(&config, T0 + DAY)]);
    assert_eq!(d.store.snapshot().last_maintenance, Some(T0 + DAY));
    assert_eq!(d.engine.stats().maintenance_runs, 2);
}

/// Tombstones carry the server's stamps, so the server's clock decides when they are old: a
/// device clock 60 days ahead (the lifetime is 30) compacts no fresh tombstone, and an older copy
/// of the deleted message (a history page answered before the delete) does not bring it back.
#[test]
fn a_device_clock_far_ahead_compacts_no_fresh_tombstone() {
    let config = config();
    let server_now = T0 - 60 * DAY;
    let live = message("m-1", "c-1", "u-bob", "secret", server_now - HOUR);
    let deleted = tombstone(live.clone(), server_now);
    let mut d = Driver::idle(config.clone());
    d.act(|e, now| e.load_older("c-1".into(), HistoryFloor::Unknown, now));
    let history = d.only_open("GET /v1/conversations/c-1/messages");

    // The feed brings the tombstone, and maintenance runs.
    d.force();
    let sync = d.only_open("GET /v1/sync");
    d.respond(
        &sync,
        feed(vec![message_change(deleted.clone())], "k1", false),
    );
    d.clear();
    d.act(|e, now| e.run_maintenance(now));
    let compaction = StoreOp::CompactTombstones {
        before: server_now - config.tombstone_ttl_ms,
    };
    let ops: Vec<_> = d.applied().into_iter().flat_map(|b| b.ops).collect();
    assert!(ops.contains(&compaction), "{ops:?}");

    // The history page, answered before the delete, comes late: the message stays deleted.
    d.respond(&history, history_page(vec![live], false));
    assert_eq!(
        d.store.snapshot().messages,
        vec![LocalMessage::from_server(deleted)]
    );
}

/// Maintenance before any answer (at start, offline) leaves its tombstone compaction until a
/// server stamp is known; the first answer that carries one brings it.
#[test]
fn a_compaction_before_the_servers_time_is_known_waits_for_its_first_stamp() {
    let config = config();
    let mut d = Driver::with_store(config.clone(), MemoryStore::new());
    d.go_online(false);
    d.start();
    let ops: Vec<_> = d.applied().into_iter().map(|b| b.ops).collect();
    assert_eq!(ops, vec![maintenance_ops(&config, T0)]);

    d.clear();
    d.go_online(true);
    let sync = d.only_open("GET /v1/sync");
    let changes = vec![conversation_change("c-1", T0 - 7 * DAY)];
    d.respond(&sync, feed(changes, "k1", false));
    let ops: Vec<_> = d.applied().into_iter().map(|b| b.ops).collect();
    let compaction = StoreOp::CompactTombstones {
        before: T0 - 7 * DAY - config.tombstone_ttl_ms,
    };
    assert_eq!(ops.last(), Some(&vec![compaction]));
}

/// The server's clock moves on past a tombstone's lifetime: maintenance compacts it.
#[test]
fn a_tombstone_older_than_its_lifetime_by_the_servers_clock_is_compacted() {
    let config = config();
    let mut d = Driver::idle(config.clone());
    let deleted = tombstone(
        message("m-1", "c-1", "u-bob", "gone", T0 - 2 * HOUR),
        T0 - HOUR,
    );
    let later = T0 + config.tombstone_ttl_ms;
    let newer = message("m-2", "c-1", "u-bob", "new", later);
    d.force();
    let sync = d.only_open("GET /v1/sync");
    d.respond(&sync, feed(vec![message_change(deleted)], "k1", false));
    d.act(|e, now| e.run_maintenance(now));
    assert_eq!(d.store.snapshot().messages.len(), 1, "30 days from now");

    d.advance_to(later);
    d.force();
    let sync = d.only_open("GET /v1/sync");
    d.respond(
        &sync,
        feed(vec![message_change(newer.clone())], "k2", false),
    );
    d.act(|e, now| e.run_maintenance(now));
    assert_eq!(
        d.store.snapshot().messages,
        vec![LocalMessage::from_server(newer)]
    );
}

#[test]
fn maintenance_is_not_run_at_start_when_it_ran_recently() {
    let store = MemoryStore::new();
    pollster::block_on(store.apply(&[StoreOp::SetLastMaintenance(T0 - 23 * HOUR)])).unwrap();
    let mut d = Driver::with_store(config(), store);
    d.go_online(false);
    d.start();
    assert!(d.applied().is_empty());
    assert_eq!(d.wake, Some(T0 + HOUR));
    d.wake_up();
    assert_eq!(d.applied().len(), 1);
    assert_eq!(d.store.snapshot().last_maintenance, Some(T0 + HOUR));
}

/// A device clock that was ahead when maintenance last ran, and is right now: maintenance comes
/// a day from now, not a day after the time the clock showed then.
#[test]
fn maintenance_recorded_in_the_future_counts_as_done_now() {
    let store = MemoryStore::new();
    pollster::block_on(store.apply(&[StoreOp::SetLastMaintenance(T0 + 30 * DAY)])).unwrap();
    let mut d = Driver::with_store(config(), store);
    d.go_online(false);
    d.start();
    assert!(d.applied().is_empty());
    assert_eq!(d.wake, Some(T0 + DAY));
    d.wake_up();
    assert_eq!(d.applied().len(), 1);
    assert_eq!(d.store.snapshot().last_maintenance, Some(T0 + DAY));
}

/// Likewise the last sync: a status never says it finished in the future.
#[test]
fn a_last_sync_recorded_in_the_future_shows_as_done_now() {
    let store = MemoryStore::new();
    pollster::block_on(store.apply(&[StoreOp::SetLastSync(T0 + 2 * HOUR)])).unwrap();
    let d = Driver::with_store(config(), store);
    assert_eq!(d.engine.status().last_sync_time, Some(T0));
}

#[test]
fn a_follower_shows_the_last_sync_the_store_holds_also_after_the_clock_was_set_back() {
    let store = MemoryStore::new();
    pollster::block_on(store.apply(&[StoreOp::SetLastSync(T0)])).unwrap();
    // Not started: a follower tab, whose leader syncs.
    let mut d = Driver::with_store(config(), store);
    assert_eq!(d.engine.status().last_sync_time, Some(T0));
    // The leader's clock was set back an hour, and it stored its last sync on it.
    d.act(|e, now| e.handle_last_sync_reloaded(Some(T0 - HOUR), now));
    assert_eq!(d.engine.status().last_sync_time, Some(T0 - HOUR));
}

#[test]
fn after_the_device_clock_is_set_back_stamps_are_on_it_and_maintenance_keeps_its_pace() {
    let mut config = config();
    config.maintenance_interval_ms = 10 * MIN;
    let mut d = Driver::with_store(config.clone(), MemoryStore::new());
    d.start();
    let first = d.only_open("GET /v1/sync");
    d.respond(&first, feed(vec![], "k1", false));
    assert_eq!(d.store.snapshot().last_maintenance, Some(T0));
    assert_eq!(d.engine.status().last_sync_time, Some(T0));

    // A clock an hour fast is corrected: the engine's clock goes on, an hour ahead of it.
    d.advance_to(T0 + MIN);
    d.engine.handle_clock_ahead(HOUR);
    let status = d.engine.status();
    assert_eq!(
        status.last_sync_time,
        Some(T0 - HOUR),
        "when it was, by the corrected clock"
    );
    let next = d
        .engine
        .status()
        .next_sync_at
        .expect("a periodic sync planned");
    assert_eq!(next, T0 + config.periodic_sync_ms - HOUR);

    let id = d.send("c-1", "after the correction");
    assert_eq!(
        d.store.snapshot().last_sync,
        Some(T0 - HOUR),
        "stored so for the other tabs"
    );
    let entry = d.store.snapshot().outbox[0].clone();
    assert_eq!(
        (entry.client_message_id, entry.composed_at),
        (id, T0 + MIN - HOUR)
    );

    // Maintenance comes when it was due, stamped on the device's clock.
    d.clear();
    d.go_online(false);
    d.advance_to(T0 + 10 * MIN - 1);
    assert!(d.applied().is_empty());
    d.advance_to(T0 + 10 * MIN);
    let ops: Vec<_> = d.applied().into_iter().map(|b| b.ops).collect();
    assert_eq!(ops, vec![maintenance_ops(&config, T0 + 10 * MIN - HOUR)]);
    assert_eq!(
        d.store.snapshot().last_maintenance,
        Some(T0 + 10 * MIN - HOUR)
    );
    assert_eq!(d.wake, Some(T0 + 20 * MIN));
}

/// A message composed before the device's clock was set back shows (and lists its
/// conversation) as composed when it was by the clock as set, not in the future; it keeps its
/// place before the ones composed after. The clock set forward again moves it back.
#[test]
fn compose_times_move_with_the_device_clock_set_back_and_forward() {
    let mut d = Driver::new(config());
    d.go_online(false);
    d.start();
    let before = d.send("c-1", "before");
    d.advance_to(T0 + MIN);
    d.clear();
    d.act(|e, _| e.handle_clock_ahead(HOUR));
    let after = d.send("c-1", "after");
    // Each message's compose time, in the order shown; the outbox agrees.
    let composed = |d: &Driver| -> Vec<(ClientMessageId, Millis)> {
        let snapshot = d.store.snapshot();
        let mut shown: Vec<&LocalMessage> = snapshot.messages.iter().collect();
        shown.sort_by_key(|m| m.sort_ts);
        let shown: Vec<_> = (shown.iter())
            .map(|m| (m.client_message_id.clone(), m.composed_at.unwrap()))
            .collect();
        let outbox: Vec<_> = (snapshot.outbox.iter())
            .map(|e| (e.client_message_id.clone(), e.composed_at))
            .collect();
        assert_eq!(outbox, shown);
        shown
    };
    assert_eq!(
        composed(&d),
        vec![
            (before.clone(), T0 - HOUR),
            (after.clone(), T0 + MIN - HOUR)
        ]
    );
    assert!(d
        .changes()
        .iter()
        .any(|c| c.conversations == ["c-1".into()]));

    d.act(|e, _| e.handle_clock_ahead(0));
    assert_eq!(composed(&d), vec![(before, T0), (after, T0 + MIN)]);
}

/// A failed message another tab discarded, which this leading tab has not heard of yet, stays
/// discarded when the clock is set back: only pending messages are stored again then.
#[test]
fn a_clock_set_back_does_not_bring_back_a_failed_message_another_tab_discarded() {
    let (mut d, entry) = offline_with_a_failed_message_a_week_old(HOUR);
    let discarded = [
        StoreOp::RemoveOutbox(entry.client_message_id.clone()),
        StoreOp::RemoveOptimistic {
            sender: ME.into(),
            client_message_id: entry.client_message_id.clone(),
        },
    ];
    pollster::block_on(d.store.apply(&discarded)).unwrap();
    d.act(|e, _| e.handle_clock_ahead(HOUR));
    let snapshot = d.store.snapshot();
    assert!(snapshot.outbox.is_empty() && snapshot.messages.is_empty());
}

/// A tab that takes the lead may hold the outbox as it was before the tab that led settled
/// some of it (its note is on the way). The device's clock set back then moves only what the
/// store holds pending: a message delivered, failed or discarded meanwhile stays so.
#[test]
fn a_clock_set_back_after_a_lead_change_moves_only_what_the_store_holds_pending() {
    let optimistic = |entry: &OutboxEntry| LocalMessage::optimistic(entry, &ME.into());
    let entries: Vec<OutboxEntry> = ["delivered", "failed", "discarded", "pending"]
        .into_iter()
        .zip(1..)
        .map(|(id, seq)| OutboxEntry {
            client_message_id: ClientMessageId::new(id),
            conversation_id: "c-1".into(),
            body: id.into(),
            seq,
            composed_at: T0 - MIN,
            failure: None,
        })
        .collect();
    let [delivered, failed, discarded, pending] = &entries[..] else {
        unreachable!()
    };
    let store = MemoryStore::new();
    let mut ops = vec![StoreOp::SetLastMaintenance(T0)];
    for entry in &entries {
        ops.extend([
            StoreOp::PutOutbox(entry.clone()),
            StoreOp::PutMessage(optimistic(entry)),
        ]);
    }
    pollster::block_on(store.apply(&ops)).unwrap();
    // This tab takes the lead (offline: nothing is sent) with the outbox as it loaded it.
    let mut d = Driver::with_store(config(), store);
    d.go_online(false);
    d.start();

    // The tab that led settles three of them; this tab has not reloaded the outbox yet.
    let id = |entry: &OutboxEntry| entry.client_message_id.clone();
    let sent = LocalMessage::from_server(ours(&id(delivered), "c-1", "delivered", T0));
    let failed = OutboxEntry {
        failure: Some(chat_sync_engine::Failure {
            code: "forbidden".into(),
            message: "refused".into(),
        }),
        ..failed.clone()
    };
    let settled = [
        StoreOp::PutMessage(sent.clone()),
        StoreOp::RemoveOutbox(id(delivered)),
        StoreOp::PutOutbox(failed.clone()),
        StoreOp::PutMessage(optimistic(&failed)),
        StoreOp::RemoveOutbox(id(discarded)),
        StoreOp::RemoveOptimistic {
            sender: ME.into(),
            client_message_id: id(discarded),
        },
    ];
    pollster::block_on(d.store.apply(&settled)).unwrap();

    d.act(|e, _| e.handle_clock_ahead(HOUR));
    let moved = OutboxEntry {
        composed_at: T0 - MIN - HOUR,
        ..pending.clone()
    };
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.outbox, vec![failed.clone(), moved.clone()]);
    assert_eq!(
        snapshot.messages,
        vec![sent, optimistic(&failed), optimistic(&moved)]
    );

    // The other tab's note comes: this tab's outbox is the store's.
    let outbox = snapshot.outbox;
    d.act(|e, now| e.handle_outbox_reloaded(outbox, now));
    let status = d.engine.status();
    assert_eq!((status.pending_outbox, status.failed_outbox), (1, 1));
}

/// Outbox entries `(client id, failed)` in `c-1`, composed eight days ago (a day past the
/// optimistic lifetime), with maintenance due in an hour, and a tab that takes the lead
/// (offline: nothing is sent) with the outbox as it loaded it.
fn leading_with_old_entries(entries: &[(&str, bool)]) -> (Driver, Vec<OutboxEntry>) {
    let entries: Vec<OutboxEntry> = (entries.iter().zip(1..))
        .map(|(&(id, failed), seq)| OutboxEntry {
            client_message_id: ClientMessageId::new(id),
            conversation_id: "c-1".into(),
            body: id.into(),
            seq,
            composed_at: T0 - 8 * DAY,
            failure: failed.then(|| chat_sync_engine::Failure {
                code: "forbidden".into(),
                message: "refused".into(),
            }),
        })
        .collect();
    let store = MemoryStore::new();
    let mut ops = vec![StoreOp::SetLastMaintenance(T0 - DAY + HOUR)];
    for entry in &entries {
        ops.extend([
            StoreOp::PutOutbox(entry.clone()),
            StoreOp::PutMessage(LocalMessage::optimistic(entry, &ME.into())),
        ]);
    }
    pollster::block_on(store.apply(&ops)).unwrap();
    let mut d = Driver::with_store(config(), store);
    d.go_online(false);
    d.start();
    d.clear();
    (d, entries)
}

/// The events of a maintenance run but its `MaintenanceFinished`.
fn maintenance_events(d: &Driver) -> Vec<Event> {
    (d.events().into_iter())
        .filter(|e| !matches!(e, Event::MaintenanceFinished(_)))
        .collect()
}

/// A tab that takes the lead may hold pending still a message another tab delivered (its note
/// is on the way). Maintenance expires by what the store holds: the delivered message is not
/// brought back as failed (Retry would send it again), and the app hears only of the one it
/// did expire.
#[test]
fn maintenance_after_a_lead_change_does_not_fail_a_message_another_tab_delivered() {
    let (mut d, entries) = leading_with_old_entries(&[("delivered", false), ("stuck", false)]);
    let [delivered, stuck] = &entries[..] else {
        unreachable!()
    };
    let sent =
        LocalMessage::from_server(ours(&delivered.client_message_id, "c-1", "delivered", T0));
    let delivery = [
        StoreOp::PutMessage(sent.clone()),
        StoreOp::RemoveOutbox(delivered.client_message_id.clone()),
    ];
    pollster::block_on(d.store.apply(&delivery)).unwrap();

    d.advance_to(T0 + HOUR);
    let expired = OutboxEntry {
        failure: Some(chat_sync_engine::Failure {
            code: "expired".into(),
            message: "not delivered within the optimistic message lifetime".into(),
        }),
        ..stuck.clone()
    };
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.outbox, vec![expired.clone()]);
    let optimistic = LocalMessage::optimistic(&expired, &ME.into());
    assert_eq!(snapshot.messages, vec![sent, optimistic]);
    assert_eq!(
        maintenance_events(&d),
        vec![Event::MessageFailed {
            client_message_id: stuck.client_message_id.clone(),
            conversation_id: "c-1".into(),
            failure: expired.failure.unwrap(),
            retryable: true,
        }]
    );

    // The other tab's note comes: this tab's outbox is the store's; nothing is sent again.
    d.act(|e, now| e.handle_outbox_reloaded(snapshot.outbox, now));
    let status = d.engine.status();
    assert_eq!((status.pending_outbox, status.failed_outbox), (0, 1));
    d.go_online(true);
    assert!(d.open("POST ").is_empty());
}

/// A tab that takes the lead may hold failed still a message the user retried in another tab
/// (its note is on the way). Maintenance, which removes old failed messages, leaves that one
/// queued: the user asked to send it again.
#[test]
fn maintenance_after_a_lead_change_does_not_remove_a_message_another_tab_retried() {
    let (mut d, entries) = leading_with_old_entries(&[("retried", true), ("refused", true)]);
    let [retried, refused] = &entries[..] else {
        unreachable!()
    };
    let retried = OutboxEntry {
        failure: None,
        composed_at: T0,
        ..retried.clone()
    };
    let optimistic = d.stored_by_another_tab(&retried);

    d.advance_to(T0 + HOUR);
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.outbox, vec![retried.clone()]);
    assert_eq!(snapshot.messages, vec![optimistic]);
    assert_eq!(
        maintenance_events(&d),
        vec![Event::MessageDiscarded {
            client_message_id: refused.client_message_id.clone(),
            conversation_id: "c-1".into(),
            body: "refused".into(),
            reason: DiscardReason::Expired,
        }]
    );

    // The other tab's note comes: the message goes.
    d.act(|e, now| e.handle_outbox_reloaded(snapshot.outbox, now));
    let status = d.engine.status();
    assert_eq!((status.pending_outbox, status.failed_outbox), (1, 0));
    d.go_online(true);
    assert_eq!(client_id(&d.only_open("POST ")), retried.client_message_id);
}

/// A tab that takes the lead may hold pending still a message the tab that led before failed a
/// moment ago (its own maintenance expired it; its note is on the way). Maintenance, which
/// removes old failed messages, leaves that one failed: the user gets a maintenance interval to
/// see it failed and retry it, and the app hears nothing of it from this run.
#[test]
fn maintenance_after_a_lead_change_does_not_remove_a_message_the_tab_before_failed_lately() {
    let (mut d, entries) = leading_with_old_entries(&[("failed there", false)]);
    let [entry] = &entries[..] else {
        unreachable!()
    };
    let failed = OutboxEntry {
        failure: Some(chat_sync_engine::Failure {
            code: "expired".into(),
            message: "not delivered within the optimistic message lifetime".into(),
        }),
        ..entry.clone()
    };
    let optimistic = d.stored_by_another_tab(&failed);

    d.advance_to(T0 + HOUR);
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.outbox, vec![failed.clone()]);
    assert_eq!(snapshot.messages, vec![optimistic]);
    assert_eq!(maintenance_events(&d), vec![]);

    // The other tab's note comes: the message shows failed here too, to retry or discard.
    d.act(|e, now| e.handle_outbox_reloaded(snapshot.outbox, now));
    let status = d.engine.status();
    assert_eq!((status.pending_outbox, status.failed_outbox), (0, 1));

    // Not retried by the next run: it goes.
    d.clear();
    d.advance_to(T0 + HOUR + DAY);
    assert!(d.store.snapshot().outbox.is_empty());
    assert_eq!(
        maintenance_events(&d),
        vec![Event::MessageDiscarded {
            client_message_id: failed.client_message_id.clone(),
            conversation_id: "c-1".into(),
            body: "failed there".into(),
            reason: DiscardReason::Expired,
        }]
    );
}

/// The note of the tab that led before may come while this tab's maintenance is being written:
/// the reload leaves alone the entries that write expires. This tab then takes the store's copy
/// from the write itself: a message the other tab failed is not sent without the user's retry,
/// one it delivered is not sent again.
#[test]
fn maintenance_after_a_lead_change_takes_the_stored_copy_when_the_note_came_meanwhile() {
    let (mut d, entries) = leading_with_old_entries(&[("failed there", false), ("sent", false)]);
    let [failed, delivered] = &entries[..] else {
        unreachable!()
    };
    let failed = OutboxEntry {
        failure: Some(chat_sync_engine::Failure {
            code: "expired".into(),
            message: "not delivered within the optimistic message lifetime".into(),
        }),
        ..failed.clone()
    };
    let sent = LocalMessage::from_server(ours(&delivered.client_message_id, "c-1", "sent", T0));
    let settled = [
        StoreOp::PutOutbox(failed.clone()),
        StoreOp::PutMessage(LocalMessage::optimistic(&failed, &ME.into())),
        StoreOp::PutMessage(sent),
        StoreOp::RemoveOutbox(delivered.client_message_id.clone()),
    ];
    pollster::block_on(d.store.apply(&settled)).unwrap();

    d.hold_batches = true;
    d.advance_to(T0 + HOUR);
    assert!(d.held.is_some(), "maintenance is being written");
    let outbox = d.store.snapshot().outbox;
    d.act(|e, now| e.handle_outbox_reloaded(outbox, now));
    d.ack();
    d.hold_batches = false;
    assert_eq!(d.store.snapshot().outbox, vec![failed.clone()]);
    assert_eq!(maintenance_events(&d), vec![]);
    let status = d.engine.status();
    assert_eq!((status.pending_outbox, status.failed_outbox), (0, 1));

    d.go_online(true);
    assert!(d.open("POST ").is_empty(), "{:?}", d.open("POST "));
}

#[test]
fn a_database_deleted_while_in_use_is_synced_again_from_the_start() {
    let m1 = message("m-1", "c-1", "u-bob", "before", T0);
    let everything = || vec![conversation_change("c-1", T0), message_change(m1.clone())];
    let mut d = Driver::new(config());
    d.start();
    let first = d.only_open("GET /v1/sync");
    d.respond(&first, feed(everything(), "k1", false));
    assert_eq!(d.store.snapshot().messages.len(), 1);

    // The site's data is cleared; a periodic sync is under way when the store finds out.
    let wipe = [StoreOp::ForgetServerData, StoreOp::SetCursor(None)];
    pollster::block_on(d.store.apply(&wipe)).unwrap();
    d.act(|e, now| e.request_sync(Trigger::Periodic, now));
    let incremental = d.only_open("GET /v1/sync");
    assert_eq!(incremental.path, "/v1/sync?cursor=k1&limit=100");
    d.clear();
    d.act(|e, now| e.handle_store_wiped(now));
    assert!(d.applied().is_empty(), "the run under way ends first");

    // It ends; then the store is emptied of the server's data and the feed read from the start.
    d.respond(&incremental, feed(vec![], "k2", false));
    let ops: Vec<_> = d.applied().into_iter().map(|batch| batch.ops).collect();
    assert_eq!(ops.last().map(Vec::as_slice), Some(&wipe[..]));
    let again = d.only_open("GET /v1/sync");
    assert_eq!(again.path, "/v1/sync?limit=100");
    d.respond(&again, feed(everything(), "k3", false));
    let snapshot = d.store.snapshot();
    assert_eq!(snapshot.messages.len(), 1, "the history is back");
    assert_eq!(snapshot.cursor, Some(Cursor::new("k3")));
    assert_eq!(d.engine.status().phase, Phase::Idle);
}

/// The only write since the last clear is a reset of the cache, and the feed is asked from its
/// beginning.
fn assert_reset_and_pulling_from_the_start(d: &Driver) {
    let ops: Vec<_> = d.applied().into_iter().map(|batch| batch.ops).collect();
    assert_eq!(
        ops,
        vec![vec![StoreOp::ForgetServerData, StoreOp::SetCursor(None)]]
    );
    assert_eq!(d.only_open("GET /v1/sync").path, "/v1/sync?limit=100");
}

#[test]
fn a_database_deleted_while_the_engine_is_stopped_is_synced_from_the_start_when_it_starts() {
    let mut d = Driver::idle(config());
    d.act(|e, now| e.stop(now));
    d.clear();
    d.act(|e, now| e.handle_store_wiped(now));
    assert!(d.applied().is_empty(), "a stopped engine writes nothing");
    assert!(d.open("GET /v1/sync").is_empty());

    // The tab takes the lead: its start's sync is the reset, from the start of the feed.
    d.start();
    assert_reset_and_pulling_from_the_start(&d);
}

#[test]
fn a_database_deleted_while_in_use_gets_the_outbox_again_and_a_reload_keeps_it() {
    let mut d = Driver::idle(config());
    d.go_online(false);
    let queued = d.send("c-1", "queued before the wipe");
    let entry = d.store.snapshot().outbox[0].clone();

    // The database is deleted and made anew, empty.
    d.store = MemoryStore::new();
    d.hold_batches = true;
    d.clear();
    d.act(|e, now| e.handle_store_wiped(now));
    // Another tab writes to the new database first: a reload finds no outbox there.
    d.act(|e, now| e.handle_outbox_reloaded(vec![], now));
    let written = d.ack();
    assert_eq!(
        written.ops,
        vec![
            StoreOp::PutOutbox(entry.clone()),
            StoreOp::PutMessage(LocalMessage::optimistic(&entry, &ME.into())),
            StoreOp::SetPendingReadMarkers(vec![]),
        ]
    );
    assert_eq!(d.store.snapshot().outbox, vec![entry]);

    d.hold_batches = false;
    d.go_online(true);
    let send = d.only_open("POST /v1/conversations/c-1/messages");
    assert_eq!(client_id(&send), queued, "sent, once written again");
}

#[test]
fn a_sync_started_while_a_reset_is_stored_waits_for_it_and_starts_from_the_beginning() {
    let mut d = Driver::idle(config());
    d.hold_batches = true;
    d.act(|e, now| e.handle_store_wiped(now));
    // The reset's write is under way when the tab stops leading, and leads again.
    assert_eq!(
        d.held.as_ref().map(|batch| batch.ops.clone()),
        Some(vec![StoreOp::ForgetServerData, StoreOp::SetCursor(None)])
    );
    d.act(|e, now| e.stop(now));
    d.start();
    assert!(
        d.open("GET ").is_empty(),
        "nothing is pulled before the reset is stored"
    );
    d.ack();
    assert_eq!(d.only_open("GET /v1/sync").path, "/v1/sync?limit=100");
}

#[test]
fn a_stopped_syncs_late_answer_is_not_taken_for_the_next_ones() {
    let mut d = Driver::idle(config());
    d.act(|e, now| e.request_sync(Trigger::Periodic, now));
    let before = d.only_open("GET /v1/sync");
    d.act(|e, now| e.stop(now));
    d.start();
    let after = d.open("GET /v1/sync").pop().expect("the new run's request");
    assert_ne!(after.id, before.id);
    d.respond(&before, feed(vec![], "from-the-stopped-run", false));
    assert_eq!(
        d.store.snapshot().cursor,
        Some(Cursor::new("k0")),
        "ignored"
    );
    d.respond(&after, feed(vec![], "k1", false));
    assert_eq!(d.store.snapshot().cursor, Some(Cursor::new("k1")));
    assert_eq!(d.engine.status().phase, Phase::Idle);
}

/// A sync stopped while its page was being written: that write ends during the next run, and
/// is not counted as the next run's (its changes, its duration).
#[test]
fn a_stopped_runs_page_written_during_the_next_run_is_not_counted_in_it() {
    let mut d = Driver::idle(config());
    d.force();
    let before = d.only_open("GET /v1/sync");
    d.hold_batches = true;
    d.respond(&before, feed(vec![page(1), page(2)], "k1", false));
    assert!(d.held.is_some(), "the page is being written");
    d.act(|e, now| e.stop(now));
    d.start();
    let ticket = d.force();
    d.clear();
    d.ack();
    let after = d.only_open("GET /v1/sync");
    assert_eq!(after.path, "/v1/sync?cursor=k1&limit=500");
    d.hold_batches = false;
    d.respond(&after, feed(vec![], "k2", false));
    let summary = SyncSummary {
        changes: 0,
        has_more: false,
    };
    assert_eq!(d.events(), vec![finished(ticket, Ok(summary))]);
    assert_eq!(
        d.engine.stats().syncs_completed,
        2,
        "the start's and this one"
    );
}

/// Nor does it finish the next run, which has not fetched anything yet (it waits out a backoff).
#[test]
fn a_stopped_runs_last_page_written_during_the_next_run_does_not_finish_it() {
    let mut d = Driver::idle(config());
    d.force();
    let failed = d.only_open("GET /v1/sync");
    d.respond(&failed, error(503, ErrorCode::Unavailable));
    d.wake_up();
    let before = d.only_open("GET /v1/sync");
    d.hold_batches = true;
    d.respond(&before, feed(vec![page(1)], "k1", false));
    d.act(|e, now| e.stop(now));
    d.start();
    // The next run waits out a backoff of the server's.
    let retry = d.only_open("GET /v1/sync");
    d.hold_batches = false;
    d.respond(
        &retry,
        with_retry_after(error(503, ErrorCode::Unavailable), 5 * SEC),
    );
    let ticket = d.act(|e, now| e.request_sync(Trigger::Periodic, now));
    d.clear();
    d.hold_batches = false;
    let batch = d.held.take().expect("the stopped run's write");
    d.apply(batch);
    d.drain();
    assert!(d.events().is_empty(), "{:?}", d.events());
    assert_eq!(d.engine.status().phase, Phase::Backoff);
    d.wake_up();
    let after = d.only_open("GET /v1/sync");
    assert_eq!(after.path, "/v1/sync?cursor=k1&limit=100");
    d.respond(&after, feed(vec![], "k2", false));
    let summary = SyncSummary {
        changes: 0,
        has_more: false,
    };
    assert_eq!(d.events(), vec![finished(ticket, Ok(summary))]);
}

#[test]
fn a_message_being_sent_when_the_database_is_deleted_is_written_again() {
    let mut d = Driver::idle(config());
    let id = d.send("c-1", "on its way");
    let post = d.only_open("POST ");
    d.store = MemoryStore::new();
    d.act(|e, now| e.handle_store_wiped(now));
    d.respond(&post, HttpOutcome::Timeout);
    // Another tab wrote to the new database: the outbox is reloaded from there.
    let stored = d.store.snapshot().outbox;
    d.act(|e, now| e.handle_outbox_reloaded(stored, now));
    let outbox = d.store.snapshot().outbox;
    assert_eq!(
        outbox
            .iter()
            .map(|e| &e.client_message_id)
            .collect::<Vec<_>>(),
        vec![&id],
        "in the new database"
    );
    d.wait(MIN);
    assert_eq!(client_id(&d.only_open("POST ")), id, "and sent again");
}

#[test]
fn offline_a_reset_owed_waits_for_the_network() {
    let mut d = Driver::idle(config());
    d.go_online(false);
    d.clear();
    d.act(|e, now| e.handle_store_wiped(now));
    assert!(
        d.applied().is_empty(),
        "the cache is not emptied while it cannot be filled"
    );
    d.go_online(true);
    assert_reset_and_pulling_from_the_start(&d);
}

#[test]
fn a_retry_after_holds_a_request_that_fails_later_for_another_reason() {
    let mut d = Driver::idle(config());
    d.act(|e, now| e.request_sync(Trigger::Periodic, now));
    let pull = d.only_open("GET /v1/sync");
    d.send("c-1", "hi");
    let post = d.only_open("POST ");
    let told_at = d.now;
    d.respond(
        &post,
        with_retry_after(error(429, ErrorCode::RateLimited), 5 * SEC),
    );
    d.respond(&pull, HttpOutcome::Network("reset".into()));
    d.advance_to(told_at + 5 * SEC - 1);
    assert!(
        d.open("GET ").is_empty(),
        "the pull waits for the server too"
    );
}

/// An engine (not started) whose store holds a cursor from a server database since replaced.
fn with_a_stale_cursor() -> Driver {
    let store = MemoryStore::new();
    pollster::block_on(store.apply(&[
        StoreOp::SetLastMaintenance(T0),
        StoreOp::SetCursor(Some(Cursor::new("stale"))),
    ]))
    .unwrap();
    Driver::with_store(config(), store)
}

#[test]
fn a_late_invalid_cursor_of_a_conversation_sync_after_the_feeds_reset_is_ignored() {
    let mut d = with_a_stale_cursor();
    d.act(|e, now| e.set_open_conversation(Some("c-1".into()), now));
    d.start();
    // Both go out with the old database's cursor; the feed's refusal comes first.
    let old_conversation_sync = d.only_open("GET /v1/conversations/c-1/sync");
    let refused = d.only_open("GET /v1/sync");
    d.respond(&refused, error(400, ErrorCode::InvalidCursor));
    let conversation_syncs = d.issued("GET /v1/conversations/c-1/sync");
    assert_eq!(
        conversation_syncs.last().unwrap().path,
        "/v1/conversations/c-1/sync?limit=100",
        "the conversation's sync starts over too"
    );
    let page1 = d.only_open("GET /v1/sync");
    assert_eq!(page1.path, "/v1/sync?limit=100");
    let m1 = message("m-1", "c-2", "u-bob", "first", T0 + 1);
    let first_page = vec![conversation_change("c-2", T0), message_change(m1)];
    d.respond(&page1, feed(first_page, "n1", true));
    let page2 = d.only_open("GET /v1/sync");
    assert_eq!(page2.path, "/v1/sync?cursor=n1&limit=500");

    // The refusal of the conversation sync sent with the old cursor arrives late.
    d.clear();
    d.respond(&old_conversation_sync, error(400, ErrorCode::InvalidCursor));
    assert_eq!(d.applied(), vec![], "no second reset");
    let m2 = message("m-2", "c-2", "u-bob", "second", T0 + 2);
    d.respond(&page2, feed(vec![message_change(m2)], "n2", false));

    let snapshot = d.store.snapshot();
    let ids: Vec<_> = snapshot.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(
        ids,
        vec![Some(MessageId::new("m-1")), Some(MessageId::new("m-2"))]
    );
    assert_eq!(snapshot.conversations.len(), 1);
    assert_eq!(snapshot.cursor, Some(Cursor::new("n2")));
    let floor = pollster::block_on(d.store.history_floor(&"c-2".into())).unwrap();
    assert_eq!(floor, HistoryFloor::Complete, "both messages are stored");
}

/// A back-fill in flight when the cursor is refused may bring the old database's messages: its
/// answer is not stored after the reset; the back-fill is asked again, of the new database.
#[test]
fn a_back_fill_answered_late_from_the_old_database_is_not_stored_after_the_reset() {
    let mut d = with_a_stale_cursor();
    d.start();
    let floor = HistoryFloor::From {
        sort_ts: T0 - 10,
        id: MessageId::new("m-9"),
    };
    let ticket = d.act(|e, now| e.load_older("c-1".into(), floor, now));
    let old_back_fill = d.only_open("GET /v1/conversations/c-1/messages");
    let refused = d.only_open("GET /v1/sync");
    d.respond(&refused, error(400, ErrorCode::InvalidCursor));
    assert!(d.store.snapshot().cursor.is_none(), "reset");

    let ghost = message("m-8", "c-1", "u-bob", "from the old database", T0 - 20);
    d.respond(&old_back_fill, history_page(vec![ghost], true));
    assert!(d.store.snapshot().messages.is_empty());

    // Asked again: the new database no longer has the message it was asked below.
    let again = d.only_open("GET /v1/conversations/c-1/messages");
    d.clear();
    d.respond(&again, error(404, ErrorCode::MessageNotFound));
    let summary = SyncSummary {
        changes: 0,
        has_more: true,
    };
    assert_eq!(d.events(), vec![finished(ticket, Ok(summary))]);
}

/// Likewise a read marker in flight: the old database's answer is not stored after the reset;
/// the marker goes again, to the new database.
#[test]
fn a_read_marker_answered_late_from_the_old_database_is_not_stored_after_the_reset() {
    let mut d = with_a_stale_cursor();
    d.start();
    d.act(|e, now| e.mark_read("c-1".into(), "m-5".into(), T0 - 10, now))
        .unwrap();
    let old_marker = d.only_open("POST /v1/conversations/c-1/read");
    let refused = d.only_open("GET /v1/sync");
    d.respond(&refused, error(400, ErrorCode::InvalidCursor));
    d.respond(&old_marker, marker_kept("c-1", "m-5", T0 - 1));
    assert!(d.store.snapshot().read_markers.is_empty());

    let again = d.only_open("POST /v1/conversations/c-1/read");
    assert_eq!(marked(&again), MessageId::new("m-5"));
}

#[test]
fn a_conversation_sync_whose_reset_write_fails_goes_again() {
    let mut d = Driver::idle(config());
    let ticket = d.act(|e, now| e.sync_conversation("c-2".into(), now));
    // The reset's write fails twice.
    d.store.fail_next_apply(StoreError::Failed("disk".into()));
    d.store.fail_next_apply(StoreError::Failed("disk".into()));
    for _ in 0..2 {
        let refused = d.only_open("GET /v1/conversations/c-2/sync");
        d.respond(&refused, error(400, ErrorCode::InvalidCursor));
        d.wait(MIN);
    }
    let third = d.only_open("GET /v1/conversations/c-2/sync");
    d.respond(&third, error(400, ErrorCode::InvalidCursor));
    assert_eq!(d.store.snapshot().cursor, None, "reset at last");
    let restart = d.only_open("GET /v1/conversations/c-2/sync");
    d.respond(&restart, feed(vec![], "k1", false));
    assert!(
        d.events().iter().any(
            |e| matches!(e, Event::CommandFinished { ticket: t, result: Ok(_) } if *t == ticket)
        ),
        "the conversation's sync finishes"
    );
}

#[test]
fn a_reset_whose_write_fails_is_tried_again_and_leaves_no_sync_hanging() {
    let mut d = with_a_stale_cursor();
    d.start();
    let force = d.force();
    let first = d.only_open("GET /v1/sync");
    d.store.fail_next_apply(StoreError::Failed("disk".into()));
    d.clear();
    d.respond(&first, error(400, ErrorCode::InvalidCursor));
    assert!(
        matches!(
            d.events()[..],
            [Event::CommandFinished { ticket, result: Err(SyncError::Storage { .. }) }] if ticket == force
        ),
        "the sync fails with the store's error: {:?}",
        d.events()
    );

    // After the backoff the feed is asked again; refused again, the reset goes again.
    d.wake_up();
    let again = d.only_open("GET /v1/sync");
    assert_eq!(again.path, "/v1/sync?cursor=stale&limit=100");
    d.respond(&again, error(400, ErrorCode::InvalidCursor));
    assert_eq!(d.store.snapshot().cursor, None);
    let restart = d.only_open("GET /v1/sync");
    assert_eq!(restart.path, "/v1/sync?limit=100");
    d.respond(&restart, feed(vec![], "k1", false));
    assert_eq!(d.store.snapshot().cursor, Some(Cursor::new("k1")));
    assert_eq!(d.engine.status().phase, Phase::Idle);
}

#[test]
fn maintenance_expires_old_pending_messages_then_removes_them_on_the_next_run() {
    let mut config = config();
    config.maintenance_interval_ms = 10 * MIN;
    config.optimistic_ttl_ms = 15 * MIN;
    let mut d = Driver::with_store(config.clone(), MemoryStore::new());
    d.go_online(false);
    d.start();
    d.advance_to(T0 + MIN);
    let id = d.send("c-1", "stuck");
    assert_eq!(d.wake, Some(T0 + 10 * MIN));

    // 9 minutes old: not expired yet.
    d.clear();
    d.wake_up();
    let ops: Vec<_> = d.applied().into_iter().map(|b| b.ops).collect();
    assert_eq!(ops, vec![maintenance_ops(&config, T0 + 10 * MIN)]);
    assert_eq!(d.store.snapshot().outbox[0].failure, None);

    // 19 minutes old: expired, retryable.
    d.clear();
    d.wake_up();
    assert_eq!(d.now, T0 + 20 * MIN);
    let batch = d.applied().remove(0);
    // Composed more than the lifetime before `now`.
    let expiry = |now: Millis, failure, failed| StoreOp::ExpireOutbox {
        client_message_id: id.clone(),
        conversation: "c-1".into(),
        sender: ME.into(),
        composed_before: now - 15 * MIN,
        failure,
        failed,
    };
    let [StoreOp::ExpireOutbox { failure, .. }, rest @ ..] = &batch.ops[..] else {
        panic!("unexpected batch {batch:?}");
    };
    assert_eq!(batch.ops[0], expiry(d.now, failure.clone(), false));
    assert_eq!(rest, &maintenance_ops(&config, T0 + 20 * MIN)[..]);
    let failure = failure.clone();
    assert_eq!(failure.code, "expired");
    let outbox = d.store.snapshot().outbox;
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].failure, Some(failure.clone()));
    assert_eq!(stored_message(&d, &id).status, MessageStatus::Failed);
    assert_eq!(
        d.events(),
        vec![
            Event::MessageFailed {
                client_message_id: id.clone(),
                conversation_id: "c-1".into(),
                failure: failure.clone(),
                retryable: true,
            },
            Event::MaintenanceFinished(ApplyReport {
                outbox_expired: vec![id.clone()],
                ..Default::default()
            }),
        ]
    );
    assert_eq!(d.engine.status().failed_outbox, 1);

    // Still undelivered at the next run: removed.
    d.clear();
    d.wake_up();
    assert_eq!(d.now, T0 + 30 * MIN);
    let batch = d.applied().remove(0);
    assert_eq!(batch.ops[0], expiry(d.now, failure.clone(), true));
    assert_eq!(batch.ops[1..], maintenance_ops(&config, T0 + 30 * MIN)[..]);
    let snapshot = d.store.snapshot();
    assert!(snapshot.outbox.is_empty() && snapshot.messages.is_empty());
    assert_eq!(
        d.events(),
        vec![
            Event::MessageDiscarded {
                client_message_id: id.clone(),
                conversation_id: "c-1".into(),
                body: "stuck".into(),
                reason: DiscardReason::Expired,
            },
            Event::MaintenanceFinished(ApplyReport {
                outbox_removed: vec![id.clone()],
                ..Default::default()
            }),
        ]
    );
    assert_eq!(d.engine.status().failed_outbox, 0);
    assert_eq!(d.engine.stats().maintenance_runs, 4);
}

#[test]
fn a_message_whose_expiry_cannot_be_stored_keeps_its_place_in_the_queue() {
    let mut config = config();
    config.optimistic_ttl_ms = 15 * MIN;
    let store = MemoryStore::new();
    let entry = |seq: u64, body: &str, composed_at: Millis| OutboxEntry {
        client_message_id: format!("cm-{body}").into(),
        conversation_id: "c-1".into(),
        body: body.into(),
        seq,
        composed_at,
        failure: None,
    };
    let queued = [entry(1, "old", T0 - 20 * MIN), entry(2, "new", T0 - MIN)];
    for entry in &queued {
        let ops = [
            StoreOp::PutOutbox(entry.clone()),
            StoreOp::PutMessage(LocalMessage::optimistic(entry, &ME.into())),
        ];
        pollster::block_on(store.apply(&ops)).unwrap();
    }
    let mut d = Driver::with_store(config, store);
    d.hold_batches = true;
    d.go_online(true);
    d.start();

    // Maintenance at start expires the old message; until that is stored, the new one waits.
    let expiring = d.held.clone().expect("the maintenance batch");
    assert!(matches!(
        &expiring.ops[0],
        StoreOp::ExpireOutbox { client_message_id, .. }
            if *client_message_id == queued[0].client_message_id
    ));
    assert!(d.open("POST ").is_empty());

    // The store refuses it: the old message is pending again, and goes first.
    d.store
        .fail_next_apply(StoreError::Unavailable("closed by a version change".into()));
    d.ack();
    assert_eq!(
        client_id(&d.only_open("POST ")),
        queued[0].client_message_id
    );
}

// ----- storage quota -----

#[test]
fn quota_error_evicts_history_then_retries_the_write() {
    let mut d = Driver::new(config());
    d.go_online(false);
    d.start();
    d.hold_batches = true;
    d.clear();
    d.store.fail_next_apply(StoreError::QuotaExceeded);
    let (message, ticket) = d
        .act(|e, now| e.send("c-1".into(), "big".into(), now))
        .unwrap();

    let send_batch = d.ack();
    assert_eq!(d.events(), vec![Event::StorageFull]);
    assert!(d.engine.status().storage_full);
    assert!(d.store.snapshot().outbox.is_empty());

    let eviction = d.ack();
    assert_eq!(eviction.ops, vec![StoreOp::EvictHistory { keep: 200 }]);
    let retried = d.ack();
    assert_eq!(retried.ops, send_batch.ops);
    assert!(d.held.is_none());

    assert_eq!(
        d.events(),
        vec![
            Event::StorageFull,
            Event::MessageQueued { message },
            finished(ticket, Ok(SyncSummary::default())),
        ]
    );
    let order: Vec<&str> = d
        .seen
        .iter()
        .filter_map(|seen| match seen {
            Seen::Refused(b) if b.ops == send_batch.ops => Some("send refused"),
            Seen::Applied(b) if b.ops == send_batch.ops => Some("send stored"),
            Seen::Applied(b) if b.ops == eviction.ops => Some("history evicted"),
            Seen::Event(Event::StorageFull) => Some("StorageFull"),
            Seen::Event(Event::MessageQueued { .. }) => Some("MessageQueued"),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        [
            "send refused",
            "StorageFull",
            "history evicted",
            "send stored",
            "MessageQueued"
        ]
    );
    assert_eq!(d.store.snapshot().outbox.len(), 1);
    assert!(!d.engine.status().storage_full);
    assert_eq!(d.engine.status().pending_outbox, 1);
}

/// Either eviction, maintenance's or one for want of space, names the conversations it took
/// messages from in a `Changed` event, as an app rerenders those; one that took nothing is silent.
#[test]
fn evictions_name_the_conversations_they_took_messages_from() {
    let mut d = Driver::new(Config {
        retention_per_conversation: Some(1),
        ..config()
    });
    d.go_online(false);
    d.start();
    let stored = |conversation: &str, count: usize| -> Vec<StoreOp> {
        (0..count)
            .map(|i| {
                let id = format!("{conversation}-m{i}");
                let ts = T0 - 1_000 + i as Millis;
                let message = message(&id, conversation, "u-bob", &id, ts);
                StoreOp::PutMessage(LocalMessage::from_server(message))
            })
            .collect()
    };
    let ops = [stored("c-1", 3), stored("c-2", 1)].concat();
    pollster::block_on(d.store.apply(&ops)).unwrap();

    d.clear();
    d.act(|e, now| e.run_maintenance(now));
    let evicted = ChangeSet {
        conversations: vec!["c-1".into()],
        messages: 2,
    };
    assert_eq!(d.changes(), vec![evicted]);
    d.clear();
    d.act(|e, now| e.run_maintenance(now));
    assert_eq!(d.changes(), vec![], "nothing left to evict");

    let many = stored("c-2", QUOTA_EVICTION_KEEP + 3);
    pollster::block_on(d.store.apply(&many)).unwrap();
    d.clear();
    d.store.fail_next_apply(StoreError::QuotaExceeded);
    d.act(|e, now| e.send("c-1".into(), "big".into(), now))
        .unwrap();
    let evicted = ChangeSet {
        conversations: vec!["c-2".into()],
        messages: 3,
    };
    assert!(
        d.changes().contains(&evicted),
        "{:?} names the eviction",
        d.changes()
    );
}

#[test]
fn quota_error_twice_drops_the_send_with_a_storage_error() {
    let mut d = Driver::new(config());
    d.go_online(false);
    d.start();
    d.hold_batches = true;
    d.clear();
    d.store.fail_next_apply(StoreError::QuotaExceeded);
    let (_, ticket) = d
        .act(|e, now| e.send("c-1".into(), "big".into(), now))
        .unwrap();
    d.ack(); // refused
    d.ack(); // eviction
    d.store.fail_next_apply(StoreError::QuotaExceeded);
    d.ack(); // refused again
    assert!(d.held.is_none());

    assert_eq!(
        d.events(),
        vec![
            Event::StorageFull,
            finished(
                ticket,
                Err(SyncError::Storage {
                    message: "storage quota exceeded".into(),
                    quota: true,
                })
            ),
        ]
    );
    let snapshot = d.store.snapshot();
    assert!(snapshot.outbox.is_empty() && snapshot.messages.is_empty());
    let status = d.engine.status();
    assert_eq!(status.pending_outbox, 0);
    assert!(
        status.storage_full,
        "the last write failed for lack of quota"
    );

    d.hold_batches = false;
    d.go_online(true);
    assert!(d.issued("POST ").is_empty());
}

// ----- connection quality -----

#[test]
fn connection_quality_events_move_the_periodic_sync_only_by_the_change_of_interval() {
    let mut d = Driver::idle(config());
    let quality = |effective_type| ConnectionQuality {
        effective_type,
        save_data: false,
    };
    // The browser reports every change of `navigator.connection`, most with the same quality.
    for _ in 0..4 {
        d.wait(MIN);
        d.act(|e, now| e.handle_connection_quality(ConnectionQuality::default(), now));
    }
    assert_eq!(d.engine.status().next_sync_at, Some(T0 + 5 * MIN));
    d.advance_to(T0 + 5 * MIN);
    let sync = d.only_open("GET /v1/sync");
    d.respond(&sync, feed(vec![], "k1", false));
    let synced_at = d.now;

    // A slower link stretches the interval from the last sync, not from now.
    d.wait(4 * MIN);
    d.act(|e, now| e.handle_connection_quality(quality(EffectiveType::Slow2g), now));
    d.wait(MIN);
    d.act(|e, now| e.handle_connection_quality(quality(EffectiveType::Slow2g), now));
    assert_eq!(d.engine.status().next_sync_at, Some(synced_at + 20 * MIN));
    // A faster one shortens it again: overdue, the sync goes at once.
    d.wait(MIN);
    d.act(|e, now| e.handle_connection_quality(quality(EffectiveType::FourG), now));
    assert_eq!(d.open("GET /v1/sync").len(), 1);
}

#[test]
fn slow_2g_stretches_the_periodic_interval_and_shrinks_the_pages() {
    let mut d = Driver::idle(config());
    assert_eq!(d.requests[0].path, "/v1/sync?limit=100");
    d.act(|e, now| {
        e.handle_connection_quality(
            ConnectionQuality {
                effective_type: EffectiveType::Slow2g,
                save_data: false,
            },
            now,
        )
    });
    assert_eq!(d.wake, Some(T0 + 20 * MIN));
    assert_eq!(d.engine.status().next_sync_at, Some(T0 + 20 * MIN));
    d.advance_to(T0 + 5 * MIN);
    assert_eq!(d.requests.len(), 1);

    d.wake_up();
    let page = d.only_open("GET /v1/sync");
    assert_eq!(page.path, "/v1/sync?cursor=k0&limit=25");
    d.respond(&page, feed(vec![], "k1", true));
    // The run's later pages shrink alike: a quarter of 500.
    let next = d.only_open("GET /v1/sync");
    assert_eq!(next.path, "/v1/sync?cursor=k1&limit=125");
    d.respond(&next, feed(vec![], "k2", false));
    assert_eq!(d.wake, Some(d.now + 20 * MIN));
}

// ----- status -----

#[test]
fn status_reports_initialization_last_sync_and_outbox_counts() {
    let mut engine = Engine::new(config(), T0);
    let status = engine.status();
    assert!(!status.is_initialized);
    assert_eq!(status.phase, Phase::Initializing);
    assert_eq!(
        engine.send("c-1".into(), "early".into(), T0),
        Err(EngineError::NotInitialized)
    );

    let mut d = Driver::new(config());
    let status = d.engine.status();
    assert!(status.is_initialized);
    assert_eq!(
        (status.phase, status.last_sync_time),
        (Phase::Stopped, None)
    );

    d.start();
    assert!(d.engine.status().is_running);
    // Offline, the pending sync waits: not running, phase Offline.
    d.go_online(false);
    let status = d.engine.status();
    assert_eq!((status.is_running, status.phase), (false, Phase::Offline));
    d.go_online(true);
    assert!(d.engine.status().is_running);
    d.send("c-1", "one");
    d.send("c-1", "two");
    let three = d.send("c-2", "three");
    assert_eq!(d.engine.status().pending_outbox, 3);

    d.wait(SEC);
    let sync = d.only_open("GET /v1/sync");
    d.respond(&sync, feed(vec![], "k1", false));
    let status = d.engine.status();
    assert_eq!(
        (status.phase, status.last_sync_time),
        (Phase::Idle, Some(T0 + SEC))
    );
    assert!(!status.is_running);

    let post = d.only_open("POST /v1/conversations/c-2/");
    d.respond(&post, created(ours(&three, "c-2", "three", T0 + 2)));
    assert_eq!(d.engine.status().pending_outbox, 2);
    // The last status event tells what `status()` says.
    let last = d.seen.iter().rev().find_map(|s| match s {
        Seen::Event(Event::StatusChanged(status)) => Some(status.clone()),
        _ => None,
    });
    assert_eq!(last, Some(d.engine.status()));

    // A new engine on the same store knows when the last sync was.
    let again = Driver::with_store_at(config(), d.store.clone(), d.now);
    assert_eq!(again.engine.status().last_sync_time, Some(T0 + SEC));
    assert_eq!(again.engine.status().pending_outbox, 2);
}

// ----- stop -----

#[test]
fn stop_finishes_open_tickets_with_stopped_and_sends_nothing_more() {
    let mut d = Driver::new(config());
    d.start();
    let sync = d.only_open("GET /v1/sync");
    let force = d.force();
    let conversation = d.act(|e, now| e.sync_conversation("c-1".into(), now));
    let older = d.act(|e, now| e.load_older("c-2".into(), HistoryFloor::Unknown, now));

    d.clear();
    d.act(|e, now| e.stop(now));
    assert_eq!(
        d.events(),
        vec![
            finished(force, Err(SyncError::Stopped)),
            finished(conversation, Err(SyncError::Stopped)),
            finished(older, Err(SyncError::Stopped)),
        ]
    );
    assert_eq!(d.engine.status().phase, Phase::Stopped);

    let issued = d.requests.len();
    d.respond(&sync, feed(vec![], "k1", true));
    d.wait(HOUR);
    d.send("c-1", "later");
    let refused = d.force();
    assert_eq!(
        d.events().last(),
        Some(&finished(refused, Err(SyncError::Stopped)))
    );
    d.wait(HOUR);
    assert_eq!(d.requests.len(), issued);
    assert_eq!(d.store.snapshot().outbox.len(), 1);
}

/// The engine's and the device's clocks, read one after the other, differ by a few milliseconds
/// now and then (a busy thread reads them apart): that is no clock set back, and nothing moves or
/// is stored again for it. A real correction still moves what was stamped.
#[test]
fn clock_readings_a_moment_apart_are_not_a_clock_set_back() {
    let mut d = Driver::new(config());
    d.start();
    let first = d.only_open("GET /v1/sync");
    d.respond(&first, feed(vec![], "k1", false));
    d.go_online(false);
    let id = d.send("c-1", "pending");
    d.advance_to(T0 + MIN);
    d.clear();
    for ahead in [30, 0, CLOCK_MOVE_MIN_MS - 1, 0] {
        d.act(|e, _| e.handle_clock_ahead(ahead));
    }
    assert!(d.applied().is_empty(), "nothing stored again");
    assert_eq!(d.engine.status().last_sync_time, Some(T0));
    assert_eq!(d.store.snapshot().outbox[0].composed_at, T0);

    d.act(|e, _| e.handle_clock_ahead(CLOCK_MOVE_MIN_MS));
    assert_eq!(
        d.engine.status().last_sync_time,
        Some(T0 - CLOCK_MOVE_MIN_MS)
    );
    let entry = d.store.snapshot().outbox[0].clone();
    assert_eq!(
        (entry.client_message_id, entry.composed_at),
        (id, T0 - CLOCK_MOVE_MIN_MS)
    );
}
