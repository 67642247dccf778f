//! Every wire type parses from the JSON documented in `docs/protocol.md` and serializes back to
//! exactly the same JSON, so field names and shapes cannot change unnoticed.

use chat_sync_protocol::*;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};
use std::fmt::Debug;

/// Parses `wire`, checks it equals `expected`, and that it serializes back to `wire`.
fn round_trip<T>(wire: Value, expected: T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let parsed: T = serde_json::from_value(wire.clone()).expect("documented JSON parses");
    assert_eq!(parsed, expected);
    assert_eq!(serde_json::to_value(&parsed).expect("serializes"), wire);
}

fn alice() -> User {
    User {
        id: "u-alice".into(),
        display_name: "Alice".into(),
    }
}

fn alice_json() -> Value {
    json!({ "id": "u-alice", "displayName": "Alice" })
}

fn message() -> Message {
    Message {
        id: "m000000000042".into(),
        conversation_id: "c-general".into(),
        client_message_id: "01JD5Q6Z4N8WQ3K2".into(),
        sender_id: "u-alice".into(),
        body: "See you at 10?".into(),
        server_ts: 1_764_000_123_456,
        updated_ts: 1_764_000_123_456,
        edited: false,
        deleted: false,
    }
}

fn message_json() -> Value {
    json!({
        "id": "m000000000042", "conversationId": "c-general", "clientMessageId": "01JD5Q6Z4N8WQ3K2",
        "senderId": "u-alice", "body": "See you at 10?", "serverTs": 1_764_000_123_456_i64,
        "updatedTs": 1_764_000_123_456_i64, "edited": false, "deleted": false
    })
}

fn conversation() -> Conversation {
    Conversation {
        id: "c-general".into(),
        title: "General".into(),
        members: vec![alice()],
        created_ts: 1_764_000_000_000,
        updated_ts: 1_764_000_000_001,
    }
}

fn conversation_json() -> Value {
    json!({
        "id": "c-general", "title": "General", "members": [alice_json()],
        "createdTs": 1_764_000_000_000_i64, "updatedTs": 1_764_000_000_001_i64
    })
}

fn read_marker() -> ReadMarker {
    ReadMarker {
        conversation_id: "c-general".into(),
        user_id: "u-bob".into(),
        last_read_message_id: "m000000000042".into(),
        last_read_server_ts: 1_764_000_123_456,
        updated_ts: 1_764_000_130_000,
    }
}

fn read_marker_json() -> Value {
    json!({
        "conversationId": "c-general", "userId": "u-bob", "lastReadMessageId": "m000000000042",
        "lastReadServerTs": 1_764_000_123_456_i64, "updatedTs": 1_764_000_130_000_i64
    })
}

#[test]
fn entities_round_trip() {
    round_trip(alice_json(), alice());
    round_trip(message_json(), message());
    round_trip(conversation_json(), conversation());
    round_trip(read_marker_json(), read_marker());
}

#[test]
fn changes_are_tagged_by_type() {
    round_trip(
        json!({ "type": "conversation", "conversation": conversation_json() }),
        Change::Conversation {
            conversation: conversation(),
        },
    );
    round_trip(
        json!({ "type": "message", "message": message_json() }),
        Change::Message { message: message() },
    );
    round_trip(
        json!({ "type": "readMarker", "readMarker": read_marker_json() }),
        Change::ReadMarker {
            read_marker: read_marker(),
        },
    );
}

#[test]
fn a_change_without_the_entity_its_type_names_is_rejected() {
    let parse = |wire: Value| {
        serde_json::from_value::<Change>(wire)
            .unwrap_err()
            .to_string()
    };
    let wrong_entity = json!({ "type": "message", "conversation": conversation_json() });
    assert_eq!(parse(wrong_entity), "missing field `message`");
    let no_marker = json!({ "type": "readMarker" });
    assert_eq!(parse(no_marker), "missing field `readMarker`");
    let unknown = parse(json!({ "type": "reaction", "reaction": {} }));
    assert_eq!(unknown, "a change type this client does not know");
}

#[test]
fn a_feed_page_leaves_out_change_types_and_fields_this_client_does_not_know() {
    // A newer server's page: a type added since, and a field added to a message.
    let mut newer_message = message_json();
    newer_message["reactions"] = json!([{ "emoji": "👍", "userId": "u-bob" }]);
    let page: FeedPage = serde_json::from_value(json!({
        "changes": [
            { "type": "conversation", "conversation": conversation_json() },
            { "type": "reaction", "reaction": { "messageId": "m-1", "emoji": "👍" } },
            { "type": "message", "message": newer_message },
        ],
        "nextCursor": "c1.5", "hasMore": false
    }))
    .expect("a newer server's page parses");
    assert_eq!(
        page.changes,
        [
            Change::Conversation {
                conversation: conversation()
            },
            Change::Message { message: message() },
        ]
    );
    assert_eq!(page.next_cursor, Cursor::new("c1.5"));

    // A type it knows without its entity is still an error, not left out.
    let broken = serde_json::from_value::<FeedPage>(json!({
        "changes": [{ "type": "message", "conversation": conversation_json() }],
        "nextCursor": "c1.5", "hasMore": false
    }));
    assert!(broken.is_err());
}

#[test]
fn change_accessors_name_the_conversation_and_stamp() {
    let change = Change::ReadMarker {
        read_marker: read_marker(),
    };
    assert_eq!(change.conversation_id().as_str(), "c-general");
    assert_eq!(change.updated_ts(), 1_764_000_130_000);
}

#[test]
fn pages_round_trip() {
    round_trip(
        json!({
            "changes": [{ "type": "message", "message": message_json() }],
            "nextCursor": "c1.4f9", "hasMore": true
        }),
        FeedPage {
            changes: vec![Change::Message { message: message() }],
            next_cursor: Cursor::new("c1.4f9"),
            has_more: true,
        },
    );
    round_trip(
        json!({ "messages": [message_json()], "nextBefore": "h1.x", "hasMore": true }),
        HistoryPage {
            messages: vec![message()],
            next_before: Some(HistoryCursor::new("h1.x")),
            has_more: true,
        },
    );
    round_trip(
        json!({ "messages": [], "nextBefore": null, "hasMore": false }),
        HistoryPage {
            messages: vec![],
            next_before: None,
            has_more: false,
        },
    );
}

#[test]
fn requests_and_responses_round_trip() {
    round_trip(
        json!({ "clientMessageId": "01JD5Q6Z4N8WQ3K2", "body": "See you at 10?" }),
        SendMessageRequest {
            client_message_id: "01JD5Q6Z4N8WQ3K2".into(),
            body: "See you at 10?".into(),
        },
    );
    round_trip(
        json!({ "body": "See you at 11?" }),
        EditMessageRequest {
            body: "See you at 11?".into(),
        },
    );
    round_trip(
        json!({ "messageId": "m000000000042" }),
        MarkReadRequest {
            message_id: "m000000000042".into(),
        },
    );
    round_trip(
        json!({ "title": "Lunch", "memberIds": ["u-bob"] }),
        CreateConversationRequest {
            title: "Lunch".into(),
            member_ids: vec!["u-bob".into()],
        },
    );
    round_trip(
        json!({ "user": alice_json() }),
        MeResponse { user: alice() },
    );
    round_trip(
        json!({ "message": message_json() }),
        MessageResponse { message: message() },
    );
    round_trip(
        json!({ "readMarker": read_marker_json() }),
        ReadMarkerResponse {
            read_marker: read_marker(),
        },
    );
    round_trip(
        json!({ "conversations": [conversation_json()] }),
        ConversationsResponse {
            conversations: vec![conversation()],
        },
    );
    round_trip(
        json!({ "conversation": conversation_json() }),
        ConversationResponse {
            conversation: conversation(),
        },
    );
}

#[test]
fn error_body_round_trips_and_codes_map_to_statuses() {
    round_trip(
        json!({ "error": { "code": "message_too_long", "message": "too long" } }),
        ErrorBody {
            error: ErrorDetail {
                code: ErrorCode::MessageTooLong,
                message: "too long".into(),
            },
        },
    );
    let documented = [
        ("malformed_json", 400),
        ("invalid_query", 400),
        ("invalid_cursor", 400),
        ("unauthorized", 401),
        ("forbidden", 403),
        ("conversation_not_found", 404),
        ("message_not_found", 404),
        ("not_found", 404),
        ("method_not_allowed", 405),
        ("client_message_id_conflict", 409),
        ("message_deleted", 409),
        ("payload_too_large", 413),
        ("unsupported_encoding", 415),
        ("empty_message", 422),
        ("message_too_long", 422),
        ("invalid_field", 422),
        ("rate_limited", 429),
        ("internal", 500),
        ("unavailable", 503),
    ];
    for (code, status) in documented {
        let parsed: ErrorCode = serde_json::from_value(json!(code)).expect(code);
        assert_ne!(parsed, ErrorCode::Unknown, "{code}");
        assert_eq!(parsed.http_status(), status, "{code}");
        assert_eq!(
            serde_json::to_value(parsed).expect("serializes"),
            json!(code)
        );
        assert_eq!(parsed.as_str(), code);
    }
}

#[test]
fn unknown_error_codes_from_newer_servers_still_parse() {
    let body: ErrorBody =
        serde_json::from_value(json!({ "error": { "code": "some_future_code", "message": "?" } }))
            .expect("parses");
    assert_eq!(body.error.code, ErrorCode::Unknown);
}

#[test]
fn retryable_statuses_are_408_429_and_5xx() {
    for status in [408, 429, 500, 502, 503, 504, 599] {
        assert!(is_retryable_status(status), "{status}");
    }
    for status in [200, 400, 401, 403, 404, 409, 413, 422] {
        assert!(!is_retryable_status(status), "{status}");
    }
}

#[test]
fn paths_match_the_documented_routes() {
    let conversation = ConversationId::new("c-general");
    let message = MessageId::new("m000000000042");
    assert_eq!(paths::SYNC, "/v1/sync");
    assert_eq!(
        paths::conversation_sync(&conversation),
        "/v1/conversations/c-general/sync"
    );
    assert_eq!(
        paths::messages(&conversation),
        "/v1/conversations/c-general/messages"
    );
    assert_eq!(
        paths::message(&conversation, &message),
        "/v1/conversations/c-general/messages/m000000000042"
    );
    assert_eq!(
        paths::read_marker(&conversation),
        "/v1/conversations/c-general/read"
    );
}

#[test]
fn query_values_are_percent_encoded_and_absent_ones_left_out() {
    assert_eq!(
        paths::with_query(
            paths::SYNC,
            &[("cursor", Some("c1.4f/+ x")), ("limit", Some("50"))]
        ),
        "/v1/sync?cursor=c1.4f%2F%2B%20x&limit=50"
    );
    assert_eq!(
        paths::with_query(paths::SYNC, &[("cursor", None), ("limit", Some("5"))]),
        "/v1/sync?limit=5"
    );
    assert_eq!(
        paths::with_query(paths::SYNC, &[("cursor", None)]),
        "/v1/sync"
    );
}
