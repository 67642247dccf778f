//! chat-sync: the WebAssembly client.
//!
//! The browser edges of the sync engine: the IndexedDB store ([`store`]), the fetch transport
//! ([`transport`]), the browser runtime (events, timers, console logging) and the driver that
//! feeds the engine, behind one JS class, `BackgroundSyncManager` (TypeScript types in
//! `src/js_api/types.d.ts`).
//!
//! ```js
//! const sync = await BackgroundSyncManager.create({ serverUrl, token });
//! sync.addEventListener('change', (event) => render(event.detail.conversationIds));
//! const message = await sync.sendMessage(conversationId, 'hello'); // pending until delivered
//! ```

mod driver;
mod js_api;
pub mod runtime;
pub mod store;
pub mod transport;

/// The allocator: talc, smaller in the wasm than the standard library's dlmalloc.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

pub use chat_sync_engine as engine;
pub use chat_sync_protocol as protocol;
pub use js_api::BackgroundSyncManager;
pub use store::IndexedDbStore;
