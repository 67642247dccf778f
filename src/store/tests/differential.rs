//! Differential test: random batches (seeded, so a failure replays) written to IndexedDB and to
//! `MemoryStore`, the reference the engine's simulation runs on. After every batch each read
//! must answer the same from both. The contract suite checks each rule on its own; this mixes
//! them (versions, tombstones, optimistic copies, history floors, eviction, compaction) as a
//! long-lived cache
//! does, and aborts some batches half way, which must leave nothing behind.

use super::fresh;
use chat_sync_engine::protocol::{Conversation, Cursor, Message, ReadMarker, User};
use chat_sync_engine::{
    Failure, HistoryFloor, LocalMessage, MemoryStore, OutboxEntry, PendingReadMarker, Store,
    StoreOp,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use wasm_bindgen_test::*;
use web_sys::DomException;

/// This user: the sender of the optimistic copies.
const ME: &str = "u-alice";
/// Server messages `0..MESSAGES` (each has fixed ids, conversation and stamp; its versions vary).
const MESSAGES: u64 = 30;
/// Conversations `c0..c3` (`c3` never gets messages).
const CONVERSATIONS: u64 = 4;
/// Outbox entries `1..=ENTRIES`, each the optimistic copy of one of this user's messages.
const ENTRIES: u64 = 8;

fn conversation_of(n: u64) -> String {
    format!("c{}", n % 3)
}

/// Version `version` (0..=4) of server message `n`: 0 as sent, 1–3 edits, 4 a tombstone.
fn server_message(n: u64, version: i64) -> LocalMessage {
    let server_ts = 1_000 + n as i64 * 10;
    let deleted = version == 4;
    LocalMessage::from_server(Message {
        id: format!("m{n:03}").into(),
        conversation_id: conversation_of(n).into(),
        client_message_id: format!("x{n}").into(),
        sender_id: if n.is_multiple_of(2) { ME } else { "u-bob" }.into(),
        body: if deleted {
            String::new()
        } else {
            format!("m{n} v{version}")
        },
        server_ts,
        updated_ts: server_ts + version,
        edited: (1..4).contains(&version),
        deleted,
    })
}

/// Outbox entry `k`: this user's message `2k` while it waits to be sent (failed, sometimes).
fn outbox_entry(k: u64, failed: bool) -> OutboxEntry {
    OutboxEntry {
        client_message_id: format!("x{}", 2 * k).into(),
        conversation_id: conversation_of(2 * k).into(),
        body: format!("draft {k}"),
        seq: k,
        composed_at: 5_000 + k as i64,
        failure: failed.then(|| Failure {
            code: "forbidden".into(),
            message: "refused".into(),
        }),
    }
}

fn conversation(index: u64, updated_ts: i64) -> Conversation {
    Conversation {
        id: format!("c{index}").into(),
        title: format!("c{index} at {updated_ts}"),
        members: vec![User {
            id: ME.into(),
            display_name: "Alice".into(),
        }],
        created_ts: 1,
        updated_ts,
    }
}

/// A random history floor: `Unknown`, `Complete` or at one of the server messages.
fn random_floor(rng: &mut SmallRng) -> HistoryFloor {
    match rng.random_range(0..4) {
        0 => HistoryFloor::Unknown,
        1 => HistoryFloor::Complete,
        _ => HistoryFloor::at(&server_message(rng.random_range(0..MESSAGES), 0)).expect("server"),
    }
}

/// A random write, as the engine makes them: an optimistic copy exists exactly while its outbox
/// entry does, so composing, failing, discarding, delivering, restamping, expiring and retrying
/// write both.
fn random_ops(rng: &mut SmallRng) -> Vec<StoreOp> {
    let entry = rng.random_range(1..=ENTRIES);
    let optimistic =
        |entry: &OutboxEntry| StoreOp::PutMessage(LocalMessage::optimistic(entry, &ME.into()));
    let op = match rng.random_range(0..122) {
        0..40 => {
            let n = rng.random_range(0..MESSAGES);
            let message = StoreOp::PutMessage(server_message(n, rng.random_range(0..=4)));
            // This user's own message reaching the store delivers its outbox entry, if any.
            if n.is_multiple_of(2) {
                return vec![message, StoreOp::RemoveOutbox(format!("x{n}").into())];
            }
            message
        }
        40..55 => {
            // Composed (or, failed, marked so).
            let entry = outbox_entry(entry, rng.random_bool(0.2));
            return vec![StoreOp::PutOutbox(entry.clone()), optimistic(&entry)];
        }
        55..62 => {
            // Discarded.
            let client_message_id = outbox_entry(entry, false).client_message_id;
            return vec![
                StoreOp::RemoveOutbox(client_message_id.clone()),
                StoreOp::RemoveOptimistic {
                    sender: ME.into(),
                    client_message_id,
                },
            ];
        }
        62..72 => StoreOp::PutConversation(conversation(
            rng.random_range(0..CONVERSATIONS),
            rng.random_range(0..1_400),
        )),
        72..82 => {
            let updated_ts = rng.random_range(0..50);
            StoreOp::PutReadMarker(ReadMarker {
                conversation_id: format!("c{}", rng.random_range(0..CONVERSATIONS)).into(),
                user_id: if rng.random_bool(0.5) { ME } else { "u-bob" }.into(),
                last_read_message_id: format!("m{updated_ts:03}").into(),
                last_read_server_ts: 1_000 + updated_ts * 10,
                updated_ts,
            })
        }
        82..86 => StoreOp::SetCursor(
            rng.random_bool(0.8)
                .then(|| Cursor::from(format!("k{}", rng.random_range(0..100)))),
        ),
        86..88 => StoreOp::SetLastSync(rng.random_range(0..1_000)),
        88..90 => StoreOp::SetLastMaintenance(rng.random_range(0..1_000)),
        90..94 => StoreOp::SetPendingReadMarkers(
            (0..rng.random_range(0..3))
                .map(|c| PendingReadMarker {
                    conversation_id: format!("c{c}").into(),
                    message_id: format!("m{:03}", rng.random_range(0..MESSAGES)).into(),
                    server_ts: rng.random_range(1_000..1_300),
                })
                .collect(),
        ),
        94..97 => StoreOp::EvictHistory {
            keep: rng.random_range(0..6),
        },
        97..100 => StoreOp::CompactTombstones {
            before: rng.random_range(1_000..1_320),
        },
        100..106 => StoreOp::ExtendHistory {
            conversation: format!("c{}", rng.random_range(0..CONVERSATIONS)).into(),
            from: random_floor(rng),
            to: random_floor(rng),
        },
        106..108 => StoreOp::RestartHistory {
            conversation: format!("c{}", rng.random_range(0..CONVERSATIONS)).into(),
            from: random_floor(rng),
        },
        108 => StoreOp::ForgetServerData,
        109..113 => {
            // Expired by maintenance (where old enough: failed if pending, removed if failed and
            // the engine held it failed).
            let entry = outbox_entry(entry, false);
            StoreOp::ExpireOutbox {
                client_message_id: entry.client_message_id,
                conversation: entry.conversation_id,
                sender: ME.into(),
                composed_before: rng.random_range(2_000..8_000),
                failure: Failure {
                    code: "expired".into(),
                    message: "not delivered in time".into(),
                },
                failed: rng.random_bool(0.5),
            }
        }
        113..116 => {
            // Moved with the device's clock (where still pending).
            let entry = outbox_entry(entry, false);
            StoreOp::RestampOutbox {
                client_message_id: entry.client_message_id,
                conversation: entry.conversation_id,
                sender: ME.into(),
                by: rng.random_range(-3_000..3_000),
            }
        }
        116..119 => {
            // Retried by the user (where failed).
            let entry = outbox_entry(entry, false);
            StoreOp::RetryOutbox {
                client_message_id: entry.client_message_id,
                conversation: entry.conversation_id,
                sender: ME.into(),
                composed_at: rng.random_range(3_000..9_000),
            }
        }
        _ => {
            // Discarded by the user (where failed).
            let entry = outbox_entry(entry, false);
            StoreOp::DiscardOutbox {
                client_message_id: entry.client_message_id,
                conversation: entry.conversation_id,
                sender: ME.into(),
            }
        }
    };
    vec![op]
}

/// Every read the engine and the app make, from `store`, as one comparable value.
async fn reads(store: &impl Store, before: i64) -> String {
    let mut out = format!("{:?}\n", store.load().await.expect("load"));
    out += &format!(
        "{:?}\n",
        store.conversations().await.expect("conversations")
    );
    let summaries = store.conversation_summaries(&ME.into()).await;
    for summary in summaries.expect("summaries") {
        out += &format!("{summary:?}\n");
    }
    for index in 0..CONVERSATIONS {
        let id = format!("c{index}").into();
        let all = store.messages(&id, None, 1_000).await.expect("messages");
        let page = store.messages(&id, Some(before), 3).await.expect("page");
        let markers = store.read_markers(&id).await.expect("read markers");
        let floor = store.history_floor(&id).await.expect("history floor");
        out += &format!(
            "c{index}: {all:?}\n  before {before}: {page:?}\n  {markers:?}\n  {floor:?}\n"
        );
    }
    out
}

#[wasm_bindgen_test]
async fn random_batches_read_back_as_from_the_memory_store() {
    for seed in 0..10 {
        let store = fresh(&format!("differential-{seed}")).await;
        let reference = MemoryStore::new();
        let mut rng = SmallRng::seed_from_u64(seed);
        for round in 0..40 {
            let ops: Vec<StoreOp> = (0..rng.random_range(1..8))
                .flat_map(|_| random_ops(&mut rng))
                .collect();
            let context = format!("seed {seed}, batch {round}: {ops:?}");
            // One batch in eight aborts after issuing its writes (a full disk, a bad key):
            // nothing of it may remain, so the reference does not apply it at all. (An
            // `UnknownError` would be retried, and succeed.)
            if rng.random_ratio(1, 8) {
                let name = ["QuotaExceededError", "DataError"][rng.random_range(0..2)];
                let exception =
                    DomException::new_with_message_and_name("injected", name).expect("exception");
                store.inject_apply_failure(exception);
                store.apply(&ops).await.expect_err("the batch aborts");
            } else {
                let applied = store.apply(&ops).await.expect("IndexedDB apply");
                let expected = reference.apply(&ops).await.expect("reference apply");
                assert_eq!(
                    (applied.evicted_messages, &applied.evicted_from),
                    (expected.evicted_messages, &expected.evicted_from),
                    "what maintenance evicted, after {context}"
                );
                assert_eq!(
                    applied.compacted_tombstones, expected.compacted_tombstones,
                    "tombstones maintenance compacted, after {context}"
                );
                assert_eq!(
                    (&applied.outbox_expired, &applied.outbox_removed),
                    (&expected.outbox_expired, &expected.outbox_removed),
                    "outbox entries maintenance expired and removed, after {context}"
                );
                assert_eq!(
                    (&applied.outbox_retried, &applied.outbox_discarded),
                    (&expected.outbox_retried, &expected.outbox_discarded),
                    "outbox entries retried and discarded, after {context}"
                );
                assert_eq!(
                    applied.outbox_held, expected.outbox_held,
                    "outbox entries left as they were, after {context}"
                );
            }
            let before = rng.random_range(1_000..1_320);
            let (got, want) = (reads(&store, before).await, reads(&reference, before).await);
            let differences: Vec<String> = got
                .lines()
                .zip(want.lines())
                .filter(|(a, b)| a != b)
                .map(|(a, b)| format!(" IndexedDB: {a}\n reference: {b}"))
                .collect();
            assert!(
                differences.is_empty(),
                "after {context}\n{}",
                differences.join("\n")
            );
        }
        store.close();
    }
}
