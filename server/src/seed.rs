//! `--seed-demo`: a few users, conversations and a few thousand messages, so the demo is alive.
//!
//! Deterministic (a fixed random seed), written through the [`Storage`] trait like any client
//! write, one transaction per write, and idempotent: each step finds what an earlier run wrote
//! (users, conversations, messages by their `clientMessageId`) and writes only what is missing.
//! So a seed that died halfway (the server killed) is completed by the next run, and a complete
//! one is left as it is.

use crate::storage::{Storage, StorageError};
use chat_sync_protocol::{ClientMessageId, ConversationId, MessageId, Millis, User, UserId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The demo users: `(id, display name, token)`.
pub const DEMO_USERS: [(&str, &str, &str); 5] = [
    ("u-alice", "Alice Martin", "demo-alice"),
    ("u-bob", "Bob Chen", "demo-bob"),
    ("u-carol", "Carol Díaz", "demo-carol"),
    ("u-dave", "Dave Okafor", "demo-dave"),
    ("u-erin", "Erin Schulz", "demo-erin"),
];

/// The demo conversations: title and member indexes into [`DEMO_USERS`] (the first creates it).
const CONVERSATIONS: [(&str, &[usize]); 6] = [
    ("General", &[0, 1, 2, 3, 4]),
    ("Alice & Bob", &[0, 1]),
    ("Project Phoenix", &[0, 2, 3]),
    ("Weekend hiking", &[1, 2, 4]),
    ("Book club", &[0, 2, 4]),
    ("Carol & Dave", &[2, 3]),
];

/// How many messages the demo holds unless told otherwise (`--seed-demo-messages`).
pub const DEMO_MESSAGES: usize = 3_000;

/// The most messages a demo member has not read, per conversation, once seeded.
const UNREAD_AT_MOST: usize = 3;

/// How far back the demo's history reaches.
const HISTORY_MS: Millis = 14 * 24 * 60 * 60 * 1000;

const OPENERS: [&str; 12] = [
    "Quick question:",
    "Heads up,",
    "FYI",
    "Good news:",
    "Hmm,",
    "Honestly,",
    "Just saw that",
    "Reminder:",
    "Random thought:",
    "Update:",
    "So",
    "Okay,",
];
const TOPICS: [&str; 16] = [
    "the deploy went out without a hitch",
    "are we still on for Thursday?",
    "the coffee machine on 3rd floor is fixed",
    "I pushed the draft to the shared folder",
    "can someone review the sync PR today?",
    "the trail looks muddy after the rain",
    "chapter 7 was better than I expected",
    "lunch at the noodle place at 12:30?",
    "the metrics dashboard shows a spike at 9am",
    "I'll be offline on the train for an hour",
    "let's move the standup to 10",
    "the new offline mode works on my phone 🎉",
    "who has the spare keys?",
    "tickets are booked for Saturday",
    "the design review notes are in the doc",
    "I can't reproduce the bug anymore",
];

/// What seeding wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// Users created.
    pub users: usize,
    /// Conversations created.
    pub conversations: usize,
    /// Messages created.
    pub messages: usize,
}

/// Writes what is missing of the demo data, [`DEMO_MESSAGES`] messages; `None` when nothing was.
pub fn seed_demo(storage: &dyn Storage, now: Millis) -> Result<Option<SeedReport>, StorageError> {
    seed_demo_with_messages(storage, now, DEMO_MESSAGES)
}

/// Writes what is missing of the demo data with `messages` messages spread over the last two
/// weeks (tests use tens of thousands for a large backlog); `None` when nothing was.
pub fn seed_demo_with_messages(
    storage: &dyn Storage,
    now: Millis,
    messages: usize,
) -> Result<Option<SeedReport>, StorageError> {
    let mut report = SeedReport::default();
    let start = now - HISTORY_MS;
    for (id, name, token) in DEMO_USERS {
        let user = User {
            id: UserId::new(id),
            display_name: name.into(),
        };
        match storage.create_user(&user, token, start) {
            Ok(()) => report.users += 1,
            Err(StorageError::UserExists(_)) => {}
            Err(error) => return Err(error),
        }
    }
    let user_id = |index: usize| UserId::new(DEMO_USERS[index].0);
    let mut conversations: Vec<(ConversationId, &[usize])> = Vec::new();
    for (title, members) in CONVERSATIONS {
        let creator = user_id(members[0]);
        let others: Vec<UserId> = members[1..].iter().map(|&m| user_id(m)).collect();
        let mut ids: Vec<&UserId> = others.iter().chain([&creator]).collect();
        ids.sort();
        let seeded = storage
            .conversations(&creator)?
            .into_iter()
            .find(|conversation| {
                let mut found: Vec<&UserId> = conversation.members.iter().map(|m| &m.id).collect();
                found.sort();
                conversation.title == title && found == ids
            });
        let conversation = match seeded {
            Some(conversation) => conversation,
            None => {
                report.conversations += 1;
                storage.create_conversation(&creator, title, &others, start)?
            }
        };
        conversations.push((conversation.id, members));
    }

    let mut rng = SmallRng::seed_from_u64(7);
    // Per conversation, its newest messages (the last few, not deleted), for the read markers
    // the members end with.
    let mut newest: Vec<Vec<(MessageId, Millis)>> = vec![Vec::new(); conversations.len()];
    // At least 2 ms apart, so that every message has room for its edit and read stamps.
    let step = (HISTORY_MS / messages.max(1) as Millis).max(2);
    for n in 0..messages {
        // "General" is the busiest conversation.
        let index = if rng.random_bool(0.35) {
            0
        } else {
            rng.random_range(0..conversations.len())
        };
        let (conversation, members) = &conversations[index];
        let sender = user_id(members[rng.random_range(0..members.len())]);
        let body = format!(
            "{} {}",
            OPENERS[rng.random_range(0..OPENERS.len())],
            TOPICS[rng.random_range(0..TOPICS.len())]
        );
        let ts = start + n as Millis * step + rng.random_range(0..step / 2);
        // Drawn before the send, so that a run that writes nothing draws as one that writes.
        let reader = (n % 5 == 0).then(|| user_id(members[rng.random_range(0..members.len())]));
        let client_id = ClientMessageId::new(format!("seed-{n:05}"));
        let sent = match storage.send_message(&sender, conversation, &client_id, &body, ts) {
            Ok(sent) => sent,
            // An earlier run with another message count wrote another message under this id.
            Err(StorageError::ClientMessageIdConflict(_)) => continue,
            Err(error) => return Err(error),
        };
        let id = sent.message.id.clone();
        if sent.created {
            report.messages += 1;
            if n % 97 == 13 {
                let edited = format!("{body} (edited)");
                storage.edit_message(&sender, conversation, &id, &edited, ts + 1)?;
            } else if n % 211 == 17 {
                storage.delete_message(&sender, conversation, &id, ts + 1)?;
            }
            // Members read along now and then, so unread counts differ.
            if let Some(reader) = reader {
                storage.mark_read(&reader, conversation, &id, ts + 2)?;
            }
        }
        // (A message an earlier run wrote is left as it is: with its edit or delete if that run
        // got that far, or as a demo user changed it since.)
        if n % 97 != 13 && n % 211 != 17 && !sent.message.deleted {
            let kept = &mut newest[index];
            kept.push((id, ts));
            if kept.len() > UNREAD_AT_MOST + 1 {
                kept.remove(0);
            }
        }
    }
    // Everyone has read nearly everything: each member a few messages short at most, so the
    // demo's unread counts are small and differ.
    for ((conversation, members), kept) in conversations.iter().zip(&newest) {
        for &member in members.iter() {
            if kept.is_empty() {
                continue;
            }
            let behind = rng.random_range(0..kept.len());
            let (message, ts) = &kept[kept.len() - 1 - behind];
            storage.mark_read(&user_id(member), conversation, message, ts + 2)?;
        }
    }
    Ok((report != SeedReport::default()).then_some(report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FeedScope, SqliteStorage};
    use chat_sync_protocol::{Change, Message};
    use std::collections::BTreeMap;

    const NOW: Millis = 1_764_000_000_000;

    /// Every message a demo user can see, by id.
    fn messages(storage: &dyn Storage) -> BTreeMap<MessageId, Message> {
        let mut messages = BTreeMap::new();
        for (id, _, _) in DEMO_USERS {
            let scope = FeedScope::AllConversations;
            let feed = storage.feed(&id.into(), &scope, 0, u32::MAX).expect("feed");
            for change in feed.changes {
                if let Change::Message { message } = change {
                    messages.insert(message.id.clone(), message);
                }
            }
        }
        messages
    }

    fn open() -> SqliteStorage {
        SqliteStorage::open(":memory:").expect("in-memory database")
    }

    #[test]
    fn a_seed_that_died_halfway_is_completed_by_the_next_run() {
        let whole = open();
        seed_demo_with_messages(&whole, NOW, 300).expect("seeds");

        // Killed after writing the users: the next run writes all the rest, as one run would.
        let partial = open();
        for (id, name, token) in DEMO_USERS {
            let user = User {
                id: id.into(),
                display_name: name.into(),
            };
            partial.create_user(&user, token, NOW).expect("user");
        }
        let report = seed_demo_with_messages(&partial, NOW, 300).expect("completes");
        let expected = SeedReport {
            users: 0,
            conversations: CONVERSATIONS.len(),
            messages: 300,
        };
        assert_eq!(report, Some(expected));
        assert!(
            messages(&partial) == messages(&whole),
            "as seeded in one run"
        );

        // Complete now: a run writes nothing.
        let again = seed_demo_with_messages(&partial, NOW + 1_000, 300).expect("runs");
        assert_eq!(again, None);
    }

    #[test]
    fn a_seed_of_more_messages_adds_only_the_missing_ones() {
        let storage = open();
        seed_demo_with_messages(&storage, NOW, 100).expect("seeds");
        let report = seed_demo_with_messages(&storage, NOW, 300).expect("seeds more");
        let expected = SeedReport {
            users: 0,
            conversations: 0,
            messages: 200,
        };
        assert_eq!(report, Some(expected));
        let ids: Vec<String> = messages(&storage)
            .into_values()
            .map(|message| message.client_message_id.to_string())
            .collect();
        let once_each: Vec<String> = (0..300).map(|n| format!("seed-{n:05}")).collect();
        assert_eq!(ids, once_each);
    }
}
