//! chat-sync: the WebAssembly client (skeleton).
//!
//! The browser edges of the sync engine live here: the IndexedDB store, the fetch transport, the
//! browser lifecycle and the JS class `BackgroundSyncManager`. Each arrives in its own issue; for
//! now the crate builds for `wasm32-unknown-unknown` and links the engine and the protocol.

pub use chat_sync_engine as engine;
pub use chat_sync_protocol as protocol;
