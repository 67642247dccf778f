//! The shared store contract (`chat_sync_engine::contract`) run on [`MemoryStore`], through both
//! arms of `store_contract_tests!`.
//!
//! The engine's dev-dependency on itself turns on the `contract-tests` feature, so a plain
//! `cargo test --workspace` runs these.

use chat_sync_engine::MemoryStore;

/// The blocking arm: plain `#[test]`s, each check driven by `pollster::block_on`.
mod blocking {
    use super::MemoryStore;

    chat_sync_engine::store_contract_tests!(
        #[test]
        |_name| async { MemoryStore::new() },
        pollster::block_on
    );
}

/// The async arm, as the browser suite uses it with `#[wasm_bindgen_test]`; here an async test
/// attribute that blocks natively. `name` is the check's name.
mod async_attribute {
    use super::MemoryStore;

    chat_sync_engine::store_contract_tests!(
        #[pollster::test]
        |name| async move {
            assert!(!name.is_empty() && !name.contains(' '));
            MemoryStore::new()
        },
        async
    );
}
