//! What the page calls (wasm32 only). Every function returns milliseconds measured with
//! `performance.now()` around the store calls alone; generating the messages and building the
//! batches happen before the clock starts.

use crate::data::messages;
use chat_sync::IndexedDbStore;
use chat_sync_engine::protocol::ConversationId;
use chat_sync_engine::{HistoryFloor, LocalMessage, OutboxEntry, Store, StoreError, StoreOp};
use js_sys::{Array, Promise};
use serde::Serialize;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

#[wasm_bindgen]
extern "C" {
    /// `performance.now()`.
    #[wasm_bindgen(js_namespace = performance)]
    fn now() -> f64;
}

fn error(error: StoreError) -> JsValue {
    JsValue::from_str(&error.to_string())
}

/// The serializer of the store's codec: the records the store writes are exactly these objects.
fn serializer() -> serde_wasm_bindgen::Serializer {
    serde_wasm_bindgen::Serializer::json_compatible()
}

/// The `n` benchmark messages as the plain objects the store writes, for the JS baseline and
/// Dexie.
#[wasm_bindgen]
pub fn records(n: usize) -> Result<Array, JsValue> {
    messages(n)
        .iter()
        .map(|message| message.serialize(&serializer()).map_err(JsValue::from))
        .collect()
}

/// Milliseconds to encode the `n` messages into JS objects (the codec's share of a write).
#[wasm_bindgen(js_name = encodeMs)]
pub fn encode_ms(n: usize) -> Result<f64, JsValue> {
    let messages = messages(n);
    let start = now();
    for message in &messages {
        message.serialize(&serializer())?;
    }
    Ok(now() - start)
}

/// Milliseconds to decode `records` (stored messages, as a read returns them) into
/// [`LocalMessage`]s: the codec's share of a read, which a raw read does not do.
#[wasm_bindgen(js_name = decodeMs)]
pub fn decode_ms(records: Array) -> Result<f64, JsValue> {
    let start = now();
    for record in records.iter() {
        serde_wasm_bindgen::from_value::<LocalMessage>(record)?;
    }
    Ok(now() - start)
}

/// Writes the `n` messages into a fresh database `name` through [`IndexedDbStore::apply`]: a
/// first batch of `first` `PutMessage`s, then batches of `batch`, each as the engine writes a
/// feed page ([`page_ops`]); returns the milliseconds spent in `apply`.
#[wasm_bindgen(js_name = storeWrite)]
pub async fn store_write(
    name: String,
    n: usize,
    first: usize,
    batch: usize,
) -> Result<f64, JsValue> {
    IndexedDbStore::delete(&name).await.map_err(error)?;
    let store = IndexedDbStore::open(&name).await.map_err(error)?;
    let messages = messages(n);
    let (head, tail) = messages.split_at(first.min(n));
    let batches: Vec<Vec<StoreOp>> = std::iter::once(head)
        .chain(tail.chunks(batch))
        .map(page_ops)
        .collect();
    let start = now();
    for ops in &batches {
        store.apply(ops).await.map_err(error)?;
    }
    let ms = now() - start;
    store.close();
    Ok(ms)
}

/// A feed page's writes: its messages, and for each conversation a history extension down to
/// its first message, as the engine adds them (the engine takes the first unedited one; the data
/// holds each conversation from its start, so the first one is as sound here).
fn page_ops(messages: &[LocalMessage]) -> Vec<StoreOp> {
    let mut ops: Vec<StoreOp> = messages.iter().cloned().map(StoreOp::PutMessage).collect();
    let mut extended: Vec<&ConversationId> = Vec::new();
    for message in messages {
        if extended.contains(&&message.conversation_id) {
            continue;
        }
        extended.push(&message.conversation_id);
        ops.push(StoreOp::ExtendHistory {
            conversation: message.conversation_id.clone(),
            from: HistoryFloor::Unknown,
            to: HistoryFloor::at(message).expect("a server message"),
        });
    }
    ops
}

/// Writes the `n` messages into a fresh database `name` in one batch, history whole, for the
/// maintenance benchmark (`bench/maintenance.mjs`); returns the milliseconds spent in `apply`.
#[wasm_bindgen(js_name = storeFill)]
pub async fn store_fill(name: String, n: usize) -> Result<f64, JsValue> {
    IndexedDbStore::delete(&name).await.map_err(error)?;
    let store = IndexedDbStore::open(&name).await.map_err(error)?;
    let messages = messages(n);
    let mut ops = page_ops(&messages);
    for op in &mut ops {
        if let StoreOp::ExtendHistory { to, .. } = op {
            *to = HistoryFloor::Complete;
        }
    }
    let start = now();
    store.apply(&ops).await.map_err(error)?;
    let ms = now() - start;
    store.close();
    Ok(ms)
}

/// What one maintenance batch did, for the page.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Maintenance {
    ms: f64,
    evicted: u64,
    evicted_from: usize,
    compacted: u64,
}

/// An open store, for timing reads one by one from the page.
#[wasm_bindgen]
pub struct OpenStore(Rc<IndexedDbStore>);

#[wasm_bindgen]
impl OpenStore {
    /// Opens the existing database `name`.
    pub async fn open(name: String) -> Result<OpenStore, JsValue> {
        let store = IndexedDbStore::open(&name).await.map_err(error)?;
        Ok(Self(Rc::new(store)))
    }

    /// [`Store::messages`]: resolves to the ids of the newest `limit` messages of
    /// `conversation` sorting before `before`, oldest first.
    pub fn messages(&self, conversation: String, before: f64, limit: usize) -> Promise {
        let store = self.0.clone();
        future_to_promise(async move {
            let conversation = ConversationId::new(conversation);
            let page: Vec<LocalMessage> = store
                .messages(&conversation, Some(before as i64), limit)
                .await
                .map_err(error)?;
            Ok(page
                .iter()
                .map(|message| JsValue::from(message.client_message_id.as_str()))
                .collect::<Array>()
                .into())
        })
    }

    /// Maintenance as the engine asks for it (`engine/src/engine/maintenance.rs`): evict history
    /// past `keep` per conversation, compact tombstones older than `before`, record the run.
    /// Resolves to `{ ms, evicted, evictedFrom, compacted }`.
    pub fn maintenance(&self, keep: usize, before: f64) -> Promise {
        let store = self.0.clone();
        future_to_promise(async move {
            let ops = [
                StoreOp::EvictHistory { keep },
                StoreOp::CompactTombstones {
                    before: before as i64,
                },
                StoreOp::SetLastMaintenance(before as i64),
            ];
            let start = now();
            let report = store.apply(&ops).await.map_err(error)?;
            let result = Maintenance {
                ms: now() - start,
                evicted: report.evicted_messages,
                evicted_from: report.evicted_from.len(),
                compacted: report.compacted_tombstones,
            };
            Ok(result.serialize(&serializer())?)
        })
    }

    /// A message composed by the user, `n`-th of the run: its outbox entry and optimistic copy
    /// in one batch, as the engine stores it. Resolves when stored.
    pub fn compose(&self, conversation: String, n: u32) -> Promise {
        let store = self.0.clone();
        future_to_promise(async move {
            let entry = OutboxEntry {
                client_message_id: format!("bench-out-{n}").into(),
                conversation_id: ConversationId::new(conversation),
                body: "a message written during maintenance".into(),
                seq: u64::from(n),
                composed_at: now() as i64,
                failure: None,
            };
            let ops = [
                StoreOp::PutOutbox(entry.clone()),
                StoreOp::PutMessage(LocalMessage::optimistic(&entry, &"user-0".into())),
            ];
            store.apply(&ops).await.map_err(error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Runs maintenance the old way from now on, in every store of the page (a walk over every
    /// message), to compare.
    #[wasm_bindgen(js_name = legacyMaintenance)]
    pub fn legacy_maintenance(&self) {
        IndexedDbStore::use_legacy_maintenance(true);
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.0.close();
    }
}
