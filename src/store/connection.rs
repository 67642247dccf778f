//! An open database connection, with the one thing `idb` does not offer: a readwrite
//! transaction with a durability hint.

use super::errors::{classify_js, Failure};
use idb::{Database, Transaction};
use js_sys::{Array, Object, Reflect};
use std::ops::{Deref, DerefMut};
use wasm_bindgen::prelude::*;
use web_sys::{IdbDatabase, IdbTransaction};

#[wasm_bindgen]
extern "C" {
    /// `IDBDatabase`, for the `transaction` overload with options, which web-sys offers only
    /// behind its unstable-API flag.
    type DatabaseWithOptions;

    /// `IDBDatabase.transaction(storeNames, mode, options)`.
    #[wasm_bindgen(method, catch, js_name = transaction)]
    fn transaction_with_options(
        this: &DatabaseWithOptions,
        store_names: &Array,
        mode: &str,
        options: &Object,
    ) -> Result<IdbTransaction, JsValue>;
}

/// How sure the browser must be that a transaction reached the disk before it reports it
/// committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Only once the disk has it: for what exists nowhere else yet (messages composed on this
    /// device), so a power cut after "queued" cannot lose them.
    Strict,
    /// Once the operating system has it: for what the server can send again. Much faster when
    /// a sync writes many transactions.
    Relaxed,
}

/// An open connection: `idb`'s handle, and the browser's own for what `idb` lacks.
pub(crate) struct Connection {
    database: Database,
    raw: IdbDatabase,
}

impl Connection {
    /// Wraps the browser's connection.
    pub(crate) fn new(raw: IdbDatabase) -> Self {
        Self {
            database: Database::from(raw.clone()),
            raw,
        }
    }

    /// Starts a readwrite transaction over `stores` with `durability`. Browsers that do not
    /// know the hint ignore it.
    pub(crate) fn write(
        &self,
        stores: &[&str],
        durability: Durability,
    ) -> Result<Transaction, Failure> {
        let names: Array = stores.iter().map(|name| JsValue::from_str(name)).collect();
        let options = Object::new();
        let hint = match durability {
            Durability::Strict => "strict",
            Durability::Relaxed => "relaxed",
        };
        Reflect::set(&options, &"durability".into(), &hint.into())
            .expect("setting a property of a plain object");
        self.raw
            .unchecked_ref::<DatabaseWithOptions>()
            .transaction_with_options(&names, "readwrite", &options)
            .map(Transaction::from)
            .map_err(|error| classify_js(&error))
    }
}

impl Deref for Connection {
    type Target = Database;

    fn deref(&self) -> &Database {
        &self.database
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Database {
        &mut self.database
    }
}
