//! Two engines on one store, as two tabs of one browser: the follower (not started) composes,
//! the leader delivers, and both see the outbox (and the last sync's time) as the store holds it.

use chat_sync_engine::protocol::{
    ClientMessageId, ConversationId, Cursor, FeedPage, Message, MessageResponse, ResponseBody,
};
use chat_sync_engine::{
    Config, Engine, Event, HttpOutcome, HttpRequest, MemoryStore, Output, Store,
};

/// Performs an engine's store writes and returns the requests it wants to send.
fn drain(engine: &mut Engine, store: &MemoryStore, now: i64) -> Vec<HttpRequest> {
    let mut requests = Vec::new();
    loop {
        match engine.poll_output() {
            Output::Persist(batch) => {
                let result = pollster::block_on(store.apply(&batch.ops));
                engine.handle_persisted(batch.id, result, now);
            }
            Output::Send(request) => requests.push(request),
            Output::Reload => {
                let state = pollster::block_on(store.load()).expect("load");
                engine.handle_outbox_reloaded(state.outbox, now);
            }
            Output::Event(_) => {}
            Output::Timeout(_) => return requests,
        }
    }
}

fn engine(store: &MemoryStore, seed: u64) -> Engine {
    let mut engine = Engine::new(Config::new("u-alice".into(), seed), 0);
    engine.handle_loaded(pollster::block_on(store.load()).expect("load"), 0);
    engine
}

#[test]
fn a_message_composed_in_a_follower_tab_is_delivered_by_the_leader() {
    let store = MemoryStore::new();
    let mut leader = engine(&store, 1);
    let mut follower = engine(&store, 2);
    leader.start(0);
    let pulls = drain(&mut leader, &store, 0);
    assert_eq!(pulls.len(), 1, "the leader syncs");

    let conversation = ConversationId::new("c-1");
    let (message, _) = follower
        .send(conversation.clone(), "from the other tab".into(), 10)
        .expect("valid");
    assert!(
        drain(&mut follower, &store, 10).is_empty(),
        "a follower never sends"
    );
    assert_eq!(follower.status().pending_outbox, 1);

    // The follower's broadcast makes the leader reload the outbox, and it sends the message.
    leader.handle_outbox_reloaded(pollster::block_on(store.load()).expect("load").outbox, 20);
    let sends: Vec<HttpRequest> = drain(&mut leader, &store, 20)
        .into_iter()
        .filter(|request| request.path.ends_with("/messages"))
        .collect();
    assert_eq!(sends.len(), 1);
    let delivered = Message {
        id: "m1".into(),
        conversation_id: conversation,
        client_message_id: message.client_message_id.clone(),
        sender_id: "u-alice".into(),
        body: "from the other tab".into(),
        server_ts: 30,
        updated_ts: 30,
        edited: false,
        deleted: false,
    };
    let created = HttpOutcome::Response {
        status: 201,
        retry_after_ms: None,
        body: ResponseBody::Message(MessageResponse { message: delivered }),
        bytes: 100,
    };
    leader.handle_response(sends[0].id, created, 30);
    drain(&mut leader, &store, 30);
    assert!(pollster::block_on(store.load())
        .expect("load")
        .outbox
        .is_empty());

    // The leader's broadcast makes the follower reload: nothing pending any more.
    follower.handle_outbox_reloaded(Vec::new(), 40);
    assert_eq!(follower.status().pending_outbox, 0);
    let unknown = ClientMessageId::new("unknown");
    assert!(follower.retry_message(&unknown, 41).is_err());
}

#[test]
fn a_reload_keeps_what_this_engine_is_still_storing() {
    let store = MemoryStore::new();
    let mut tab = engine(&store, 3);
    // Composed, but the outbox write has not been applied yet: a reload must not drop it.
    tab.send("c-1".into(), "in flight".into(), 0)
        .expect("valid");
    tab.handle_outbox_reloaded(Vec::new(), 1);
    assert_eq!(tab.status().pending_outbox, 1);
    drain(&mut tab, &store, 2);
    assert_eq!(
        pollster::block_on(store.load()).expect("load").outbox.len(),
        1
    );
}

#[test]
fn a_follower_tab_takes_the_last_sync_its_leader_stored() {
    let store = MemoryStore::new();
    let mut leader = engine(&store, 4);
    let mut follower = engine(&store, 5);
    leader.start(0);
    let pulls = drain(&mut leader, &store, 0);
    let empty = HttpOutcome::Response {
        status: 200,
        retry_after_ms: None,
        body: ResponseBody::Feed(FeedPage {
            changes: Vec::new(),
            next_cursor: Cursor::new("c1"),
            has_more: false,
        }),
        bytes: 100,
    };
    leader.handle_response(pulls[0].id, empty, 50);
    drain(&mut leader, &store, 50);
    let stored = pollster::block_on(store.load()).expect("load").last_sync;
    assert!(stored.is_some(), "the leader stored its sync's time");
    assert_eq!(follower.status().last_sync_time, None);

    // The leader's broadcast makes the follower reload.
    follower.handle_last_sync_reloaded(stored, 60);
    assert_eq!(follower.status().last_sync_time, stored);
    let told = std::iter::from_fn(|| match follower.poll_output() {
        Output::Timeout(_) => None,
        output => Some(output),
    })
    .any(|output| {
        matches!(output, Output::Event(Event::StatusChanged(status))
            if status.last_sync_time == stored)
    });
    assert!(told, "the app hears the new status");
    follower.handle_last_sync_reloaded(None, 70);
    assert_eq!(follower.status().last_sync_time, stored, "never back");
}
