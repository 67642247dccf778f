//! Applying an engine batch: one readwrite transaction, all reads issued at once (server
//! messages found by one index range read per conversation, not a `get` each), the merge rules
//! applied in memory, then all writes issued at once; where a conversation lost a message (or is
//! new), its last activity read back from its messages and written; then the transaction's
//! outcome awaited. History floors the batch needs but the store has not recorded are recorded
//! first, from the cache before the batch (see [`HistoryFloor`]).
//!
//! Nothing but IndexedDB requests is awaited while the transaction is open, so it never
//! auto-commits half way; a failure aborts it and nothing of the batch is written.

use super::codec::*;
use super::connection::{Connection, Durability};
use super::errors::{classify, classify_exception, Failure};
use super::open::{aborted_because, finish};
use super::request::request_result;
use super::slots::Slots;
use chat_sync_engine::protocol::{ConversationId, Millis, ReadMarker};
use chat_sync_engine::sort::sort_by;
use chat_sync_engine::{ApplyReport, ChangeSet, HistoryFloor, LocalMessage, OutboxEntry, StoreOp};
use idb::{CursorDirection, ManagedCursor, ObjectStore, Transaction};
use js_sys::{Array, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use web_sys::{
    DomException, IdbCursorDirection, IdbCursorWithValue, IdbIndex, IdbObjectStore, IdbRequest,
};

#[cfg(feature = "legacy-maintenance")]
thread_local! {
    /// Maintenance the old way ([`crate::IndexedDbStore::use_legacy_maintenance`]).
    pub(super) static LEGACY_MAINTENANCE: std::cell::Cell<bool> =
        const { std::cell::Cell::new(false) };
}

mod maintenance;

use maintenance::{compact, compact_and_mark, Compacted};

/// Eviction as the store does it, or (`bench/maintenance.mjs`) the old way.
async fn evict(stores: &Stores, keep: usize) -> Result<maintenance::Evicted, Failure> {
    #[cfg(feature = "legacy-maintenance")]
    if LEGACY_MAINTENANCE.get() {
        return maintenance::evict_walking(stores, keep).await;
    }
    maintenance::evict(stores, keep).await
}

/// The batch's view of the records it touches: what was stored, then its own changes on top.
struct Overlay {
    messages: Slots<MessageKey, LocalMessage>,
    conversations: Slots<ConversationId, ConversationRecord>,
    /// Conversations whose last activity is worked out again from their messages once the
    /// batch's writes are issued ([`recompute_activity`]): those created by the batch, and those
    /// that lost a message, which may lower it: an optimistic copy removed or replaced by the
    /// server's (the engine removes its outbox entry in the same batch), evicted history,
    /// compacted tombstones.
    recompute: Vec<ConversationId>,
    /// History floors, recorded or (`None`) not.
    floors: Slots<ConversationId, HistoryFloor>,
    read_markers: Slots<(String, String), ReadMarker>,
    outbox: Slots<String, OutboxEntry>,
    meta: Option<MetaRecord>,
    meta_dirty: bool,
}

/// Applies `ops` atomically. `inject` aborts the transaction after the writes with that
/// exception (tests simulate quota errors with it).
pub(crate) async fn apply(
    database: &Connection,
    ops: &[StoreOp],
    inject: Option<DomException>,
) -> Result<ApplyReport, Failure> {
    // A composed message, and a read marker not sent yet, exist nowhere else until they are
    // sent (`markRead` resolves once the marker is stored); everything else the server can send
    // again.
    let queues = |op: &StoreOp| {
        matches!(
            op,
            StoreOp::PutOutbox(_) | StoreOp::RetryOutbox { .. } | StoreOp::SetPendingReadMarkers(_)
        )
    };
    let durability = match ops.iter().any(queues) {
        true => Durability::Strict,
        false => Durability::Relaxed,
    };
    let transaction = database.write(&ALL_STORES, durability)?;
    match run(&transaction, ops, inject).await {
        Ok(report) => finish(transaction).await.map(|()| report),
        // The browser aborted it (a write failed: its error says why, where a later request
        // only says it was aborted).
        Err(_) if transaction.error().is_some() => Err(aborted_because(&transaction)),
        Err(failure) => {
            // Never leave a half-applied batch to auto-commit.
            let _ = transaction.abort();
            Err(failure)
        }
    }
}

async fn run(
    transaction: &Transaction,
    ops: &[StoreOp],
    inject: Option<DomException>,
) -> Result<ApplyReport, Failure> {
    let stores = Stores::of(transaction)?;
    let mut overlay = read_touched(&stores, ops).await?;
    let mut report = ApplyReport::default();
    for op in ops {
        match op {
            // A scan sees the stored state: issue the writes so far first (requests run in
            // order), then tell the overlay what the scan removed.
            StoreOp::EvictHistory { keep } => {
                overlay.write(&stores)?;
                let evicted = evict(&stores, *keep).await?;
                report.evicted_messages += evicted.removed;
                let conversations = evicted.kept_from.iter().map(|(id, _)| id.clone());
                report.evicted_from.extend(conversations.clone());
                overlay.recompute.extend(conversations);
                overlay.reread_messages(&stores).await?;
                overlay
                    .forget_floors_below(&stores, evicted.kept_from)
                    .await?;
            }
            StoreOp::ForgetServerData => {
                overlay.write(&stores)?;
                report.forgotten = overlay.forget_server_data(&stores).await?;
            }
            StoreOp::CompactTombstones { before } => {
                overlay.write(&stores)?;
                let compacted = overlay.compact(&stores, *before).await?;
                report.compacted_tombstones += compacted.removed;
                overlay.recompute.extend(compacted.conversations);
                overlay.reread_messages(&stores).await?;
            }
            StoreOp::ExpireOutbox { .. } => overlay.expire(op, &mut report),
            StoreOp::RetryOutbox { .. } => overlay.retry(op, &mut report),
            StoreOp::DiscardOutbox { .. } => overlay.discard(op, &mut report),
            op => overlay.apply(op),
        }
    }
    overlay.write(&stores)?;
    recompute_activity(&stores, overlay.recompute).await?;
    sort_by(&mut report.evicted_from, Ord::cmp);
    if let Some(exception) = inject {
        return Err(super::errors::classify_exception(&exception));
    }
    Ok(report)
}

/// The object stores of one transaction.
struct Stores {
    conversations: ObjectStore,
    messages: ObjectStore,
    outbox: ObjectStore,
    read_markers: ObjectStore,
    meta: ObjectStore,
    history: ObjectStore,
}

impl Stores {
    fn of(transaction: &Transaction) -> Result<Self, Failure> {
        let store = |name| transaction.object_store(name).map_err(|e| classify(&e));
        Ok(Self {
            conversations: store(CONVERSATIONS)?,
            messages: store(MESSAGES)?,
            outbox: store(OUTBOX)?,
            read_markers: store(READ_MARKERS)?,
            meta: store(META)?,
            history: store(HISTORY)?,
        })
    }
}

/// Issues every read the batch needs at once and waits for all of them (then, for a crowded
/// [`Span`], a second round of `get`s).
async fn read_touched(stores: &Stores, ops: &[StoreOp]) -> Result<Overlay, Failure> {
    let mut message_keys = Vec::new();
    // Optimistic messages are read by key, server messages by their conversation's span.
    let mut message_gets = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    let mut conversation_ids = Vec::new();
    // Conversations whose floor the batch reads, and of those, the ones whose floor it records
    // where there is none (it puts a server message there, or extends its history).
    let mut floor_ids: Vec<ConversationId> = Vec::new();
    let mut recording: Vec<ConversationId> = Vec::new();
    let mut marker_keys = Vec::new();
    let mut outbox_keys = Vec::new();
    let mut meta = false;
    for op in ops {
        match op {
            StoreOp::PutMessage(message) => {
                let key = (
                    message.sender_id.to_string(),
                    message.client_message_id.to_string(),
                );
                if message.is_from_server() {
                    Span::of(&mut spans, &message.conversation_id)
                        .add(key.clone(), message.sort_ts);
                    floor_ids.push(message.conversation_id.clone());
                    recording.push(message.conversation_id.clone());
                } else {
                    message_gets.push(key.clone());
                }
                message_keys.push(key);
                conversation_ids.push(message.conversation_id.clone());
            }
            StoreOp::RemoveOptimistic {
                sender,
                client_message_id,
            } => {
                let key = (sender.to_string(), client_message_id.to_string());
                message_gets.push(key.clone());
                message_keys.push(key);
            }
            StoreOp::PutConversation(conversation) => {
                conversation_ids.push(conversation.id.clone());
                floor_ids.push(conversation.id.clone());
            }
            StoreOp::ExtendHistory { conversation, .. }
            | StoreOp::RestartHistory { conversation, .. } => {
                floor_ids.push(conversation.clone());
                recording.push(conversation.clone());
            }
            StoreOp::PutReadMarker(marker) => marker_keys.push((
                marker.conversation_id.to_string(),
                marker.user_id.to_string(),
            )),
            StoreOp::PutOutbox(entry) => outbox_keys.push(entry.client_message_id.to_string()),
            StoreOp::RemoveOutbox(client_message_id) => {
                outbox_keys.push(client_message_id.to_string())
            }
            StoreOp::RestampOutbox {
                client_message_id,
                conversation,
                sender,
                ..
            }
            | StoreOp::ExpireOutbox {
                client_message_id,
                conversation,
                sender,
                ..
            }
            | StoreOp::RetryOutbox {
                client_message_id,
                conversation,
                sender,
                ..
            } => {
                outbox_keys.push(client_message_id.to_string());
                let key = (sender.to_string(), client_message_id.to_string());
                message_gets.push(key.clone());
                message_keys.push(key);
                conversation_ids.push(conversation.clone());
            }
            StoreOp::DiscardOutbox {
                client_message_id,
                sender,
                ..
            } => {
                outbox_keys.push(client_message_id.to_string());
                let key = (sender.to_string(), client_message_id.to_string());
                message_gets.push(key.clone());
                message_keys.push(key);
            }
            StoreOp::SetCursor(_)
            | StoreOp::SetLastSync(_)
            | StoreOp::SetLastMaintenance(_)
            | StoreOp::SetPendingReadMarkers(_) => meta = true,
            StoreOp::ForgetServerData
            | StoreOp::EvictHistory { .. }
            | StoreOp::CompactTombstones { .. } => {}
        }
    }
    let mut overlay = Overlay {
        messages: Slots::new(message_keys),
        conversations: Slots::new(conversation_ids),
        recompute: Vec::new(),
        floors: Slots::new(floor_ids),
        read_markers: Slots::new(marker_keys),
        outbox: Slots::new(outbox_keys),
        meta: None,
        meta_dirty: false,
    };
    let conversation_ids: Vec<ConversationId> = overlay.conversations.keys().cloned().collect();
    let floor_ids: Vec<ConversationId> = overlay.floors.keys().cloned().collect();
    let marker_keys: Vec<(String, String)> = overlay.read_markers.keys().cloned().collect();
    let outbox_keys: Vec<String> = overlay.outbox.keys().cloned().collect();

    let mut reads = Reads::default();
    let message_reads = reads.get_all(
        &stores.messages,
        message_gets
            .iter()
            .map(|(sender, id)| message_key(sender, id)),
    )?;
    let span_reads = spans
        .iter_mut()
        .map(|span| reads.span(&stores.messages, span))
        .collect::<Result<Vec<_>, _>>()?;
    let conversation_reads = reads.get_all(
        &stores.conversations,
        conversation_ids.iter().map(|id| id.as_str().into()),
    )?;
    let floor_reads = reads.get_all(
        &stores.history,
        floor_ids.iter().map(|id| id.as_str().into()),
    )?;
    let marker_reads = reads.get_all(
        &stores.read_markers,
        marker_keys
            .iter()
            .map(|(conversation, user)| read_marker_key(conversation, user)),
    )?;
    // An outbox entry's conversation is where its optimistic copy leaves from.
    let outbox_reads = reads.get_all(
        &stores.outbox,
        outbox_keys.iter().map(|key| key.as_str().into()),
    )?;
    let meta_read = reads.get_all(&stores.meta, meta.then(|| META_KEY.into()).into_iter())?;
    reads.settle().await?;
    for (key, request) in message_gets.iter().zip(message_reads) {
        overlay.messages.stored(key, Reads::record(&request)?);
    }
    // Spans whose range held more than they may read fall back to a `get` per key.
    let mut fallback = Reads::default();
    let mut fallback_keys = Vec::new();
    for (span, request) in spans.into_iter().zip(span_reads) {
        match span.found(&request)? {
            Some(found) => {
                for (key, message) in found {
                    overlay.messages.stored(&key, Some(message));
                }
            }
            None => {
                let keys = span.keys.iter().map(|(sender, id)| message_key(sender, id));
                fallback_keys.extend(
                    span.keys
                        .iter()
                        .cloned()
                        .zip(fallback.get_all(&stores.messages, keys)?),
                );
            }
        }
    }
    fallback.settle().await?;
    for (key, request) in fallback_keys {
        overlay.messages.stored(&key, Reads::record(&request)?);
    }
    for (id, request) in conversation_ids.iter().zip(conversation_reads) {
        overlay.conversations.stored(id, Reads::record(&request)?);
    }
    for (id, request) in floor_ids.iter().zip(floor_reads) {
        overlay.floors.stored(id, Reads::record(&request)?);
    }
    record_floors(stores, &mut overlay, recording).await?;
    for (key, request) in marker_keys.iter().zip(marker_reads) {
        overlay.read_markers.stored(key, Reads::record(&request)?);
    }
    for (key, request) in outbox_keys.iter().zip(outbox_reads) {
        overlay.outbox.stored(key, Reads::record(&request)?);
    }
    let stored_meta: Option<MetaRecord> =
        meta_read.first().map(Reads::record).transpose()?.flatten();
    overlay.meta = stored_meta.or_else(|| meta.then(MetaRecord::fresh));
    Ok(overlay)
}

/// The server messages of a batch in one conversation: their keys and the `sortTs` range they
/// span.
///
/// A server message's `sortTs` is its `serverTs`, which never changes, so every stored version
/// of it sits at the same position in the `[conversationId, sortTs]` index: one `getAll` over the
/// range finds them all, instead of a `get` per message. (An optimistic copy of the user's own
/// message sits elsewhere; the range misses it, which changes nothing: a server version always
/// replaces an optimistic one.) A range that holds many other messages too (an edit of an old
/// message next to new ones) is read up to [`Span::limit`] records, then per key.
struct Span {
    conversation: ConversationId,
    /// Sorted and without duplicates once the read is issued ([`Reads::span`]).
    keys: Vec<MessageKey>,
    first: Millis,
    last: Millis,
}

impl Span {
    /// The span of `conversation` in `spans`, added when missing. (A batch touches a handful of
    /// conversations: a `Vec` is enough, and smaller in the wasm than another map type.)
    fn of<'a>(spans: &'a mut Vec<Span>, conversation: &ConversationId) -> &'a mut Span {
        let index = match spans
            .iter()
            .position(|span| &span.conversation == conversation)
        {
            Some(index) => index,
            None => {
                spans.push(Span {
                    conversation: conversation.clone(),
                    keys: Vec::new(),
                    first: Millis::MAX,
                    last: Millis::MIN,
                });
                spans.len() - 1
            }
        };
        &mut spans[index]
    }

    fn add(&mut self, key: MessageKey, sort_ts: Millis) {
        self.first = self.first.min(sort_ts);
        self.last = self.last.max(sort_ts);
        self.keys.push(key);
    }

    /// The most records the range read returns; reaching it means the range is crowded.
    fn limit(&self) -> u32 {
        u32::try_from(2 * self.keys.len() + 64).unwrap_or(u32::MAX)
    }

    /// The stored versions of this span's messages from its settled range read, by key; `None`
    /// when the range held more records than it read.
    fn found(
        &self,
        request: &IdbRequest,
    ) -> Result<Option<Vec<(MessageKey, LocalMessage)>>, Failure> {
        let records: Array = Reads::value(request)?
            .map(JsCast::unchecked_into)
            .unwrap_or_default();
        if records.length() >= self.limit() {
            return Ok(None);
        }
        let field = |record: &JsValue, name: &str| {
            Reflect::get(record, &name.into())
                .ok()
                .and_then(|value| value.as_string())
                .unwrap_or_default()
        };
        let mut found = Vec::new();
        for record in records.iter() {
            let key = (
                field(&record, "senderId"),
                field(&record, "clientMessageId"),
            );
            if self.keys.binary_search(&key).is_ok() {
                found.push((key, from_js(record)?));
            }
        }
        Ok(Some(found))
    }
}

/// Read requests (`get`, and a [`Span`]'s `getAll`) issued together in one transaction, awaited
/// as one.
///
/// A transaction runs its requests in the order they were issued, so once the last one has
/// succeeded all have. One callback for the whole read phase instead of a callback pair, two
/// channels and a wake-up per record: those took about a third of the read phase in Chromium
/// (`make bench`).
#[derive(Default)]
struct Reads(Vec<IdbRequest>);

impl Reads {
    /// Issues a `get` for each key; returns the requests in the same order.
    fn get_all(
        &mut self,
        store: &ObjectStore,
        keys: impl Iterator<Item = JsValue>,
    ) -> Result<Vec<IdbRequest>, Failure> {
        let store = IdbObjectStore::from(store.clone());
        let mut requests = Vec::new();
        for key in keys {
            let request = store
                .get(&key)
                .map_err(|error| classify(&idb::Error::GetFailed(error)))?;
            self.0.push(request.clone());
            requests.push(request);
        }
        Ok(requests)
    }

    /// Issues a `getAll` over `span`'s range of the conversation index, up to its limit (and
    /// sorts its keys for lookups).
    fn span(&mut self, store: &ObjectStore, span: &mut Span) -> Result<IdbRequest, Failure> {
        sort_by(&mut span.keys, Ord::cmp);
        span.keys.dedup();
        let range = idb::KeyRange::bound(
            &conversation_position(&span.conversation, span.first as f64),
            &conversation_position(&span.conversation, span.last as f64),
            None,
            None,
        )
        .map_err(|e| classify(&e))?;
        let index: IdbIndex = store
            .index(BY_CONVERSATION)
            .map_err(|e| classify(&e))?
            .into();
        let request = index
            .get_all_with_key_and_limit(&range.into(), span.limit())
            .map_err(|error| classify(&idb::Error::GetAllFailed(error)))?;
        self.0.push(request.clone());
        Ok(request)
    }

    /// Adds a request issued elsewhere to those awaited together.
    fn issue(&mut self, request: IdbRequest) -> IdbRequest {
        self.0.push(request.clone());
        request
    }

    /// Waits for every request; on failure, the first failed request's error.
    async fn settle(&self) -> Result<(), Failure> {
        let Some(last) = self.0.last() else {
            return Ok(());
        };
        request_result(last).await.map(drop).map_err(|failure| {
            self.0
                .iter()
                .find_map(|request| request.error().ok().flatten())
                .map_or(failure, |exception| classify_exception(&exception))
        })
    }

    /// The record a settled `get` read, decoded, if there was one.
    fn record<T: serde::de::DeserializeOwned>(request: &IdbRequest) -> Result<Option<T>, Failure> {
        Self::value(request)?.map(from_js).transpose()
    }

    /// The record a settled request read, if there was one.
    fn value(request: &IdbRequest) -> Result<Option<JsValue>, Failure> {
        let value = request
            .result()
            .map_err(|error| classify(&idb::Error::RequestResultNotFound(error)))?;
        Ok((!value.is_undefined() && !value.is_null()).then_some(value))
    }

    /// The record under the cursor a settled `openCursor` request opened, if it found one.
    fn cursor_value<T: serde::de::DeserializeOwned>(
        request: &IdbRequest,
    ) -> Result<Option<T>, Failure> {
        let Some(cursor) = Self::value(request)? else {
            return Ok(None);
        };
        let cursor: IdbCursorWithValue = cursor.unchecked_into();
        let value =
            (cursor.value()).map_err(|error| classify(&idb::Error::CursorValueNotFound(error)))?;
        from_js(value).map(Some)
    }
}

/// Records the floors of the conversations in `recording` that the store has none of, from the
/// cache as it is before the batch (see [`HistoryFloor`]): the conversation's oldest server
/// message, or `Unknown` when none is cached.
async fn record_floors(
    stores: &Stores,
    overlay: &mut Overlay,
    mut recording: Vec<ConversationId>,
) -> Result<(), Failure> {
    recording.retain(|id| overlay.floors.get(id).is_none());
    sort_by(&mut recording, Ord::cmp);
    recording.dedup();
    if recording.is_empty() {
        return Ok(());
    }
    let index: IdbIndex = (stores.messages.index(BY_CONVERSATION))
        .map_err(|e| classify(&e))?
        .into();
    let mut reads = Reads::default();
    let mut oldest = Vec::new();
    for id in &recording {
        let range = server_messages(id).map_err(|e| classify(&e))?;
        let request = index
            .open_cursor_with_range(&range.into())
            .map_err(|error| classify(&idb::Error::OpenCursorFailed(error)))?;
        oldest.push(reads.issue(request));
    }
    reads.settle().await?;
    for (id, request) in recording.iter().zip(oldest) {
        let oldest: Option<LocalMessage> = Reads::cursor_value(&request)?;
        let floor = HistoryFloor::whole_from(oldest.as_ref());
        overlay.floors.change(id, Some(floor));
    }
    Ok(())
}

/// Works out the last activity of `conversations` again from what the store holds once the
/// batch's writes are issued (requests run in order, so these reads see them): the greatest of
/// the conversation's `updated_ts`, its newest server message's `server_ts` and its optimistic
/// messages' `composed_at`. Writes the records that change.
async fn recompute_activity(
    stores: &Stores,
    mut conversations: Vec<ConversationId>,
) -> Result<(), Failure> {
    if conversations.is_empty() {
        return Ok(());
    }
    sort_by(&mut conversations, Ord::cmp);
    conversations.dedup();
    let fail = |error: idb::Error| classify(&error);
    let index: IdbIndex = stores.messages.index(BY_CONVERSATION).map_err(fail)?.into();
    let mut reads = Reads::default();
    let records = reads.get_all(
        &stores.conversations,
        conversations.iter().map(|id| id.as_str().into()),
    )?;
    let mut newest_server = Vec::new();
    let mut optimistic = Vec::new();
    for id in &conversations {
        let server: JsValue = server_messages(id).map_err(fail)?.into();
        let request = index
            .open_cursor_with_range_and_direction(&server, IdbCursorDirection::Prev)
            .map_err(|error| classify(&idb::Error::OpenCursorFailed(error)))?;
        newest_server.push(reads.issue(request));
        let request = index
            .get_all_with_key(&optimistic_messages(id).map_err(fail)?.into())
            .map_err(|error| classify(&idb::Error::GetAllFailed(error)))?;
        optimistic.push(reads.issue(request));
    }
    reads.settle().await?;
    for ((record, server), pending) in records.iter().zip(newest_server).zip(optimistic) {
        let Some(mut record): Option<ConversationRecord> = Reads::record(record)? else {
            continue;
        };
        let mut messages: Vec<LocalMessage> = Vec::new();
        messages.extend(Reads::cursor_value(&server)?);
        if let Some(pending) = Reads::value(&pending)? {
            for message in pending.unchecked_into::<Array>().iter() {
                messages.push(from_js(message)?);
            }
        }
        let last_activity = messages
            .iter()
            .filter_map(LocalMessage::activity)
            .fold(record.updated_ts, Millis::max);
        if last_activity != record.last_activity {
            record.last_activity = last_activity;
            drop(
                stores
                    .conversations
                    .put(&to_js(&record)?, None)
                    .map_err(fail)?,
            );
        }
    }
    Ok(())
}

impl Overlay {
    /// Applies one op to the batch's view, marking the records it changes.
    fn apply(&mut self, op: &StoreOp) {
        match op {
            StoreOp::PutConversation(conversation) => {
                let current = self.conversations.get(&conversation.id);
                if current.is_some_and(|c| c.updated_ts >= conversation.updated_ts) {
                    return;
                }
                let activity = match current {
                    Some(current) => current.last_activity,
                    // Its messages may be stored already.
                    None => {
                        self.recompute.push(conversation.id.clone());
                        Millis::MIN
                    }
                };
                if current.is_none() && self.floors.get(&conversation.id).is_none() {
                    let unknown = Some(HistoryFloor::Unknown);
                    self.floors.change(&conversation.id, unknown);
                }
                let record = ConversationRecord::new(conversation.clone(), activity);
                self.conversations.change(&conversation.id, Some(record));
            }
            StoreOp::ExtendHistory {
                conversation,
                from,
                to,
            } => self.floors.edit(conversation, |floor| {
                let extended = floor.clone().extended(from, to);
                let changed = extended != *floor;
                *floor = extended;
                changed
            }),
            StoreOp::RestartHistory { conversation, from } => {
                self.floors.edit(conversation, |floor| {
                    let restarted = floor.clone().restarted(from);
                    let changed = restarted != *floor;
                    *floor = restarted;
                    changed
                })
            }
            StoreOp::PutMessage(message) => {
                let key = (
                    message.sender_id.to_string(),
                    message.client_message_id.to_string(),
                );
                let current = self.messages.get(&key);
                if current.is_some_and(|c| !message.supersedes(c)) {
                    return;
                }
                // The server's copy replaces an optimistic one read by key (one put in this
                // batch): its `composed_at` no longer counts.
                if current.is_some_and(|c| !c.is_from_server()) {
                    self.recompute.push(message.conversation_id.clone());
                }
                self.messages.change(&key, Some(message.clone()));
                self.touch(&message.conversation_id, message.activity());
            }
            StoreOp::RemoveOptimistic {
                sender,
                client_message_id,
            } => {
                let key = (sender.to_string(), client_message_id.to_string());
                if let Some(optimistic) = self.messages.get(&key).filter(|c| !c.is_from_server()) {
                    self.recompute.push(optimistic.conversation_id.clone());
                    self.messages.change(&key, None);
                }
            }
            StoreOp::PutReadMarker(marker) => {
                let key = (
                    marker.conversation_id.to_string(),
                    marker.user_id.to_string(),
                );
                let current = self.read_markers.get(&key);
                if current.is_some_and(|c| c.updated_ts >= marker.updated_ts) {
                    return;
                }
                self.read_markers.change(&key, Some(marker.clone()));
            }
            StoreOp::PutOutbox(entry) => {
                let key = entry.client_message_id.to_string();
                self.outbox.change(&key, Some(entry.clone()));
            }
            StoreOp::RemoveOutbox(client_message_id) => {
                let key = client_message_id.to_string();
                // Its optimistic copy goes with it (discarded) or is replaced by the server's
                // (delivered: the server's copy is found by its stamp, not by key, so this is
                // where the batch learns its `composed_at` no longer counts).
                if let Some(entry) = self.outbox.get(&key) {
                    self.recompute.push(entry.conversation_id.clone());
                }
                self.outbox.change(&key, None);
            }
            StoreOp::RestampOutbox {
                client_message_id,
                sender,
                by,
                ..
            } => {
                let key = client_message_id.to_string();
                let pending = self.outbox.get(&key).filter(|e| e.failure.is_none());
                let Some(mut entry) = pending.cloned() else {
                    return;
                };
                entry.composed_at -= by;
                let message = LocalMessage::optimistic(&entry, sender);
                self.outbox.change(&key, Some(entry));
                self.apply(&StoreOp::PutMessage(message));
            }
            StoreOp::SetCursor(cursor) => self.edit_meta(|meta| meta.cursor = cursor.clone()),
            StoreOp::SetLastSync(at) => self.edit_meta(|meta| meta.last_sync = Some(*at)),
            StoreOp::SetLastMaintenance(at) => {
                self.edit_meta(|meta| meta.last_maintenance = Some(*at))
            }
            StoreOp::SetPendingReadMarkers(markers) => {
                self.edit_meta(|meta| meta.pending_read_markers = markers.clone())
            }
            // Applied by `run`, which reports them.
            StoreOp::ForgetServerData
            | StoreOp::EvictHistory { .. }
            | StoreOp::CompactTombstones { .. }
            | StoreOp::ExpireOutbox { .. }
            | StoreOp::RetryOutbox { .. }
            | StoreOp::DiscardOutbox { .. } => {}
        }
    }

    /// [`StoreOp::ExpireOutbox`] on the batch's view: an entry composed before `composed_before`
    /// is marked failed (pending) or removed (failed, where the engine held it failed), with its
    /// optimistic message; `report` names it, or the entry it left.
    fn expire(&mut self, op: &StoreOp, report: &mut ApplyReport) {
        let StoreOp::ExpireOutbox {
            client_message_id,
            sender,
            composed_before,
            failure,
            failed,
            ..
        } = op
        else {
            return;
        };
        let key = client_message_id.to_string();
        let Some(mut entry) = self.outbox.get(&key).cloned() else {
            return;
        };
        let id = client_message_id.clone();
        if entry.composed_at >= *composed_before {
            // Composed since (retried).
            report.outbox_held.push(entry);
        } else if entry.failure.is_none() {
            entry.failure = Some(failure.clone());
            let message = LocalMessage::optimistic(&entry, sender);
            self.outbox.change(&key, Some(entry));
            self.apply(&StoreOp::PutMessage(message));
            report.outbox_expired.push(id);
        } else if *failed {
            self.apply(&StoreOp::RemoveOutbox(id.clone()));
            self.apply(&StoreOp::RemoveOptimistic {
                sender: sender.clone(),
                client_message_id: id.clone(),
            });
            report.outbox_removed.push(id);
        } else {
            // Failed, but pending to the engine: another tab failed it lately.
            report.outbox_held.push(entry);
        }
    }

    /// [`StoreOp::RetryOutbox`] on the batch's view: an entry held failed is pending again from
    /// `composed_at`, with its optimistic message; `report` names it, or the entry it left.
    fn retry(&mut self, op: &StoreOp, report: &mut ApplyReport) {
        let StoreOp::RetryOutbox {
            client_message_id,
            sender,
            composed_at,
            ..
        } = op
        else {
            return;
        };
        let key = client_message_id.to_string();
        let Some(mut entry) = self.outbox.get(&key).cloned() else {
            return;
        };
        if entry.failure.is_none() {
            report.outbox_held.push(entry);
            return;
        }
        entry.failure = None;
        entry.composed_at = *composed_at;
        let message = LocalMessage::optimistic(&entry, sender);
        self.outbox.change(&key, Some(entry));
        self.apply(&StoreOp::PutMessage(message));
        report.outbox_retried.push(client_message_id.clone());
    }

    /// [`StoreOp::DiscardOutbox`] on the batch's view: an entry held failed is removed, with its
    /// optimistic message; `report` names it, or the entry it left.
    fn discard(&mut self, op: &StoreOp, report: &mut ApplyReport) {
        let StoreOp::DiscardOutbox {
            client_message_id,
            sender,
            ..
        } = op
        else {
            return;
        };
        let key = client_message_id.to_string();
        match self.outbox.get(&key) {
            None => return,
            Some(entry) if entry.failure.is_none() => {
                report.outbox_held.push(entry.clone());
                return;
            }
            Some(_) => {}
        }
        self.apply(&StoreOp::RemoveOutbox(client_message_id.clone()));
        self.apply(&StoreOp::RemoveOptimistic {
            sender: sender.clone(),
            client_message_id: client_message_id.clone(),
        });
        report.outbox_discarded.push(client_message_id.clone());
    }

    /// Raises a stored conversation's last activity.
    fn touch(&mut self, conversation: &ConversationId, at: Option<Millis>) {
        let Some(at) = at else { return };
        self.conversations.edit(conversation, |record| {
            let raised = record.last_activity < at;
            record.last_activity = record.last_activity.max(at);
            raised
        });
    }

    fn edit_meta(&mut self, edit: impl FnOnce(&mut MetaRecord)) {
        if let Some(meta) = &mut self.meta {
            edit(meta);
            self.meta_dirty = true;
        }
    }

    /// Forgets the floors eviction left below what it kept ([`HistoryFloor::is_below`]): in the
    /// batch's view where it read them, in the store otherwise (only deletes: eviction must work
    /// when storage is full).
    async fn forget_floors_below(
        &mut self,
        stores: &Stores,
        kept_from: Vec<(ConversationId, Option<LocalMessage>)>,
    ) -> Result<(), Failure> {
        let (read, unread): (Vec<_>, Vec<_>) =
            (kept_from.into_iter()).partition(|(conversation, _)| self.floors.holds(conversation));
        for (conversation, kept) in read {
            let below = self
                .floors
                .get(&conversation)
                .is_some_and(|floor| floor.is_below(kept.as_ref()));
            if below {
                self.floors.change(&conversation, None);
            }
        }
        let mut reads = Reads::default();
        let stored = reads.get_all(
            &stores.history,
            unread.iter().map(|(id, _)| id.as_str().into()),
        )?;
        reads.settle().await?;
        for ((conversation, kept), request) in unread.iter().zip(stored) {
            let floor: Option<HistoryFloor> = Reads::record(&request)?;
            if floor.is_some_and(|floor| floor.is_below(kept.as_ref())) {
                let key = JsValue::from(conversation.as_str());
                drop(stores.history.delete(key).map_err(|e| classify(&e))?);
            }
        }
        Ok(())
    }

    /// Removes everything the server sent, in the store and in this view; the outbox and
    /// optimistic messages stay. Returns the conversations it emptied and how many messages went.
    async fn forget_server_data(&mut self, stores: &Stores) -> Result<ChangeSet, Failure> {
        let fail = |error: idb::Error| classify(&error);
        let mut forgotten = ChangeSet::default();
        let conversations = stores
            .conversations
            .get_all_keys(None, None)
            .map_err(fail)?;
        for key in conversations.await.map_err(fail)? {
            if let Some(id) = key.as_string() {
                forgotten.add(&ConversationId::new(id));
            }
        }
        let removed = sweep(stores, CursorDirection::Next, LocalMessage::is_from_server).await?;
        forgotten.messages = removed.len();
        for (key, conversation) in removed {
            self.messages.removed(&key);
            forgotten.add(&conversation);
        }
        for store in [&stores.conversations, &stores.read_markers, &stores.history] {
            drop(store.clear().map_err(fail)?);
        }
        self.conversations.removed_all();
        self.read_markers.removed_all();
        self.floors.removed_all();
        sort_by(&mut forgotten.conversations, Ord::cmp);
        Ok(forgotten)
    }

    /// Reads again the messages the batch holds, after a scan removed some from the store
    /// (requests run in order: these see its deletes), so that later ops see them gone.
    async fn reread_messages(&mut self, stores: &Stores) -> Result<(), Failure> {
        let held: Vec<MessageKey> = self.messages.keys().cloned().collect();
        let mut reads = Reads::default();
        let keys = held.iter().map(|(sender, id)| message_key(sender, id));
        let requests = reads.get_all(&stores.messages, keys)?;
        reads.settle().await?;
        for (key, request) in held.iter().zip(requests) {
            if Reads::value(&request)?.is_none() {
                self.messages.removed(key);
            }
        }
        Ok(())
    }

    /// Compacts tombstones ([`compact`]), through the tombstone index once every tombstone is in
    /// it (the meta record says so), otherwise walking every message and marking the tombstones
    /// it keeps ([`compact_and_mark`]).
    async fn compact(&mut self, stores: &Stores, before: Millis) -> Result<Compacted, Failure> {
        #[cfg(feature = "legacy-maintenance")]
        if LEGACY_MAINTENANCE.get() {
            return compact_and_mark(stores, before).await;
        }
        if self.meta.is_none() {
            let mut reads = Reads::default();
            let meta = reads.get_all(&stores.meta, std::iter::once(META_KEY.into()))?;
            reads.settle().await?;
            self.meta = Reads::record(&meta[0])?;
        }
        if self
            .meta
            .as_ref()
            .is_some_and(|meta| meta.tombstones_indexed)
        {
            return compact(stores, before).await;
        }
        let compacted = compact_and_mark(stores, before).await?;
        self.edit_meta(|meta| meta.tombstones_indexed = true);
        Ok(compacted)
    }

    /// Issues the writes of the changes so far, all at once; their results arrive with the
    /// transaction's.
    fn write(&mut self, stores: &Stores) -> Result<(), Failure> {
        let fail = |error: idb::Error| classify(&error);
        for ((sender, client_id), message) in self.messages.take_changes() {
            match message {
                Some(message) => {
                    drop((stores.messages.put(&message_record(message)?, None)).map_err(fail)?)
                }
                None => drop(
                    stores
                        .messages
                        .delete(message_key(sender, client_id))
                        .map_err(fail)?,
                ),
            }
        }
        // No op deletes a conversation or a read marker: their changes are puts.
        for (_, record) in self.conversations.take_changes() {
            if let Some(record) = record {
                drop(
                    stores
                        .conversations
                        .put(&to_js(record)?, None)
                        .map_err(fail)?,
                );
            }
        }
        for (id, floor) in self.floors.take_changes() {
            let key = JsValue::from(id.as_str());
            match floor {
                Some(floor) => drop(
                    stores
                        .history
                        .put(&to_js(floor)?, Some(&key))
                        .map_err(fail)?,
                ),
                None => drop(stores.history.delete(key).map_err(fail)?),
            }
        }
        for (_, marker) in self.read_markers.take_changes() {
            if let Some(marker) = marker {
                drop(
                    stores
                        .read_markers
                        .put(&to_js(marker)?, None)
                        .map_err(fail)?,
                );
            }
        }
        for (client_id, entry) in self.outbox.take_changes() {
            match entry {
                Some(entry) => drop(stores.outbox.put(&to_js(entry)?, None).map_err(fail)?),
                None => drop(
                    stores
                        .outbox
                        .delete(JsValue::from(client_id.as_str()))
                        .map_err(fail)?,
                ),
            }
        }
        if let (true, Some(meta)) = (self.meta_dirty, &self.meta) {
            drop(
                stores
                    .meta
                    .put(&to_js(meta)?, Some(&META_KEY.into()))
                    .map_err(fail)?,
            );
            self.meta_dirty = false;
        }
        Ok(())
    }
}

/// The key of a message, as the overlay holds it.
type MessageKey = (String, String);

/// Walks every message through the conversation index (conversation by conversation; within
/// one, newest first when `direction` is `Prev`), one record at a time, then deletes those
/// `remove` picked. Returns their keys and conversations.
///
/// Deletes come after the walk: WebKit's cursors skip a record when the one under them is
/// deleted while walking backwards.
async fn sweep(
    stores: &Stores,
    direction: CursorDirection,
    mut remove: impl FnMut(&LocalMessage) -> bool,
) -> Result<Vec<(MessageKey, ConversationId)>, Failure> {
    let fail = |error: idb::Error| classify(&error);
    let cursor = stores
        .messages
        .index(BY_CONVERSATION)
        .and_then(|index| index.open_cursor(None, Some(direction)))
        .map_err(fail)?
        .await
        .map_err(fail)?;
    let mut removed = Vec::new();
    if let Some(cursor) = cursor {
        let mut cursor = ManagedCursor::from(cursor);
        while let Some(value) = cursor.value().map_err(fail)? {
            let message: LocalMessage = from_js(value)?;
            if remove(&message) {
                let key = (
                    message.sender_id.to_string(),
                    message.client_message_id.to_string(),
                );
                removed.push((key, message.conversation_id));
            }
            cursor.next(None).await.map_err(fail)?;
        }
    }
    for ((sender, client_message_id), _) in &removed {
        drop(
            stores
                .messages
                .delete(message_key(sender, client_message_id))
                .map_err(fail)?,
        );
    }
    Ok(removed)
}
