//! Property tests of the merge rules: whatever order versions of a message arrive in, the store
//! ends with the newest server version, and an optimistic copy never replaces a server one.

use chat_sync_engine::{LocalMessage, MemoryStore, OutboxEntry, Store, StoreOp};
use chat_sync_protocol::{Message, Millis};
use proptest::prelude::*;

fn server_version(updated_ts: Millis, deleted: bool) -> LocalMessage {
    LocalMessage::from_server(Message {
        id: "m000000000001".into(),
        conversation_id: "c1".into(),
        client_message_id: "x1".into(),
        sender_id: "u-alice".into(),
        body: if deleted {
            String::new()
        } else {
            format!("v{updated_ts}")
        },
        server_ts: 1_000,
        updated_ts,
        edited: updated_ts > 1_000,
        deleted,
    })
}

fn optimistic() -> LocalMessage {
    let entry = OutboxEntry {
        client_message_id: "x1".into(),
        conversation_id: "c1".into(),
        body: "draft".into(),
        seq: 1,
        composed_at: 5,
        failure: None,
    };
    LocalMessage::optimistic(&entry, &"u-alice".into())
}

/// A version: `None` is the optimistic copy, `Some((stamp, deleted))` a server version.
fn versions() -> impl Strategy<Value = Vec<Option<(Millis, bool)>>> {
    prop::collection::vec(
        prop::option::weighted(0.85, (1_000i64..1_050, any::<bool>())),
        1..20,
    )
}

proptest! {
    #[test]
    fn the_newest_server_version_wins_in_any_order(versions in versions(), batch_size in 1usize..5) {
        let store = MemoryStore::new();
        let ops: Vec<StoreOp> = versions
            .iter()
            .map(|v| StoreOp::PutMessage(match v {
                Some((stamp, deleted)) => server_version(*stamp, *deleted),
                None => optimistic(),
            }))
            .collect();
        for batch in ops.chunks(batch_size) {
            pollster::block_on(store.apply(batch)).expect("applies");
        }
        let stored = store.snapshot().messages;
        prop_assert_eq!(stored.len(), 1);
        let newest = versions.iter().flatten().map(|(stamp, _)| *stamp).max();
        match newest {
            // The first version to carry the highest stamp stays: equal stamps do not replace.
            Some(stamp) => {
                let first = versions.iter().flatten().find(|(s, _)| *s == stamp).expect("exists");
                prop_assert_eq!(&stored[0], &server_version(first.0, first.1));
            }
            None => prop_assert_eq!(&stored[0], &optimistic()),
        }
    }
}
