//! The sans-IO sync core of chat-sync (skeleton).
//!
//! A pure, deterministic state machine: events, responses and the current time go in; requests,
//! store writes, events and the next wake-up come out. It performs no I/O, reads no clock and
//! draws no randomness of its own, so it runs natively under `cargo test` and in the browser
//! unchanged. The state machine itself is built in its own issue; this crate holds its place in
//! the workspace and re-exports the wire types it speaks.

pub use chat_sync_protocol as protocol;
