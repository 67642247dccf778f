//! The browser benchmark of the IndexedDB store (`make bench`, see `bench/run.sh`).
//!
//! The page (`bench/bench.js`) writes the same generated messages through
//! [`chat_sync::IndexedDbStore`], a plain IndexedDB loop and Dexie, and reads pages back. This
//! crate is the store's side: the message generator and the functions the page calls. They only
//! exist on wasm32; natively the crate is the generator alone, so `cargo clippy --workspace`
//! checks it.

pub mod data;
#[cfg(target_arch = "wasm32")]
pub mod web;
