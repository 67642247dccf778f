//! The fetch transport in real browsers against real reference servers, which `tests/wasm.sh`
//! starts on 127.0.0.1 and names to the build: a plain one (`CHAT_SYNC_TEST_SERVER`), one that
//! answers many requests 503 or 429 (`CHAT_SYNC_TEST_FAULTY_SERVER`), one that takes 2 s per
//! request (`CHAT_SYNC_TEST_SLOW_SERVER`), and a port nothing listens on
//! (`CHAT_SYNC_TEST_CLOSED_URL`). All of them carry the demo data (`--seed-demo`).

use super::{decode, parse_retry_after, FetchTransport};
use chat_sync_engine::{HttpOutcome, HttpRequest, Method, RequestId};
use chat_sync_protocol::{
    paths, ErrorCode, FeedPage, Millis, RequestBody, ResponseBody, ResponseKind, SendMessageRequest,
};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// A demo token of `--seed-demo`.
const ALICE: &str = "demo-alice";
/// A timeout no healthy request on 127.0.0.1 comes near.
const GENEROUS_TIMEOUT_MS: Millis = 10_000;

/// A URL `tests/wasm.sh` set at build time.
fn url(value: Option<&'static str>, name: &str) -> &'static str {
    value.unwrap_or_else(|| {
        panic!("{name} was not set when the tests were built: run tests/wasm.sh, which starts the servers")
    })
}

fn server() -> FetchTransport {
    FetchTransport::new(url(
        option_env!("CHAT_SYNC_TEST_SERVER"),
        "CHAT_SYNC_TEST_SERVER",
    ))
}

fn faulty_server() -> FetchTransport {
    FetchTransport::new(url(
        option_env!("CHAT_SYNC_TEST_FAULTY_SERVER"),
        "CHAT_SYNC_TEST_FAULTY_SERVER",
    ))
}

fn slow_server() -> FetchTransport {
    FetchTransport::new(url(
        option_env!("CHAT_SYNC_TEST_SLOW_SERVER"),
        "CHAT_SYNC_TEST_SLOW_SERVER",
    ))
}

fn closed_port() -> FetchTransport {
    FetchTransport::new(url(
        option_env!("CHAT_SYNC_TEST_CLOSED_URL"),
        "CHAT_SYNC_TEST_CLOSED_URL",
    ))
}

fn get(path: String, expects: ResponseKind) -> HttpRequest {
    HttpRequest {
        id: RequestId(1),
        method: Method::Get,
        path,
        body: None,
        expects,
        timeout_ms: GENEROUS_TIMEOUT_MS,
    }
}

fn sync(limit: u32) -> HttpRequest {
    let limit = limit.to_string();
    get(
        paths::with_query(paths::SYNC, &[("limit", Some(&limit))]),
        ResponseKind::Feed,
    )
}

/// A feed page, or a panic describing what came instead.
fn feed_page(outcome: HttpOutcome) -> FeedPage {
    match outcome {
        HttpOutcome::Response {
            status: 200,
            body: ResponseBody::Feed(page),
            ..
        } => page,
        other => panic!("expected a 200 feed page, got {other:?}"),
    }
}

/// A client message id no earlier run used (the servers live for one `tests/wasm.sh` run, which
/// runs the tests in each browser against them).
fn unique_client_message_id() -> String {
    let now = js_sys::Date::now() as u64;
    let random = (js_sys::Math::random() * 1e9) as u64;
    format!("wasm-transport-{now}-{random}")
}

#[wasm_bindgen_test]
async fn a_sync_request_decodes_to_a_feed_page() {
    let outcome = server().perform(&sync(50), ALICE).await;
    let HttpOutcome::Response {
        retry_after_ms,
        bytes,
        ..
    } = &outcome
    else {
        panic!("expected a response, got {outcome:?}");
    };
    assert_eq!(*retry_after_ms, None);
    assert!(*bytes > 0);
    let page = feed_page(outcome);
    assert!(!page.changes.is_empty(), "the demo data has changes");
    assert!(page.changes.len() <= 50);
    assert!(page.has_more, "the demo data has more than 50 changes");
}

#[wasm_bindgen_test]
fn a_newer_server_s_change_types_are_left_out_of_a_page() {
    let text = r#"{
        "changes": [
            { "type": "reaction", "reaction": { "messageId": "m-1", "emoji": "+1" } },
            { "type": "readMarker", "readMarker": {
                "conversationId": "c-1", "userId": "u-bob", "lastReadMessageId": "m-1",
                "lastReadServerTs": 10, "updatedTs": 11, "since": "a field added later" } }
        ],
        "nextCursor": "c1.9", "hasMore": false
    }"#;
    let ResponseBody::Feed(page) = decode(ResponseKind::Feed, 200, text) else {
        panic!(
            "not a feed page: {:?}",
            decode(ResponseKind::Feed, 200, text)
        );
    };
    assert_eq!(page.changes.len(), 1);
    assert_eq!(page.changes[0].conversation_id().as_str(), "c-1");
    assert_eq!(page.changes[0].updated_ts(), 11);
}

#[wasm_bindgen_test]
async fn a_send_is_created_once_and_repeating_it_is_idempotent() {
    let transport = server();
    let page = feed_page(transport.perform(&sync(1), ALICE).await);
    let conversation = page.changes[0].conversation_id().clone();
    let client_message_id = unique_client_message_id();
    let send = HttpRequest {
        id: RequestId(2),
        method: Method::Post,
        path: paths::messages(&conversation),
        body: Some(RequestBody::Send(SendMessageRequest {
            client_message_id: client_message_id.as_str().into(),
            body: "hello from the fetch transport ✓".to_owned(),
        })),
        expects: ResponseKind::Message,
        timeout_ms: GENEROUS_TIMEOUT_MS,
    };

    let first = transport.perform(&send, ALICE).await;
    let HttpOutcome::Response {
        status: 201,
        body: ResponseBody::Message(created),
        ..
    } = first
    else {
        panic!("expected 201 with the message, got {first:?}");
    };
    assert_eq!(
        created.message.client_message_id.as_str(),
        client_message_id
    );
    assert_eq!(created.message.conversation_id, conversation);
    assert_eq!(created.message.body, "hello from the fetch transport ✓");

    let repeated = transport.perform(&send, ALICE).await;
    let HttpOutcome::Response {
        status: 200,
        body: ResponseBody::Message(again),
        ..
    } = repeated
    else {
        panic!("expected 200 with the same message, got {repeated:?}");
    };
    assert_eq!(again, created);
}

#[wasm_bindgen_test]
async fn an_unknown_token_is_401_unauthorized() {
    let outcome = server().perform(&sync(1), "not-a-token").await;
    let HttpOutcome::Response {
        status: 401,
        body: ResponseBody::Error(error),
        retry_after_ms: None,
        ..
    } = outcome
    else {
        panic!("expected 401 with an error body, got {outcome:?}");
    };
    assert_eq!(error.error.code, ErrorCode::Unauthorized);
}

#[wasm_bindgen_test]
async fn no_answer_within_the_timeout_is_a_timeout_and_the_fetch_is_aborted() {
    let request = HttpRequest {
        timeout_ms: 1,
        ..sync(1)
    };
    let started = js_sys::Date::now();
    let outcome = slow_server().perform(&request, ALICE).await;
    let took = js_sys::Date::now() - started;
    assert_eq!(outcome, HttpOutcome::Timeout);
    // The slow server answers after 2 s; the transport did not wait for it.
    assert!(took < 1_500.0, "took {took} ms");
}

#[wasm_bindgen_test]
async fn a_slow_answer_within_the_timeout_arrives() {
    let outcome = slow_server().perform(&sync(1), ALICE).await;
    feed_page(outcome);
}

#[wasm_bindgen_test]
async fn a_refused_connection_is_a_network_failure() {
    let outcome = closed_port().perform(&sync(1), ALICE).await;
    let HttpOutcome::Network(message) = &outcome else {
        panic!("expected a network failure, got {outcome:?}");
    };
    // The exception's `toString()`: every browser rejects with a `TypeError`.
    assert!(message.starts_with("TypeError"), "{message}");
    assert!(!message.contains(ALICE), "the token leaked: {message}");
}

#[wasm_bindgen_test]
async fn a_faulty_server_sends_retry_after_with_503_and_429() {
    let transport = faulty_server();
    // The server answers about 70% of requests 503 or 429 (with a fixed seed).
    for _ in 0..50 {
        let outcome = transport.perform(&sync(1), ALICE).await;
        match outcome {
            HttpOutcome::Response {
                status: status @ (503 | 429),
                retry_after_ms,
                body: ResponseBody::Error(error),
                ..
            } => {
                assert_eq!(retry_after_ms, Some(1_000), "Retry-After: 1");
                let expected = if status == 503 {
                    ErrorCode::Unavailable
                } else {
                    ErrorCode::RateLimited
                };
                assert_eq!(error.error.code, expected);
                return;
            }
            HttpOutcome::Response { status: 200, .. } => {}
            other => panic!("unexpected outcome from the faulty server: {other:?}"),
        }
    }
    panic!("50 requests to the faulty server and not one 503 or 429");
}

#[wasm_bindgen_test]
fn retry_after_is_read_as_seconds_or_an_http_date() {
    // A whole second, so the HTTP date (second precision) of `now + 5 s` is exact.
    let now = 1_764_000_000_000.0;
    let parse = |value: &str| parse_retry_after(value, None, now);

    assert_eq!(parse("1"), Some(1_000));
    assert_eq!(parse(" 120 "), Some(120_000));
    assert_eq!(parse("0"), Some(0));
    assert_eq!(parse("99999999999999999999999"), Some(Millis::MAX));
    assert_eq!(parse(&http_date(now + 5_000.0)), Some(5_000));
    assert_eq!(
        parse_retry_after("Tue, 25 Nov 2025 16:00:05 GMT", None, 1_764_086_400_000.0),
        Some(5_000)
    );
    assert_eq!(parse(&http_date(now - 60_000.0)), Some(0));
    for invalid in ["", "soon", "-1", "1.5", "Someday, never"] {
        assert_eq!(parse(invalid), None, "{invalid:?}");
    }
}

#[wasm_bindgen_test]
fn an_http_date_retry_after_is_measured_on_the_server_clock() {
    let server_now = 1_764_000_000_000.0;
    let retry_at = http_date(server_now + 5_000.0);
    let date = http_date(server_now);
    // The device clock an hour slow, and an hour fast: the wait is what the server asked.
    for device_now in [server_now - 3_600_000.0, server_now + 3_600_000.0] {
        assert_eq!(
            parse_retry_after(&retry_at, Some(&date), device_now),
            Some(5_000)
        );
    }
    // A `Date` header that is not a date leaves the device clock.
    assert_eq!(
        parse_retry_after(&retry_at, Some("yesterday-ish"), server_now - 60_000.0),
        Some(65_000)
    );
    // Seconds do not depend on either clock.
    assert_eq!(
        parse_retry_after("7", Some(&date), server_now - 3_600_000.0),
        Some(7_000)
    );
}

/// `ms` as an HTTP date (`Tue, 25 Nov 2025 16:00:05 GMT`).
fn http_date(ms: f64) -> String {
    String::from(js_sys::Date::new(&JsValue::from_f64(ms)).to_utc_string())
}

#[wasm_bindgen_test]
fn the_base_url_loses_its_trailing_slash() {
    assert_eq!(
        FetchTransport::new("http://127.0.0.1:8080/").base_url(),
        "http://127.0.0.1:8080"
    );
    assert_eq!(
        FetchTransport::new("https://chat.example/api").base_url(),
        "https://chat.example/api"
    );
}
