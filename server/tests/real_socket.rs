//! The server over a real socket on 127.0.0.1: restart persistence with a file database, and the
//! `chat-sync-server` binary itself (demo seed, graceful shutdown on SIGTERM).

use chat_sync_protocol::{Change, Cursor, FeedPage, MessageResponse};
use chat_sync_server::{app, seed, AppState, Config, SqliteStorage};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Serves `app()` on a free port until the returned sender is dropped or fired.
async fn serve(
    db: &str,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let storage = SqliteStorage::open(db).expect("database opens");
    let state = AppState::new(storage, Config::default());
    let user = chat_sync_protocol::User {
        id: "u-alice".into(),
        display_name: "Alice".into(),
    };
    // Present after a restart: creating again is refused, which is fine here.
    let _ = state.storage().create_user(&user, "t-alice", 0);
    if state
        .storage()
        .conversations(&user.id)
        .expect("list")
        .is_empty()
    {
        state
            .storage()
            .create_conversation(&user.id, "notes", &[], 0)
            .expect("conversation");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app(state))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
    });
    (address, stop, server)
}

/// Reads the whole feed as `token` from `cursor`.
async fn drain(base: &str, token: &str, mut cursor: Option<Cursor>) -> (Vec<Change>, Cursor) {
    let client = reqwest::Client::new();
    let mut changes = Vec::new();
    loop {
        let mut request = client
            .get(format!("{base}/v1/sync"))
            .bearer_auth(token)
            .query(&[("limit", "500")]);
        if let Some(cursor) = &cursor {
            request = request.query(&[("cursor", cursor.as_str())]);
        }
        let page: FeedPage = request
            .send()
            .await
            .expect("sent")
            .error_for_status()
            .expect("200")
            .json()
            .await
            .expect("json");
        changes.extend(page.changes);
        cursor = Some(page.next_cursor);
        if !page.has_more {
            return (changes, cursor.expect("set"));
        }
    }
}

#[tokio::test]
async fn a_file_database_keeps_messages_and_cursors_across_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("chat.sqlite");
    let db = db.to_str().expect("utf-8 path");

    let (address, stop, server) = serve(db).await;
    let base = format!("http://{address}");
    let (changes, _) = drain(&base, "t-alice", None).await;
    let Change::Conversation { conversation } = &changes[0] else {
        panic!("conversation first")
    };
    let sent: MessageResponse = reqwest::Client::new()
        .post(format!(
            "{base}/v1/conversations/{}/messages",
            conversation.id
        ))
        .bearer_auth("t-alice")
        .json(&serde_json::json!({ "clientMessageId": "persist-1", "body": "still here?" }))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let (_, cursor) = drain(&base, "t-alice", None).await;
    stop.send(()).expect("server running");
    server.await.expect("server stopped cleanly");

    let (address, stop, server) = serve(db).await;
    let base = format!("http://{address}");
    let (changes, _) = drain(&base, "t-alice", None).await;
    assert!(changes.contains(&Change::Message {
        message: sent.message.clone()
    }));
    // The cursor from before the restart is still valid and has nothing new.
    let (newer, _) = drain(&base, "t-alice", Some(cursor)).await;
    assert!(newer.is_empty());
    // The stamp clock survived too: a new write is stamped after the old one.
    let next: MessageResponse = reqwest::Client::new()
        .post(format!(
            "{base}/v1/conversations/{}/messages",
            conversation.id
        ))
        .bearer_auth("t-alice")
        .json(&serde_json::json!({ "clientMessageId": "persist-2", "body": "yes" }))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert!(next.message.server_ts > sent.message.server_ts);
    stop.send(()).expect("server running");
    server.await.expect("server stopped cleanly");
}

/// A running `chat-sync-server` process and its address.
struct Process {
    child: Child,
    base: String,
}

impl Process {
    fn start(db: &str) -> Self {
        Self::start_with(db, &[])
    }

    /// Starts it with more arguments after the usual ones.
    fn start_with(db: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-sync-server"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--db",
                db,
                "--seed-demo",
                "--www",
                "/nonexistent",
            ])
            .args(extra)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reads stdout");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .expect("announces its address")
            .to_owned();
        Self { child, base }
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        for _ in 0..100 {
            if let Some(exit) = self.child.try_wait().expect("waits") {
                assert!(exit.success(), "exit status {exit}");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("server did not shut down within 10 s of SIGTERM");
    }
}

/// Every message id any demo user can see.
async fn all_demo_message_ids(base: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    for (_, _, token) in seed::DEMO_USERS {
        let (changes, _) = drain(base, token, None).await;
        for change in changes {
            if let Change::Message { message } = change {
                ids.insert(message.id.to_string());
            }
        }
    }
    ids
}

#[tokio::test]
async fn the_binary_seeds_the_demo_once_and_shuts_down_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("demo.sqlite");
    let db = db.to_str().expect("utf-8 path");

    let server = Process::start(db);
    let me = reqwest::Client::new()
        .get(format!("{}/v1/me", server.base))
        .bearer_auth("demo-alice")
        .send()
        .await
        .expect("sent");
    assert_eq!(me.status(), 200);
    assert_eq!(
        all_demo_message_ids(&server.base).await.len(),
        seed::DEMO_MESSAGES
    );
    server.terminate();

    // Seeding again on the same database adds nothing.
    let server = Process::start(db);
    assert_eq!(
        all_demo_message_ids(&server.base).await.len(),
        seed::DEMO_MESSAGES
    );
    server.terminate();
}

/// A restart keeps the feed cursors valid; a new database (the file deleted and created again)
/// refuses them with `invalid_cursor`, so clients sync from the start instead of skipping the
/// new database's first changes.
#[tokio::test]
async fn cursors_outlive_a_restart_but_not_the_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("demo.sqlite");
    let db = db.to_str().expect("utf-8 path");
    let feed = |base: &str, cursor: &Cursor| {
        reqwest::Client::new()
            .get(format!("{base}/v1/sync"))
            .bearer_auth("demo-alice")
            .query(&[("cursor", cursor.as_str())])
            .send()
    };

    let server = Process::start(db);
    let (_, cursor) = drain(&server.base, "demo-alice", None).await;
    server.terminate();
    let server = Process::start(db);
    let reply = feed(&server.base, &cursor).await.expect("sent");
    assert_eq!(reply.status(), 200, "the same database after a restart");
    server.terminate();

    for file in ["demo.sqlite", "demo.sqlite-wal", "demo.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(file));
    }
    let server = Process::start(db);
    let (_, fresh) = drain(&server.base, "demo-alice", None).await;
    let reply = feed(&server.base, &cursor).await.expect("sent");
    assert_eq!(reply.status(), 400, "a cursor of the deleted database");
    let body: serde_json::Value = reply.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_cursor");
    assert_ne!(fresh, cursor);
    server.terminate();
}

#[tokio::test]
async fn the_binary_seeds_as_many_demo_messages_as_asked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("demo.sqlite");
    let server = Process::start_with(
        db.to_str().expect("utf-8 path"),
        &["--seed-demo-messages", "257"],
    );
    assert_eq!(all_demo_message_ids(&server.base).await.len(), 257);
    server.terminate();
}

#[test]
fn the_binary_wants_seed_demo_for_a_message_count() {
    let output = Command::new(env!("CARGO_BIN_EXE_chat-sync-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--db",
            ":memory:",
            "--seed-demo-messages",
            "10",
        ])
        .output()
        .expect("binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--seed-demo"), "{stderr}");
}

#[test]
fn the_binary_explains_a_database_it_cannot_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_chat-sync-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--db",
            dir.path().to_str().expect("utf-8"),
        ])
        .output()
        .expect("binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot open database"), "{stderr}");
}
