//! The store contract: the one suite of checks that every [`Store`] implementation passes, the
//! in-memory [`crate::MemoryStore`] natively and the IndexedDB store in the browser.
//!
//! Compiled with the feature `contract-tests`. Each check is a `pub async fn` that takes a fresh,
//! empty store and panics (through `assert!`) on the first violation. Run them all with
//! [`store_contract_tests!`](crate::store_contract_tests), which writes one test function per
//! check, named after it:
//!
//! ```ignore
//! // Native, with a blocking executor:
//! chat_sync_engine::store_contract_tests!(
//!     #[test]
//!     |_name| async { chat_sync_engine::MemoryStore::new() },
//!     pollster::block_on
//! );
//!
//! // In the browser, with an async test attribute; `name` is unique per test (the check's name),
//! // so each test can use a database of its own:
//! chat_sync_engine::store_contract_tests!(
//!     #[wasm_bindgen_test]
//!     |name| async move { IndexedDbStore::open(name).await.unwrap() },
//!     async
//! );
//! ```
//!
//! What the contract fixes beyond the [`StoreOp`] and [`Store`] documentation:
//!
//! - last-write-wins is strict everywhere: a conversation, read marker or server message whose
//!   `updated_ts` equals the stored one's does not replace it;
//! - [`Store::conversations`] orders by activity, newest first: the greatest of the
//!   conversation's `updated_ts`, the `server_ts` of its server messages and the `composed_at` of
//!   its optimistic messages; ties by conversation id, ascending. Only stored conversations are
//!   listed;
//! - [`Store::read_markers`] orders by user id;
//! - [`Store::load`] returns the outbox in `seq` order;
//! - [`ApplyReport`] counts what that one batch removed.
//!
//! The order of messages with equal `sort_ts` is left open (the server never stamps two messages
//! alike).

use crate::event::ChangeSet;
use crate::store::{
    ApplyReport, ConversationSummary, Failure, HistoryFloor, LocalMessage, MessageStatus,
    OutboxEntry, PendingReadMarker, PersistedState, Store, StoreOp, OPTIMISTIC_SORT_BASE,
};
use chat_sync_protocol::{
    ClientMessageId, Conversation, ConversationId, Cursor, Message, MessageId, Millis, ReadMarker,
    User, UserId,
};

/// The user of the device, who composes the optimistic messages.
const ME: &str = "u-alice";
/// Another member.
const OTHER: &str = "u-bob";

async fn apply<S: Store>(store: &S, ops: Vec<StoreOp>) -> ApplyReport {
    match store.apply(&ops).await {
        Ok(report) => report,
        Err(error) => panic!("apply({ops:?}) failed: {error}"),
    }
}

async fn load<S: Store>(store: &S) -> PersistedState {
    store.load().await.expect("load")
}

async fn messages<S: Store>(
    store: &S,
    conversation: &str,
    before: Option<Millis>,
    limit: usize,
) -> Vec<LocalMessage> {
    store
        .messages(&ConversationId::new(conversation), before, limit)
        .await
        .expect("messages")
}

async fn all_messages<S: Store>(store: &S, conversation: &str) -> Vec<LocalMessage> {
    messages(store, conversation, None, usize::MAX).await
}

async fn conversations<S: Store>(store: &S) -> Vec<Conversation> {
    store.conversations().await.expect("conversations")
}

/// [`Store::conversation_summaries`] for [`ME`] as (id, last message's id, unread), checked
/// against [`Store::conversations`] for the list itself.
async fn summaries<S: Store>(store: &S) -> Vec<(String, Option<String>, usize)> {
    let summaries = (store.conversation_summaries(&UserId::new(ME)).await).expect("summaries");
    let plain: Vec<Conversation> = summaries.iter().map(|s| s.conversation.clone()).collect();
    assert_eq!(
        plain,
        conversations(store).await,
        "the list's order and contents"
    );
    summaries
        .into_iter()
        .map(|s| {
            let last = s.last_message.map(|m| ids(&[m]).remove(0));
            (s.conversation.id.to_string(), last, s.unread)
        })
        .collect()
}

async fn read_markers<S: Store>(store: &S, conversation: &str) -> Vec<ReadMarker> {
    store
        .read_markers(&ConversationId::new(conversation))
        .await
        .expect("read_markers")
}

/// A server message `id` sent by `sender` in `conversation`, created and last written at `ts`.
fn server(id: &str, conversation: &str, sender: &str, ts: Millis) -> LocalMessage {
    LocalMessage::from_server(Message {
        id: MessageId::new(id),
        conversation_id: ConversationId::new(conversation),
        client_message_id: ClientMessageId::new(format!("cm-{id}")),
        sender_id: UserId::new(sender),
        body: format!("text of {id}"),
        server_ts: ts,
        updated_ts: ts,
        edited: false,
        deleted: false,
    })
}

/// `message` edited at `ts`.
fn edited(message: &LocalMessage, body: &str, ts: Millis) -> LocalMessage {
    LocalMessage {
        body: body.into(),
        edited: true,
        updated_ts: Some(ts),
        ..message.clone()
    }
}

/// `message` deleted at `ts`.
fn tombstone(message: &LocalMessage, ts: Millis) -> LocalMessage {
    LocalMessage {
        body: String::new(),
        deleted: true,
        updated_ts: Some(ts),
        ..message.clone()
    }
}

fn outbox(client_message_id: &str, conversation: &str, seq: u64) -> OutboxEntry {
    OutboxEntry {
        client_message_id: ClientMessageId::new(client_message_id),
        conversation_id: ConversationId::new(conversation),
        body: format!("draft {client_message_id}"),
        seq,
        composed_at: 5_000 + seq as Millis,
        failure: None,
    }
}

/// `entry` refused by the server: failed, waiting for the user's retry or discard.
fn refused(entry: OutboxEntry) -> OutboxEntry {
    OutboxEntry {
        failure: Some(Failure {
            code: "forbidden".into(),
            message: "refused".into(),
        }),
        ..entry
    }
}

/// The optimistic copy of `entry`, composed by [`ME`].
fn optimistic(entry: &OutboxEntry) -> LocalMessage {
    LocalMessage::optimistic(entry, &UserId::new(ME))
}

/// The batch that composes `entry`: the outbox entry and its optimistic message.
fn compose(entry: &OutboxEntry) -> Vec<StoreOp> {
    vec![
        StoreOp::PutOutbox(entry.clone()),
        StoreOp::PutMessage(optimistic(entry)),
    ]
}

/// The server's copy of the optimistic message of `entry`, stored as `id` at `ts`.
fn confirmed(entry: &OutboxEntry, id: &str, ts: Millis) -> LocalMessage {
    LocalMessage::from_server(Message {
        id: MessageId::new(id),
        conversation_id: entry.conversation_id.clone(),
        client_message_id: entry.client_message_id.clone(),
        sender_id: UserId::new(ME),
        body: entry.body.clone(),
        server_ts: ts,
        updated_ts: ts,
        edited: false,
        deleted: false,
    })
}

fn conversation(id: &str, title: &str, updated_ts: Millis) -> Conversation {
    Conversation {
        id: ConversationId::new(id),
        title: title.into(),
        members: vec![
            User {
                id: UserId::new(ME),
                display_name: "Alice".into(),
            },
            User {
                id: UserId::new(OTHER),
                display_name: "Bob".into(),
            },
        ],
        created_ts: 1,
        updated_ts,
    }
}

fn marker(conversation: &str, user: &str, message: &str, updated_ts: Millis) -> ReadMarker {
    ReadMarker {
        conversation_id: ConversationId::new(conversation),
        user_id: UserId::new(user),
        last_read_message_id: MessageId::new(message),
        last_read_server_ts: updated_ts - 1,
        updated_ts,
    }
}

async fn floor<S: Store>(store: &S, conversation: &str) -> HistoryFloor {
    store
        .history_floor(&ConversationId::new(conversation))
        .await
        .expect("history_floor")
}

/// The floor at a server message.
fn at(message: &LocalMessage) -> HistoryFloor {
    HistoryFloor::at(message).expect("a server message")
}

fn extend(conversation: &str, from: HistoryFloor, to: HistoryFloor) -> StoreOp {
    StoreOp::ExtendHistory {
        conversation: ConversationId::new(conversation),
        from,
        to,
    }
}

/// Makes the histories of `conversations` whole (their floors `Complete`), so that every message
/// put there is shown: for the checks of other rules.
async fn whole_history<S: Store>(store: &S, conversations: &[&str]) {
    let whole = |c: &&str| extend(c, HistoryFloor::Unknown, HistoryFloor::Complete);
    apply(store, conversations.iter().map(whole).collect()).await;
}

fn ids(messages: &[LocalMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| match &m.id {
            Some(id) => id.to_string(),
            None => format!("optimistic {}", m.client_message_id),
        })
        .collect()
}

fn conversation_ids(conversations: &[Conversation]) -> Vec<String> {
    conversations.iter().map(|c| c.id.to_string()).collect()
}

/// A fresh store holds nothing.
pub async fn empty_store_is_empty<S: Store>(store: &S) {
    assert_eq!(load(store).await, PersistedState::default());
    assert!(conversations(store).await.is_empty());
    assert!(all_messages(store, "c-1").await.is_empty());
    assert!(read_markers(store, "c-1").await.is_empty());
    assert_eq!(apply(store, vec![]).await, ApplyReport::default());
    assert_eq!(load(store).await, PersistedState::default());
}

/// Last-write-wins also holds for a batch whose messages lie far apart in a conversation full of
/// others: a stale version of an old message next to a new one.
pub async fn last_write_wins_across_a_crowded_conversation<S: Store>(store: &S) {
    whole_history(store, &["c-1"]).await;
    let old: Vec<LocalMessage> = (1..=150)
        .map(|n| server(&format!("m-{n}"), "c-1", OTHER, n))
        .collect();
    apply(
        store,
        old.iter().cloned().map(StoreOp::PutMessage).collect(),
    )
    .await;
    let edit = edited(&old[0], "edited", 500);
    apply(store, vec![StoreOp::PutMessage(edit.clone())]).await;
    let newest = server("m-new", "c-1", OTHER, 1_000);
    let stale = edited(&old[0], "stale", 400);
    apply(
        store,
        vec![
            StoreOp::PutMessage(stale),
            StoreOp::PutMessage(newest.clone()),
        ],
    )
    .await;
    let stored = all_messages(store, "c-1").await;
    assert_eq!(stored.len(), 151);
    assert_eq!(
        stored.iter().find(|m| m.id == edit.id),
        Some(&edit),
        "the stale version must not replace the edit"
    );
    assert_eq!(stored.last(), Some(&newest));
}

/// A server message is replaced only by a version with a higher `updated_ts`; every field
/// round-trips.
pub async fn last_write_wins_for_messages<S: Store>(store: &S) {
    whole_history(store, &["c-1"]).await;
    let original = server("m-1", "c-1", OTHER, 100);
    apply(store, vec![StoreOp::PutMessage(original.clone())]).await;
    assert_eq!(all_messages(store, "c-1").await, vec![original.clone()]);

    let edit = edited(&original, "second", 200);
    apply(store, vec![StoreOp::PutMessage(edit.clone())]).await;
    assert_eq!(all_messages(store, "c-1").await, vec![edit.clone()]);

    let stale = edited(&original, "stale", 150);
    let same_stamp = edited(&original, "same stamp", 200);
    apply(
        store,
        vec![
            StoreOp::PutMessage(stale),
            StoreOp::PutMessage(same_stamp),
            StoreOp::PutMessage(original),
        ],
    )
    .await;
    assert_eq!(
        all_messages(store, "c-1").await,
        vec![edit],
        "an older or equally stamped version must not replace the stored one"
    );
}

/// The server's copy of an optimistic message lands on the same record and replaces it; an
/// optimistic copy replaces an optimistic copy (a failure being recorded).
pub async fn server_copy_replaces_optimistic_message<S: Store>(store: &S) {
    whole_history(store, &["c-1"]).await;
    let entry = outbox("o-1", "c-1", 1);
    let pending = optimistic(&entry);
    apply(store, vec![StoreOp::PutMessage(pending.clone())]).await;
    assert_eq!(all_messages(store, "c-1").await, vec![pending]);

    let failed_entry = OutboxEntry {
        failure: Some(Failure {
            code: "rate_limited".into(),
            message: "Too many messages".into(),
        }),
        ..entry.clone()
    };
    let failed = optimistic(&failed_entry);
    assert_eq!(failed.status, MessageStatus::Failed);
    apply(store, vec![StoreOp::PutMessage(failed.clone())]).await;
    assert_eq!(all_messages(store, "c-1").await, vec![failed]);

    let sent = confirmed(&entry, "m-9", 900);
    apply(store, vec![StoreOp::PutMessage(sent.clone())]).await;
    assert_eq!(
        all_messages(store, "c-1").await,
        vec![sent],
        "the server's copy replaces the optimistic record, it does not sit beside it"
    );
}

/// Once the server's copy is stored, an optimistic copy of the same message never replaces it.
pub async fn optimistic_never_overwrites_server_message<S: Store>(store: &S) {
    whole_history(store, &["c-1"]).await;
    let entry = outbox("o-1", "c-1", 1);
    let sent = confirmed(&entry, "m-1", 100);
    apply(store, vec![StoreOp::PutMessage(sent.clone())]).await;
    apply(store, vec![StoreOp::PutMessage(optimistic(&entry))]).await;
    assert_eq!(all_messages(store, "c-1").await, vec![sent]);
}

/// `RemoveOptimistic` removes an optimistic message and keeps a server one under the same key;
/// removing what is not there is no error.
pub async fn remove_optimistic_keeps_server_message<S: Store>(store: &S) {
    whole_history(store, &["c-1", "c-2"]).await;
    let discarded = outbox("o-1", "c-1", 1);
    let delivered = outbox("o-2", "c-1", 2);
    let kept = optimistic(&outbox("o-3", "c-1", 3));
    let sent = confirmed(&delivered, "m-2", 200);
    apply(
        store,
        vec![
            StoreOp::PutMessage(optimistic(&discarded)),
            StoreOp::PutMessage(sent.clone()),
            StoreOp::PutMessage(kept.clone()),
        ],
    )
    .await;
    let remove = |id: &str| StoreOp::RemoveOptimistic {
        sender: UserId::new(ME),
        client_message_id: ClientMessageId::new(id),
    };
    apply(store, vec![remove("o-1"), remove("o-2"), remove("o-404")]).await;
    assert_eq!(all_messages(store, "c-1").await, vec![sent, kept]);
}

/// Conversations and read markers: last-write-wins by `updated_ts`, strict; read markers listed
/// per conversation, by user id.
pub async fn conversations_and_read_markers_last_write_wins<S: Store>(store: &S) {
    apply(
        store,
        vec![StoreOp::PutConversation(conversation("c-1", "first", 10))],
    )
    .await;
    apply(
        store,
        vec![StoreOp::PutConversation(conversation("c-1", "second", 20))],
    )
    .await;
    apply(
        store,
        vec![
            StoreOp::PutConversation(conversation("c-1", "stale", 15)),
            StoreOp::PutConversation(conversation("c-1", "same stamp", 20)),
        ],
    )
    .await;
    assert_eq!(
        conversations(store).await,
        vec![conversation("c-1", "second", 20)]
    );

    apply(
        store,
        vec![
            StoreOp::PutReadMarker(marker("c-1", OTHER, "m-1", 10)),
            StoreOp::PutReadMarker(marker("c-1", ME, "m-1", 11)),
            StoreOp::PutReadMarker(marker("c-2", OTHER, "m-7", 12)),
        ],
    )
    .await;
    apply(
        store,
        vec![StoreOp::PutReadMarker(marker("c-1", OTHER, "m-3", 30))],
    )
    .await;
    apply(
        store,
        vec![
            StoreOp::PutReadMarker(marker("c-1", OTHER, "m-2", 20)),
            StoreOp::PutReadMarker(marker("c-1", OTHER, "m-9", 30)),
        ],
    )
    .await;
    assert_eq!(
        read_markers(store, "c-1").await,
        vec![
            marker("c-1", ME, "m-1", 11),
            marker("c-1", OTHER, "m-3", 30)
        ]
    );
    assert_eq!(
        read_markers(store, "c-2").await,
        vec![marker("c-2", OTHER, "m-7", 12)]
    );
    assert!(read_markers(store, "c-3").await.is_empty());
}

/// Outbox entries round-trip through `load`, in `seq` order; `PutOutbox` replaces the entry of
/// the same client id, `RemoveOutbox` removes it.
pub async fn outbox_round_trips_through_load_in_seq_order<S: Store>(store: &S) {
    let first = outbox("o-z", "c-1", 1);
    let second = outbox("o-a", "c-2", 2);
    let third = outbox("o-m", "c-1", 3);
    apply(
        store,
        vec![
            StoreOp::PutOutbox(third.clone()),
            StoreOp::PutOutbox(first.clone()),
        ],
    )
    .await;
    apply(store, vec![StoreOp::PutOutbox(second.clone())]).await;
    assert_eq!(
        load(store).await.outbox,
        vec![first.clone(), second.clone(), third.clone()]
    );

    let failed = OutboxEntry {
        failure: Some(Failure {
            code: "expired".into(),
            message: "Not sent in time".into(),
        }),
        ..second
    };
    apply(
        store,
        vec![
            StoreOp::PutOutbox(failed.clone()),
            StoreOp::RemoveOutbox(first.client_message_id.clone()),
            StoreOp::RemoveOutbox(ClientMessageId::new("o-404")),
        ],
    )
    .await;
    assert_eq!(load(store).await.outbox, vec![failed, third]);
}

/// `RestampOutbox` moves the compose time of an entry the store holds pending, and of its
/// optimistic message (its conversation's activity with it), back or forward; a server copy
/// stored under the key stays. An entry gone (delivered) or failed is left as it is: nothing
/// comes back.
pub async fn restamp_outbox_moves_only_pending_entries<S: Store>(store: &S) {
    whole_history(store, &["c-1", "c-2"]).await;
    let pending = outbox("o-1", "c-1", 1);
    let delivered = outbox("o-2", "c-2", 2);
    let failed = OutboxEntry {
        failure: Some(Failure {
            code: "forbidden".into(),
            message: "refused".into(),
        }),
        ..outbox("o-3", "c-2", 3)
    };
    // Still in the outbox, its server copy already stored (the feed brought it first).
    let landing = outbox("o-4", "c-2", 4);
    let mut ops = vec![
        StoreOp::PutConversation(conversation("c-1", "mine", 10)),
        StoreOp::PutConversation(conversation("c-other", "other", 4_000)),
    ];
    for entry in [&pending, &delivered, &failed, &landing] {
        ops.extend(compose(entry));
    }
    apply(store, ops).await;
    let sent = confirmed(&delivered, "m-2", 200);
    let landed = confirmed(&landing, "m-4", 400);
    let delivery = vec![
        StoreOp::PutMessage(sent.clone()),
        StoreOp::RemoveOutbox(delivered.client_message_id.clone()),
        StoreOp::PutMessage(landed.clone()),
    ];
    apply(store, delivery).await;
    let order = |store| async move { conversation_ids(&conversations(store).await) };
    assert_eq!(order(store).await, ["c-1", "c-other"]);

    let restamp = |entry: &OutboxEntry, by| StoreOp::RestampOutbox {
        client_message_id: entry.client_message_id.clone(),
        conversation: entry.conversation_id.clone(),
        sender: UserId::new(ME),
        by,
    };
    let all = [&pending, &delivered, &failed, &landing];
    apply(store, all.iter().map(|e| restamp(e, 2_000)).collect()).await;
    let moved = |entry: &OutboxEntry| OutboxEntry {
        composed_at: entry.composed_at - 2_000,
        ..entry.clone()
    };
    assert_eq!(
        load(store).await.outbox,
        vec![moved(&pending), failed.clone(), moved(&landing)]
    );
    assert_eq!(
        all_messages(store, "c-1").await,
        vec![optimistic(&moved(&pending))]
    );
    assert_eq!(
        all_messages(store, "c-2").await,
        vec![sent.clone(), landed.clone(), optimistic(&failed)],
        "the server's copies stay, the failed message as it was"
    );
    assert_eq!(order(store).await, ["c-other", "c-1"], "composed earlier");

    // Set forward again.
    apply(store, all.iter().map(|e| restamp(e, -2_000)).collect()).await;
    assert_eq!(
        load(store).await.outbox,
        vec![pending.clone(), failed.clone(), landing]
    );
    assert_eq!(all_messages(store, "c-1").await, vec![optimistic(&pending)]);
    assert_eq!(
        all_messages(store, "c-2").await,
        vec![sent, landed, optimistic(&failed)]
    );
    assert_eq!(order(store).await, ["c-1", "c-other"]);
}

/// `ExpireOutbox` acts on the entry as the store holds it: composed before the cutoff, a
/// pending one is marked failed and a failed one removed (where the op says the engine held it
/// failed), each with its optimistic message (the conversation's activity with it); a server
/// copy stored under the key stays. One gone (delivered) is not re-created, one composed since
/// (retried) is left as it is, and so is one failed that the engine held pending (another tab
/// failed it lately). The report names what it expired and removed, and the entries it left.
pub async fn expire_outbox_acts_on_what_the_store_holds<S: Store>(store: &S) {
    whole_history(store, &["c-1", "c-2", "c-3"]).await;
    let fresh = |entry: OutboxEntry| OutboxEntry {
        composed_at: 9_000,
        ..entry
    };
    let pending = outbox("o-1", "c-1", 1);
    let failed = refused(outbox("o-2", "c-1", 2));
    let retried = fresh(outbox("o-3", "c-2", 3));
    let failed_lately = fresh(refused(outbox("o-4", "c-2", 4)));
    let delivered = outbox("o-5", "c-2", 5);
    // Still in the outbox, their server copies already stored (the feed brought them first).
    let landing = outbox("o-6", "c-2", 6);
    let landed = refused(outbox("o-7", "c-2", 7));
    // The only message of its conversation.
    let alone = refused(outbox("o-8", "c-3", 8));
    // Failed by another tab a moment ago: the engine that expires it holds it pending still.
    let failed_elsewhere = refused(outbox("o-9", "c-1", 9));
    let all = [
        &pending,
        &failed,
        &retried,
        &failed_lately,
        &delivered,
        &landing,
        &landed,
        &alone,
        &failed_elsewhere,
    ];
    let mut ops = vec![
        StoreOp::PutConversation(conversation("c-3", "alone", 10)),
        StoreOp::PutConversation(conversation("c-other", "other", 5_005)),
    ];
    for entry in all {
        ops.extend(compose(entry));
    }
    apply(store, ops).await;
    let sent = confirmed(&delivered, "m-5", 200);
    let landing_copy = confirmed(&landing, "m-6", 300);
    let landed_copy = confirmed(&landed, "m-7", 400);
    apply(
        store,
        vec![
            StoreOp::PutMessage(sent.clone()),
            StoreOp::RemoveOutbox(delivered.client_message_id.clone()),
            StoreOp::PutMessage(landing_copy.clone()),
            StoreOp::PutMessage(landed_copy.clone()),
        ],
    )
    .await;
    let order = |store| async move { conversation_ids(&conversations(store).await) };
    assert_eq!(order(store).await, ["c-3", "c-other"]);

    let expiry = Failure {
        code: "expired".into(),
        message: "not delivered in time".into(),
    };
    let expire = |entry: &OutboxEntry, failed| StoreOp::ExpireOutbox {
        client_message_id: entry.client_message_id.clone(),
        conversation: entry.conversation_id.clone(),
        sender: UserId::new(ME),
        composed_before: 6_000,
        failure: expiry.clone(),
        failed,
    };
    // As the engine holds them: as stored, but for the one failed elsewhere.
    let as_held =
        |entry: &OutboxEntry| expire(entry, entry.failure.is_some() && *entry != failed_elsewhere);
    let id = |entry: &OutboxEntry| entry.client_message_id.clone();
    let expired = |entry: &OutboxEntry| OutboxEntry {
        failure: Some(expiry.clone()),
        ..entry.clone()
    };
    let report = apply(store, all.iter().map(|e| as_held(e)).collect()).await;
    assert_eq!(report.outbox_expired, [id(&pending), id(&landing)]);
    assert_eq!(
        report.outbox_removed,
        [id(&failed), id(&landed), id(&alone)]
    );
    assert_eq!(
        report.outbox_held,
        [
            retried.clone(),
            failed_lately.clone(),
            failed_elsewhere.clone()
        ]
    );
    assert_eq!(
        load(store).await.outbox,
        vec![
            expired(&pending),
            retried.clone(),
            failed_lately.clone(),
            expired(&landing),
            failed_elsewhere.clone()
        ]
    );
    assert_eq!(
        all_messages(store, "c-1").await,
        vec![
            optimistic(&expired(&pending)),
            optimistic(&failed_elsewhere)
        ],
        "the message failed elsewhere stays, for the user to see"
    );
    assert_eq!(
        all_messages(store, "c-2").await,
        vec![
            sent.clone(),
            landing_copy.clone(),
            landed_copy.clone(),
            optimistic(&retried),
            optimistic(&failed_lately)
        ],
        "the server's copies stay, the entries composed since as they were"
    );
    assert!(all_messages(store, "c-3").await.is_empty());
    assert_eq!(
        order(store).await,
        ["c-other", "c-3"],
        "its only message went"
    );

    // The next run (the engine holds them failed now) removes those it failed, and the one
    // failed elsewhere.
    let report = apply(store, all.iter().map(|e| expire(e, true)).collect()).await;
    assert!(report.outbox_expired.is_empty());
    assert_eq!(
        report.outbox_removed,
        [id(&pending), id(&landing), id(&failed_elsewhere)]
    );
    assert_eq!(report.outbox_held, [retried.clone(), failed_lately.clone()]);
    assert_eq!(
        load(store).await.outbox,
        vec![retried.clone(), failed_lately.clone()]
    );
    assert!(all_messages(store, "c-1").await.is_empty());
    assert_eq!(
        all_messages(store, "c-2").await,
        vec![
            sent,
            landing_copy,
            landed_copy,
            optimistic(&retried),
            optimistic(&failed_lately)
        ]
    );
}

/// `RetryOutbox` queues again an entry the store holds failed: its failure cleared, its compose
/// time the retry's, its optimistic message pending (the conversation's activity with it); a
/// server copy stored under the key stays. One the store holds pending (retried in another tab)
/// or not at all (delivered, discarded) is left as it is: nothing comes back. The report names
/// what it retried, and the entries it left.
pub async fn retry_outbox_queues_only_failed_entries<S: Store>(store: &S) {
    whole_history(store, &["c-1", "c-2"]).await;
    let failed = refused(outbox("o-1", "c-1", 1));
    let retried_elsewhere = OutboxEntry {
        composed_at: 8_000,
        ..outbox("o-2", "c-2", 2)
    };
    // Failed here; retried and delivered, or discarded, in another tab.
    let delivered = refused(outbox("o-3", "c-2", 3));
    let discarded = refused(outbox("o-4", "c-2", 4));
    // Still in the outbox, its server copy already stored (the feed brought it first).
    let landed = refused(outbox("o-5", "c-2", 5));
    let all = [&failed, &retried_elsewhere, &delivered, &discarded, &landed];
    let mut ops = vec![
        StoreOp::PutConversation(conversation("c-1", "mine", 10)),
        StoreOp::PutConversation(conversation("c-other", "other", 7_000)),
    ];
    for entry in all {
        ops.extend(compose(entry));
    }
    apply(store, ops).await;
    let id = |entry: &OutboxEntry| entry.client_message_id.clone();
    let sent = confirmed(&delivered, "m-3", 200);
    let landed_copy = confirmed(&landed, "m-5", 300);
    let settled = vec![
        StoreOp::PutMessage(sent.clone()),
        StoreOp::RemoveOutbox(id(&delivered)),
        StoreOp::RemoveOutbox(id(&discarded)),
        StoreOp::RemoveOptimistic {
            sender: UserId::new(ME),
            client_message_id: id(&discarded),
        },
        StoreOp::PutMessage(landed_copy.clone()),
    ];
    apply(store, settled).await;
    let order = |store| async move { conversation_ids(&conversations(store).await) };
    assert_eq!(order(store).await, ["c-other", "c-1"]);

    let retry = |entry: &OutboxEntry| StoreOp::RetryOutbox {
        client_message_id: entry.client_message_id.clone(),
        conversation: entry.conversation_id.clone(),
        sender: UserId::new(ME),
        composed_at: 9_000,
    };
    let requeued = |entry: &OutboxEntry| OutboxEntry {
        failure: None,
        composed_at: 9_000,
        ..entry.clone()
    };
    let report = apply(store, all.iter().map(|e| retry(e)).collect()).await;
    assert_eq!(report.outbox_retried, [id(&failed), id(&landed)]);
    assert_eq!(report.outbox_held, vec![retried_elsewhere.clone()]);
    assert_eq!(
        load(store).await.outbox,
        vec![
            requeued(&failed),
            retried_elsewhere.clone(),
            requeued(&landed)
        ]
    );
    let pending = optimistic(&requeued(&failed));
    assert_eq!(pending.status, MessageStatus::Pending);
    assert_eq!(all_messages(store, "c-1").await, vec![pending]);
    assert_eq!(
        all_messages(store, "c-2").await,
        vec![sent, landed_copy, optimistic(&retried_elsewhere)],
        "the server's copies stay, the message retried elsewhere as it was"
    );
    assert_eq!(order(store).await, ["c-1", "c-other"], "composed anew");
}

/// `DiscardOutbox` removes an entry the store holds failed, with its optimistic message (the
/// conversation's activity with it); a server copy stored under the key stays. One the store
/// holds pending (retried in another tab) or not at all (delivered after a retry elsewhere) is
/// left as it is, the delivered message's server copy too. The report names what it discarded,
/// and the entries it left.
pub async fn discard_outbox_removes_only_failed_entries<S: Store>(store: &S) {
    whole_history(store, &["c-1", "c-2", "c-3"]).await;
    let failed = refused(outbox("o-1", "c-1", 1));
    let retried_elsewhere = OutboxEntry {
        composed_at: 8_000,
        ..outbox("o-2", "c-2", 2)
    };
    // Failed here; retried and delivered in another tab.
    let delivered = refused(outbox("o-3", "c-2", 3));
    // Still in the outbox, its server copy already stored (the feed brought it first).
    let landed = refused(outbox("o-4", "c-2", 4));
    // The only message of its conversation.
    let alone = refused(outbox("o-5", "c-3", 5));
    let all = [&failed, &retried_elsewhere, &delivered, &landed, &alone];
    let mut ops = vec![
        StoreOp::PutConversation(conversation("c-3", "alone", 10)),
        StoreOp::PutConversation(conversation("c-other", "other", 5_003)),
    ];
    for entry in all {
        ops.extend(compose(entry));
    }
    apply(store, ops).await;
    let id = |entry: &OutboxEntry| entry.client_message_id.clone();
    let sent = confirmed(&delivered, "m-3", 200);
    let landed_copy = confirmed(&landed, "m-4", 300);
    let settled = vec![
        StoreOp::PutMessage(sent.clone()),
        StoreOp::RemoveOutbox(id(&delivered)),
        StoreOp::PutMessage(landed_copy.clone()),
    ];
    apply(store, settled).await;
    let order = |store| async move { conversation_ids(&conversations(store).await) };
    assert_eq!(order(store).await, ["c-3", "c-other"]);

    let discard = |entry: &OutboxEntry| StoreOp::DiscardOutbox {
        client_message_id: entry.client_message_id.clone(),
        conversation: entry.conversation_id.clone(),
        sender: UserId::new(ME),
    };
    let report = apply(store, all.iter().map(|e| discard(e)).collect()).await;
    assert_eq!(
        report.outbox_discarded,
        [id(&failed), id(&landed), id(&alone)]
    );
    assert_eq!(report.outbox_held, vec![retried_elsewhere.clone()]);
    assert_eq!(load(store).await.outbox, vec![retried_elsewhere.clone()]);
    assert!(all_messages(store, "c-1").await.is_empty());
    let c2 = vec![sent, landed_copy, optimistic(&retried_elsewhere)];
    assert_eq!(
        all_messages(store, "c-2").await,
        c2,
        "the server's copies stay, the message retried elsewhere too"
    );
    assert!(all_messages(store, "c-3").await.is_empty());
    assert_eq!(
        order(store).await,
        ["c-other", "c-3"],
        "its only message went"
    );

    // Again: nothing left to discard.
    let report = apply(store, all.iter().map(|e| discard(e)).collect()).await;
    assert!(report.outbox_discarded.is_empty());
    assert_eq!(report.outbox_held, vec![retried_elsewhere.clone()]);
    assert_eq!(load(store).await.outbox, vec![retried_elsewhere]);
    assert_eq!(all_messages(store, "c-2").await, c2);
}

/// The cursor, the sync and maintenance stamps and the pending read markers round-trip through
/// `load`; `SetCursor(None)` forgets the cursor, `SetPendingReadMarkers` replaces the markers.
pub async fn cursor_and_meta_round_trip<S: Store>(store: &S) {
    let pending = |conversation: &str, message: &str, server_ts| PendingReadMarker {
        conversation_id: ConversationId::new(conversation),
        message_id: MessageId::new(message),
        server_ts,
    };
    apply(
        store,
        vec![
            StoreOp::SetCursor(Some(Cursor::new("k-1"))),
            StoreOp::SetLastSync(1_000),
            StoreOp::SetLastMaintenance(2_000),
            StoreOp::SetPendingReadMarkers(vec![
                pending("c-1", "m-1", 10),
                pending("c-2", "m-7", 70),
            ]),
        ],
    )
    .await;
    assert_eq!(
        load(store).await,
        PersistedState {
            cursor: Some(Cursor::new("k-1")),
            outbox: vec![],
            last_sync: Some(1_000),
            last_maintenance: Some(2_000),
            pending_read_markers: vec![pending("c-1", "m-1", 10), pending("c-2", "m-7", 70)],
        }
    );
    apply(
        store,
        vec![StoreOp::SetPendingReadMarkers(vec![pending(
            "c-2", "m-8", 80,
        )])],
    )
    .await;
    assert_eq!(
        load(store).await.pending_read_markers,
        vec![pending("c-2", "m-8", 80)]
    );

    apply(
        store,
        vec![
            StoreOp::SetCursor(Some(Cursor::new("k-2"))),
            StoreOp::SetLastSync(3_000),
        ],
    )
    .await;
    let state = load(store).await;
    assert_eq!(state.cursor, Some(Cursor::new("k-2")));
    assert_eq!(state.last_sync, Some(3_000));
    assert_eq!(state.last_maintenance, Some(2_000));

    apply(
        store,
        vec![StoreOp::SetCursor(None), StoreOp::SetLastMaintenance(4_000)],
    )
    .await;
    let state = load(store).await;
    assert_eq!(state.cursor, None);
    assert_eq!(state.last_sync, Some(3_000));
    assert_eq!(state.last_maintenance, Some(4_000));
}

/// The ops of one batch apply in order: a later op sees the effect of an earlier one.
pub async fn batch_ops_apply_in_order<S: Store>(store: &S) {
    let entry = outbox("o-1", "c-1", 1);
    apply(
        store,
        vec![
            StoreOp::PutOutbox(entry.clone()),
            StoreOp::RemoveOutbox(entry.client_message_id.clone()),
            StoreOp::PutMessage(optimistic(&entry)),
            StoreOp::RemoveOptimistic {
                sender: UserId::new(ME),
                client_message_id: entry.client_message_id.clone(),
            },
            StoreOp::SetCursor(Some(Cursor::new("k-1"))),
            StoreOp::SetCursor(Some(Cursor::new("k-2"))),
        ],
    )
    .await;
    let state = load(store).await;
    assert!(state.outbox.is_empty(), "Put then Remove leaves nothing");
    assert_eq!(state.cursor, Some(Cursor::new("k-2")));
    assert!(all_messages(store, "c-1").await.is_empty());

    let old = server("m-1", "c-1", OTHER, 100);
    let new = server("m-2", "c-1", OTHER, 200);
    let report = apply(
        store,
        vec![
            StoreOp::RemoveOutbox(entry.client_message_id.clone()),
            StoreOp::PutOutbox(entry.clone()),
            StoreOp::PutMessage(old.clone()),
            StoreOp::PutMessage(edited(&old, "edited", 150)),
            StoreOp::PutMessage(new.clone()),
            StoreOp::EvictHistory { keep: 1 },
            StoreOp::PutMessage(tombstone(&new, 300)),
            StoreOp::CompactTombstones { before: 301 },
        ],
    )
    .await;
    assert_eq!(load(store).await.outbox, vec![entry]);
    assert_eq!(
        (report.evicted_messages, report.compacted_tombstones),
        (1, 1)
    );
    assert!(all_messages(store, "c-1").await.is_empty());
}

/// `messages` returns the newest `limit` messages below `before` (all when `None`), in ascending
/// order, optimistic ones last, tombstones included, other conversations left out.
pub async fn messages_page_newest_first_window_in_ascending_order<S: Store>(store: &S) {
    whole_history(store, &["c-1", "c-2"]).await;
    let mut ops: Vec<StoreOp> = [50, 10, 40, 20, 30]
        .into_iter()
        .map(|ts| StoreOp::PutMessage(server(&format!("m-{ts}"), "c-1", OTHER, ts)))
        .collect();
    let deleted = tombstone(&server("m-25", "c-1", ME, 25), 60);
    ops.push(StoreOp::PutMessage(deleted.clone()));
    ops.push(StoreOp::PutMessage(optimistic(&outbox("o-2", "c-1", 2))));
    ops.push(StoreOp::PutMessage(optimistic(&outbox("o-1", "c-1", 1))));
    ops.push(StoreOp::PutMessage(server("x-35", "c-2", OTHER, 35)));
    ops.push(StoreOp::PutMessage(optimistic(&outbox("o-3", "c-2", 3))));
    apply(store, ops).await;

    let all = [
        "m-10",
        "m-20",
        "m-25",
        "m-30",
        "m-40",
        "m-50",
        "optimistic o-1",
        "optimistic o-2",
    ];
    assert_eq!(ids(&all_messages(store, "c-1").await), all);
    assert_eq!(ids(&messages(store, "c-1", None, 100).await), all);
    assert_eq!(
        ids(&messages(store, "c-1", None, 3).await),
        ["m-50", "optimistic o-1", "optimistic o-2"]
    );
    assert_eq!(
        ids(&messages(store, "c-1", Some(OPTIMISTIC_SORT_BASE), 2).await),
        ["m-40", "m-50"]
    );
    assert_eq!(
        ids(&messages(store, "c-1", Some(40), 2).await),
        ["m-25", "m-30"]
    );
    assert_eq!(
        ids(&messages(store, "c-1", Some(41), 10).await),
        ["m-10", "m-20", "m-25", "m-30", "m-40"]
    );
    assert_eq!(
        ids(&messages(store, "c-1", Some(OPTIMISTIC_SORT_BASE + 2), 1).await),
        ["optimistic o-1"]
    );
    assert!(messages(store, "c-1", Some(10), 10).await.is_empty());
    assert!(messages(store, "c-1", None, 0).await.is_empty());
    assert!(messages(store, "c-404", None, 10).await.is_empty());
    assert_eq!(
        messages(store, "c-1", Some(26), 1).await,
        vec![deleted],
        "tombstones are listed"
    );
    assert_eq!(
        ids(&all_messages(store, "c-2").await),
        ["x-35", "optimistic o-3"]
    );
}

/// `conversations` lists the stored conversations by latest activity, newest first: the greatest
/// of their `updated_ts`, their server messages' `server_ts` and their optimistic messages'
/// `composed_at`; ties by id.
pub async fn conversations_ordered_by_latest_activity<S: Store>(store: &S) {
    let composed = outbox("o-1", "c-composed", 1);
    apply(
        store,
        vec![
            StoreOp::PutConversation(conversation("c-quiet-b", "quiet", 100)),
            StoreOp::PutConversation(conversation("c-quiet-a", "quiet", 100)),
            StoreOp::PutConversation(conversation("c-busy", "busy", 10)),
            StoreOp::PutConversation(conversation("c-composed", "composed", 10)),
            StoreOp::PutConversation(conversation("c-renamed", "renamed", 300)),
            StoreOp::PutConversation(conversation("c-old", "old", 5)),
            StoreOp::PutMessage(server("m-1", "c-busy", OTHER, 200)),
            StoreOp::PutMessage(server("m-2", "c-busy", OTHER, 50)),
            StoreOp::PutMessage(server("m-3", "c-renamed", OTHER, 20)),
            StoreOp::PutMessage(optimistic(&composed)),
            StoreOp::PutMessage(server("m-4", "c-unknown", OTHER, 900)),
        ],
    )
    .await;
    assert_eq!(composed.composed_at, 5_001);
    assert_eq!(
        conversation_ids(&conversations(store).await),
        [
            "c-composed",
            "c-renamed",
            "c-busy",
            "c-quiet-a",
            "c-quiet-b",
            "c-old"
        ]
    );

    apply(
        store,
        vec![
            StoreOp::PutMessage(server("m-5", "c-old", OTHER, 6_000)),
            StoreOp::PutMessage(tombstone(&server("m-6", "c-quiet-b", OTHER, 150), 7_000)),
        ],
    )
    .await;
    assert_eq!(
        conversation_ids(&conversations(store).await),
        [
            "c-old",
            "c-composed",
            "c-renamed",
            "c-busy",
            "c-quiet-b",
            "c-quiet-a"
        ],
        "a tombstone counts by its server_ts, not its deletion"
    );
}

/// A conversation's activity counts only the messages it holds now: when its newest message
/// leaves (an optimistic copy discarded, or replaced by the server's copy with an earlier
/// stamp, its outbox entry removed in the same batch as the engine does; history evicted), the
/// conversation moves down the list.
pub async fn activity_follows_the_messages_a_conversation_holds<S: Store>(store: &S) {
    let composed = outbox("o-1", "c-mine", 1);
    let mut ops = vec![
        StoreOp::PutConversation(conversation("c-mine", "mine", 10)),
        StoreOp::PutConversation(conversation("c-other", "other", 10)),
        StoreOp::PutMessage(server("m-1", "c-other", OTHER, 3_000)),
    ];
    ops.extend(compose(&composed));
    apply(store, ops).await;
    assert_eq!(composed.composed_at, 5_001);
    let order = |store| async move { conversation_ids(&conversations(store).await) };
    assert_eq!(order(store).await, ["c-mine", "c-other"], "composed last");

    // Delivered: the server stamped it 2_000 (this device's clock runs ahead).
    let mut delivered = server("m-2", "c-mine", ME, 2_000);
    delivered.client_message_id = composed.client_message_id.clone();
    apply(
        store,
        vec![
            StoreOp::PutMessage(delivered),
            StoreOp::RemoveOutbox(composed.client_message_id.clone()),
        ],
    )
    .await;
    assert_eq!(
        order(store).await,
        ["c-other", "c-mine"],
        "by the server's stamp"
    );

    // Composed and discarded.
    let discarded = outbox("o-2", "c-mine", 2);
    apply(store, compose(&discarded)).await;
    assert_eq!(order(store).await, ["c-mine", "c-other"]);
    apply(
        store,
        vec![
            StoreOp::RemoveOutbox(discarded.client_message_id.clone()),
            StoreOp::RemoveOptimistic {
                sender: ME.into(),
                client_message_id: discarded.client_message_id.clone(),
            },
        ],
    )
    .await;
    assert_eq!(order(store).await, ["c-other", "c-mine"], "discarded");

    // Every server message evicted: only the conversations' own stamps are left.
    apply(store, vec![StoreOp::EvictHistory { keep: 0 }]).await;
    assert_eq!(order(store).await, ["c-mine", "c-other"], "ties by id");
}

/// `EvictHistory { keep }` keeps the newest `keep` server messages of each conversation (by
/// `sort_ts`), removes the older ones, never removes optimistic messages and reports the count and
/// the conversations it removed from.
pub async fn evict_history_keeps_newest_server_messages_and_all_optimistic<S: Store>(store: &S) {
    whole_history(store, &["c-1", "c-2", "c-3"]).await;
    let mut ops: Vec<StoreOp> = [10, 50, 30, 40]
        .into_iter()
        .map(|ts| StoreOp::PutMessage(server(&format!("m-{ts}"), "c-1", OTHER, ts)))
        .collect();
    ops.push(StoreOp::PutMessage(tombstone(
        &server("m-20", "c-1", OTHER, 20),
        90,
    )));
    ops.push(StoreOp::PutMessage(optimistic(&outbox("o-1", "c-1", 1))));
    ops.push(StoreOp::PutMessage(optimistic(&outbox("o-2", "c-1", 2))));
    ops.push(StoreOp::PutMessage(server("x-1", "c-2", OTHER, 1)));
    ops.push(StoreOp::PutMessage(server("x-2", "c-2", OTHER, 2)));
    ops.push(StoreOp::PutMessage(optimistic(&outbox("o-3", "c-3", 3))));
    apply(store, ops).await;

    let report = apply(store, vec![StoreOp::EvictHistory { keep: 3 }]).await;
    assert_eq!(
        (report.evicted_messages, report.compacted_tombstones),
        (2, 0)
    );
    assert_eq!(report.evicted_from, [ConversationId::from("c-1")]);
    assert_eq!(
        ids(&all_messages(store, "c-1").await),
        ["m-30", "m-40", "m-50", "optimistic o-1", "optimistic o-2"]
    );
    assert_eq!(ids(&all_messages(store, "c-2").await), ["x-1", "x-2"]);

    let report = apply(store, vec![StoreOp::EvictHistory { keep: 3 }]).await;
    assert_eq!(
        (report.evicted_messages, report.compacted_tombstones),
        (0, 0),
        "nothing left to evict"
    );
    assert_eq!(report.evicted_from, [] as [ConversationId; 0]);

    let report = apply(store, vec![StoreOp::EvictHistory { keep: 0 }]).await;
    assert_eq!(report.evicted_messages, 5);
    assert_eq!(
        report.evicted_from,
        [ConversationId::from("c-1"), ConversationId::from("c-2")],
        "sorted"
    );
    assert_eq!(
        ids(&all_messages(store, "c-1").await),
        ["optimistic o-1", "optimistic o-2"]
    );
    assert!(all_messages(store, "c-2").await.is_empty());
    assert_eq!(ids(&all_messages(store, "c-3").await), ["optimistic o-3"]);
}

/// A conversation new to the store shows no server message until its floor moves down; each
/// `ExtendHistory` that meets the cached range lowers it, one that leaves a gap does not. Without
/// a recorded floor, the cache counts as whole from its oldest server message until a batch
/// records one.
pub async fn history_floor_moves_down_as_history_extends<S: Store>(store: &S) {
    let [m10, m20, m30] = [10, 20, 30].map(|ts| server(&format!("m-{ts}"), "c-1", OTHER, ts));
    let pending = optimistic(&outbox("o-1", "c-1", 1));
    apply(
        store,
        vec![
            StoreOp::PutConversation(conversation("c-1", "General", 5)),
            StoreOp::PutMessage(m10.clone()),
            StoreOp::PutMessage(m20.clone()),
            StoreOp::PutMessage(m30.clone()),
            StoreOp::PutMessage(pending.clone()),
        ],
    )
    .await;
    assert_eq!(floor(store, "c-1").await, HistoryFloor::Unknown);
    assert_eq!(all_messages(store, "c-1").await, vec![pending.clone()]);

    apply(store, vec![extend("c-1", HistoryFloor::Unknown, at(&m20))]).await;
    assert_eq!(floor(store, "c-1").await, at(&m20));
    assert_eq!(
        ids(&all_messages(store, "c-1").await),
        ["m-20", "m-30", "optimistic o-1"]
    );
    assert!(messages(store, "c-1", Some(20), 10).await.is_empty());

    // A range ending above the floor changes nothing; one starting below it leaves a gap.
    apply(store, vec![extend("c-1", HistoryFloor::Unknown, at(&m30))]).await;
    apply(store, vec![extend("c-1", at(&m10), HistoryFloor::Complete)]).await;
    assert_eq!(floor(store, "c-1").await, at(&m20));

    apply(store, vec![extend("c-1", at(&m20), at(&m10))]).await;
    assert_eq!(floor(store, "c-1").await, at(&m10));
    apply(store, vec![extend("c-1", at(&m30), HistoryFloor::Complete)]).await;
    assert_eq!(floor(store, "c-1").await, HistoryFloor::Complete);
    assert_eq!(
        ids(&all_messages(store, "c-1").await),
        ["m-10", "m-20", "m-30", "optimistic o-1"]
    );

    // Another conversation update keeps the floor.
    apply(
        store,
        vec![StoreOp::PutConversation(conversation("c-1", "Renamed", 6))],
    )
    .await;
    assert_eq!(floor(store, "c-1").await, HistoryFloor::Complete);

    // No floor recorded (as after eviction): the cache counts as whole from its oldest server
    // message. A batch with a server message records that first, so an older one it brings
    // waits below; with nothing cached, it records `Unknown`.
    let x1 = server("x-1", "c-2", OTHER, 7);
    let x2 = server("x-2", "c-2", OTHER, 8);
    let x3 = server("x-3", "c-2", OTHER, 9);
    whole_history(store, &["c-2"]).await;
    apply(
        store,
        vec![
            StoreOp::PutMessage(x2.clone()),
            StoreOp::PutMessage(x3.clone()),
        ],
    )
    .await;
    apply(store, vec![StoreOp::EvictHistory { keep: 1 }]).await;
    assert_eq!(floor(store, "c-2").await, at(&x3));
    apply(store, vec![StoreOp::PutMessage(edited(&x1, "late", 20))]).await;
    assert_eq!(floor(store, "c-2").await, at(&x3));
    assert_eq!(all_messages(store, "c-2").await, vec![x3.clone()]);
    apply(
        store,
        vec![
            StoreOp::PutMessage(x2.clone()),
            extend("c-2", at(&x3), HistoryFloor::Complete),
        ],
    )
    .await;
    assert_eq!(
        ids(&all_messages(store, "c-2").await),
        ["x-1", "x-2", "x-3"]
    );

    let y1 = edited(&server("y-1", "c-3", OTHER, 3), "old, edited", 30);
    apply(store, vec![StoreOp::PutMessage(y1)]).await;
    assert_eq!(floor(store, "c-3").await, HistoryFloor::Unknown);
    assert!(all_messages(store, "c-3").await.is_empty());
    assert_eq!(floor(store, "c-404").await, HistoryFloor::Unknown);
}

/// A summary's last message is the newest one shown that is not deleted (optimistic included);
/// its unread count takes other members' messages shown above the user's read marker (the pending
/// one where it is ahead) and above the user's own newest message, and leaves out deleted ones.
pub async fn conversation_summaries_show_last_message_and_unread_count<S: Store>(store: &S) {
    assert!(summaries(store).await.is_empty());

    let m1 = server("m-1", "c-1", OTHER, 100);
    let m2 = server("m-2", "c-1", OTHER, 110);
    let m3 = server("m-3", "c-1", OTHER, 120);
    let m4 = server("m-4", "c-1", OTHER, 130);
    let m5 = server("m-5", "c-1", OTHER, 150);
    whole_history(store, &["c-1", "c-2", "c-3"]).await;
    apply(
        store,
        vec![
            StoreOp::PutConversation(conversation("c-1", "General", 5)),
            StoreOp::PutConversation(conversation("c-2", "Quiet", 6)),
            StoreOp::PutConversation(conversation("c-3", "Empty", 7)),
            StoreOp::PutMessage(m1.clone()),
            StoreOp::PutMessage(m2),
            StoreOp::PutMessage(m3.clone()),
            StoreOp::PutMessage(m4.clone()),
            StoreOp::PutMessage(m5.clone()),
            // Read up to a message deleted since: the last message is below the marker.
            StoreOp::PutMessage(server("q-0", "c-2", OTHER, 40)),
            StoreOp::PutMessage(tombstone(&server("q-1", "c-2", OTHER, 50), 60)),
            StoreOp::PutReadMarker(marker("c-2", ME, "q-1", 51)),
            // Another member's marker does not count for this user.
            StoreOp::PutReadMarker(marker("c-1", OTHER, "m-5", 151)),
        ],
    )
    .await;
    let some = |id: &str| Some(id.to_string());
    assert_eq!(
        summaries(store).await,
        [
            ("c-1".into(), some("m-5"), 5),
            ("c-2".into(), some("q-0"), 0),
            ("c-3".into(), None, 0),
        ]
    );

    // Read up to m-1 (stored), m-4 deleted since: m-2, m-3 and m-5 are unread.
    apply(
        store,
        vec![
            StoreOp::PutReadMarker(marker("c-1", ME, "m-1", 101)),
            StoreOp::PutMessage(tombstone(&m4, 160)),
        ],
    )
    .await;
    assert_eq!(summaries(store).await[0], ("c-1".into(), some("m-5"), 3));

    // A pending marker ahead of the stored one counts; one behind it does not.
    let pending = |message: &LocalMessage| PendingReadMarker {
        conversation_id: message.conversation_id.clone(),
        message_id: message.id.clone().expect("a server message"),
        server_ts: message.server_ts.expect("a server message"),
    };
    apply(
        store,
        vec![StoreOp::SetPendingReadMarkers(vec![pending(&m3)])],
    )
    .await;
    assert_eq!(summaries(store).await[0], ("c-1".into(), some("m-5"), 1));
    apply(
        store,
        vec![StoreOp::SetPendingReadMarkers(vec![pending(&m1)])],
    )
    .await;
    assert_eq!(summaries(store).await[0], ("c-1".into(), some("m-5"), 3));

    // Replying reads what came before: this user's message, sent or still optimistic, ends the
    // count, and is the last message.
    let entry = outbox("o-1", "c-1", 1);
    apply(store, compose(&entry)).await;
    assert_eq!(
        summaries(store).await[0],
        ("c-1".into(), some("optimistic o-1"), 0)
    );
    let m6 = server("m-6", "c-1", OTHER, 170);
    apply(
        store,
        vec![
            StoreOp::RemoveOutbox(entry.client_message_id.clone()),
            StoreOp::PutMessage(confirmed(&entry, "mine", 165)),
            StoreOp::PutMessage(m6),
        ],
    )
    .await;
    assert_eq!(summaries(store).await[0], ("c-1".into(), some("m-6"), 1));

    // Only what `messages` shows counts: below a floor, nothing.
    let late = edited(&server("d-1", "c-4", OTHER, 10), "edited long after", 170);
    apply(
        store,
        vec![
            StoreOp::PutConversation(conversation("c-4", "Gap", 8)),
            StoreOp::PutMessage(late),
        ],
    )
    .await;
    let listed = summaries(store).await;
    let c4 = listed
        .iter()
        .find(|(id, ..)| id == "c-4")
        .expect("c-4 listed");
    assert_eq!(c4, &("c-4".into(), None, 0));
}

/// Counting unread messages stops at [`ConversationSummary::UNREAD_MAX`], and at the user's own
/// newest message however far below it the read marker lies; the last message is the newest
/// either way.
pub async fn unread_counts_stop_at_their_maximum<S: Store>(store: &S) {
    let max = ConversationSummary::UNREAD_MAX;
    whole_history(store, &["c-many", "c-mine"]).await;
    let mut ops = vec![
        StoreOp::PutConversation(conversation("c-many", "Busy", 5)),
        StoreOp::PutConversation(conversation("c-mine", "Chatty", 6)),
        StoreOp::PutReadMarker(marker("c-mine", ME, "r-500", 501)),
    ];
    let many = max as Millis + 30;
    for n in 0..many {
        ops.push(StoreOp::PutMessage(server(
            &format!("b-{n}"),
            "c-many",
            OTHER,
            1_000 + n,
        )));
    }
    ops.push(StoreOp::PutMessage(server("r-500", "c-mine", OTHER, 500)));
    for n in 0..(max as Millis + 50) {
        ops.push(StoreOp::PutMessage(server(
            &format!("a-{n}"),
            "c-mine",
            ME,
            501 + n,
        )));
    }
    for n in 0..3 {
        ops.push(StoreOp::PutMessage(server(
            &format!("o-{n}"),
            "c-mine",
            OTHER,
            900 + n,
        )));
    }
    ops.push(StoreOp::PutMessage(tombstone(
        &server("gone", "c-mine", OTHER, 950),
        951,
    )));
    apply(store, ops).await;
    let listed = summaries(store).await;
    let last = format!("b-{}", many - 1);
    assert_eq!(
        listed,
        [
            ("c-many".into(), Some(last), max),
            ("c-mine".into(), Some("o-2".into()), 3),
        ]
    );
}

/// Eviction raises the floor of each conversation it took messages from to the oldest kept one,
/// so an older message stored later (an edit the feed brings) is not shown above a gap until
/// back-fill reaches it; an `Unknown` floor stays.
pub async fn evict_history_raises_the_floor_to_the_oldest_kept_message<S: Store>(store: &S) {
    let messages_of = |conversation: &str| {
        [10, 20, 30, 40].map(|ts| server(&format!("{conversation}-{ts}"), conversation, OTHER, ts))
    };
    let [m10, m20, m30, m40] = messages_of("c-1");
    let mut ops = vec![
        StoreOp::PutConversation(conversation("c-1", "General", 5)),
        StoreOp::PutConversation(conversation("c-2", "Short", 5)),
        StoreOp::PutConversation(conversation("c-3", "Joined", 5)),
    ];
    for conversation in ["c-1", "c-2", "c-3"] {
        let kept = if conversation == "c-2" { 2 } else { 4 };
        let messages = messages_of(conversation);
        ops.extend(
            messages[4 - kept..]
                .iter()
                .cloned()
                .map(StoreOp::PutMessage),
        );
    }
    ops.push(extend("c-1", HistoryFloor::Unknown, HistoryFloor::Complete));
    ops.push(extend("c-2", HistoryFloor::Unknown, HistoryFloor::Complete));
    apply(store, ops).await;

    let report = apply(store, vec![StoreOp::EvictHistory { keep: 2 }]).await;
    assert_eq!(report.evicted_messages, 4);
    assert_eq!(floor(store, "c-1").await, at(&m30));
    assert_eq!(floor(store, "c-2").await, HistoryFloor::Complete);
    assert_eq!(floor(store, "c-3").await, HistoryFloor::Unknown);

    let late_edit = edited(&m10, "edited later", 50);
    apply(store, vec![StoreOp::PutMessage(late_edit.clone())]).await;
    assert_eq!(
        all_messages(store, "c-1").await,
        vec![m30.clone(), m40.clone()]
    );

    // Back-fill below the floor: the gap filled, everything shown.
    apply(
        store,
        vec![
            StoreOp::PutMessage(m20.clone()),
            StoreOp::PutMessage(m10.clone()),
            extend("c-1", at(&m30), HistoryFloor::Complete),
        ],
    )
    .await;
    assert_eq!(
        all_messages(store, "c-1").await,
        vec![late_edit, m20, m30, m40]
    );
}

/// `RestartHistory` sends the floor it names back to `Unknown` (nothing shown until back-fill
/// starts again from the newest message) and leaves any other floor; a conversation without a
/// recorded floor counts as whole from its oldest server message, so that floor can be named.
pub async fn restart_history_forgets_only_the_floor_it_names<S: Store>(store: &S) {
    let [m10, m20] = [10, 20].map(|ts| server(&format!("m-{ts}"), "c-1", OTHER, ts));
    let restart = |from: &HistoryFloor| StoreOp::RestartHistory {
        conversation: ConversationId::new("c-1"),
        from: from.clone(),
    };
    apply(
        store,
        vec![
            StoreOp::PutConversation(conversation("c-1", "General", 5)),
            StoreOp::PutMessage(m10.clone()),
            StoreOp::PutMessage(m20.clone()),
            extend("c-1", HistoryFloor::Unknown, at(&m10)),
        ],
    )
    .await;
    apply(store, vec![restart(&at(&m20))]).await;
    assert_eq!(floor(store, "c-1").await, at(&m10), "another floor stays");
    apply(store, vec![restart(&at(&m10))]).await;
    assert_eq!(floor(store, "c-1").await, HistoryFloor::Unknown);
    assert!(all_messages(store, "c-1").await.is_empty());

    // The next back-fill, from the newest message, shows them again.
    apply(store, vec![extend("c-1", HistoryFloor::Unknown, at(&m20))]).await;
    assert_eq!(ids(&all_messages(store, "c-1").await), ["m-20"]);

    // Evicted down to one message: no floor is recorded, and the oldest kept one is the floor.
    apply(store, vec![StoreOp::EvictHistory { keep: 1 }]).await;
    apply(store, vec![restart(&at(&m20))]).await;
    assert_eq!(floor(store, "c-1").await, HistoryFloor::Unknown);
}

/// `ForgetServerData` removes what the server sent (conversations, server messages, read
/// markers, history floors) and keeps the outbox, optimistic messages and the meta record. It
/// reports the conversations it emptied, also one whose messages came without the conversation.
pub async fn forget_server_data_keeps_the_outbox_and_optimistic_messages<S: Store>(store: &S) {
    let pending = outbox("o-1", "c-1", 1);
    let mut ops = vec![
        StoreOp::PutConversation(conversation("c-1", "General", 5)),
        StoreOp::PutConversation(conversation("c-2", "Other", 6)),
        StoreOp::PutMessage(server("m-1", "c-1", OTHER, 10)),
        StoreOp::PutMessage(server("m-2", "c-2", OTHER, 11)),
        StoreOp::PutMessage(server("m-0", "c-0", OTHER, 11)),
        StoreOp::PutReadMarker(marker("c-1", OTHER, "m-1", 12)),
        StoreOp::SetCursor(Some(Cursor::new("k1"))),
        StoreOp::SetLastSync(20),
    ];
    ops.extend(compose(&pending));
    ops.push(extend("c-1", HistoryFloor::Unknown, HistoryFloor::Complete));
    apply(store, ops).await;

    let report = apply(store, vec![StoreOp::ForgetServerData]).await;
    assert_eq!(
        report.forgotten,
        ChangeSet {
            conversations: vec!["c-0".into(), "c-1".into(), "c-2".into()],
            messages: 3,
        }
    );
    assert!(conversations(store).await.is_empty());
    assert!(read_markers(store, "c-1").await.is_empty());
    assert_eq!(floor(store, "c-1").await, HistoryFloor::Unknown);
    assert_eq!(all_messages(store, "c-1").await, vec![optimistic(&pending)]);
    assert!(all_messages(store, "c-2").await.is_empty());
    let state = load(store).await;
    assert_eq!(state.outbox, vec![pending.clone()]);
    assert_eq!(
        state.cursor,
        Some(Cursor::new("k1")),
        "the meta record stays"
    );
    assert_eq!(state.last_sync, Some(20));

    // What the server sends next is stored as into an empty cache.
    apply(
        store,
        vec![
            StoreOp::PutConversation(conversation("c-1", "General", 5)),
            StoreOp::PutMessage(server("m-3", "c-1", OTHER, 13)),
            extend("c-1", HistoryFloor::Unknown, HistoryFloor::Complete),
        ],
    )
    .await;
    assert_eq!(conversation_ids(&conversations(store).await), ["c-1"]);
    assert_eq!(
        ids(&all_messages(store, "c-1").await),
        ["m-3", "optimistic o-1"]
    );
}

/// `CompactTombstones { before }` removes the tombstones written strictly before `before` and
/// nothing else, and reports the count.
pub async fn compact_tombstones_removes_only_old_tombstones<S: Store>(store: &S) {
    whole_history(store, &["c-1", "c-2"]).await;
    let old = tombstone(&server("m-1", "c-1", OTHER, 1), 10);
    let at_bound = tombstone(&server("m-2", "c-1", OTHER, 2), 20);
    let recent = tombstone(&server("m-3", "c-1", OTHER, 3), 30);
    let live = server("m-4", "c-1", OTHER, 4);
    let other_old = tombstone(&server("x-1", "c-2", OTHER, 5), 6);
    let pending = optimistic(&outbox("o-1", "c-1", 1));
    apply(
        store,
        [&old, &at_bound, &recent, &live, &other_old, &pending]
            .into_iter()
            .map(|m| StoreOp::PutMessage(m.clone()))
            .collect(),
    )
    .await;

    let report = apply(store, vec![StoreOp::CompactTombstones { before: 20 }]).await;
    assert_eq!(
        (report.evicted_messages, report.compacted_tombstones),
        (0, 2)
    );
    assert_eq!(
        all_messages(store, "c-1").await,
        vec![at_bound, recent, live, pending]
    );
    assert!(all_messages(store, "c-2").await.is_empty());

    let report = apply(store, vec![StoreOp::CompactTombstones { before: 20 }]).await;
    assert_eq!(
        (report.evicted_messages, report.compacted_tombstones),
        (0, 0)
    );
}

/// The ops of a batch after `EvictHistory` and `CompactTombstones` see what those removed: a
/// version older than the one removed is stored, as into a cache that never held it.
pub async fn later_ops_of_a_batch_see_what_maintenance_removed<S: Store>(store: &S) {
    whole_history(store, &["c-1"]).await;
    let m10 = server("m-10", "c-1", OTHER, 10);
    let m20 = server("m-20", "c-1", OTHER, 20);
    let m30 = server("m-30", "c-1", OTHER, 30);
    apply(
        store,
        vec![
            StoreOp::PutMessage(edited(&m10, "edited", 50)),
            StoreOp::PutMessage(m20.clone()),
            StoreOp::PutMessage(tombstone(&m30, 40)),
        ],
    )
    .await;
    let report = apply(
        store,
        vec![
            StoreOp::EvictHistory { keep: 2 },
            StoreOp::PutMessage(m10.clone()),
            StoreOp::CompactTombstones { before: 41 },
            StoreOp::PutMessage(tombstone(&m30, 35)),
        ],
    )
    .await;
    assert_eq!(
        (report.evicted_messages, report.compacted_tombstones),
        (1, 1)
    );
    assert_eq!(
        all_messages(store, "c-1").await,
        vec![m10, m20, tombstone(&m30, 35)]
    );
}

/// A deletion wins over an edit written before it, even one delivered later; the tombstone is
/// listed until compaction removes it.
pub async fn tombstone_supersedes_older_edit_and_is_kept_until_compacted<S: Store>(store: &S) {
    whole_history(store, &["c-1"]).await;
    let original = server("m-1", "c-1", OTHER, 100);
    let late_edit = edited(&original, "edited", 200);
    let deleted = tombstone(&original, 300);
    apply(store, vec![StoreOp::PutMessage(original.clone())]).await;
    apply(store, vec![StoreOp::PutMessage(deleted.clone())]).await;
    apply(
        store,
        vec![
            StoreOp::PutMessage(late_edit),
            StoreOp::PutMessage(original),
        ],
    )
    .await;
    assert_eq!(all_messages(store, "c-1").await, vec![deleted.clone()]);

    let report = apply(store, vec![StoreOp::CompactTombstones { before: 300 }]).await;
    assert_eq!(report.compacted_tombstones, 0);
    assert_eq!(all_messages(store, "c-1").await, vec![deleted]);

    let report = apply(store, vec![StoreOp::CompactTombstones { before: 301 }]).await;
    assert_eq!(report.compacted_tombstones, 1);
    assert!(all_messages(store, "c-1").await.is_empty());
}

/// Writes one test function per contract check (named after the check) that runs it on a fresh
/// store.
///
/// Arguments: the test attribute(s), then a closure-like `|name| <async block>` that makes a fresh,
/// empty store (`name` is a `&'static str` unique per test, the check's name, e.g. for a database
/// name; a persistent store should delete any database of that name first), then how to run it:
///
/// - `async` when the attribute runs `async fn` tests (`#[wasm_bindgen_test]`, `#[tokio::test]`);
/// - a blocking executor, `block_on(future)`, for plain `#[test]` (`pollster::block_on`,
///   `futures::executor::block_on`).
///
/// ```ignore
/// chat_sync_engine::store_contract_tests!(
///     #[test]
///     |_name| async { chat_sync_engine::MemoryStore::new() },
///     pollster::block_on
/// );
///
/// chat_sync_engine::store_contract_tests!(
///     #[wasm_bindgen_test]
///     |name| async move { IndexedDbStore::open(name).await.unwrap() },
///     async
/// );
/// ```
///
/// The functions are written where the macro is invoked; invoke it inside a `mod` to keep their
/// names apart from other tests.
#[macro_export]
macro_rules! store_contract_tests {
    ($(#[$attr:meta])+ $(,)? |$name:pat_param| $make:expr, async $(,)?) => {
        $crate::store_contract_tests!(@checks (async) [$(#[$attr])+] ($name) ($make));
    };
    ($(#[$attr:meta])+ $(,)? |$name:pat_param| $make:expr, $block_on:expr $(,)?) => {
        $crate::store_contract_tests!(@checks (sync $block_on) [$(#[$attr])+] ($name) ($make));
    };
    (@checks $run:tt $attrs:tt $name:tt $make:tt) => {
        $crate::store_contract_tests!(@each $run $attrs $name $make [
            empty_store_is_empty
            last_write_wins_for_messages
            last_write_wins_across_a_crowded_conversation
            server_copy_replaces_optimistic_message
            optimistic_never_overwrites_server_message
            remove_optimistic_keeps_server_message
            conversations_and_read_markers_last_write_wins
            outbox_round_trips_through_load_in_seq_order
            restamp_outbox_moves_only_pending_entries
            expire_outbox_acts_on_what_the_store_holds
            retry_outbox_queues_only_failed_entries
            discard_outbox_removes_only_failed_entries
            cursor_and_meta_round_trip
            batch_ops_apply_in_order
            messages_page_newest_first_window_in_ascending_order
            conversations_ordered_by_latest_activity
            conversation_summaries_show_last_message_and_unread_count
            unread_counts_stop_at_their_maximum
            activity_follows_the_messages_a_conversation_holds
            evict_history_keeps_newest_server_messages_and_all_optimistic
            history_floor_moves_down_as_history_extends
            evict_history_raises_the_floor_to_the_oldest_kept_message
            restart_history_forgets_only_the_floor_it_names
            forget_server_data_keeps_the_outbox_and_optimistic_messages
            compact_tombstones_removes_only_old_tombstones
            later_ops_of_a_batch_see_what_maintenance_removed
            tombstone_supersedes_older_edit_and_is_kept_until_compacted
        ]);
    };
    (@each $run:tt $attrs:tt $name:tt $make:tt [$($check:ident)*]) => {
        $( $crate::store_contract_tests!(@one $run $attrs $name $make $check); )*
    };
    (@one (async) [$(#[$attr:meta])+] ($name:pat_param) ($make:expr) $check:ident) => {
        $(#[$attr])+
        async fn $check() {
            #[allow(unused_variables)]
            let $name: &'static str = ::core::stringify!($check);
            let store = $make.await;
            $crate::contract::$check(&store).await;
        }
    };
    (@one (sync $block_on:expr) [$(#[$attr:meta])+] ($name:pat_param) ($make:expr) $check:ident) => {
        $(#[$attr])+
        fn $check() {
            $block_on(async {
                #[allow(unused_variables)]
                let $name: &'static str = ::core::stringify!($check);
                let store = $make.await;
                $crate::contract::$check(&store).await;
            })
        }
    };
}
