//! Shared fixture for the server tests: the real `app()` on an in-memory database, driven with
//! `tower::ServiceExt::oneshot`, and a manual clock.
#![allow(dead_code, unreachable_pub)]

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use chat_sync_protocol::{Change, ConversationId, Cursor, FeedPage, Message, User, UserId};
use chat_sync_server::{app, AppState, Config, ManualClock, SqliteStorage};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

/// Tokens of the fixture's users.
pub const ALICE: &str = "t-alice";
pub const BOB: &str = "t-bob";
pub const CAROL: &str = "t-carol";

/// The fixture clock's start.
pub const T0: i64 = 1_700_000_000_000;

/// A server with users alice, bob and carol, and two conversations: `ab` (alice, bob) and
/// `bc` (bob, carol).
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub ab: ConversationId,
    pub bc: ConversationId,
}

/// An answer: status, headers and the JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The `error.code` of an error answer.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }

    /// The body parsed as a wire type.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.body.clone()).expect("body parses as the wire type")
    }

    /// The `message` of a message response.
    pub fn message(&self) -> Message {
        serde_json::from_value(self.body["message"].clone()).expect("a message response")
    }
}

impl TestApp {
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        let storage = SqliteStorage::open(":memory:").expect("in-memory database");
        let clock = Arc::new(ManualClock::new(T0));
        let state = AppState::new(storage, config).with_clock(clock.clone());
        let storage = state.storage();
        for (id, token) in [("u-alice", ALICE), ("u-bob", BOB), ("u-carol", CAROL)] {
            let user = User {
                id: UserId::new(id),
                display_name: id.trim_start_matches("u-").to_owned(),
            };
            storage.create_user(&user, token, T0).expect("user");
        }
        let ab = storage
            .create_conversation(&"u-alice".into(), "ab", &["u-bob".into()], T0)
            .expect("conversation")
            .id;
        let bc = storage
            .create_conversation(&"u-bob".into(), "bc", &["u-carol".into()], T0)
            .expect("conversation")
            .id;
        Self {
            router: app(state.clone()),
            state,
            clock,
            ab,
            bc,
        }
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        use chat_sync_server::Clock;
        self.clock.set(self.clock.now_ms() + ms);
    }

    /// Sends a request built by the caller.
    pub async fn call(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body arrives")
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A request with an optional bearer token and an optional JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.call(builder.body(body).expect("valid request")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(token), Some(&body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some(token), Some(&body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    /// Sends a message; the clock moves 1 ms first.
    pub async fn send(
        &self,
        token: &str,
        conversation: &ConversationId,
        client_message_id: &str,
        body: &str,
    ) -> Reply {
        self.advance(1);
        self.post(
            &format!("/v1/conversations/{conversation}/messages"),
            token,
            serde_json::json!({ "clientMessageId": client_message_id, "body": body }),
        )
        .await
    }

    /// Reads a feed (`/v1/sync` or a conversation's `/sync`) from `cursor` until `hasMore` is
    /// false, `limit` changes per page; returns every change and the last cursor.
    pub async fn drain_feed(
        &self,
        path: &str,
        token: &str,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> (Vec<Change>, Cursor) {
        let mut changes = Vec::new();
        let mut cursor = cursor.cloned();
        loop {
            let url = match &cursor {
                Some(cursor) => format!("{path}?cursor={cursor}&limit={limit}"),
                None => format!("{path}?limit={limit}"),
            };
            let reply = self.get(&url, token).await;
            assert_eq!(reply.status, StatusCode::OK, "{url}: {:?}", reply.body);
            let page: FeedPage = reply.json();
            assert!(page.changes.len() <= limit as usize);
            changes.extend(page.changes);
            cursor = Some(page.next_cursor);
            if !page.has_more {
                return (changes, cursor.expect("set above"));
            }
        }
    }
}

/// The messages among `changes`.
pub fn messages(changes: &[Change]) -> Vec<Message> {
    changes
        .iter()
        .filter_map(|change| match change {
            Change::Message { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}
