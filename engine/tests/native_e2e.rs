//! Native end-to-end: the real [`Engine`] against the real reference server over real HTTP on
//! 127.0.0.1, so engine and server are shown to agree on the wire.
//!
//! A small native driver owns the engine, a [`MemoryStore`] and a `reqwest` client, and follows
//! the run-loop contract of the crate docs: after every input it drains `poll_output` until
//! `Timeout`, applies batches to the store, performs requests one at a time (feeding each outcome
//! back before polling again) and collects events. Time is real (`SystemTime`, in ms).
//!
//! Each test checks real outcomes: what the server holds (read through its own storage) and what
//! the store holds (`MemoryStore::snapshot`).

use chat_sync_engine::{
    BackoffConfig, Config, Engine, Event, HistoryFloor, HttpOutcome, HttpRequest, LocalMessage,
    MemoryStore, MessageStatus, Method, Output, Phase, Store, SyncError, SyncSummary, Ticket,
    Trigger,
};
use chat_sync_protocol::{
    decode_response, encode_request, ClientMessageId, Conversation, ConversationId, FeedPage,
    Message, MessageId, MessageResponse, Millis, ReadMarker, UserId,
};
use chat_sync_server::storage::{FeedScope, HistoryStart};
use chat_sync_server::{
    app, seed, AppState, Config as ServerConfig, FaultConfig, SqliteStorage, Storage,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ALICE: &str = "u-alice";
const ALICE_TOKEN: &str = "demo-alice";
const BOB_TOKEN: &str = "demo-bob";
/// How long any wait may take before the test fails (generous: the machine may be busy).
const PATIENCE: Duration = Duration::from_secs(60);

/// Real time, as the engine takes it.
fn now() -> Millis {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    Millis::try_from(since_epoch.as_millis()).expect("fits")
}

// ----- the driver -----

/// One device: an engine, its store, and HTTP to the server as one user.
struct Driver {
    engine: Engine,
    store: MemoryStore,
    http: reqwest::Client,
    /// `http://127.0.0.1:port`; tests may point it at another server.
    base: String,
    token: String,
    /// Every event the engine emitted, in order.
    events: Vec<Event>,
    /// The engine's last `Timeout`.
    wake: Option<Millis>,
    /// Message sends attempted (POSTs performed).
    send_attempts: usize,
}

impl Driver {
    /// Loads the (empty) store into a new engine, starts it and performs its first outputs.
    async fn start(base: &str, token: &str, config: Config) -> Self {
        let store = MemoryStore::new();
        let mut engine = Engine::new(config, now());
        engine.handle_loaded(store.load().await.expect("the store loads"), now());
        engine.start(now());
        let mut driver = Self {
            engine,
            store,
            http: reqwest::Client::new(),
            base: base.to_owned(),
            token: token.to_owned(),
            events: Vec::new(),
            wake: None,
            send_attempts: 0,
        };
        driver.drain().await;
        driver
    }

    /// Performs outputs until the engine answers `Timeout`.
    async fn drain(&mut self) {
        for _ in 0..1_000_000 {
            match self.engine.poll_output() {
                Output::Persist(batch) => {
                    let result = self.store.apply(&batch.ops).await;
                    self.engine.handle_persisted(batch.id, result, now());
                }
                Output::Send(request) => {
                    let outcome = self.perform(&request).await;
                    self.engine.handle_response(request.id, outcome, now());
                }
                Output::Reload => {
                    let state = self.store.load().await.expect("load");
                    self.engine.handle_outbox_reloaded(state.outbox, now());
                    (self.engine).handle_last_sync_reloaded(state.last_sync, now());
                    (self.engine).handle_pending_read_markers(state.pending_read_markers, now());
                }
                Output::Event(event) => self.events.push(event),
                Output::Timeout(at) => {
                    self.wake = at;
                    return;
                }
            }
        }
        panic!("the engine never stopped producing outputs");
    }

    /// Sends one request and reads the whole answer.
    async fn perform(&mut self, request: &HttpRequest) -> HttpOutcome {
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        if request.method == Method::Post {
            self.send_attempts += 1;
        }
        let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
        let mut builder = self
            .http
            .request(method, format!("{}{}", self.base, request.path))
            .bearer_auth(&self.token)
            .timeout(timeout);
        if let Some(body) = &request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(encode_request(body));
        }
        let failed = |error: reqwest::Error| match error.is_timeout() {
            true => HttpOutcome::Timeout,
            false => HttpOutcome::Network(error.to_string()),
        };
        let response = match builder.send().await {
            Ok(response) => response,
            Err(error) => return failed(error),
        };
        let status = response.status().as_u16();
        let retry_after_ms = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|seconds| seconds.trim().parse::<Millis>().ok())
            .map(|seconds| seconds * 1_000);
        match response.bytes().await {
            Ok(bytes) => HttpOutcome::Response {
                status,
                retry_after_ms,
                body: decode_response(request.expects, status, &bytes),
                bytes: bytes.len() as u64,
            },
            Err(error) => failed(error),
        }
    }

    /// Runs in real time — performing outputs, sleeping towards the engine's wake-ups and
    /// reporting them — until `done` holds; fails after [`PATIENCE`].
    async fn run_until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.drain().await;
            if done(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting until {what}; status {:?}",
                self.engine.status()
            );
            // Wake-ups far away (the periodic sync) are not waited for: check again soon.
            let wait = self.wake.map_or(100, |at| (at - now()).clamp(1, 100));
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            if self.wake.is_some_and(|at| now() >= at) {
                self.engine.handle_timeout(now());
            }
        }
    }

    /// Runs until nothing is outstanding: no pull running, and (while online) no message
    /// waiting to be delivered.
    async fn settle(&mut self) {
        self.run_until("the engine settles", |driver| {
            let status = driver.engine.status();
            let waiting_to_send = status.is_online && status.pending_outbox > 0;
            !status.is_running && !waiting_to_send
        })
        .await;
    }

    /// Runs until the command finished; returns its result.
    async fn finish(&mut self, ticket: Ticket) -> Result<SyncSummary, SyncError> {
        self.run_until("the command finishes", |driver| {
            driver.finished(ticket).is_some()
        })
        .await;
        self.finished(ticket).expect("finished")
    }

    fn finished(&self, ticket: Ticket) -> Option<Result<SyncSummary, SyncError>> {
        self.events.iter().find_map(|event| match event {
            Event::CommandFinished { ticket: t, result } if *t == ticket => Some(result.clone()),
            _ => None,
        })
    }

    /// The client ids of the `MessageSent` events, in order.
    fn sent_events(&self) -> Vec<ClientMessageId> {
        self.events
            .iter()
            .filter_map(|event| match event {
                Event::MessageSent {
                    client_message_id, ..
                } => Some(client_message_id.clone()),
                _ => None,
            })
            .collect()
    }

    /// The stored messages of one conversation, in message order.
    fn messages(&self, conversation: &ConversationId) -> Vec<LocalMessage> {
        self.store
            .snapshot()
            .messages
            .into_iter()
            .filter(|message| &message.conversation_id == conversation)
            .collect()
    }

    /// What the app is shown of a conversation: the store's messages, down to its history floor.
    async fn shown(&self, conversation: &ConversationId) -> Vec<LocalMessage> {
        let shown = self.store.messages(conversation, None, usize::MAX).await;
        shown.expect("the memory store reads")
    }

    /// The conversation's history floor.
    async fn floor(&self, conversation: &ConversationId) -> HistoryFloor {
        let floor = self.store.history_floor(conversation).await;
        floor.expect("the memory store reads")
    }

    /// The stored conversation with this title.
    fn conversation(&self, title: &str) -> ConversationId {
        self.store
            .snapshot()
            .conversations
            .into_iter()
            .find(|conversation| conversation.title == title)
            .unwrap_or_else(|| panic!("no conversation {title:?} in the store"))
            .id
    }
}

// ----- the server -----

/// The reference server's `app()` on a free port of 127.0.0.1.
struct TestServer {
    base: String,
    state: AppState,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Serves the database at `db` (`:memory:` or a file), seeded with the demo data.
    async fn start(db: &str, faults: FaultConfig) -> Self {
        let storage = SqliteStorage::open(db).expect("the database opens");
        let config = ServerConfig {
            faults,
            ..ServerConfig::default()
        };
        let state = AppState::new(storage, config);
        // A file database that has the demo already is left as it is.
        seed::seed_demo(state.storage(), state.now()).expect("the demo seeds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = app(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the server runs");
        });
        Self {
            base,
            state,
            stop,
            task,
        }
    }

    /// Shuts the server down and waits until it is gone.
    async fn shut_down(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the server stops in time")
            .expect("the server stopped cleanly");
    }

    fn storage(&self) -> &dyn Storage {
        self.state.storage()
    }

    /// Everything `user` sees on the server, read through the server's own storage.
    fn view(&self, user: &str) -> ServerView {
        let user = UserId::new(user);
        let mut view = ServerView::default();
        let mut after = 0;
        for _ in 0..10_000 {
            let read = self
                .storage()
                .feed(&user, &FeedScope::AllConversations, after, 500)
                .expect("the feed reads");
            for change in read.changes {
                match change {
                    chat_sync_protocol::Change::Conversation { conversation } => {
                        view.conversations.push(conversation)
                    }
                    chat_sync_protocol::Change::Message { message } => view.messages.push(message),
                    chat_sync_protocol::Change::ReadMarker { read_marker } => {
                        view.read_markers.push(read_marker)
                    }
                }
            }
            after = read.next;
            if !read.has_more {
                return view;
            }
        }
        panic!("the feed never ended");
    }

    /// The server's messages of one conversation with this sender and client id.
    fn copies(&self, conversation: &ConversationId, client_id: &ClientMessageId) -> Vec<Message> {
        self.history(conversation, &HistoryStart::Newest, 200)
            .into_iter()
            .filter(|message| message.sender_id.as_str() == ALICE)
            .filter(|message| &message.client_message_id == client_id)
            .collect()
    }

    /// One history page as alice, oldest first.
    fn history(
        &self,
        conversation: &ConversationId,
        start: &HistoryStart,
        limit: u32,
    ) -> Vec<Message> {
        let mut messages = self
            .storage()
            .history(&UserId::new(ALICE), conversation, start, limit)
            .expect("history reads")
            .messages;
        messages.reverse();
        messages
    }
}

/// What one user can see on the server.
#[derive(Debug, Default)]
struct ServerView {
    conversations: Vec<Conversation>,
    messages: Vec<Message>,
    read_markers: Vec<ReadMarker>,
}

/// Bob's own client: plain HTTP, as another device would write.
struct Bob {
    http: reqwest::Client,
    base: String,
}

impl Bob {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Message {
        let response = request
            .bearer_auth(BOB_TOKEN)
            .send()
            .await
            .expect("bob's request is answered");
        assert!(response.status().is_success(), "{}", response.status());
        response
            .json::<MessageResponse>()
            .await
            .expect("a message answer")
            .message
    }

    async fn send(&self, conversation: &ConversationId, client_id: &str, body: &str) -> Message {
        let url = format!("{}/v1/conversations/{conversation}/messages", self.base);
        let json = serde_json::json!({ "clientMessageId": client_id, "body": body });
        self.call(self.http.post(url).json(&json)).await
    }

    async fn edit(&self, message: &Message, body: &str) -> Message {
        let url = self.message_url(message);
        let json = serde_json::json!({ "body": body });
        self.call(self.http.patch(url).json(&json)).await
    }

    async fn delete(&self, message: &Message) -> Message {
        self.call(self.http.delete(self.message_url(message))).await
    }

    fn message_url(&self, message: &Message) -> String {
        format!(
            "{}/v1/conversations/{}/messages/{}",
            self.base, message.conversation_id, message.id
        )
    }
}

fn alice_config() -> Config {
    Config {
        page_size: 100,
        ..Config::new(UserId::new(ALICE), 42)
    }
}

/// The store holds exactly what alice sees on the server: conversations, messages (ids, bodies,
/// flags, stamps) and read markers, all from the server, nothing pending.
fn assert_store_matches_server(alice: &Driver, server: &TestServer) {
    let view = server.view(ALICE);
    let snapshot = alice.store.snapshot();

    let mut conversations = view.conversations;
    conversations.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(snapshot.conversations, conversations);

    let expected: BTreeMap<MessageId, LocalMessage> = view
        .messages
        .into_iter()
        .map(|message| (message.id.clone(), LocalMessage::from_server(message)))
        .collect();
    assert!(
        snapshot
            .messages
            .iter()
            .all(|m| m.status == MessageStatus::Sent),
        "every stored message is the server's"
    );
    let stored: BTreeMap<MessageId, LocalMessage> = snapshot
        .messages
        .into_iter()
        .map(|message| (message.id.clone().expect("a server id"), message))
        .collect();
    assert_eq!(stored.len(), expected.len(), "message count");
    for (id, message) in &expected {
        assert_eq!(stored.get(id), Some(message), "message {id}");
    }

    let mut markers = view.read_markers;
    markers.sort_by(|a, b| (&a.conversation_id, &a.user_id).cmp(&(&b.conversation_id, &b.user_id)));
    assert_eq!(snapshot.read_markers, markers);
}

// ----- the tests -----

#[tokio::test]
async fn initial_sync_pulls_the_seeded_demo_and_matches_the_server() {
    let server = TestServer::start(":memory:", FaultConfig::default()).await;
    let mut alice = Driver::start(&server.base, ALICE_TOKEN, alice_config()).await;
    alice.settle().await;

    assert_store_matches_server(&alice, &server);
    let snapshot = alice.store.snapshot();
    // Alice is in 4 of the 6 demo conversations; a good share of the 3,000 messages is hers to
    // see, edited and deleted ones among them.
    assert_eq!(snapshot.conversations.len(), 4);
    assert!(
        snapshot.messages.len() > 1_000,
        "{}",
        snapshot.messages.len()
    );
    assert!(snapshot.messages.iter().any(|m| m.edited && !m.deleted));
    assert!(snapshot
        .messages
        .iter()
        .any(|m| m.deleted && m.body.is_empty()));
    assert!(snapshot.outbox.is_empty());

    // The stored cursor is the end of the log: the server has nothing after it.
    let cursor = snapshot.cursor.expect("the cursor is stored");
    let rest: FeedPage = reqwest::Client::new()
        .get(format!("{}/v1/sync", server.base))
        .query(&[("cursor", cursor.as_str())])
        .bearer_auth(ALICE_TOKEN)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("a feed page");
    assert!(rest.changes.is_empty() && !rest.has_more, "{rest:?}");

    let status = alice.engine.status();
    assert_eq!(status.phase, Phase::Idle);
    assert_eq!(status.last_error, None);
    assert!(snapshot.last_sync.is_some());
    assert_eq!(status.last_sync_time, snapshot.last_sync);
    assert_eq!(alice.engine.stats().syncs_completed, 1);
    server.shut_down().await;
}

#[tokio::test]
async fn messages_sent_offline_are_delivered_once_in_order_when_back_online() {
    let server = TestServer::start(":memory:", FaultConfig::default()).await;
    let mut alice = Driver::start(&server.base, ALICE_TOKEN, alice_config()).await;
    alice.settle().await;
    let conversation = alice.conversation("Alice & Bob");

    alice.engine.handle_online(false, now());
    let bodies = ["on the train", "no signal here", "back in 10"];
    let mut client_ids = Vec::new();
    for body in bodies {
        let (message, _) = alice
            .engine
            .send(conversation.clone(), body.into(), now())
            .expect("a valid message");
        client_ids.push(message.client_message_id);
        alice.drain().await;
    }
    alice.settle().await;

    // Offline: pending in the store, unknown to the server.
    let pending: Vec<LocalMessage> = alice
        .messages(&conversation)
        .into_iter()
        .filter(|m| m.status == MessageStatus::Pending)
        .collect();
    assert_eq!(
        pending
            .iter()
            .map(|m| &m.client_message_id)
            .collect::<Vec<_>>(),
        client_ids.iter().collect::<Vec<_>>()
    );
    assert_eq!(alice.store.snapshot().outbox.len(), 3);
    assert_eq!(alice.send_attempts, 0);
    for client_id in &client_ids {
        assert!(server.copies(&conversation, client_id).is_empty());
    }

    alice.engine.handle_online(true, now());
    alice.settle().await;

    // Online: each on the server exactly once, in compose order.
    let on_server: Vec<Message> = server
        .history(&conversation, &HistoryStart::Newest, 200)
        .into_iter()
        .filter(|m| client_ids.contains(&m.client_message_id))
        .collect();
    assert_eq!(
        on_server
            .iter()
            .map(|m| m.body.as_str())
            .collect::<Vec<_>>(),
        bodies
    );
    assert_eq!(
        on_server
            .iter()
            .map(|m| &m.client_message_id)
            .collect::<Vec<_>>(),
        client_ids.iter().collect::<Vec<_>>()
    );
    // In the store: the server's copies, nothing pending, the outbox empty.
    let snapshot = alice.store.snapshot();
    assert!(snapshot.outbox.is_empty());
    for message in &on_server {
        let stored = snapshot
            .messages
            .iter()
            .find(|m| m.client_message_id == message.client_message_id)
            .expect("stored");
        assert_eq!(stored, &LocalMessage::from_server(message.clone()));
    }
    assert_store_matches_server(&alice, &server);
    assert_eq!(alice.sent_events(), client_ids);
    assert_eq!(alice.engine.status().pending_outbox, 0);
    server.shut_down().await;
}

#[tokio::test]
async fn another_users_edits_and_deletes_reach_the_store() {
    let server = TestServer::start(":memory:", FaultConfig::default()).await;
    let mut alice = Driver::start(&server.base, ALICE_TOKEN, alice_config()).await;
    alice.settle().await;
    let conversation = alice.conversation("Alice & Bob");
    let bob = Bob::new(&server.base);

    // Alice receives two of bob's messages...
    let typo = bob.send(&conversation, "bob-1", "see you at 10?").await;
    let oops = bob.send(&conversation, "bob-2", "wrong chat, sorry").await;
    let ticket = alice.engine.request_sync(Trigger::Force, now());
    assert!(alice.finish(ticket).await.is_ok());
    let stored = alice.messages(&conversation);
    assert!(stored.contains(&LocalMessage::from_server(typo.clone())));
    assert!(stored.contains(&LocalMessage::from_server(oops.clone())));

    // ...then bob edits one, deletes the other, and sends and deletes a third she never saw.
    let edited = bob.edit(&typo, "see you at 11?").await;
    let deleted = bob.delete(&oops).await;
    let gone = bob.send(&conversation, "bob-3", "never mind").await;
    let gone = bob.delete(&gone).await;
    assert!(edited.edited && edited.updated_ts > typo.updated_ts);
    assert!(deleted.deleted && deleted.body.is_empty());

    let ticket = alice.engine.request_sync(Trigger::Force, now());
    let summary = alice.finish(ticket).await.expect("the sync succeeds");
    assert_eq!(summary.changes, 3);
    alice.settle().await;

    let stored = alice.messages(&conversation);
    let find = |id: &MessageId| {
        stored
            .iter()
            .find(|m| m.id.as_ref() == Some(id))
            .cloned()
            .expect("stored")
    };
    let local = find(&typo.id);
    assert_eq!(local.body, "see you at 11?");
    assert!(local.edited && !local.deleted);
    assert_eq!(local, LocalMessage::from_server(edited));
    let local = find(&oops.id);
    assert!(local.deleted && local.body.is_empty());
    assert_eq!(local, LocalMessage::from_server(deleted));
    assert_eq!(find(&gone.id), LocalMessage::from_server(gone));
    assert!(alice.events.iter().any(|event| matches!(
        event,
        Event::Changed(changes) if changes.conversations.contains(&conversation)
    )));
    assert_store_matches_server(&alice, &server);
    server.shut_down().await;
}

#[tokio::test]
async fn lost_acknowledgements_do_not_duplicate() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("chat.sqlite");
    let db = db.to_str().expect("a UTF-8 path");
    // Every write commits, then its response is cut.
    let lossy = FaultConfig {
        lost_ack: 1.0,
        ..FaultConfig::default()
    };
    let server = TestServer::start(db, lossy).await;
    let config = Config {
        backoff: BackoffConfig {
            base_ms: 10,
            cap_ms: 50,
        },
        request_timeout_ms: 5_000,
        ..alice_config()
    };
    let mut alice = Driver::start(&server.base, ALICE_TOKEN, config).await;
    alice.settle().await;
    let conversation = alice.conversation("Alice & Bob");

    let (message, _) = alice
        .engine
        .send(conversation.clone(), "did you get this?".into(), now())
        .expect("a valid message");
    let client_id = message.client_message_id;
    alice
        .run_until("the send was tried three times", |driver| {
            driver.send_attempts >= 3
        })
        .await;

    // The server holds it once (the first attempt committed); the client never heard so.
    assert_eq!(server.copies(&conversation, &client_id).len(), 1);
    let snapshot = alice.store.snapshot();
    assert_eq!(snapshot.outbox.len(), 1);
    let local = snapshot
        .messages
        .iter()
        .find(|m| m.client_message_id == client_id)
        .expect("stored");
    assert_eq!(local.status, MessageStatus::Pending);
    assert!(alice.sent_events().is_empty());
    assert!(
        matches!(
            alice.engine.status().last_error,
            Some(SyncError::Network { .. })
        ),
        "{:?}",
        alice.engine.status().last_error
    );

    // The same database behind a healthy server: the next retry hears the original message.
    server.shut_down().await;
    let server = TestServer::start(db, FaultConfig::default()).await;
    alice.base = server.base.clone();
    alice.settle().await;

    let copies = server.copies(&conversation, &client_id);
    assert_eq!(copies.len(), 1, "delivered exactly once: {copies:?}");
    let snapshot = alice.store.snapshot();
    assert!(snapshot.outbox.is_empty());
    let local = snapshot
        .messages
        .iter()
        .filter(|m| m.client_message_id == client_id)
        .collect::<Vec<_>>();
    assert_eq!(local, [&LocalMessage::from_server(copies[0].clone())]);
    assert_eq!(alice.sent_events(), [client_id]);
    assert!(alice.send_attempts >= 4);
    server.shut_down().await;
}

/// The newest `count` messages of `conversation` on the server, as a store holds them.
fn newest(server: &TestServer, conversation: &ConversationId, count: u32) -> Vec<LocalMessage> {
    (server
        .history(conversation, &HistoryStart::Newest, count)
        .into_iter())
    .map(LocalMessage::from_server)
    .collect()
}

/// Alice, synced, with maintenance keeping the newest 20 messages of each conversation (history
/// pages of 25), and the id of General.
async fn alice_keeping_20(server: &TestServer) -> (Driver, ConversationId) {
    let config = Config {
        retention_per_conversation: Some(20),
        history_page_size: 25,
        ..alice_config()
    };
    let mut alice = Driver::start(&server.base, ALICE_TOKEN, config).await;
    alice.settle().await;
    let general = alice.conversation("General");
    let ticket = alice.engine.run_maintenance(now());
    assert!(alice.finish(ticket).await.is_ok());
    (alice, general)
}

#[tokio::test]
async fn sync_conversation_and_history_backfill_agree_with_the_server() {
    let server = TestServer::start(":memory:", FaultConfig::default()).await;
    let (mut alice, general) = alice_keeping_20(&server).await;
    let expected = newest(&server, &general, 20);
    assert_eq!(alice.messages(&general), expected);
    let floor = alice.floor(&general).await;
    assert_eq!(Some(&floor), HistoryFloor::at(&expected[0]).as_ref());

    // One page below the floor, the oldest cached message: exactly what the server has there.
    let ticket = alice.engine.load_older(general.clone(), floor, now());
    let summary = alice.finish(ticket).await.expect("the page loads");
    let oldest = expected[0].id.clone().expect("a server message");
    let page = server.history(&general, &HistoryStart::BeforeMessage(oldest), 25);
    assert_eq!(page.len(), 25);
    assert_eq!(
        summary,
        SyncSummary {
            changes: 25,
            has_more: true
        }
    );
    let expected = newest(&server, &general, 45);
    assert_eq!(alice.messages(&general), expected);
    assert_eq!(alice.shown(&general).await, expected);
    assert_eq!(
        Some(alice.floor(&general).await),
        HistoryFloor::at(&expected[0])
    );
    assert!(expected[..25]
        .iter()
        .zip(&page)
        .all(|(local, server)| local.id.as_ref() == Some(&server.id)));

    // Bob writes; syncing just this conversation brings it.
    let bob = Bob::new(&server.base);
    let hello = bob.send(&general, "bob-hello", "anyone for lunch?").await;
    let ticket = alice.engine.sync_conversation(general.clone(), now());
    let summary = alice.finish(ticket).await.expect("the conversation syncs");
    assert!(summary.changes >= 1, "{summary:?}");
    assert_eq!(
        alice.messages(&general).last(),
        Some(&LocalMessage::from_server(hello))
    );
    alice.settle().await;
    assert_eq!(alice.engine.status().phase, Phase::Idle);
    server.shut_down().await;
}

#[tokio::test]
async fn an_edit_of_an_evicted_message_waits_below_the_floor_until_back_fill_reaches_it() {
    let server = TestServer::start(":memory:", FaultConfig::default()).await;
    let (mut alice, general) = alice_keeping_20(&server).await;
    let window = alice.messages(&general);
    assert_eq!(window.len(), 20);

    // Bob edits one of his messages below the 20 Alice keeps and deletes another.
    let older: Vec<Message> = server.history(&general, &HistoryStart::Newest, 45)[..25]
        .iter()
        .filter(|m| m.sender_id.as_str() == "u-bob" && !m.deleted)
        .cloned()
        .collect();
    assert!(older.len() >= 2, "the demo has bob's messages there");
    let bob = Bob::new(&server.base);
    let edited = bob.edit(&older[0], "edited much later").await;
    let deleted = bob.delete(&older[1]).await;

    // The feed brings both, stored as current (a stale copy arriving later must not win), below
    // a gap: not shown, the floor stays at the kept window.
    let ticket = alice.engine.request_sync(Trigger::Force, now());
    assert!(alice.finish(ticket).await.is_ok());
    let cached = alice.messages(&general);
    assert_eq!(cached.len(), 22);
    assert!(cached.contains(&LocalMessage::from_server(edited)));
    assert!(cached.contains(&LocalMessage::from_server(deleted)));
    assert_eq!(alice.shown(&general).await, window);
    let floor = alice.floor(&general).await;
    assert_eq!(Some(&floor), HistoryFloor::at(&window[0]).as_ref());

    // Back-fill from the floor brings what lies between, as the server has it, and shows it.
    let ticket = alice.engine.load_older(general.clone(), floor, now());
    assert!(alice.finish(ticket).await.is_ok());
    let expected = newest(&server, &general, 45);
    assert_eq!(alice.messages(&general), expected);
    assert_eq!(alice.shown(&general).await, expected);
    server.shut_down().await;
}
