//! The JS API: the class `BackgroundSyncManager` (see `types.d.ts` for the TypeScript types).

mod errors;
mod options;
mod panics;
#[cfg(all(test, target_arch = "wasm32"))]
mod tests;

use crate::driver::{engine_now, AnyStore, Driver, Finished};
use crate::runtime::{self, NetworkCommand};
use crate::store::{request_persistence, IndexedDbStore, NoDatabase, Opened};
use crate::transport::{self, FetchTransport};
use chat_sync_engine::protocol::{
    ClientMessageId, ConversationId, MeResponse, MessageId, Millis, ReadMarker, User, UserId,
};
use chat_sync_engine::{
    iso8601, ConversationSummary, DiscardReason, Engine, Event, Failure, HistoryFloor,
    LocalMessage, MemoryStore, OutboxEntry, Status, Store, StoreError, StoreOp, SyncSummary,
};
use errors::{from_engine_error, from_store_error, from_sync_error, js_error, Code};
use js_sys::{Function, Promise, Reflect};
use options::Options;
use serde::Serialize;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{CustomEvent, CustomEventInit, EventTarget};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = include_str!("types.d.ts");

#[wasm_bindgen]
extern "C" {
    /// `listMessages`' options object (`ListMessagesOptions` in TypeScript).
    #[wasm_bindgen(typescript_type = "ListMessagesOptions")]
    pub type ListMessagesOptions;
}

/// Offline-first sync for a chat app: a local IndexedDB cache, a durable outbox delivered
/// exactly once, and background sync.
#[wasm_bindgen]
pub struct BackgroundSyncManager {
    inner: Rc<Inner>,
}

struct Inner {
    driver: Rc<Driver>,
    events: EventTarget,
    /// Why the data is kept in memory, when it is.
    memory_reason: Option<NoDatabase>,
    /// The browser's answer to `requestPersistentStorage` once it came (it may ask the user).
    persistent_storage: Rc<std::cell::Cell<Option<bool>>>,
    recovered: Option<String>,
    /// The `recovered` event went out (to the first listener).
    recovered_told: std::cell::Cell<bool>,
}

/// A manager the app lets go of (`free()`, `using`, or collected as garbage) stops as
/// [`dispose`](BackgroundSyncManager::dispose) stops it: its tasks would sync on otherwise.
impl Drop for Inner {
    fn drop(&mut self) {
        if refuse_after_panic().is_ok() {
            self.driver.dispose();
        }
    }
}

/// The newest `limit` messages of `conversation` before `before` that are not deleted, oldest
/// first: the store's pages count deleted ones (tombstones), so it reads on below them until
/// `limit` show or the cache ends.
async fn visible_messages(
    driver: &Driver,
    conversation: &ConversationId,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<LocalMessage>, StoreError> {
    let mut shown: Vec<LocalMessage> = Vec::new();
    let mut below = before;
    loop {
        let mut page = driver.store.messages(conversation, below, limit).await?;
        let more = page.len() == limit;
        below = page.first().map(|message| message.sort_ts);
        page.retain(|message| !message.deleted);
        page.append(&mut shown);
        shown = page;
        if !more || shown.len() >= limit {
            break;
        }
    }
    let extra = shown.len().saturating_sub(limit);
    shown.drain(..extra);
    Ok(shown)
}

/// Plain JS objects out: camelCase fields, numbers (not BigInts), `null` for `None`.
fn to_js<T: Serialize>(value: &T) -> JsValue {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .unwrap_or(JsValue::NULL)
}

/// What a JS method runs, boxed.
type JsCall = Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>>;

/// A promise of `future`'s value; after a panic, an `internal` error at once (see [`panics`]).
///
/// Boxed first, so every method shares one copy of the promise code instead of one per future
/// type (about 15 KB of wasm).
fn promise(future: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
    promise_of(Box::pin(future))
}

fn promise_of(call: JsCall) -> Promise {
    panics::install();
    if let Some(error) = panics::refusal() {
        return Promise::reject(&error);
    }
    let mut call = Some(call);
    Promise::new(&mut |resolve, reject| {
        let Some(call) = call.take() else { return };
        // Kept until settled, so a panic can reject it.
        let number = panics::pending(reject.clone());
        spawn_local(async move {
            let result = call.await;
            panics::settled(number);
            let (settle, value) = match result {
                Ok(value) => (resolve, value),
                Err(error) => (reject, error),
            };
            let _ = settle.call1(&JsValue::UNDEFINED, &value);
        });
    })
}

/// `listConversations` resolves with these (`Conversation` in TypeScript).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConversationJs<'a> {
    id: &'a str,
    title: &'a str,
    members: &'a [User],
    created_ts: Millis,
    updated_ts: Millis,
    last_message: Option<&'a LocalMessage>,
    /// `None` until the counts hold.
    unread_count: Option<usize>,
}

impl<'a> ConversationJs<'a> {
    /// `summary`, with its unread count where `counted`.
    fn new(summary: &'a ConversationSummary, counted: bool) -> Self {
        let conversation = &summary.conversation;
        Self {
            id: conversation.id.as_str(),
            title: &conversation.title,
            members: &conversation.members,
            created_ts: conversation.created_ts,
            updated_ts: conversation.updated_ts,
            last_message: summary.last_message.as_ref(),
            unread_count: counted.then_some(summary.unread),
        }
    }
}

/// `listReadMarkers` resolves with these (`ReadMarker` in TypeScript).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReadMarkerJs<'a> {
    conversation_id: &'a str,
    user_id: &'a str,
    last_read_message_id: &'a str,
    last_read_server_ts: Millis,
    /// `None` while pending.
    updated_ts: Option<Millis>,
    pending: bool,
}

impl<'a> From<&'a ReadMarker> for ReadMarkerJs<'a> {
    fn from(marker: &'a ReadMarker) -> Self {
        Self {
            conversation_id: marker.conversation_id.as_str(),
            user_id: marker.user_id.as_str(),
            last_read_message_id: marker.last_read_message_id.as_str(),
            last_read_server_ts: marker.last_read_server_ts,
            updated_ts: Some(marker.updated_ts),
            pending: false,
        }
    }
}

/// `forceSync` and friends resolve with this (`SyncResult` in TypeScript).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SyncResult {
    changes: usize,
    has_more: bool,
}

/// `syncOnce` resolves with this (`SyncOnceResult` in TypeScript).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SyncOnceResult {
    synced: bool,
    pending_outbox: usize,
    pending_read_markers: usize,
}

fn sync_result(summary: SyncSummary) -> JsValue {
    to_js(&SyncResult {
        changes: summary.changes,
        has_more: summary.has_more,
    })
}

/// Waits for a command's ticket; its result as JS.
async fn finished(receiver: Finished) -> Result<JsValue, JsValue> {
    match receiver.await {
        Ok(Ok(summary)) => Ok(sync_result(summary)),
        Ok(Err(error)) => Err(from_sync_error(&error)),
        Err(_) => Err(js_error(Code::Disposed, "the manager was disposed")),
    }
}

/// After a panic, the `internal` error (see [`panics`]).
fn refuse_after_panic() -> Result<(), JsValue> {
    panics::refusal().map_or(Ok(()), Err)
}

fn invalid(message: &str) -> JsValue {
    js_error(Code::InvalidInput, message)
}

/// A non-empty string argument, or `invalidInput`.
fn string_argument(value: &JsValue, name: &str) -> Result<String, JsValue> {
    match value.as_string() {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(invalid(&format!("{name} must be a non-empty string"))),
    }
}

#[wasm_bindgen]
impl BackgroundSyncManager {
    /// Opens the local database, loads the outbox and starts syncing.
    #[wasm_bindgen(unchecked_return_type = "Promise<BackgroundSyncManager>")]
    pub fn create(
        #[wasm_bindgen(unchecked_param_type = "SyncOptions")] options: JsValue,
    ) -> Promise {
        promise(async move { Self::open(options).await.map(JsValue::from) })
    }

    async fn open(options: JsValue) -> Result<Self, JsValue> {
        if !runtime::in_browser() {
            return Err(js_error(
                Code::Unsupported,
                "chat-sync runs in a browser page or worker, not here (server-side rendering?): \
                 create the manager in the browser",
            ));
        }
        let options = Options::parse(&options)?;
        runtime::set_log_level(&options.log_level);
        let mut token = match (&options.token, &options.get_token) {
            (Some(token), _) => token.clone(),
            (None, Some(get_token)) => call_get_token(get_token).await?,
            (None, None) => return Err(invalid("give token or getToken")),
        };
        let refused = || js_error(Code::Auth, "the server refused the token");
        let user = match &options.user_id {
            Some(user) => user.clone(),
            None => match whoami(&options.server_url, &token).await? {
                Some(user) => user,
                // A token the server refused (a cached one, expired): getToken has a new one.
                None => {
                    let get_token = options.get_token.as_ref().ok_or_else(refused)?;
                    token = call_get_token(get_token).await?;
                    (whoami(&options.server_url, &token).await?).ok_or_else(refused)?
                }
            },
        };
        let name = IndexedDbStore::database_name(&options.server_url, &user);
        let opened = IndexedDbStore::open_if_allowed(&name).await;
        let (store, memory_reason, recovered) = match opened.map_err(|e| from_store_error(&e))? {
            Opened::Database(store) => {
                let report = store.open_report().clone();
                let recovered = report
                    .recovered
                    .or(report.wiped.then(|| "the site's data was cleared".into()));
                (AnyStore::IndexedDb(store), None, recovered)
            }
            Opened::Without(reason) => {
                log::warn!(reason = reason.as_str(); "no database: data is kept in memory only");
                (AnyStore::Memory(MemoryStore::new()), Some(reason), None)
            }
            // The messages not sent yet exist only here now: this tab delivers them (a
            // memory-only tab leads its own sync).
            Opened::Damaged { reason, outbox } => {
                log::warn!(
                    reason = reason.as_str(), rescued = outbox.len();
                    "the database could not be rebuilt: data is kept in memory only, with the \
                     messages not sent yet read from it"
                );
                let store = memory_holding(&outbox, &user)
                    .await
                    .map_err(|error| from_store_error(&error))?;
                let reason = format!("{reason}; this page keeps its data in memory");
                (
                    AnyStore::Memory(store),
                    Some(NoDatabase::Damaged),
                    Some(reason),
                )
            }
        };
        // Not waited for: Firefox asks the user, and the app would not start until they answer.
        let persistent_storage = Rc::new(std::cell::Cell::new(None));
        if options.request_persistent_storage && runtime::has_document() {
            let answer = persistent_storage.clone();
            wasm_bindgen_futures::spawn_local(async move {
                answer.set(Some(request_persistence().await));
            });
        }
        let state = store
            .load()
            .await
            .map_err(|error| from_store_error(&error))?;
        let mut engine = Engine::new(
            options.engine_config(user, runtime::random_seed()),
            runtime::now(),
        );
        let now = engine_now(&mut engine);
        engine.handle_loaded(state, now);

        let events =
            EventTarget::new().map_err(|_| invalid("EventTarget is not constructible here"))?;
        // The manager, once made: events go out from then on (the app cannot listen before).
        let slot: Rc<RefCell<Weak<Inner>>> = Rc::new(RefCell::new(Weak::new()));
        let on_event = {
            let slot = slot.clone();
            let get_token = options.get_token.clone();
            move |event: &Event| {
                let Some(inner) = slot.borrow().upgrade() else {
                    return;
                };
                dispatch(&inner, event);
                if let (Event::AuthRequired, Some(get_token)) = (event, &get_token) {
                    refresh_token(Rc::downgrade(&inner.driver), get_token.clone());
                }
            }
        };
        let transport = FetchTransport::new(&options.server_url);
        let driver = Driver::new(engine, store, transport, token, on_event);
        let cleared_events = events.clone();
        driver.on_cleared(move || emit(&cleared_events, "cleared", &JsValue::NULL));
        let message_events = events.clone();
        driver.on_leaders_message(move |detail| emit_message(&message_events, detail));
        driver.start(&name).await;
        let inner = Rc::new(Inner {
            driver,
            events,
            memory_reason,
            persistent_storage,
            recovered,
            recovered_told: std::cell::Cell::new(false),
        });
        *slot.borrow_mut() = Rc::downgrade(&inner);
        panics::watch(&inner);
        Ok(Self { inner })
    }

    /// One sync for a service worker's `sync` or `periodicsync` event: opens the manager in the
    /// worker's global scope, syncs (through the leading tab when a page leads), waits up to
    /// 25 s for the outbox and the read markers to go out, and closes. Resolves with what is
    /// still pending.
    /// Use it in `event.waitUntil(...)`.
    #[wasm_bindgen(js_name = syncOnce, unchecked_return_type = "Promise<SyncOnceResult>")]
    pub fn sync_once(
        #[wasm_bindgen(unchecked_param_type = "SyncOptions")] options: JsValue,
    ) -> Promise {
        promise(async move {
            let manager = Self::open(options).await?;
            let driver = manager.driver()?;
            let synced = JsFuture::from(manager.force_sync()).await;
            let deadline = runtime::now() + 25_000;
            // Messages and read markers go out while the event lasts (or not at all offline),
            // from this worker or from the page that leads (what it stored tells).
            let status = loop {
                // (Stopped by a page's `clear()`: reading would make the database anew.)
                if driver.is_disposed() {
                    break driver.engine().status();
                }
                if !driver.is_leader() {
                    driver.reload_shared_state().await;
                }
                let status = driver.engine().status();
                let waiting =
                    status.pending_outbox + status.pending_read_markers > 0 && status.is_online;
                if !waiting || runtime::now() >= deadline {
                    break status;
                }
                gloo_timers::future::TimeoutFuture::new(200).await;
            };
            manager.dispose();
            Ok(to_js(&SyncOnceResult {
                synced: synced.is_ok(),
                pending_outbox: status.pending_outbox,
                pending_read_markers: status.pending_read_markers,
            }))
        })
    }

    /// From a page: asks for a one-off Background Sync (`tag`, default `chat-sync`) so the
    /// service worker delivers the outbox when the network returns, even after the page closed.
    /// Resolves `false` where the browser has no Background Sync (only Chromium has it) or no
    /// service worker controls the page; it is one more trigger, never the only delivery path.
    #[wasm_bindgen(js_name = registerBackgroundSync, unchecked_return_type = "Promise<boolean>")]
    pub fn register_background_sync(tag: Option<String>) -> Promise {
        promise(async move {
            let tag = tag.unwrap_or_else(|| "chat-sync".into());
            Ok(register_sync(&tag).await.unwrap_or(false).into())
        })
    }

    fn driver(&self) -> Result<Rc<Driver>, JsValue> {
        if self.inner.driver.is_disposed() {
            return Err(js_error(Code::Disposed, "the manager was disposed"));
        }
        Ok(self.inner.driver.clone())
    }

    /// Syncs now (or joins the running sync); resolves when it finished. Our own backoff is
    /// skipped, the server's `Retry-After` is not: while the server asked to wait more than
    /// 10 s, it rejects at once with the error that asked (the sync goes when the wait ends,
    /// `getSyncStatus().nextSyncAt`).
    #[wasm_bindgen(js_name = forceSync, unchecked_return_type = "Promise<SyncResult>")]
    pub fn force_sync(&self) -> Promise {
        let driver = self.driver();
        promise(async move { finished(driver?.network_command(NetworkCommand::Sync)).await })
    }

    /// Brings one conversation up to date first; resolves when it is.
    #[wasm_bindgen(js_name = syncConversation, unchecked_return_type = "Promise<SyncResult>")]
    pub fn sync_conversation(
        &self,
        #[wasm_bindgen(js_name = conversationId, unchecked_param_type = "string")] conversation_id: JsValue,
    ) -> Promise {
        let driver = self.driver();
        promise(async move {
            let id = ConversationId::new(string_argument(&conversation_id, "conversationId")?);
            finished(driver?.network_command(NetworkCommand::SyncConversation(id))).await
        })
    }

    /// The status (`lastSyncTime` as ISO 8601).
    #[wasm_bindgen(js_name = getSyncStatus, unchecked_return_type = "SyncStatus")]
    pub fn get_sync_status(&self) -> Result<JsValue, JsValue> {
        refuse_after_panic()?;
        Ok(status_json(
            &self.inner.driver.engine().status(),
            &self.inner,
        ))
    }

    /// Counters and durations.
    #[wasm_bindgen(js_name = getStats, unchecked_return_type = "SyncStats")]
    pub fn get_stats(&self) -> Result<JsValue, JsValue> {
        refuse_after_panic()?;
        Ok(to_js(self.inner.driver.engine().stats()))
    }

    /// Composes a message: resolves with the optimistic message (status `pending`) once it is in
    /// the durable outbox; it is delivered when the network allows.
    #[wasm_bindgen(js_name = sendMessage, unchecked_return_type = "Promise<ChatMessage>")]
    pub fn send_message(
        &self,
        #[wasm_bindgen(js_name = conversationId, unchecked_param_type = "string")] conversation_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] text: JsValue,
    ) -> Promise {
        let driver = self.driver();
        promise(async move {
            let driver = driver?;
            let conversation =
                ConversationId::new(string_argument(&conversation_id, "conversationId")?);
            let body = text
                .as_string()
                .ok_or_else(|| invalid("text must be a string"))?;
            let known = (driver.store.has_conversation(&conversation).await)
                .map_err(|error| from_store_error(&error))?;
            if !known {
                return Err(invalid(&format!("unknown conversation {conversation}")));
            }
            let (message, receiver) = driver
                .command(|engine, now| engine.send(conversation, body, now))
                .map_err(|error| from_engine_error(&error))?;
            finished(receiver).await?;
            Ok(to_js(&message))
        })
    }

    /// Queues a failed message again. Rejects with code `invalidInput`, changing nothing, when
    /// the message is not failed (any more: another tab retried, discarded or delivered it, or
    /// maintenance removed it; its `message` event or the outbox tells what became of it).
    #[wasm_bindgen(js_name = retryMessage, unchecked_return_type = "Promise<void>")]
    pub fn retry_message(
        &self,
        #[wasm_bindgen(js_name = clientMessageId, unchecked_param_type = "string")]
        client_message_id: JsValue,
    ) -> Promise {
        self.outbox_command(client_message_id, |engine, id, now| {
            engine.retry_message(id, now)
        })
    }

    /// Removes a failed message for good. Rejects with code `invalidInput`, changing nothing,
    /// when the message is not failed (any more: another tab retried, discarded or delivered
    /// it, or maintenance removed it).
    #[wasm_bindgen(js_name = discardMessage, unchecked_return_type = "Promise<void>")]
    pub fn discard_message(
        &self,
        #[wasm_bindgen(js_name = clientMessageId, unchecked_param_type = "string")]
        client_message_id: JsValue,
    ) -> Promise {
        self.outbox_command(client_message_id, |engine, id, now| {
            engine.discard_message(id, now)
        })
    }

    fn outbox_command(
        &self,
        client_message_id: JsValue,
        command: impl FnOnce(
                &mut Engine,
                &ClientMessageId,
                i64,
            ) -> Result<chat_sync_engine::Ticket, chat_sync_engine::EngineError>
            + 'static,
    ) -> Promise {
        let driver = self.driver();
        promise(async move {
            let id = ClientMessageId::new(string_argument(&client_message_id, "clientMessageId")?);
            let ((), receiver) = driver?
                .command(|engine, now| command(engine, &id, now).map(|ticket| ((), ticket)))
                .map_err(|error| from_engine_error(&error))?;
            finished(receiver).await.map(|_| JsValue::UNDEFINED)
        })
    }

    /// The cached conversations, most recent activity first (instant, offline too), each with
    /// its last message and how many messages the user has not read, up to 100 (`null` until a
    /// first sync has finished: it brings read markers after the messages they cover).
    #[wasm_bindgen(js_name = listConversations, unchecked_return_type = "Promise<Conversation[]>")]
    pub fn list_conversations(&self) -> Promise {
        let driver = self.driver();
        promise(async move {
            let driver = driver?;
            let me = driver.engine().config().user_id.clone();
            let summaries = (driver.store.conversation_summaries(&me).await)
                .map_err(|e| from_store_error(&e))?;
            let counted = driver.engine().status().last_sync_time.is_some();
            let conversations: Vec<ConversationJs> = summaries
                .iter()
                .map(|summary| ConversationJs::new(summary, counted))
                .collect();
            Ok(to_js(&conversations))
        })
    }

    /// The messages not delivered yet, pending and failed, of every conversation, oldest first
    /// (from the durable outbox, which every tab shares). One whose conversation is gone from
    /// `listConversations` (the server's data was replaced) can only be discarded.
    #[wasm_bindgen(js_name = listOutbox, unchecked_return_type = "Promise<ChatMessage[]>")]
    pub fn list_outbox(&self) -> Promise {
        let driver = self.driver();
        promise(async move {
            let driver = driver?;
            let outbox = driver
                .store
                .load()
                .await
                .map_err(|e| from_store_error(&e))?
                .outbox;
            let me = driver.engine().config().user_id.clone();
            let messages: Vec<LocalMessage> = outbox
                .iter()
                .map(|entry| LocalMessage::optimistic(entry, &me))
                .collect();
            Ok(to_js(&messages))
        })
    }

    /// Marks `message`'s conversation read up to it (a message from this manager that the
    /// server has: it has an `id`). Resolves once stored on this device; the marker reaches the
    /// server when the network allows and other devices get it with their next sync. A marker
    /// never moves back.
    #[wasm_bindgen(js_name = markRead, unchecked_return_type = "Promise<void>")]
    pub fn mark_read(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ChatMessage")] message: JsValue,
    ) -> Promise {
        let driver = self.driver();
        promise(async move {
            let driver = driver?;
            let field = |name: &str| Reflect::get(&message, &name.into()).unwrap_or_default();
            let conversation =
                ConversationId::new(string_argument(&field("conversationId"), "conversationId")?);
            let id = string_argument(&field("id"), "the message's id (a sent message)")?;
            let server_ts = field("serverTs")
                .as_f64()
                .filter(|ts| ts.is_finite())
                .ok_or_else(|| invalid("the message's serverTs must be a number"))?;
            let stored = driver
                .mark_read(conversation, MessageId::new(id), server_ts as Millis)
                .map_err(|error| from_engine_error(&error))?;
            finished(stored).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// How far each member has read a conversation, by user id. This user's marker is the one
    /// last set here, `pending` until the server has it.
    #[wasm_bindgen(js_name = listReadMarkers, unchecked_return_type = "Promise<ReadMarker[]>")]
    pub fn list_read_markers(
        &self,
        #[wasm_bindgen(js_name = conversationId, unchecked_param_type = "string")]
        conversation_id: JsValue,
    ) -> Promise {
        let driver = self.driver();
        promise(async move {
            let driver = driver?;
            let conversation =
                ConversationId::new(string_argument(&conversation_id, "conversationId")?);
            let stored = driver
                .store
                .read_markers(&conversation)
                .await
                .map_err(|error| from_store_error(&error))?;
            let engine = driver.engine();
            let me = &engine.config().user_id;
            let unsent = engine.unsent_read_marker(&conversation);
            let mut markers: Vec<ReadMarkerJs> = stored.iter().map(ReadMarkerJs::from).collect();
            let own = markers
                .iter()
                .position(|marker| marker.user_id == me.as_str());
            if let Some((message_id, server_ts)) = unsent {
                let ahead = own.is_none_or(|own| markers[own].last_read_server_ts < server_ts);
                if ahead {
                    let pending = ReadMarkerJs {
                        conversation_id: conversation.as_str(),
                        user_id: me.as_str(),
                        last_read_message_id: message_id.as_str(),
                        last_read_server_ts: server_ts,
                        updated_ts: None,
                        pending: true,
                    };
                    match own {
                        Some(own) => markers[own] = pending,
                        None => markers.push(pending),
                    }
                }
            }
            Ok(to_js(&markers))
        })
    }

    /// Up to `limit` (default 50) messages of a conversation before `before` (a `sortTs`),
    /// oldest first, from the cache; when the cache runs short and the network is up, older
    /// messages are back-filled from the server first (once the server said there are none, not
    /// again). Deleted messages are left out, and so are messages below a gap in the cache
    /// (until back-fill reaches them).
    #[wasm_bindgen(js_name = listMessages, unchecked_return_type = "Promise<ChatMessage[]>")]
    pub fn list_messages(
        &self,
        #[wasm_bindgen(js_name = conversationId, unchecked_param_type = "string")]
        conversation_id: JsValue,
        options: Option<ListMessagesOptions>,
    ) -> Promise {
        let driver = self.driver();
        let options: JsValue = options.map_or(JsValue::UNDEFINED, JsValue::from);
        promise(async move {
            let driver = driver?;
            let conversation =
                ConversationId::new(string_argument(&conversation_id, "conversationId")?);
            let number = |name: &str| -> Result<Option<f64>, JsValue> {
                if options.is_undefined() || options.is_null() {
                    return Ok(None);
                }
                match Reflect::get(&options, &name.into()) {
                    Ok(value) if value.is_undefined() => Ok(None),
                    Ok(value) => value
                        .as_f64()
                        .filter(|n| n.is_finite() && *n >= 0.0)
                        .map(Some)
                        .ok_or_else(|| invalid(&format!("{name} must be a non-negative number"))),
                    Err(_) => Ok(None),
                }
            };
            let limit = number("limit")?.map_or(50, |n| n as usize).clamp(1, 500);
            let before = number("before")?.map(|n| n as i64);
            let read = |driver: Rc<Driver>, conversation: ConversationId| async move {
                visible_messages(&driver, &conversation, before, limit)
                    .await
                    .map_err(|e| from_store_error(&e))
            };
            let mut messages = read(driver.clone(), conversation.clone()).await?;
            // Back-fill while the page is short: each page from the server moves the history
            // floor down, until the page is full or the server has no more (a `Complete` floor).
            // Back-fill is best effort: the cached page is the answer when it fails. Each floor
            // is asked below once (a server that refuses every anchor sends it back to `Unknown`).
            let mut asked_below = Vec::new();
            while messages.len() < limit && driver.engine().status().is_online {
                let floor = (driver.store.history_floor(&conversation).await)
                    .map_err(|e| from_store_error(&e))?;
                if floor == HistoryFloor::Complete || asked_below.contains(&floor) {
                    break;
                }
                let command = NetworkCommand::LoadOlder(conversation.clone(), floor.clone());
                if !matches!(driver.network_command(command).await, Ok(Ok(_))) {
                    break;
                }
                asked_below.push(floor);
                messages = read(driver.clone(), conversation.clone()).await?;
            }
            Ok(to_js(&messages))
        })
    }

    /// Whether the cache holds a conversation's history down to its first message: the server
    /// said there is nothing older (or a sync from the start of the feed brought it all). A
    /// short `listMessages` page is the beginning only then: its back-fill is best effort, and a
    /// page that came short of a failed or skipped request is not.
    #[wasm_bindgen(js_name = isHistoryComplete, unchecked_return_type = "Promise<boolean>")]
    pub fn is_history_complete(
        &self,
        #[wasm_bindgen(js_name = conversationId, unchecked_param_type = "string")]
        conversation_id: JsValue,
    ) -> Promise {
        let driver = self.driver();
        promise(async move {
            let driver = driver?;
            let conversation =
                ConversationId::new(string_argument(&conversation_id, "conversationId")?);
            let floor = (driver.store.history_floor(&conversation).await)
                .map_err(|e| from_store_error(&e))?;
            Ok((floor == HistoryFloor::Complete).into())
        })
    }

    /// Runs maintenance now.
    #[wasm_bindgen(js_name = runMaintenance, unchecked_return_type = "Promise<void>")]
    pub fn run_maintenance(&self) -> Promise {
        let driver = self.driver();
        promise(async move {
            let receiver = driver?.ticketed(|engine, now| engine.run_maintenance(now));
            finished(receiver).await.map(|_| JsValue::UNDEFINED)
        })
    }

    /// Replaces the bearer token (after `authrequired`); sync resumes. Each tab's manager uses
    /// its own token when it syncs: an `auth` rejection in a tab that does not sync
    /// (`isLeader` false) came from the tab that does, where `authrequired` fires (and `getToken`
    /// is called), so listen there in every tab.
    #[wasm_bindgen(js_name = setToken, unchecked_return_type = "Promise<void>")]
    pub fn set_token(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] token: JsValue,
    ) -> Promise {
        let driver = self.driver();
        promise(async move {
            let token = string_argument(&token, "token")?;
            driver?.set_token(token);
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Stops syncing and deletes this user's local database (logout). The user's other tabs
    /// stop too, delete it as well, and tell their apps (`cleared`).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn clear(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.driver.clear();
            (inner.driver.delete_database().await).map_err(|e| from_store_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Stops syncing and releases timers, listeners and the database; commands still waiting
    /// reject with `disposed`, but for those the write under way stores (a sent message
    /// resolves once stored, and the syncing tab delivers it), and no more events come. After
    /// an internal error it does nothing (what it would release may be held by the interrupted
    /// code).
    pub fn dispose(&self) {
        if refuse_after_panic().is_ok() {
            self.inner.driver.dispose();
        }
    }

    /// Listens for `change`, `message`, `status`, `error`, `authrequired`, `storagefull`,
    /// `recovered`, `maintenance`, `cleared` or `internalerror` events (`CustomEvent`s; the data
    /// is in `detail`). Its TypeScript signature, typed per event (`SyncEventMap`), is in
    /// `types.d.ts`.
    #[wasm_bindgen(js_name = addEventListener, skip_typescript)]
    pub fn add_event_listener(
        &self,
        kind: &str,
        listener: &Function,
        options: JsValue,
    ) -> Result<(), JsValue> {
        listeners(
            &self.inner.events,
            "addEventListener",
            kind,
            listener,
            &options,
        )?;
        if kind == "recovered" && !self.inner.recovered_told.replace(true) {
            if let Some(reason) = &self.inner.recovered {
                // Opening found damage before anyone could listen: tell the first listener.
                let detail = js_sys::Object::new();
                let _ = Reflect::set(&detail, &"reason".into(), &reason.as_str().into());
                emit(&self.inner.events, "recovered", &detail.into());
            }
        }
        Ok(())
    }

    /// Stops listening. Typed in `types.d.ts`, like `addEventListener`.
    #[wasm_bindgen(js_name = removeEventListener, skip_typescript)]
    pub fn remove_event_listener(
        &self,
        kind: &str,
        listener: &Function,
        options: JsValue,
    ) -> Result<(), JsValue> {
        listeners(
            &self.inner.events,
            "removeEventListener",
            kind,
            listener,
            &options,
        )
    }
}

/// `target.add/removeEventListener(kind, listener, options)`, the options (`once`, `signal`,
/// `capture`) passed on as the app gave them.
fn listeners(
    target: &EventTarget,
    method: &str,
    kind: &str,
    listener: &Function,
    options: &JsValue,
) -> Result<(), JsValue> {
    let method: Function = Reflect::get(target, &method.into())?.unchecked_into();
    method
        .call3(target, &kind.into(), listener, options)
        .map(|_| ())
}

/// A memory store holding `outbox`, each entry with its optimistic message (sent by `user`), as
/// composing stores them.
async fn memory_holding(outbox: &[OutboxEntry], user: &UserId) -> Result<MemoryStore, StoreError> {
    let store = MemoryStore::new();
    let ops: Vec<StoreOp> = (outbox.iter())
        .flat_map(|entry| {
            let message = LocalMessage::optimistic(entry, user);
            [
                StoreOp::PutOutbox(entry.clone()),
                StoreOp::PutMessage(message),
            ]
        })
        .collect();
    if !ops.is_empty() {
        store.apply(&ops).await?;
    }
    Ok(store)
}

/// The status object of the JS API.
fn status_json(status: &Status, inner: &Inner) -> JsValue {
    let value = to_js(status);
    let set = |key: &str, field: JsValue| {
        let _ = Reflect::set(&value, &key.into(), &field);
    };
    set(
        "lastSyncTime",
        status
            .last_sync_time
            .map_or(JsValue::NULL, |ms| iso8601(ms).into()),
    );
    set(
        "lastError",
        status.last_error.as_ref().map_or(JsValue::NULL, |error| {
            let object = js_sys::Object::new();
            let code = from_sync_error(error);
            let _ = Reflect::set(
                &object,
                &"code".into(),
                &Reflect::get(&code, &"code".into()).unwrap_or_default(),
            );
            let _ = Reflect::set(&object, &"message".into(), &error.to_string().into());
            object.into()
        }),
    );
    set(
        "storage",
        if inner.memory_reason.is_none() {
            "indexeddb"
        } else {
            "memory"
        }
        .into(),
    );
    set(
        "memoryReason",
        inner
            .memory_reason
            .map_or(JsValue::NULL, |reason| reason.as_str().into()),
    );
    set("isLeader", inner.driver.is_leader().into());
    if !inner.driver.is_leader() && !inner.driver.is_disposed() {
        // Another tab syncs for this one.
        set("phase", "follower".into());
        set("isRunning", false.into());
    }
    set(
        "persistentStorage",
        inner
            .persistent_storage
            .get()
            .map_or(JsValue::NULL, JsValue::from),
    );
    set(
        "recovered",
        inner
            .recovered
            .as_deref()
            .map_or(JsValue::NULL, JsValue::from),
    );
    value
}

/// Fires `message` with `detail`, and `error` too when it tells of a failure.
fn emit_message(target: &EventTarget, detail: &JsValue) {
    emit(target, "message", detail);
    if Reflect::get(detail, &"type".into()).ok().as_ref() == Some(&"failed".into()) {
        emit(target, "error", detail);
    }
}

/// Fires a `CustomEvent` on the manager's event target.
fn emit(target: &EventTarget, kind: &str, detail: &JsValue) {
    if let Some(event) = custom_event(kind, detail) {
        let _ = target.dispatch_event(&event);
    }
}

/// A `CustomEvent` of `kind` with `detail`.
fn custom_event(kind: &str, detail: &JsValue) -> Option<CustomEvent> {
    let init = CustomEventInit::new();
    init.set_detail(detail);
    CustomEvent::new_with_event_init_dict(kind, &init).ok()
}

/// `detail` of `change` events.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangeDetail<'a> {
    conversation_ids: Vec<&'a str>,
    messages: usize,
}

/// `detail` of `message` events (and of `error` events for failed messages).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum MessageDetail<'a> {
    Queued {
        message: &'a LocalMessage,
    },
    Sent {
        message: LocalMessage,
    },
    #[serde(rename_all = "camelCase")]
    Failed {
        client_message_id: &'a str,
        conversation_id: &'a str,
        failure: &'a Failure,
        retryable: bool,
    },
    #[serde(rename_all = "camelCase")]
    Discarded {
        client_message_id: &'a str,
        conversation_id: &'a str,
        body: &'a str,
        reason: &'static str,
    },
}

/// An engine event as DOM events on `inner`'s manager.
fn dispatch(inner: &Inner, event: &Event) {
    let target = &inner.events;
    match event {
        // (What `getSyncStatus()` gives.)
        Event::StatusChanged(status) => emit(target, "status", &status_json(status, inner)),
        Event::Changed(changes) => {
            let detail = ChangeDetail {
                conversation_ids: changes.conversations.iter().map(|id| id.as_str()).collect(),
                messages: changes.messages,
            };
            emit(target, "change", &to_js(&detail));
        }
        Event::MessageQueued { message } => {
            emit(
                target,
                "message",
                &to_js(&MessageDetail::Queued { message }),
            );
        }
        Event::MessageSent { message, .. } => {
            let message = LocalMessage::from_server(message.clone());
            let detail = to_js(&MessageDetail::Sent { message });
            emit(target, "message", &detail);
            inner.driver.tell_followers(&detail);
        }
        Event::MessageFailed {
            client_message_id,
            conversation_id,
            failure,
            retryable,
        } => {
            let detail = to_js(&MessageDetail::Failed {
                client_message_id: client_message_id.as_str(),
                conversation_id: conversation_id.as_str(),
                failure,
                retryable: *retryable,
            });
            emit_message(target, &detail);
            inner.driver.tell_followers(&detail);
        }
        Event::MessageDiscarded {
            client_message_id,
            conversation_id,
            body,
            reason,
        } => {
            let reason = match reason {
                DiscardReason::Discarded => "discarded",
                DiscardReason::Expired => "expired",
            };
            let detail = to_js(&MessageDetail::Discarded {
                client_message_id: client_message_id.as_str(),
                conversation_id: conversation_id.as_str(),
                body,
                reason,
            });
            emit(target, "message", &detail);
            inner.driver.tell_followers(&detail);
        }
        Event::AuthRequired => emit(target, "authrequired", &JsValue::NULL),
        Event::StorageFull => emit(target, "storagefull", &JsValue::NULL),
        Event::MaintenanceFinished(report) => emit(target, "maintenance", &to_js(report)),
        Event::CommandFinished { .. } => {}
    }
}

/// `navigator.serviceWorker.ready` → `registration.sync.register(tag)`, feature-detected.
async fn register_sync(tag: &str) -> Option<bool> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let container = Reflect::get(&navigator, &"serviceWorker".into()).ok()?;
    if container.is_undefined()
        || Reflect::get(&container, &"controller".into())
            .ok()?
            .is_null()
    {
        return Some(false);
    }
    let ready: Promise = Reflect::get(&container, &"ready".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let registration = JsFuture::from(ready).await.ok()?;
    let sync = Reflect::get(&registration, &"sync".into()).ok()?;
    if sync.is_undefined() {
        return Some(false);
    }
    let register: Function = Reflect::get(&sync, &"register".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let registered: Promise = register.call1(&sync, &tag.into()).ok()?.dyn_into().ok()?;
    Some(JsFuture::from(registered).await.is_ok())
}

/// Calls `getToken()` and awaits the token. What it throws or rejects with comes back as an
/// `auth` error with the app's error as its `cause`.
async fn call_get_token(get_token: &Function) -> Result<String, JsValue> {
    let failed = |cause: JsValue| {
        let error = js_error(Code::Auth, "getToken failed (the error is its cause)");
        let _ = Reflect::set(&error, &"cause".into(), &cause);
        error
    };
    let value = get_token.call0(&JsValue::NULL).map_err(failed)?;
    let value = match value.dyn_ref::<Promise>() {
        Some(promise) => JsFuture::from(promise.clone()).await.map_err(failed)?,
        None => value,
    };
    value
        .as_string()
        .filter(|token| !token.is_empty())
        .ok_or_else(|| js_error(Code::Auth, "getToken did not return a token"))
}

/// After a 401: asks `getToken()` for a new token and resumes with it. Given the token the
/// server refused again (a cached one, say), it asks again later, waiting twice as long each
/// time (from 2 s up to 5 min), instead of sending it to be refused at once, over and over.
fn refresh_token(driver: Weak<Driver>, get_token: Function) {
    wasm_bindgen_futures::spawn_local(async move {
        let mut wait_ms = 2_000;
        loop {
            let token = match call_get_token(&get_token).await {
                Ok(token) => token,
                Err(_) => return log::warn!("getToken failed; call setToken to resume"),
            };
            let Some(driver) = driver.upgrade().filter(|driver| !driver.is_disposed()) else {
                return;
            };
            if !driver.has_token(&token) {
                return driver.set_token(token);
            }
            log::warn!(wait_ms; "getToken gave the token the server refused; asking again later");
            drop(driver);
            gloo_timers::future::TimeoutFuture::new(wait_ms).await;
            wait_ms = (wait_ms * 2).min(300_000);
        }
    });
}

/// How long `GET /v1/me` may take before `create` gives up on it.
const WHOAMI_TIMEOUT_MS: u32 = 10_000;

/// Who the token belongs to (`GET /v1/me`); `None` when the server refuses it.
async fn whoami(server_url: &str, token: &str) -> Result<Option<UserId>, JsValue> {
    let unreachable = || {
        js_error(
            Code::Offline,
            "cannot reach the server to identify the user (no answer, or none within 10 s); \
             pass userId to start offline",
        )
    };
    let headers = transport::bearer_headers(token).map_err(|message| invalid(&message))?;
    let init = web_sys::RequestInit::new();
    init.set_headers(&headers);
    let url = format!("{server_url}{}", chat_sync_engine::protocol::paths::ME);
    let request =
        web_sys::Request::new_with_str_and_init(&url, &init).map_err(|_| unreachable())?;
    let answered = futures_util::future::select(
        Box::pin(transport::fetch(&request)),
        gloo_timers::future::TimeoutFuture::new(WHOAMI_TIMEOUT_MS),
    )
    .await;
    let response = match answered {
        futures_util::future::Either::Left((response, _)) => response.map_err(|_| unreachable())?,
        futures_util::future::Either::Right(_) => return Err(unreachable()),
    };
    match response.status() {
        200 => {
            let unexpected = |error: &dyn std::fmt::Display| {
                js_error(Code::Server, &format!("unexpected /v1/me answer: {error}"))
            };
            let text = transport::text(&response)
                .await
                .map_err(|e| unexpected(&e))?;
            let value = js_sys::JSON::parse(&text).map_err(|_| unexpected(&"not JSON"))?;
            let me: MeResponse =
                serde_wasm_bindgen::from_value(value).map_err(|e| unexpected(&e))?;
            Ok(Some(me.user.id))
        }
        401 => Ok(None),
        status => Err(js_error(
            Code::Server,
            &format!("GET /v1/me answered {status}"),
        )),
    }
}
