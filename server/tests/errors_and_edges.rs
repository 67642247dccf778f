//! Error answers and edge cases of the reference server: every documented error code where
//! `docs/protocol.md` says it is answered (and a rejected write stores nothing), fault injection,
//! compression, CORS, static files, and server stamps under a clock that goes back.

mod common;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use chat_sync_protocol::limits::{MAX_BODY_BYTES, MAX_CLIENT_MESSAGE_ID_CHARS, MAX_MESSAGE_CHARS};
use chat_sync_protocol::{
    Change, ConversationId, Cursor, ErrorBody, HistoryPage, Message, MessageId, UserId,
};
use chat_sync_server::storage::{FeedScope, HistoryStart};
use chat_sync_server::{Config, FaultConfig};
use common::{Reply, TestApp, ALICE, BOB, CAROL, T0};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::io::{Read, Write};
use tower::ServiceExt;

const JSON: &str = "application/json";
/// The origin the CORS tests allow.
const ORIGIN: &str = "http://127.0.0.1:9000";

fn send_path(conversation: &ConversationId) -> String {
    format!("/v1/conversations/{conversation}/messages")
}

fn message_path(conversation: &ConversationId, message: &str) -> String {
    format!("/v1/conversations/{conversation}/messages/{message}")
}

fn read_path(conversation: &ConversationId) -> String {
    format!("/v1/conversations/{conversation}/read")
}

fn conversation_sync_path(conversation: &ConversationId) -> String {
    format!("/v1/conversations/{conversation}/sync")
}

fn send_body(client_message_id: &str, body: &str) -> Value {
    json!({ "clientMessageId": client_message_id, "body": body })
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `json` serialized and padded with trailing whitespace (still valid JSON) to exactly `len` bytes.
fn padded_json(json: &Value, len: usize) -> String {
    let mut text = json.to_string();
    assert!(
        text.len() <= len,
        "{} bytes do not fit in {len}",
        text.len()
    );
    text.push_str(&" ".repeat(len - text.len()));
    text
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// A request sent exactly as given: these headers, this body.
fn build(
    method: Method,
    path: &str,
    headers: &[(HeaderName, &str)],
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(name, *value);
    }
    builder.body(body.into()).expect("valid request")
}

/// A request with `token` and, when given, a JSON body.
fn json_request(method: Method, path: &str, token: &str, body: Option<&Value>) -> Request<Body> {
    let auth = bearer(token);
    match body {
        Some(json) => build(
            method,
            path,
            &[
                (header::AUTHORIZATION, auth.as_str()),
                (header::CONTENT_TYPE, JSON),
            ],
            json.to_string(),
        ),
        None => build(
            method,
            path,
            &[(header::AUTHORIZATION, auth.as_str())],
            Body::empty(),
        ),
    }
}

/// Alice's send to `ab` with `body` sent as it is, marked as JSON in `content_encoding`.
fn raw_send(app: &TestApp, content_encoding: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let auth = bearer(ALICE);
    let mut headers = vec![
        (header::AUTHORIZATION, auth.as_str()),
        (header::CONTENT_TYPE, JSON),
    ];
    headers.extend(content_encoding.map(|value| (header::CONTENT_ENCODING, value)));
    build(Method::POST, &send_path(&app.ab), &headers, body)
}

/// An answer whose body may fail to arrive (the fixture's `call` panics on that).
struct RawReply {
    status: StatusCode,
    headers: HeaderMap,
    body: Result<Bytes, axum::Error>,
}

impl RawReply {
    fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers
            .get(name)
            .map(|value| value.to_str().expect("ASCII header"))
    }

    fn bytes(&self) -> &Bytes {
        self.body.as_ref().expect("the body arrives")
    }
}

async fn call_raw(app: &TestApp, request: Request<Body>) -> RawReply {
    let response = app
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("router is infallible");
    let (parts, body) = response.into_parts();
    RawReply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.map(|collected| collected.to_bytes()),
    }
}

/// A request of a table: method, path and JSON body.
type Call = (Method, String, Option<Value>);

/// One request to each endpoint of `conversation` (writes carry a valid body), naming `message`
/// where the endpoint takes one.
fn conversation_calls(conversation: &ConversationId, message: &MessageId) -> Vec<Call> {
    let message_url = message_path(conversation, message.as_str());
    vec![
        (Method::GET, conversation_sync_path(conversation), None),
        (Method::GET, send_path(conversation), None),
        (
            Method::POST,
            send_path(conversation),
            Some(send_body("m-2", "hi")),
        ),
        (
            Method::PATCH,
            message_url.clone(),
            Some(json!({ "body": "edited" })),
        ),
        (Method::DELETE, message_url, None),
        (
            Method::POST,
            read_path(conversation),
            Some(json!({ "messageId": message })),
        ),
    ]
}

/// One request to every endpoint, each of which alice may make, on `message` of `ab`.
fn calls_to_every_endpoint(app: &TestApp, message: &Message) -> Vec<Call> {
    let mut calls = vec![
        (Method::GET, "/v1/me".to_owned(), None),
        (Method::GET, "/v1/sync".to_owned(), None),
        (Method::GET, "/v1/conversations".to_owned(), None),
        (
            Method::POST,
            "/v1/conversations".to_owned(),
            Some(json!({ "title": "t", "memberIds": [] })),
        ),
    ];
    calls.extend(conversation_calls(&app.ab, &message.id));
    calls
}

/// Asserts `reply` is the documented error: this status, a JSON body that is exactly
/// `{ "error": { "code", "message" } }` with this code and a non-empty message.
#[track_caller]
fn assert_error(reply: &Reply, status: StatusCode, code: &str, context: &str) {
    assert_eq!(
        (reply.status, reply.error_code()),
        (status, code),
        "{context}: {:?}",
        reply.body
    );
    assert_eq!(
        reply
            .headers
            .get(header::CONTENT_TYPE)
            .map(HeaderValue::as_bytes),
        Some(JSON.as_bytes()),
        "{context}: content type"
    );
    let error = reply.body["error"].as_object();
    let keys = error.map(|error| error.keys().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        keys,
        Some(vec!["code", "message"]),
        "{context}: {:?}",
        reply.body
    );
    assert_eq!(
        reply.body.as_object().map(|body| body.len()),
        Some(1),
        "{context}"
    );
    let message = reply.body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{context}: an error without a message");
}

/// What every user reads from `/v1/sync` from the start, with the cursor at the log's end. Every
/// write moves the log's end, so two equal snapshots mean nothing was stored in between.
async fn feed_snapshot(app: &TestApp) -> Vec<(Vec<Change>, Cursor)> {
    let mut snapshot = Vec::new();
    for token in [ALICE, BOB, CAROL] {
        snapshot.push(app.drain_feed("/v1/sync", token, None, 500).await);
    }
    snapshot
}

/// Asserts that `app` still holds what `before` (a [`feed_snapshot`]) saw: `what` stored nothing.
async fn assert_unchanged(app: &TestApp, before: &[(Vec<Change>, Cursor)], what: &str) {
    assert_eq!(feed_snapshot(app).await, before, "{what} stored something");
}

/// The same as [`feed_snapshot`], read from storage directly (for when faults disturb the API).
fn stored_log(app: &TestApp) -> Vec<(Vec<Change>, i64)> {
    ["u-alice", "u-bob", "u-carol"]
        .into_iter()
        .map(|user| {
            let read = app
                .state
                .storage()
                .feed(&UserId::new(user), &FeedScope::AllConversations, 0, 500)
                .expect("storage feed");
            assert!(!read.has_more);
            (read.changes, read.next)
        })
        .collect()
}

/// A conversation's messages as stored, newest first, read as `user`.
fn stored_messages(app: &TestApp, user: &str, conversation: &ConversationId) -> Vec<Message> {
    app.state
        .storage()
        .history(&UserId::new(user), conversation, &HistoryStart::Newest, 200)
        .expect("storage history")
        .messages
}

/// A conversation's history through the API, newest first.
async fn history(app: &TestApp, token: &str, conversation: &ConversationId) -> Vec<Message> {
    let reply = app.get(&send_path(conversation), token).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.json::<HistoryPage>().messages
}

/// Sends the message `client_message_id` ("hello") as `token`, asserting it was created.
async fn sent(
    app: &TestApp,
    token: &str,
    conversation: &ConversationId,
    client_message_id: &str,
) -> Message {
    let reply = app
        .send(token, conversation, client_message_id, "hello")
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.message()
}

// ---------------------------------------------------------------------------------------------
// 400

#[tokio::test]
async fn bodies_that_are_not_json_are_400_malformed_json_and_store_nothing() {
    let app = TestApp::new();
    let message = sent(&app, ALICE, &app.ab, "m-1").await;
    let before = feed_snapshot(&app).await;
    let send = send_path(&app.ab);
    let edit = message_path(&app.ab, message.id.as_str());
    let create = "/v1/conversations".to_owned();
    let valid_send = send_body("m-2", "hi").to_string();
    let valid_create = json!({ "title": "t", "memberIds": [] }).to_string();
    // (method, path, Content-Type, body)
    let cases = [
        (
            Method::POST,
            &send,
            Some(JSON),
            r#"{"clientMessageId": "m-2", "body": "#.to_owned(),
        ),
        (Method::POST, &send, Some(JSON), "not json".to_owned()),
        (Method::POST, &send, Some(JSON), String::new()),
        (Method::POST, &send, None, valid_send.clone()),
        (Method::POST, &send, Some("text/plain"), valid_send),
        (
            Method::PATCH,
            &edit,
            Some(JSON),
            "{body: 'edited'}".to_owned(),
        ),
        (
            Method::PATCH,
            &edit,
            None,
            json!({ "body": "edited" }).to_string(),
        ),
        (
            Method::POST,
            &read_path(&app.ab),
            Some(JSON),
            r#"{"messageId": "#.to_owned(),
        ),
        (Method::POST, &create, Some(JSON), "{".to_owned()),
        (Method::POST, &create, Some("text/plain"), valid_create),
        // Valid JSON that is not an object.
        (Method::POST, &send, Some(JSON), "null".to_owned()),
        (
            Method::POST,
            &send,
            Some(JSON),
            r#"["m-2", "hi"]"#.to_owned(),
        ),
    ];
    let auth = bearer(ALICE);
    for (method, path, content_type, body) in cases {
        let context = format!("{method} {path} ({content_type:?}) {body:?}");
        let mut headers = vec![(header::AUTHORIZATION, auth.as_str())];
        headers.extend(content_type.map(|value| (header::CONTENT_TYPE, value)));
        let reply = app.call(build(method, path, &headers, body)).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "malformed_json", &context);
    }
    assert_unchanged(&app, &before, "a malformed body").await;
}

#[tokio::test]
async fn invalid_json_is_malformed_json_even_when_it_starts_with_a_mistyped_field() {
    let app = TestApp::new();
    let before = feed_snapshot(&app).await;
    for body in [r#"{"clientMessageId": 7, "body": "#, "[1,"] {
        let reply = app.call(raw_send(&app, None, body)).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "malformed_json", body);
    }
    assert_unchanged(&app, &before, "an invalid body").await;
}

#[tokio::test]
async fn non_positive_or_non_numeric_limits_are_400_invalid_query() {
    let app = TestApp::new();
    let paths = [
        "/v1/sync".to_owned(),
        conversation_sync_path(&app.ab),
        send_path(&app.ab),
    ];
    for path in &paths {
        for limit in [
            "0",
            "00",
            "-1",
            "-99999999999999999999",
            "",
            "abc",
            "1.5",
            "ten",
        ] {
            let url = format!("{path}?limit={limit}");
            let reply = app.get(&url, ALICE).await;
            assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_query", &url);
        }
        // A positive limit is taken, and a large one is capped rather than refused.
        for limit in ["1", "100000"] {
            let url = format!("{path}?limit={limit}");
            assert_eq!(app.get(&url, ALICE).await.status, StatusCode::OK, "{url}");
        }
    }
    // History takes `before` or `beforeMessage`, not both (even when each is valid alone).
    let message = sent(&app, ALICE, &app.ab, "m-1").await;
    let both = format!(
        "{}?before=h2.{}.{}.1&beforeMessage={}",
        send_path(&app.ab),
        app.state.storage().database_id(),
        message.server_ts,
        message.id
    );
    let reply = app.get(&both, ALICE).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_query", &both);
}

#[tokio::test]
async fn limits_beyond_32_or_64_bits_are_capped_like_other_large_limits() {
    let app = TestApp::new();
    for path in ["/v1/sync".to_owned(), send_path(&app.ab)] {
        for limit in ["5000000000", "99999999999999999999", &"9".repeat(100)] {
            let url = format!("{path}?limit={limit}");
            let reply = app.get(&url, ALICE).await;
            assert_eq!(reply.status, StatusCode::OK, "{url}: {:?}", reply.body);
        }
    }
}

#[tokio::test]
async fn undecodable_future_old_or_other_databases_cursors_are_400_invalid_cursor() {
    let app = TestApp::new();
    let last = sent(&app, ALICE, &app.ab, "m-1").await;
    let db = app.state.storage().database_id();
    let feeds = ["/v1/sync".to_owned(), conversation_sync_path(&app.ab)];
    let mut urls = Vec::new();
    for feed in &feeds {
        // `ffff` is well formed but ahead of this server's log (3 changes); `c1` is the format
        // before database ids.
        let ahead = format!("c2.{db}.ffff");
        for cursor in [
            "garbage",
            "c2.",
            "c2.xyz",
            "c1.1",
            &ahead,
            &format!("h2.{db}.1.1"),
        ] {
            urls.push(format!("{feed}?cursor={cursor}"));
        }
    }
    // Negative positions, and positions past the last stamp or message, were never reached.
    for before in [
        "garbage",
        "h2.",
        &format!("h2.{db}.x.y"),
        &format!("h2.{db}.-5.-1"),
        &format!("h2.{db}.{}.-1", last.server_ts),
        &format!("h2.{db}.{}.1", last.server_ts + 1),
        &format!("h2.{db}.{}.99", last.server_ts),
        "h1.1.1",
        &format!("c2.{db}.1"),
    ] {
        urls.push(format!("{}?before={before}", send_path(&app.ab)));
    }
    // Cursors from another database (this one deleted and created again) mean nothing here.
    let other = TestApp::new();
    sent(&other, ALICE, &other.ab, "m-1").await;
    let (_, foreign) = other.drain_feed("/v1/sync", ALICE, None, 1).await;
    assert_ne!(
        other.state.storage().database_id(),
        db,
        "each database has its own id"
    );
    urls.push(format!("/v1/sync?cursor={foreign}"));
    for url in &urls {
        let reply = app.get(url, ALICE).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_cursor", url);
    }
    // The cursor the server hands out is taken by both feeds.
    let (_, cursor) = app.drain_feed("/v1/sync", ALICE, None, 10).await;
    for feed in &feeds {
        let url = format!("{feed}?cursor={cursor}");
        assert_eq!(app.get(&url, ALICE).await.status, StatusCode::OK, "{url}");
    }
}

// ---------------------------------------------------------------------------------------------
// 401, 403, 404, 405

#[tokio::test]
async fn missing_unknown_or_non_bearer_credentials_are_401_unauthorized_and_store_nothing() {
    let app = TestApp::new();
    let message = sent(&app, ALICE, &app.ab, "m-1").await;
    let before = feed_snapshot(&app).await;
    let endpoints = calls_to_every_endpoint(&app, &message);
    let alice_basic = "Basic dC1hbGljZTpzZWNyZXQ="; // base64("t-alice:secret")
    let credentials = [
        None,
        Some("Bearer t-nobody"),
        Some(alice_basic),
        Some("Bearer "),
        Some(ALICE),
    ];
    for credential in credentials {
        for (method, path, body) in &endpoints {
            let context = format!("{method} {path} with Authorization {credential:?}");
            let mut headers = Vec::new();
            headers.extend(credential.map(|value| (header::AUTHORIZATION, value)));
            let body = match body {
                Some(json) => {
                    headers.push((header::CONTENT_TYPE, JSON));
                    Body::from(json.to_string())
                }
                None => Body::empty(),
            };
            let reply = app.call(build(method.clone(), path, &headers, body)).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized", &context);
        }
    }
    assert_unchanged(&app, &before, "an unauthorized write").await;
}

#[tokio::test]
async fn editing_or_deleting_another_users_message_is_403_forbidden_and_changes_nothing() {
    let app = TestApp::new();
    let message = sent(&app, ALICE, &app.ab, "m-1").await;
    let before = feed_snapshot(&app).await;
    let path = message_path(&app.ab, message.id.as_str());
    let edit = app
        .patch(&path, BOB, json!({ "body": "bob was here" }))
        .await;
    assert_error(
        &edit,
        StatusCode::FORBIDDEN,
        "forbidden",
        "bob edits alice's message",
    );
    let delete = app.delete(&path, BOB).await;
    assert_error(
        &delete,
        StatusCode::FORBIDDEN,
        "forbidden",
        "bob deletes alice's message",
    );
    assert_unchanged(&app, &before, "a forbidden write").await;
    assert_eq!(history(&app, BOB, &app.ab).await, vec![message]);
}

#[tokio::test]
async fn unknown_and_foreign_conversations_answer_the_same_404_conversation_not_found() {
    let app = TestApp::new();
    // Alice is not a member of `bc`.
    let foreign = sent(&app, BOB, &app.bc, "m-1").await;
    let before = feed_snapshot(&app).await;
    let unknown = ConversationId::new("c-nope");
    let mut answers = Vec::new();
    for conversation in [&unknown, &app.bc] {
        for (method, path, body) in conversation_calls(conversation, &foreign.id) {
            let context = format!("alice: {method} {path}");
            let reply = app.request(method, &path, Some(ALICE), body.as_ref()).await;
            assert_error(
                &reply,
                StatusCode::NOT_FOUND,
                "conversation_not_found",
                &context,
            );
            answers.push(reply.body);
        }
    }
    let (unknown_answers, foreign_answers) = answers.split_at(answers.len() / 2);
    assert_eq!(
        unknown_answers, foreign_answers,
        "a foreign conversation must not be told apart"
    );
    assert_unchanged(&app, &before, "a write to a foreign conversation").await;
    assert_eq!(history(&app, BOB, &app.bc).await, vec![foreign]);
}

#[tokio::test]
async fn unknown_malformed_or_other_conversations_message_ids_are_404_message_not_found() {
    let app = TestApp::new();
    sent(&app, ALICE, &app.ab, "m-1").await;
    // Bob is a member of both conversations and the sender of this message of `bc`: only the
    // conversation in the path may count.
    let elsewhere = sent(&app, BOB, &app.bc, "m-2").await;
    let before = feed_snapshot(&app).await;
    for id in ["m999999999999", "zzz", "m", elsewhere.id.as_str()] {
        let path = message_path(&app.ab, id);
        let requests = [
            (
                Method::PATCH,
                path.clone(),
                Some(json!({ "body": "edited" })),
            ),
            (Method::DELETE, path, None),
            (
                Method::POST,
                read_path(&app.ab),
                Some(json!({ "messageId": id })),
            ),
            (
                Method::GET,
                format!("{}?beforeMessage={id}", send_path(&app.ab)),
                None,
            ),
        ];
        for (method, path, body) in requests {
            let context = format!("bob: {method} {path} {body:?}");
            let reply = app.request(method, &path, Some(BOB), body.as_ref()).await;
            assert_error(&reply, StatusCode::NOT_FOUND, "message_not_found", &context);
        }
    }
    assert_unchanged(&app, &before, "a write to an unknown message").await;
    assert_eq!(history(&app, BOB, &app.bc).await, vec![elsewhere]);
}

#[tokio::test]
async fn unknown_v1_paths_are_json_404_not_found() {
    let app = TestApp::new();
    let paths = [
        "/v1",
        "/v1/nope",
        "/v1/me/extra",
        "/v1/conversations/x/nope",
        "/v1/conversations/x/messages/m1/extra",
    ];
    for path in paths {
        for token in [Some(ALICE), None] {
            for method in [Method::GET, Method::POST, Method::DELETE] {
                let context = format!("{method} {path} with token {token:?}");
                let reply = app.request(method, path, token, None).await;
                assert_error(&reply, StatusCode::NOT_FOUND, "not_found", &context);
            }
        }
    }
}

#[tokio::test]
async fn v1_root_with_trailing_slash_is_json_404_not_found() {
    let app = TestApp::new();
    let reply = app.get("/v1/", ALICE).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found", "GET /v1/");
}

#[tokio::test]
async fn known_paths_with_other_methods_are_405_method_not_allowed_and_store_nothing() {
    let app = TestApp::new();
    let message = sent(&app, ALICE, &app.ab, "m-1").await;
    let before = feed_snapshot(&app).await;
    let message_url = message_path(&app.ab, message.id.as_str());
    let cases = [
        (Method::PUT, "/v1/sync".to_owned()),
        (Method::POST, "/v1/sync".to_owned()),
        (Method::DELETE, "/v1/me".to_owned()),
        (Method::PUT, "/v1/conversations".to_owned()),
        (Method::DELETE, conversation_sync_path(&app.ab)),
        (Method::PUT, send_path(&app.ab)),
        (Method::DELETE, send_path(&app.ab)),
        (Method::GET, message_url.clone()),
        (Method::PUT, message_url.clone()),
        (Method::POST, message_url),
        (Method::GET, read_path(&app.ab)),
    ];
    // A body that would be a valid send, so only the method can be the reason.
    let body = send_body("m-2", "hi");
    for (method, path) in cases {
        let context = format!("{method} {path}");
        let reply = app.request(method, &path, Some(ALICE), Some(&body)).await;
        assert_error(
            &reply,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &context,
        );
    }
    assert_unchanged(&app, &before, "a refused method").await;
}

// ---------------------------------------------------------------------------------------------
// 409

#[tokio::test]
async fn reusing_a_client_message_id_for_another_body_or_conversation_is_409_and_stores_nothing() {
    let app = TestApp::new();
    let original = app.send(BOB, &app.ab, "m-1", "original").await;
    assert_eq!(original.status, StatusCode::CREATED);
    let original = original.message();
    let before = feed_snapshot(&app).await;
    for (conversation, body) in [
        (&app.ab, "another body"),
        (&app.bc, "original"),
        (&app.bc, "x"),
    ] {
        let context = format!("bob reuses m-1 in {conversation} for {body:?}");
        let reply = app.send(BOB, conversation, "m-1", body).await;
        assert_error(
            &reply,
            StatusCode::CONFLICT,
            "client_message_id_conflict",
            &context,
        );
    }
    assert_unchanged(&app, &before, "a conflicting send").await;
    // The true retry is still answered with the original, and stores nothing either.
    let replay = app.send(BOB, &app.ab, "m-1", "original").await;
    assert_eq!(
        (replay.status, replay.message()),
        (StatusCode::OK, original)
    );
    assert_unchanged(&app, &before, "a replay").await;
}

#[tokio::test]
async fn editing_a_deleted_message_is_409_message_deleted_and_keeps_the_tombstone() {
    let app = TestApp::new();
    let message = sent(&app, ALICE, &app.ab, "m-1").await;
    let path = message_path(&app.ab, message.id.as_str());
    let tombstone = app.delete(&path, ALICE).await;
    assert_eq!(tombstone.status, StatusCode::OK);
    let tombstone = tombstone.message();
    assert!(tombstone.deleted && tombstone.body.is_empty());
    let before = feed_snapshot(&app).await;
    for body in ["edited", "hello"] {
        let reply = app.patch(&path, ALICE, json!({ "body": body })).await;
        assert_error(&reply, StatusCode::CONFLICT, "message_deleted", body);
    }
    assert_unchanged(&app, &before, "an edit of a tombstone").await;
    assert_eq!(history(&app, ALICE, &app.ab).await, vec![tombstone]);
}

// ---------------------------------------------------------------------------------------------
// 413, 422

#[tokio::test]
async fn oversized_body_is_413_and_stores_nothing() {
    let app = TestApp::new();
    let message = sent(&app, ALICE, &app.ab, "m-1").await;
    let before = feed_snapshot(&app).await;
    let over = MAX_BODY_BYTES + 1;
    let send = send_path(&app.ab);
    let cases = [
        (
            Method::POST,
            &send,
            padded_json(&send_body("m-2", "hi"), over),
        ),
        // Also too long a message, but the size limit answers first.
        (
            Method::POST,
            &send,
            send_body("m-3", &"x".repeat(MAX_BODY_BYTES)).to_string(),
        ),
        (
            Method::PATCH,
            &message_path(&app.ab, message.id.as_str()),
            padded_json(&json!({ "body": "edited" }), over),
        ),
        (
            Method::POST,
            &read_path(&app.ab),
            padded_json(&json!({ "messageId": message.id }), over),
        ),
        (
            Method::POST,
            &"/v1/conversations".to_owned(),
            padded_json(&json!({ "title": "big", "memberIds": [] }), over),
        ),
    ];
    let auth = bearer(ALICE);
    let headers = [
        (header::AUTHORIZATION, auth.as_str()),
        (header::CONTENT_TYPE, JSON),
    ];
    for (method, path, body) in cases {
        let context = format!("{method} {path} with {} bytes", body.len());
        let reply = app.call(build(method, path, &headers, body)).await;
        assert_error(
            &reply,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &context,
        );
    }
    assert_unchanged(&app, &before, "an oversized body").await;
    // The limit itself is allowed: exactly 64 KiB is taken.
    let exact = padded_json(&send_body("m-4", "fits"), MAX_BODY_BYTES);
    let reply = app.call(build(Method::POST, &send, &headers, exact)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

#[tokio::test]
async fn blank_message_bodies_are_422_empty_message_and_store_nothing() {
    let app = TestApp::new();
    let message = sent(&app, ALICE, &app.ab, "m-1").await;
    let before = feed_snapshot(&app).await;
    let edit = message_path(&app.ab, message.id.as_str());
    for body in ["", " ", " \n\t\r ", "\u{3000}"] {
        let context = format!("body {body:?}");
        let send = app.send(ALICE, &app.ab, "m-2", body).await;
        assert_error(
            &send,
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_message",
            &context,
        );
        let patch = app.patch(&edit, ALICE, json!({ "body": body })).await;
        assert_error(
            &patch,
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_message",
            &context,
        );
    }
    assert_unchanged(&app, &before, "a blank message").await;
}

#[tokio::test]
async fn message_over_4000_characters_is_422_message_too_long_but_4000_multibyte_characters_fit() {
    let app = TestApp::new();
    let message = sent(&app, ALICE, &app.ab, "m-1").await;
    let before = feed_snapshot(&app).await;
    let edit = message_path(&app.ab, message.id.as_str());
    for body in [
        "a".repeat(MAX_MESSAGE_CHARS + 1),
        "é".repeat(MAX_MESSAGE_CHARS + 1),
    ] {
        let first = body.chars().next();
        let context = format!("{} characters of {first:?}", body.chars().count());
        let send = app.send(ALICE, &app.ab, "m-2", &body).await;
        assert_error(
            &send,
            StatusCode::UNPROCESSABLE_ENTITY,
            "message_too_long",
            &context,
        );
        let patch = app.patch(&edit, ALICE, json!({ "body": body })).await;
        assert_error(
            &patch,
            StatusCode::UNPROCESSABLE_ENTITY,
            "message_too_long",
            &context,
        );
    }
    assert_unchanged(&app, &before, "a too long message").await;
    // 4,000 characters of 2 bytes each: counted in characters, so it fits.
    let longest = "é".repeat(MAX_MESSAGE_CHARS);
    let send = app.send(ALICE, &app.ab, "m-3", &longest).await;
    assert_eq!(send.status, StatusCode::CREATED, "{:?}", send.body);
    let patch = app.patch(&edit, ALICE, json!({ "body": longest })).await;
    assert_eq!(patch.status, StatusCode::OK, "{:?}", patch.body);
    let stored = history(&app, ALICE, &app.ab).await;
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|message| message.body == longest));
}

#[tokio::test]
async fn missing_mistyped_or_out_of_limit_fields_are_422_invalid_field_and_store_nothing() {
    let app = TestApp::new();
    let message = sent(&app, ALICE, &app.ab, "m-1").await;
    let before = feed_snapshot(&app).await;
    let send = send_path(&app.ab);
    let edit = message_path(&app.ab, message.id.as_str());
    let read = read_path(&app.ab);
    let create = "/v1/conversations".to_owned();
    let too_long_id = "x".repeat(MAX_CLIENT_MESSAGE_ID_CHARS + 1);
    let too_many: Vec<String> = (0..100).map(|i| format!("u-{i}")).collect();
    let cases = [
        (Method::POST, &send, json!({ "clientMessageId": "m-2" })),
        (Method::POST, &send, json!({ "body": "hi" })),
        (
            Method::POST,
            &send,
            json!({ "clientMessageId": "m-2", "body": 5 }),
        ),
        (
            Method::POST,
            &send,
            json!({ "clientMessageId": 7, "body": "hi" }),
        ),
        (Method::POST, &send, send_body("a b", "hi")),
        (Method::POST, &send, send_body("", "hi")),
        (Method::POST, &send, send_body("é", "hi")),
        (Method::POST, &send, send_body(&too_long_id, "hi")),
        (Method::PATCH, &edit, json!({})),
        (Method::PATCH, &edit, json!({ "body": null })),
        (Method::POST, &read, json!({})),
        (Method::POST, &read, json!({ "messageId": 42 })),
        (
            Method::POST,
            &create,
            json!({ "title": "t", "memberIds": ["u-nobody"] }),
        ),
        (
            Method::POST,
            &create,
            json!({ "title": "t", "memberIds": ["u-bob", "u-nobody"] }),
        ),
        (
            Method::POST,
            &create,
            json!({ "title": "   ", "memberIds": ["u-bob"] }),
        ),
        (
            Method::POST,
            &create,
            json!({ "title": "", "memberIds": [] }),
        ),
        (
            Method::POST,
            &create,
            json!({ "title": "t".repeat(201), "memberIds": [] }),
        ),
        (
            Method::POST,
            &create,
            json!({ "title": "t", "memberIds": "u-bob" }),
        ),
        (Method::POST, &create, json!({ "memberIds": [] })),
        (
            Method::POST,
            &create,
            json!({ "title": "t", "memberIds": too_many }),
        ),
    ];
    for (method, path, body) in cases {
        let context = format!("{method} {path} {body}");
        let reply = app.request(method, path, Some(ALICE), Some(&body)).await;
        assert_error(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            &context,
        );
    }
    assert_unchanged(&app, &before, "an invalid field").await;
    // The longest allowed clientMessageId is taken.
    let longest_id = "x".repeat(MAX_CLIENT_MESSAGE_ID_CHARS);
    let reply = app.send(ALICE, &app.ab, &longest_id, "hi").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    // Limits count what is stored: the title trimmed, each member once (the creator too).
    let longest_title = "t".repeat(200);
    let body = json!({ "title": format!("  {longest_title} "), "memberIds": vec!["u-bob"; 150] });
    let reply = app.post("/v1/conversations", ALICE, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["conversation"]["title"], longest_title);
    let members = reply.body["conversation"]["members"]
        .as_array()
        .map(Vec::len);
    assert_eq!(members, Some(2));
}

// ---------------------------------------------------------------------------------------------
// Fault injection

#[tokio::test]
async fn injected_failures_answer_their_code_with_retry_after_and_store_nothing() {
    let cases = [
        (
            FaultConfig {
                rate_limited: 1.0,
                retry_after_secs: 7,
                ..Default::default()
            },
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            Some("7"),
        ),
        (
            FaultConfig {
                unavailable: 1.0,
                retry_after_secs: 3,
                ..Default::default()
            },
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            Some("3"),
        ),
        (
            FaultConfig {
                internal: 1.0,
                ..Default::default()
            },
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            None,
        ),
    ];
    for (faults, status, code, retry_after) in cases {
        let app = TestApp::with_config(Config {
            faults,
            ..Default::default()
        });
        let message = app
            .state
            .storage()
            .send_message(&"u-alice".into(), &app.ab, &"m-1".into(), "hello", T0)
            .expect("stored past the API")
            .message;
        let before = stored_log(&app);
        for (method, path, body) in calls_to_every_endpoint(&app, &message) {
            let context = format!("{code}: {method} {path}");
            let reply = app.request(method, &path, Some(ALICE), body.as_ref()).await;
            assert_error(&reply, status, code, &context);
            let header = reply
                .headers
                .get(header::RETRY_AFTER)
                .map(|value| value.to_str().unwrap());
            assert_eq!(header, retry_after, "{context}: Retry-After");
        }
        assert_eq!(
            stored_log(&app),
            before,
            "{code}: a failed write stored something"
        );
        // `/healthz` is not part of the API and is never faulted.
        let health = call_raw(&app, build(Method::GET, "/healthz", &[], Body::empty())).await;
        assert_eq!(
            (health.status, &health.bytes()[..]),
            (StatusCode::OK, &b"ok"[..]),
            "{code}"
        );
    }
}

#[tokio::test]
async fn dropped_connection_loses_the_response_and_stores_nothing() {
    let app = TestApp::with_config(Config {
        faults: FaultConfig {
            dropped: 1.0,
            ..Default::default()
        },
        ..Default::default()
    });
    let before = stored_log(&app);
    let requests = [
        json_request(
            Method::POST,
            &send_path(&app.ab),
            ALICE,
            Some(&send_body("m-1", "hi")),
        ),
        json_request(
            Method::POST,
            "/v1/conversations",
            ALICE,
            Some(&json!({ "title": "t", "memberIds": [] })),
        ),
        json_request(Method::GET, "/v1/sync", ALICE, None),
    ];
    for request in requests {
        let context = format!("{} {}", request.method(), request.uri());
        let reply = call_raw(&app, request).await;
        assert!(
            reply.body.is_err(),
            "{context}: the body arrived: {:?}",
            reply.body
        );
    }
    assert_eq!(stored_log(&app), before, "a dropped request was handled");
    assert!(stored_messages(&app, "u-alice", &app.ab).is_empty());
}

#[tokio::test]
async fn lost_ack_commits_writes_but_loses_their_responses_while_reads_are_untouched() {
    let app = TestApp::with_config(Config {
        faults: FaultConfig {
            lost_ack: 1.0,
            ..Default::default()
        },
        ..Default::default()
    });
    let send = json_request(
        Method::POST,
        &send_path(&app.ab),
        ALICE,
        Some(&send_body("m-1", "hi")),
    );
    let reply = call_raw(&app, send).await;
    assert!(
        reply.body.is_err(),
        "the acknowledgement arrived: {:?}",
        reply.body
    );
    let stored = stored_messages(&app, "u-alice", &app.ab);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let message = &stored[0];
    assert_eq!(
        (message.client_message_id.as_str(), message.body.as_str()),
        ("m-1", "hi")
    );
    // The client's retry (same clientMessageId) loses its answer too, but stores nothing new.
    let retry = json_request(
        Method::POST,
        &send_path(&app.ab),
        ALICE,
        Some(&send_body("m-1", "hi")),
    );
    assert!(call_raw(&app, retry).await.body.is_err());
    assert_eq!(stored_messages(&app, "u-alice", &app.ab), stored);
    // Edits and deletes commit as well.
    let path = message_path(&app.ab, message.id.as_str());
    let edit = json_request(
        Method::PATCH,
        &path,
        ALICE,
        Some(&json!({ "body": "edited" })),
    );
    assert!(call_raw(&app, edit).await.body.is_err());
    assert_eq!(stored_messages(&app, "u-alice", &app.ab)[0].body, "edited");
    let delete = json_request(Method::DELETE, &path, ALICE, None);
    assert!(call_raw(&app, delete).await.body.is_err());
    let stored = stored_messages(&app, "u-alice", &app.ab);
    assert!(stored[0].deleted, "{stored:?}");
    // Reads are not writes: they arrive, and show what was committed.
    assert_eq!(history(&app, ALICE, &app.ab).await, stored);
    let (changes, _) = app.drain_feed("/v1/sync", ALICE, None, 100).await;
    assert_eq!(common::messages(&changes), stored);
    assert_eq!(app.get("/v1/me", ALICE).await.status, StatusCode::OK);
}

#[tokio::test]
async fn default_config_injects_no_faults() {
    let app = TestApp::new();
    assert!(!Config::default().faults.is_active());
    for i in 0..20 {
        let client_message_id = format!("m-{i}");
        let requests = [
            json_request(
                Method::POST,
                &send_path(&app.ab),
                ALICE,
                Some(&send_body(&client_message_id, "hi")),
            ),
            json_request(Method::GET, "/v1/sync", BOB, None),
            json_request(Method::GET, &send_path(&app.ab), BOB, None),
        ];
        for request in requests {
            let context = format!("{} {}", request.method(), request.uri());
            let reply = call_raw(&app, request).await;
            assert!(reply.status.is_success(), "{context}: {}", reply.status);
            let body: Value = serde_json::from_slice(reply.bytes()).expect("a JSON body");
            assert!(body.get("error").is_none(), "{context}: {body}");
        }
    }
    assert_eq!(stored_messages(&app, "u-alice", &app.ab).len(), 20);
}

// ---------------------------------------------------------------------------------------------
// Compression

#[tokio::test]
async fn sync_responses_are_compressed_with_gzip_or_br_when_accepted() {
    let app = TestApp::new();
    for i in 0..5 {
        sent(&app, ALICE, &app.ab, &format!("m-{i}")).await;
    }
    let get = |accept: Option<&'static str>| {
        let auth = bearer(ALICE);
        let mut headers = vec![(header::AUTHORIZATION, auth.as_str())];
        headers.extend(accept.map(|value| (header::ACCEPT_ENCODING, value)));
        build(Method::GET, "/v1/sync", &headers, Body::empty())
    };
    let plain = call_raw(&app, get(None)).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.header(header::CONTENT_ENCODING), None);
    let plain_json: Value = serde_json::from_slice(plain.bytes()).expect("JSON");

    let gzipped = call_raw(&app, get(Some("gzip"))).await;
    assert_eq!(gzipped.status, StatusCode::OK);
    assert_eq!(gzipped.header(header::CONTENT_ENCODING), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gzipped.bytes()[..])
        .read_to_string(&mut text)
        .expect("valid gzip");
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("JSON"),
        plain_json
    );

    let brotli = call_raw(&app, get(Some("br"))).await;
    assert_eq!(brotli.status, StatusCode::OK);
    assert_eq!(brotli.header(header::CONTENT_ENCODING), Some("br"));
    assert_ne!(brotli.bytes(), plain.bytes());
}

#[tokio::test]
async fn unsupported_request_content_encoding_is_answered_with_a_json_error() {
    let app = TestApp::new();
    let before = feed_snapshot(&app).await;
    for encoding in ["br", "deflate", "zstd"] {
        let body = send_body("m-1", "hi").to_string();
        let reply = app.call(raw_send(&app, Some(encoding), body)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{encoding}"
        );
        assert_eq!(reply.error_code(), "unsupported_encoding", "{encoding}");
        let error: Result<ErrorBody, _> = serde_json::from_value(reply.body.clone());
        assert!(
            error.is_ok(),
            "{encoding}: {} with body {:?}",
            reply.status,
            reply.body
        );
    }
    assert_unchanged(&app, &before, "an undecodable body").await;
}

#[tokio::test]
async fn gzip_compressed_send_is_accepted_and_stored() {
    let app = TestApp::new();
    let body = gzip(send_body("m-1", "squeezed").to_string().as_bytes());
    let reply = app.call(raw_send(&app, Some("gzip"), body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let stored = history(&app, BOB, &app.ab).await;
    assert_eq!(stored, vec![reply.message()]);
    assert_eq!(stored[0].body, "squeezed");
}

#[tokio::test]
async fn gzip_body_inflating_past_64_kib_is_413_and_stores_nothing() {
    let app = TestApp::new();
    let before = feed_snapshot(&app).await;
    let body = gzip(padded_json(&send_body("m-1", "hi"), MAX_BODY_BYTES + 1).as_bytes());
    assert!(
        body.len() < 1024,
        "the compressed body itself is small: {}",
        body.len()
    );
    let reply = app.call(raw_send(&app, Some("gzip"), body)).await;
    assert_error(
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "inflated body",
    );
    assert_unchanged(&app, &before, "an oversized inflated body").await;
}

#[tokio::test]
async fn invalid_gzip_body_is_400_malformed_json_and_stores_nothing() {
    let app = TestApp::new();
    let before = feed_snapshot(&app).await;
    let plain_json = send_body("m-1", "not compressed").to_string().into_bytes();
    let mut truncated = gzip(&plain_json);
    truncated.truncate(truncated.len() / 2);
    for body in [plain_json, truncated] {
        let reply = app.call(raw_send(&app, Some("gzip"), body)).await;
        assert_error(
            &reply,
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "invalid gzip",
        );
    }
    assert_unchanged(&app, &before, "an undecodable body").await;
}

// ---------------------------------------------------------------------------------------------
// CORS

fn cors_app() -> TestApp {
    TestApp::with_config(Config {
        cors_origins: vec![HeaderValue::from_static(ORIGIN)],
        ..Default::default()
    })
}

fn preflight(path: &str, origin: &str) -> Request<Body> {
    let headers = [
        (header::ORIGIN, origin),
        (header::ACCESS_CONTROL_REQUEST_METHOD, "POST"),
        (
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type",
        ),
    ];
    build(Method::OPTIONS, path, &headers, Body::empty())
}

#[tokio::test]
async fn cors_preflight_is_allowed_for_the_configured_origin_only() {
    let app = cors_app();
    let path = send_path(&app.ab);
    let allowed = call_raw(&app, preflight(&path, ORIGIN)).await;
    assert!(allowed.status.is_success(), "{}", allowed.status);
    assert_eq!(
        allowed.header(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(ORIGIN)
    );
    let methods = allowed
        .header(header::ACCESS_CONTROL_ALLOW_METHODS)
        .unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    let headers = allowed
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS)
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );

    let other = call_raw(&app, preflight(&path, "http://evil.example")).await;
    assert_eq!(other.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), None);
}

#[tokio::test]
async fn cors_responses_expose_retry_after_and_date_to_the_allowed_origin() {
    let app = cors_app();
    let auth = bearer(ALICE);
    for (authorization, status) in [
        (Some(auth.as_str()), StatusCode::OK),
        (None, StatusCode::UNAUTHORIZED),
    ] {
        let mut headers = vec![(header::ORIGIN, ORIGIN)];
        headers.extend(authorization.map(|value| (header::AUTHORIZATION, value)));
        let reply = call_raw(
            &app,
            build(Method::GET, "/v1/sync", &headers, Body::empty()),
        )
        .await;
        assert_eq!(reply.status, status);
        assert_eq!(
            reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some(ORIGIN),
            "{status}"
        );
        let exposed = reply
            .header(header::ACCESS_CONTROL_EXPOSE_HEADERS)
            .unwrap_or_default()
            .to_ascii_lowercase();
        for name in ["retry-after", "date"] {
            assert!(
                exposed.split(',').any(|exposed| exposed.trim() == name),
                "{status}: {name} in {exposed:?}"
            );
        }
    }
}

#[tokio::test]
async fn cors_headers_come_with_errors_answered_before_the_handler() {
    let app = cors_app();
    let auth = bearer(ALICE);
    let oversized = padded_json(&send_body("m-1", "hi"), MAX_BODY_BYTES + 1).into_bytes();
    let cases = [
        (
            "deflate",
            send_body("m-1", "hi").to_string().into_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ("identity", oversized.clone(), StatusCode::PAYLOAD_TOO_LARGE),
        ("gzip", gzip(&oversized), StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (encoding, body, status) in cases {
        let headers = [
            (header::ORIGIN, ORIGIN),
            (header::AUTHORIZATION, auth.as_str()),
            (header::CONTENT_TYPE, JSON),
            (header::CONTENT_ENCODING, encoding),
        ];
        let reply = call_raw(
            &app,
            build(Method::POST, &send_path(&app.ab), &headers, body),
        )
        .await;
        assert_eq!(reply.status, status, "{encoding}");
        assert_eq!(
            reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some(ORIGIN),
            "{encoding}: {status}"
        );
    }
}

#[tokio::test]
async fn no_cors_headers_are_sent_without_cors_config() {
    let app = TestApp::new();
    let auth = bearer(ALICE);
    let get = build(
        Method::GET,
        "/v1/sync",
        &[
            (header::ORIGIN, ORIGIN),
            (header::AUTHORIZATION, auth.as_str()),
        ],
        Body::empty(),
    );
    for request in [preflight(&send_path(&app.ab), ORIGIN), get] {
        let context = format!("{} {}", request.method(), request.uri());
        let reply = call_raw(&app, request).await;
        assert_eq!(
            reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            None,
            "{context}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Static files

#[tokio::test]
async fn www_dir_is_served_at_the_root_while_v1_keeps_its_json_errors() {
    let www = tempfile::tempdir().expect("temp dir");
    let index = "<!doctype html><title>chat-sync</title>";
    std::fs::write(www.path().join("index.html"), index).expect("write index.html");
    let app = TestApp::with_config(Config {
        www_dir: Some(www.path().to_path_buf()),
        ..Default::default()
    });
    for path in ["/", "/index.html"] {
        let reply = call_raw(&app, build(Method::GET, path, &[], Body::empty())).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(&reply.bytes()[..], index.as_bytes(), "{path}");
        let content_type = reply.header(header::CONTENT_TYPE).unwrap_or_default();
        assert!(
            content_type.starts_with("text/html"),
            "{path}: {content_type}"
        );
    }
    let health = call_raw(&app, build(Method::GET, "/healthz", &[], Body::empty())).await;
    assert_eq!(
        (health.status, &health.bytes()[..]),
        (StatusCode::OK, &b"ok"[..])
    );
    for path in ["/v1/nope", "/v1/conversations/x/messages/m1/extra"] {
        let reply = app.request(Method::GET, path, None, None).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "not_found", path);
    }
    let reply = app.request(Method::GET, "/v1/sync", None, None).await;
    assert_error(
        &reply,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "GET /v1/sync without token",
    );
}

#[tokio::test]
async fn demo_files_carry_the_content_security_policy_and_the_api_does_not() {
    let www = tempfile::tempdir().expect("temp dir");
    std::fs::write(www.path().join("app.js"), "export {}").expect("write app.js");
    let app = TestApp::with_config(Config {
        www_dir: Some(www.path().to_path_buf()),
        content_security_policy: Some(HeaderValue::from_static(
            chat_sync_server::DEMO_CONTENT_SECURITY_POLICY,
        )),
        ..Default::default()
    });
    let file = call_raw(&app, build(Method::GET, "/app.js", &[], Body::empty())).await;
    assert_eq!(file.status, StatusCode::OK);
    let policy = file
        .header(header::CONTENT_SECURITY_POLICY)
        .expect("a CSP on the demo's files");
    assert!(
        policy.contains("script-src 'self' 'wasm-unsafe-eval';"),
        "{policy}"
    );
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(file.header(header::X_CONTENT_TYPE_OPTIONS), Some("nosniff"));
    assert_eq!(file.header(header::CACHE_CONTROL), Some("no-cache"));
    let missing = call_raw(&app, build(Method::GET, "/nope.js", &[], Body::empty())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let api = call_raw(&app, build(Method::GET, "/v1/sync", &[], Body::empty())).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.header(header::CONTENT_SECURITY_POLICY), None);
}

#[tokio::test]
async fn a_file_with_precompressed_copies_goes_out_as_the_copy_the_browser_accepts() {
    let www = tempfile::tempdir().expect("temp dir");
    let wasm: Vec<u8> = (0..20_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let mut br = Vec::new();
    brotli::BrotliCompress(&mut &wasm[..], &mut br, &Default::default()).expect("brotli");
    let gz = gzip(&wasm);
    for (name, bytes) in [("m.wasm", &wasm), ("m.wasm.br", &br), ("m.wasm.gz", &gz)] {
        std::fs::write(www.path().join(name), bytes).expect("write a file");
    }
    let app = TestApp::with_config(Config {
        www_dir: Some(www.path().to_path_buf()),
        ..Default::default()
    });
    for (accepted, encoding, body) in [
        ("gzip, deflate, br", Some("br"), &br),
        ("gzip", Some("gzip"), &gz),
        ("identity", None, &wasm),
    ] {
        let request = build(
            Method::GET,
            "/m.wasm",
            &[(header::ACCEPT_ENCODING, accepted)],
            Body::empty(),
        );
        let reply = call_raw(&app, request).await;
        assert_eq!(reply.status, StatusCode::OK, "{accepted}");
        assert_eq!(
            reply.header(header::CONTENT_ENCODING),
            encoding,
            "{accepted}"
        );
        assert_eq!(
            reply.header(header::CONTENT_TYPE),
            Some("application/wasm"),
            "{accepted}"
        );
        assert!(
            reply.bytes()[..] == body[..],
            "{accepted}: the copy as written"
        );
        // Caches must not give one browser's encoding to another.
        assert_eq!(
            reply
                .headers
                .get_all(header::VARY)
                .iter()
                .collect::<Vec<_>>(),
            ["accept-encoding"],
            "{accepted}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Server stamps

#[tokio::test]
async fn server_stamps_keep_increasing_when_the_clock_goes_back_or_stands_still() {
    let app = TestApp::new();
    app.advance(60_000);
    let first = app
        .send(ALICE, &app.ab, "m-1", "before the jump")
        .await
        .message();
    app.clock.set(T0 - 10_000);
    let second = app
        .send(ALICE, &app.ab, "m-2", "after the jump")
        .await
        .message();
    let edited = app
        .patch(
            &message_path(&app.ab, first.id.as_str()),
            ALICE,
            json!({ "body": "edited" }),
        )
        .await
        .message();
    let deleted = app
        .delete(&message_path(&app.ab, second.id.as_str()), ALICE)
        .await
        .message();
    let marker = app
        .post(&read_path(&app.ab), BOB, json!({ "messageId": first.id }))
        .await;
    assert_eq!(marker.status, StatusCode::OK, "{:?}", marker.body);
    // The clock stands still for these two.
    let mut still = Vec::new();
    for client_message_id in ["m-3", "m-4"] {
        let reply = app
            .post(
                &send_path(&app.ab),
                ALICE,
                send_body(client_message_id, "same instant"),
            )
            .await;
        still.push(reply.message().server_ts);
    }
    let stamps = [
        first.server_ts,
        second.server_ts,
        edited.updated_ts,
        deleted.updated_ts,
        marker.body["readMarker"]["updatedTs"]
            .as_i64()
            .expect("a stamp"),
        still[0],
        still[1],
    ];
    assert!(
        stamps.windows(2).all(|pair| pair[0] < pair[1]),
        "{stamps:?}"
    );
    assert!(
        edited.edited && edited.server_ts == first.server_ts,
        "{edited:?}"
    );
    assert!(edited.updated_ts > edited.server_ts, "{edited:?}");
    assert!(deleted.updated_ts > deleted.server_ts, "{deleted:?}");
}
