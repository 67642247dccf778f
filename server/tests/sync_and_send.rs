//! The protocol's core promises, driven through `app()`: the change feed, history back-fill,
//! idempotent sends, edits and deletes, read markers, conversations, and membership isolation.

mod common;

use axum::http::StatusCode;
use chat_sync_protocol::{
    Change, ConversationsResponse, Cursor, FeedPage, HistoryPage, MeResponse, Message, ReadMarker,
};
use common::*;
use serde_json::json;
use std::collections::HashSet;

fn bodies(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

#[tokio::test]
async fn me_names_the_token_owner() {
    let app = TestApp::new();
    let me: MeResponse = app.get("/v1/me", BOB).await.json();
    assert_eq!(me.user.id.as_str(), "u-bob");
}

#[tokio::test]
async fn initial_sync_pages_through_every_change_in_server_order() {
    let app = TestApp::new();
    for n in 0..25 {
        let reply = app
            .send(ALICE, &app.ab, &format!("m{n}"), &format!("hello {n}"))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let (changes, _) = app.drain_feed("/v1/sync", ALICE, None, 4).await;
    assert!(
        matches!(&changes[0], Change::Conversation { conversation } if conversation.id == app.ab)
    );
    let got = messages(&changes);
    let expected: Vec<String> = (0..25).map(|n| format!("hello {n}")).collect();
    assert_eq!(bodies(&got), expected);
    let stamps: Vec<i64> = got.iter().map(|m| m.server_ts).collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
}

#[tokio::test]
async fn resuming_from_a_cursor_returns_only_newer_changes_once() {
    let app = TestApp::new();
    app.send(ALICE, &app.ab, "a1", "first").await;
    let (_, cursor) = app.drain_feed("/v1/sync", BOB, None, 10).await;
    // Nothing new: the same cursor comes back with no changes.
    let (none, same) = app.drain_feed("/v1/sync", BOB, Some(&cursor), 10).await;
    assert!(none.is_empty());
    assert_eq!(same, cursor);
    app.send(ALICE, &app.ab, "a2", "second").await;
    let (changes, next) = app.drain_feed("/v1/sync", BOB, Some(&cursor), 10).await;
    assert_eq!(bodies(&messages(&changes)), ["second"]);
    assert_ne!(next, cursor);
    // Re-reading from the old cursor is repeatable.
    let (again, _) = app.drain_feed("/v1/sync", BOB, Some(&cursor), 10).await;
    assert_eq!(again, changes);
}

#[tokio::test]
async fn a_message_edited_after_the_cursor_arrives_once_in_its_latest_state() {
    let app = TestApp::new();
    let (_, cursor) = app.drain_feed("/v1/sync", BOB, None, 10).await;
    let sent = app.send(ALICE, &app.ab, "a1", "draft").await.message();
    app.send(ALICE, &app.ab, "a2", "other").await;
    app.advance(1);
    let path = format!("/v1/conversations/{}/messages/{}", app.ab, sent.id);
    let edited = app.patch(&path, ALICE, json!({ "body": "final" })).await;
    assert_eq!(edited.status, StatusCode::OK);
    let (changes, _) = app.drain_feed("/v1/sync", BOB, Some(&cursor), 10).await;
    let got = messages(&changes);
    // Compacted: "other" first, then the edited message at the position of its latest write.
    assert_eq!(bodies(&got), ["other", "final"]);
    assert!(got[1].edited);
    assert!(got[1].updated_ts > got[1].server_ts);
}

#[tokio::test]
async fn deletes_reach_the_feed_as_tombstones() {
    let app = TestApp::new();
    let sent = app.send(ALICE, &app.ab, "a1", "oops").await.message();
    let (_, cursor) = app.drain_feed("/v1/sync", BOB, None, 10).await;
    app.advance(1);
    let path = format!("/v1/conversations/{}/messages/{}", app.ab, sent.id);
    let deleted = app.delete(&path, ALICE).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let (changes, _) = app.drain_feed("/v1/sync", BOB, Some(&cursor), 10).await;
    let tombstone = &messages(&changes)[0];
    assert_eq!(tombstone.id, sent.id);
    assert!(tombstone.deleted);
    assert_eq!(tombstone.body, "");
    // Deleting again is idempotent: same tombstone, no new change.
    let again = app.delete(&path, ALICE).await.message();
    assert_eq!(&again, tombstone);
    let (_, after) = app.drain_feed("/v1/sync", BOB, None, 100).await;
    let (nothing, _) = app.drain_feed("/v1/sync", BOB, Some(&after), 10).await;
    assert!(nothing.is_empty());
    // And an edit after the delete loses: the delete is the later write.
    let edit = app
        .patch(&path, ALICE, json!({ "body": "resurrect" }))
        .await;
    assert_eq!(edit.status, StatusCode::CONFLICT);
    assert_eq!(edit.error_code(), "message_deleted");
}

#[tokio::test]
async fn repeating_an_edit_with_the_same_body_writes_nothing() {
    let app = TestApp::new();
    let sent = app.send(ALICE, &app.ab, "a1", "v1").await.message();
    let path = format!("/v1/conversations/{}/messages/{}", app.ab, sent.id);
    app.advance(1);
    let first = app
        .patch(&path, ALICE, json!({ "body": "v2" }))
        .await
        .message();
    app.advance(1);
    let second = app
        .patch(&path, ALICE, json!({ "body": "v2" }))
        .await
        .message();
    assert_eq!(first, second);
}

#[tokio::test]
async fn conversation_feed_starts_from_a_global_cursor_and_continues_from_its_own() {
    let app = TestApp::new();
    let (_, global) = app.drain_feed("/v1/sync", BOB, None, 10).await;
    app.send(BOB, &app.ab, "b1", "to alice").await;
    app.send(BOB, &app.bc, "b2", "to carol").await;
    // A global cursor starts a conversation's feed, which holds only that conversation.
    let path = format!("/v1/conversations/{}/sync", app.bc);
    let (changes, cursor) = app.drain_feed(&path, BOB, Some(&global), 1).await;
    assert!(changes.iter().all(|c| c.conversation_id() == &app.bc));
    assert_eq!(bodies(&messages(&changes)), ["to carol"]);
    // Its own cursor continues it.
    app.send(BOB, &app.bc, "b3", "later to carol").await;
    app.send(BOB, &app.ab, "b4", "later to alice").await;
    let (later, _) = app.drain_feed(&path, BOB, Some(&cursor), 1).await;
    assert_eq!(bodies(&messages(&later)), ["later to carol"]);
    // The global feed goes on from the global cursor: reading one conversation skipped nothing.
    let (all, _) = app.drain_feed("/v1/sync", BOB, Some(&global), 1).await;
    assert_eq!(
        bodies(&messages(&all)),
        ["to alice", "to carol", "later to carol", "later to alice"]
    );
}

#[tokio::test]
async fn history_pages_back_newest_first_without_gaps_or_repeats() {
    let app = TestApp::new();
    for n in 0..23 {
        app.send(ALICE, &app.ab, &format!("m{n}"), &format!("{n}"))
            .await;
    }
    let path = format!("/v1/conversations/{}/messages", app.ab);
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let url = match &before {
            Some(before) => format!("{path}?limit=5&before={before}"),
            None => format!("{path}?limit=5"),
        };
        let page: HistoryPage = app.get(&url, BOB).await.json();
        assert!(page.messages.len() <= 5);
        seen.extend(page.messages.iter().map(|m| m.body.clone()));
        assert_eq!(page.has_more, page.next_before.is_some());
        match page.next_before {
            Some(next) => before = Some(next.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..23).rev().map(|n| n.to_string()).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn oversized_page_limits_are_capped() {
    let app = TestApp::new();
    for n in 0..3 {
        app.send(ALICE, &app.ab, &format!("m{n}"), "x").await;
    }
    let page: FeedPage = app.get("/v1/sync?limit=100000", ALICE).await.json();
    assert_eq!(messages(&page.changes).len(), 3);
    assert!(!page.has_more);
    let history = app
        .get(
            &format!("/v1/conversations/{}/messages?limit=100000", app.ab),
            ALICE,
        )
        .await;
    assert_eq!(history.status, StatusCode::OK);
}

#[tokio::test]
async fn the_same_client_message_id_sent_100_times_creates_one_message() {
    let app = TestApp::new();
    let first = app.send(ALICE, &app.ab, "once", "exactly once").await;
    assert_eq!(first.status, StatusCode::CREATED);
    let original = first.message();
    for _ in 0..99 {
        let replay = app.send(ALICE, &app.ab, "once", "exactly once").await;
        assert_eq!(replay.status, StatusCode::OK);
        assert_eq!(replay.message(), original);
    }
    let (changes, _) = app.drain_feed("/v1/sync", BOB, None, 50).await;
    assert_eq!(messages(&changes), vec![original]);
}

#[tokio::test]
async fn a_replay_after_an_edit_returns_the_current_message() {
    let app = TestApp::new();
    let sent = app.send(ALICE, &app.ab, "x1", "typo").await.message();
    let path = format!("/v1/conversations/{}/messages/{}", app.ab, sent.id);
    app.patch(&path, ALICE, json!({ "body": "fixed" })).await;
    let replay = app.send(ALICE, &app.ab, "x1", "typo").await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.message().body, "fixed");
}

#[tokio::test]
async fn client_message_ids_are_scoped_per_sender() {
    let app = TestApp::new();
    let a = app.send(ALICE, &app.ab, "same", "from alice").await;
    let b = app.send(BOB, &app.ab, "same", "from bob").await;
    assert_eq!(
        (a.status, b.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_ne!(a.message().id, b.message().id);
}

#[tokio::test]
async fn read_markers_only_move_forward_and_reach_the_other_members() {
    let app = TestApp::new();
    let older = app.send(ALICE, &app.ab, "a1", "one").await.message();
    let newer = app.send(ALICE, &app.ab, "a2", "two").await.message();
    let path = format!("/v1/conversations/{}/read", app.ab);
    let marker: ReadMarker = serde_json::from_value(
        app.post(&path, BOB, json!({ "messageId": newer.id }))
            .await
            .body["readMarker"]
            .clone(),
    )
    .expect("read marker");
    assert_eq!(marker.last_read_message_id, newer.id);
    let back = app.post(&path, BOB, json!({ "messageId": older.id })).await;
    assert_eq!(back.status, StatusCode::OK);
    assert_eq!(
        back.body["readMarker"]["lastReadMessageId"],
        newer.id.as_str()
    );
    let (changes, _) = app.drain_feed("/v1/sync", ALICE, None, 50).await;
    let markers: Vec<&ReadMarker> = changes
        .iter()
        .filter_map(|c| match c {
            Change::ReadMarker { read_marker } => Some(read_marker),
            _ => None,
        })
        .collect();
    assert_eq!(markers, vec![&marker]);
}

#[tokio::test]
async fn created_conversations_reach_every_member_and_only_them() {
    let app = TestApp::new();
    let reply = app
        .post(
            "/v1/conversations",
            CAROL,
            json!({ "title": " Lunch ", "memberIds": ["u-alice", "u-carol"] }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let id = reply.body["conversation"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(reply.body["conversation"]["title"], "Lunch");
    let list: ConversationsResponse = app.get("/v1/conversations", ALICE).await.json();
    let lunch = list
        .conversations
        .iter()
        .find(|c| c.id.as_str() == id)
        .expect("alice sees it");
    let members: Vec<&str> = lunch.members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(members, ["u-alice", "u-carol"]);
    let bobs: ConversationsResponse = app.get("/v1/conversations", BOB).await.json();
    assert!(bobs.conversations.iter().all(|c| c.id.as_str() != id));
}

#[tokio::test]
async fn repeating_a_create_makes_a_second_conversation_as_documented() {
    let app = TestApp::new();
    let create = json!({ "title": "Lunch", "memberIds": ["u-bob"] });
    for _ in 0..2 {
        let reply = app.post("/v1/conversations", ALICE, create.clone()).await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let list: ConversationsResponse = app.get("/v1/conversations", ALICE).await.json();
    let lunches = list.conversations.iter().filter(|c| c.title == "Lunch");
    assert_eq!(
        lunches.count(),
        2,
        "a create is not idempotent: no blind retries"
    );
}

#[tokio::test]
async fn a_user_never_reads_or_writes_conversations_they_are_not_in() {
    let app = TestApp::new();
    let secret = app.send(BOB, &app.bc, "b1", "secret").await.message();
    let own = app.send(ALICE, &app.ab, "a1", "mine").await.message();
    let bc = &app.bc;

    // The feed never carries the foreign conversation.
    let (changes, _) = app.drain_feed("/v1/sync", ALICE, None, 50).await;
    assert!(changes.iter().all(|c| c.conversation_id() == &app.ab));

    // Every endpoint answers a guessed id exactly like a missing one.
    let attempts = [
        app.get(&format!("/v1/conversations/{bc}/sync"), ALICE)
            .await,
        app.get(&format!("/v1/conversations/{bc}/messages"), ALICE)
            .await,
        app.send(ALICE, bc, "a2", "intrude").await,
        app.patch(
            &format!("/v1/conversations/{bc}/messages/{}", secret.id),
            ALICE,
            json!({ "body": "x" }),
        )
        .await,
        app.delete(
            &format!("/v1/conversations/{bc}/messages/{}", secret.id),
            ALICE,
        )
        .await,
        app.post(
            &format!("/v1/conversations/{bc}/read"),
            ALICE,
            json!({ "messageId": secret.id }),
        )
        .await,
        app.get("/v1/conversations/c-does-not-exist/messages", ALICE)
            .await,
    ];
    for reply in &attempts {
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.body);
        assert_eq!(reply.error_code(), "conversation_not_found");
    }
    // A foreign message id under one's own conversation is not found either.
    let cross = app
        .patch(
            &format!("/v1/conversations/{}/messages/{}", app.ab, secret.id),
            ALICE,
            json!({ "body": "x" }),
        )
        .await;
    assert_eq!(cross.error_code(), "message_not_found");

    // Nothing changed for carol: her conversation holds bob's message only.
    let (carols, _) = app.drain_feed("/v1/sync", CAROL, None, 50).await;
    let seen = messages(&carols);
    assert_eq!(seen, vec![secret]);
    assert!(!seen.contains(&own));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_paging_with_small_limits_during_concurrent_writes_sees_every_change_once() {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 60;
    let app = std::sync::Arc::new(TestApp::new());
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let app = app.clone();
        writers.push(tokio::spawn(async move {
            let (token, conversation) = match w % 2 {
                0 => (ALICE, app.ab.clone()),
                _ => (BOB, app.ab.clone()),
            };
            for n in 0..PER_WRITER {
                let id = format!("w{w}-{n}");
                let reply = app.send(token, &conversation, &id, &id).await;
                assert!(reply.status.is_success(), "{:?}", reply.body);
                if n % 10 == 0 {
                    // Edits move messages to the end of the log while the reader pages.
                    let message = reply.message();
                    let path = format!("/v1/conversations/{conversation}/messages/{}", message.id);
                    app.patch(&path, token, json!({ "body": format!("{id} edited") }))
                        .await;
                }
            }
        }));
    }
    let mut cursor: Option<Cursor> = None;
    let mut seen: Vec<Message> = Vec::new();
    let mut writers_done = false;
    loop {
        let (changes, next) = app.drain_feed("/v1/sync", BOB, cursor.as_ref(), 3).await;
        seen.extend(messages(&changes));
        cursor = Some(next);
        if writers_done {
            break;
        }
        writers_done = writers.iter().all(|w| w.is_finished());
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.expect("writer succeeded");
    }
    // Latest state per message: every message arrived, the final state is the edited one, and
    // no (message, version) pair arrived twice.
    let versions: HashSet<(String, i64)> = seen
        .iter()
        .map(|m| (m.id.to_string(), m.updated_ts))
        .collect();
    assert_eq!(versions.len(), seen.len(), "a change was delivered twice");
    let mut latest = std::collections::HashMap::new();
    for message in &seen {
        latest.insert(message.client_message_id.to_string(), message.body.clone());
    }
    assert_eq!(latest.len(), WRITERS * PER_WRITER, "a message was skipped");
    for (client_id, body) in &latest {
        let edited = client_id
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n % 10 == 0);
        let expected = if edited {
            format!("{client_id} edited")
        } else {
            client_id.clone()
        };
        assert_eq!(body, &expected, "stale final state of {client_id}");
    }
}

#[tokio::test]
async fn history_continues_below_a_cached_message_with_before_message() {
    let app = TestApp::new();
    let mut sent = Vec::new();
    for n in 0..6 {
        sent.push(
            app.send(ALICE, &app.ab, &format!("m{n}"), &format!("{n}"))
                .await
                .message(),
        );
    }
    let path = format!("/v1/conversations/{}/messages", app.ab);
    let page: HistoryPage = app
        .get(&format!("{path}?beforeMessage={}&limit=2", sent[4].id), BOB)
        .await
        .json();
    assert_eq!(bodies(&page.messages), ["3", "2"]);
    assert!(page.has_more);
    let both = app
        .get(
            &format!("{path}?beforeMessage={}&before=h2.x.1.1", sent[4].id),
            BOB,
        )
        .await;
    assert_eq!(both.error_code(), "invalid_query");
    let foreign = app.send(BOB, &app.bc, "b1", "elsewhere").await.message();
    let unknown = app
        .get(&format!("{path}?beforeMessage={}", foreign.id), BOB)
        .await;
    assert_eq!(unknown.error_code(), "message_not_found");
}
