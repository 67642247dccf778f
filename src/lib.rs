//! chat-sync: the WebAssembly client.
//!
//! The browser edges of the sync engine live here: the IndexedDB store ([`store`]), and — as
//! their issues land — the fetch transport, the browser lifecycle and the JS class
//! `BackgroundSyncManager`.

pub mod store;

pub use chat_sync_engine as engine;
pub use chat_sync_protocol as protocol;
pub use store::IndexedDbStore;
