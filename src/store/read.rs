//! Reads: the engine's state at start, and the app's conversation list and message pages through
//! the indexes with bounded key ranges (no full scans).

use super::codec::*;
use super::errors::{classify, classify_exception, Failure};
use super::request::request_result;
use chat_sync_engine::protocol::{Conversation, ConversationId, Millis, ReadMarker, UserId};
use chat_sync_engine::sort::sort_by;
use chat_sync_engine::{
    conversation_order, ConversationSummary, HistoryFloor, LocalMessage, OutboxEntry,
    PersistedState, UnreadCount,
};
use idb::{CursorDirection, Database, ManagedCursor, Query, TransactionMode};
use js_sys::{Array, Object, Reflect};
use std::future::{Future, IntoFuture};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::IdbIndex;

/// The engine's persisted state: meta and the outbox in compose order.
pub(crate) async fn load(database: &Database) -> Result<PersistedState, Failure> {
    let transaction = database
        .transaction(&[META, OUTBOX], TransactionMode::ReadOnly)
        .map_err(|e| classify(&e))?;
    let meta = transaction
        .object_store(META)
        .and_then(|store| store.get(JsValue::from(META_KEY)))
        .map_err(|e| classify(&e))?
        .await
        .map_err(|e| classify(&e))?;
    let meta: MetaRecord = meta
        .map(from_js)
        .transpose()?
        .unwrap_or_else(MetaRecord::fresh);
    let outbox = transaction
        .object_store(OUTBOX)
        .and_then(|store| store.get_all(None, None))
        .map_err(|e| classify(&e))?
        .await
        .map_err(|e| classify(&e))?;
    // A record that does not read back (written by a bug, or damaged) is left where it is, not
    // in the way of every start: the others are the user's messages.
    let mut outbox: Vec<OutboxEntry> = outbox
        .into_iter()
        .filter_map(|value| match from_js(value) {
            Ok(entry) => Some(entry),
            Err(error) => {
                let error = error.into_store_error().to_string();
                log::error!(error = error.as_str(); "an outbox record does not read back; skipped");
                None
            }
        })
        .collect();
    sort_by(&mut outbox, OutboxEntry::compose_order);
    Ok(PersistedState {
        cursor: meta.cursor,
        outbox,
        last_sync: meta.last_sync,
        last_maintenance: meta.last_maintenance,
        pending_read_markers: meta.pending_read_markers,
    })
}

/// Every conversation, most recent activity first (ties by id).
pub(crate) async fn conversations(database: &Database) -> Result<Vec<Conversation>, Failure> {
    let transaction = database
        .transaction(&[CONVERSATIONS], TransactionMode::ReadOnly)
        .map_err(|e| classify(&e))?;
    conversations_in(&transaction).await
}

/// Whether the conversations store holds `id` (a count of its key: nothing decoded).
pub(crate) async fn has_conversation(
    database: &Database,
    id: &ConversationId,
) -> Result<bool, Failure> {
    let transaction = database
        .transaction(&[CONVERSATIONS], TransactionMode::ReadOnly)
        .map_err(|e| classify(&e))?;
    let count = transaction
        .object_store(CONVERSATIONS)
        .and_then(|store| store.count(Some(Query::from(JsValue::from(id.as_str())))))
        .map_err(|e| classify(&e))?
        .await
        .map_err(|e| classify(&e))?;
    Ok(count > 0)
}

/// [`conversations`] in `transaction`.
async fn conversations_in(transaction: &idb::Transaction) -> Result<Vec<Conversation>, Failure> {
    let values = transaction
        .object_store(CONVERSATIONS)
        .and_then(|store| store.get_all(None, None))
        .map_err(|e| classify(&e))?
        .await
        .map_err(|e| classify(&e))?;
    let mut records: Vec<ConversationRecord> =
        values.into_iter().map(from_js).collect::<Result<_, _>>()?;
    sort_by(&mut records, |a, b| {
        conversation_order((a.last_activity, &a.id), (b.last_activity, &b.id))
    });
    Ok(records
        .into_iter()
        .map(ConversationRecord::conversation)
        .collect())
}

/// The conversation list with each conversation's last message and unread count for `me`
/// ([`ConversationSummary`]), in one transaction: the conversations, every history floor and read
/// marker and the meta record (with the pending markers), then each conversation's messages from
/// its read marker up, and where there are many, newest first until its count is final
/// ([`UnreadCount`]); its last message too, from further down where none above is left.
pub(crate) async fn conversation_summaries(
    database: &Database,
    me: &UserId,
) -> Result<Vec<ConversationSummary>, Failure> {
    let transaction = database
        .transaction(
            &[CONVERSATIONS, MESSAGES, READ_MARKERS, HISTORY, META],
            TransactionMode::ReadOnly,
        )
        .map_err(|e| classify(&e))?;
    let store = |name: &str| transaction.object_store(name).map_err(|e| classify(&e));
    let meta = (store(META)?.get(JsValue::from(META_KEY)))
        .map_err(|e| classify(&e))?
        .into_future();
    let markers = (store(READ_MARKERS)?.get_all(None, None))
        .map_err(|e| classify(&e))?
        .into_future();
    let floor_keys = (store(HISTORY)?.get_all_keys(None, None))
        .map_err(|e| classify(&e))?
        .into_future();
    let floor_values = (store(HISTORY)?.get_all(None, None))
        .map_err(|e| classify(&e))?
        .into_future();
    let conversations = conversations_in(&transaction).await?;
    let meta: Option<MetaRecord> = (meta.await.map_err(|e| classify(&e))?)
        .map(from_js)
        .transpose()?;
    let pending = meta.map_or_else(Vec::new, |meta| meta.pending_read_markers);
    let mut read: Vec<(ConversationId, Millis)> = Vec::new();
    for marker in markers.await.map_err(|e| classify(&e))? {
        let marker: ReadMarker = from_js(marker)?;
        if &marker.user_id == me {
            read.push((marker.conversation_id, marker.last_read_server_ts));
        }
    }
    read.extend(
        pending
            .into_iter()
            .map(|p| (p.conversation_id, p.server_ts)),
    );
    let floor_keys = floor_keys.await.map_err(|e| classify(&e))?;
    let mut floors: Vec<(String, HistoryFloor)> = Vec::with_capacity(floor_keys.len());
    for (key, floor) in floor_keys
        .into_iter()
        .zip(floor_values.await.map_err(|e| classify(&e))?)
    {
        floors.push((key.as_string().unwrap_or_default(), from_js(floor)?));
    }

    let index = store(MESSAGES)?
        .index(BY_CONVERSATION)
        .map_err(|e| classify(&e))?;
    // Each conversation's messages from its read marker up, asked for all at once: mostly few,
    // and all its count needs.
    let mut asked = Vec::with_capacity(conversations.len());
    for conversation in &conversations {
        let id = conversation.id.as_str();
        let shows_from = (floors.iter())
            .find(|(key, _)| key == id)
            .map_or(Millis::MIN, |(_, floor)| floor.shows_from());
        let read_up_to = (read.iter())
            .filter(|(conversation, _)| conversation.as_str() == id)
            .map(|(_, ts)| *ts)
            .max();
        let lowest = read_up_to.map_or(shows_from, |read| read.max(shows_from));
        let range = idb::KeyRange::bound(
            &conversation_position(&conversation.id, lowest as f64),
            &conversation_position(&conversation.id, f64::INFINITY),
            None,
            None,
        )
        .map_err(|e| classify(&e))?;
        let request = (index.get_all(Some(Query::from(range)), Some(ABOVE_MARKER)))
            .map_err(|e| classify(&e))?
            .into_future();
        asked.push((shows_from, read_up_to, lowest, request));
    }
    let mut summaries = Vec::with_capacity(conversations.len());
    for (conversation, (shows_from, read_up_to, lowest, request)) in
        conversations.into_iter().zip(asked)
    {
        let mut unread = UnreadCount::new(me, read_up_to);
        let mut last_message = None;
        let values = request.await.map_err(|e| classify(&e))?;
        let scan = Scan {
            index: &index,
            conversation: &conversation.id,
            shows_from,
        };
        if values.len() < ABOVE_MARKER as usize {
            let mut counting = true;
            for value in values.into_iter().rev() {
                let message: LocalMessage = from_js(value)?;
                counting = counting && unread.next(&message);
                if last_message.is_none() && !message.deleted {
                    last_message = Some(message);
                }
            }
            if last_message.is_none() {
                scan.down(lowest as f64, None, &mut last_message).await?;
            }
        } else {
            // Many above the marker: newest first, until the count is final.
            scan.down(f64::INFINITY, Some(&mut unread), &mut last_message)
                .await?;
        }
        summaries.push(ConversationSummary {
            conversation,
            last_message,
            unread: unread.count,
        });
    }
    Ok(summaries)
}

/// Messages of a conversation read at once from its read marker up: a conversation with fewer
/// needs nothing more for its summary.
const ABOVE_MARKER: u32 = 16;

/// A conversation's messages shown, read newest first a window at a time.
struct Scan<'a> {
    index: &'a idb::Index,
    conversation: &'a ConversationId,
    shows_from: Millis,
}

impl Scan<'_> {
    /// Reads down from `upper` (exclusive; `INFINITY`: from the newest) until `unread`'s count
    /// is final (without one: at once) and `last` holds the newest message not deleted.
    async fn down(
        &self,
        mut upper: f64,
        mut unread: Option<&mut UnreadCount<'_>>,
        last: &mut Option<LocalMessage>,
    ) -> Result<(), Failure> {
        let mut window = 32;
        while (unread.is_some() || last.is_none()) && upper > self.shows_from as f64 {
            let range = idb::KeyRange::bound(
                &conversation_position(self.conversation, self.shows_from as f64),
                &conversation_position(self.conversation, upper),
                None,
                Some(upper.is_finite()),
            )
            .map_err(|e| classify(&e))?;
            let values = newest(self.index, range, window).await?;
            let full = values.len() == window;
            for value in values {
                let message: LocalMessage = from_js(value)?;
                upper = message.sort_ts as f64;
                if unread.as_mut().is_some_and(|unread| !unread.next(&message)) {
                    unread = None;
                }
                if last.is_none() && !message.deleted {
                    *last = Some(message);
                }
            }
            if !full {
                break;
            }
            window = 128;
        }
        Ok(())
    }
}

/// Asks for the recorded history floor of a conversation in `transaction`. The request goes at
/// once, and its answer is kept until awaited, so other requests may be awaited first.
fn recorded_floor(
    transaction: &idb::Transaction,
    conversation: &ConversationId,
) -> Result<impl Future<Output = Result<Option<HistoryFloor>, Failure>>, Failure> {
    let request = transaction
        .object_store(HISTORY)
        .and_then(|store| store.get(JsValue::from(conversation.as_str())))
        .map_err(|e| classify(&e))?
        .into_future();
    Ok(async move {
        let value = request.await.map_err(|e| classify(&e))?;
        value.map(from_js).transpose()
    })
}

/// The newest `limit` messages of a conversation sorting before `before` and not below its
/// history floor, in ascending order.
///
/// One bounded walk backwards through the `[conversationId, sortTs]` index ([`newest`]).
pub(crate) async fn messages(
    database: &Database,
    conversation: &ConversationId,
    before: Option<Millis>,
    limit: usize,
) -> Result<Vec<LocalMessage>, Failure> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let transaction = database
        .transaction(&[HISTORY, MESSAGES], TransactionMode::ReadOnly)
        .map_err(|e| classify(&e))?;
    // Read along with the page, which is then cut at the floor: a page reaching below it holds
    // everything shown above it.
    let floor = recorded_floor(&transaction, conversation)?;
    let upper = before.map_or(f64::INFINITY, |before| before as f64);
    let index = transaction
        .object_store(MESSAGES)
        .and_then(|store| store.index(BY_CONVERSATION))
        .map_err(|e| classify(&e))?;
    let range = idb::KeyRange::bound(
        &conversation_position(conversation, f64::NEG_INFINITY),
        &conversation_position(conversation, upper),
        None,
        Some(before.is_some()),
    )
    .map_err(|e| classify(&e))?;
    let mut values = newest(&index, range, limit).await?;
    values.reverse();
    let mut messages: Vec<LocalMessage> =
        values.into_iter().map(from_js).collect::<Result<_, _>>()?;
    if let Some(floor) = floor.await? {
        messages.retain(|message| message.sort_ts >= floor.shows_from());
    }
    Ok(messages)
}

/// The newest `limit` values in `range` of `index`, newest first: one bounded walk backwards,
/// with `IDBIndex.getAll` and a direction where the browser has it, a cursor otherwise.
async fn newest(
    index: &idb::Index,
    range: idb::KeyRange,
    limit: usize,
) -> Result<Vec<JsValue>, Failure> {
    let raw: IdbIndex = index.clone().into();
    if let Some(values) = get_all_prev(&raw, &range, limit).await? {
        return Ok(values);
    }
    let mut values = Vec::with_capacity(limit.min(256));
    let cursor = index
        .open_cursor(Some(Query::from(range)), Some(CursorDirection::Prev))
        .map_err(|e| classify(&e))?
        .await
        .map_err(|e| classify(&e))?;
    if let Some(cursor) = cursor {
        let mut cursor = ManagedCursor::from(cursor);
        while let Some(value) = cursor.value().map_err(|e| classify(&e))? {
            values.push(value);
            if values.len() == limit {
                break;
            }
            cursor.next(None).await.map_err(|e| classify(&e))?;
        }
    }
    Ok(values)
}

/// `index.getAll({query, count, direction: 'prev'})` (values, newest first) where the browser
/// takes options there; `None` where it does not. The options came with `getAllRecords` (one
/// spec change), which is how they are detected: an older `getAll` would read the options object
/// as a key. (`getAllRecords` itself returns records to take each value out of: slower.)
async fn get_all_prev(
    index: &IdbIndex,
    range: &idb::KeyRange,
    limit: usize,
) -> Result<Option<Vec<JsValue>>, Failure> {
    if !Reflect::has(index, &"getAllRecords".into()).unwrap_or(false) {
        return Ok(None);
    }
    let options = Object::new();
    let set = |key: &str, value: JsValue| Reflect::set(&options, &key.into(), &value);
    let range: JsValue = range.clone().into();
    set("query", range)
        .and_then(|_| set("count", u32::try_from(limit).unwrap_or(u32::MAX).into()))
        .and_then(|_| set("direction", "prev".into()))
        .map_err(|_| Failure::Other("cannot build getAll options".into()))?;
    let request = index
        .get_all_with_key(&options)
        .map_err(|error| match error.dyn_ref::<web_sys::DomException>() {
            Some(exception) => classify_exception(exception),
            None => Failure::Other("getAll failed".into()),
        })?;
    let values: Array = request_result(&request).await?.unchecked_into();
    Ok(Some(values.to_vec()))
}

/// The history floor of a conversation; without a recorded one, its oldest cached server message
/// (`Unknown` when none).
pub(crate) async fn history_floor(
    database: &Database,
    conversation: &ConversationId,
) -> Result<HistoryFloor, Failure> {
    let transaction = database
        .transaction(&[HISTORY, MESSAGES], TransactionMode::ReadOnly)
        .map_err(|e| classify(&e))?;
    if let Some(floor) = recorded_floor(&transaction, conversation)?.await? {
        return Ok(floor);
    }
    let range = server_messages(conversation).map_err(|e| classify(&e))?;
    let cursor = transaction
        .object_store(MESSAGES)
        .and_then(|store| store.index(BY_CONVERSATION))
        .and_then(|index| index.open_cursor(Some(Query::from(range)), None))
        .map_err(|e| classify(&e))?
        .await
        .map_err(|e| classify(&e))?;
    let oldest: Option<LocalMessage> = match cursor {
        Some(cursor) => {
            let value = ManagedCursor::from(cursor)
                .value()
                .map_err(|e| classify(&e))?;
            value.map(from_js).transpose()?
        }
        None => None,
    };
    Ok(HistoryFloor::whole_from(oldest.as_ref()))
}

/// The read markers of a conversation, by user id.
pub(crate) async fn read_markers(
    database: &Database,
    conversation: &ConversationId,
) -> Result<Vec<ReadMarker>, Failure> {
    let transaction = database
        .transaction(&[READ_MARKERS], TransactionMode::ReadOnly)
        .map_err(|e| classify(&e))?;
    // Keys are `[conversationId, userId]`: from `[id]` up to `[id, []]` (arrays sort after
    // strings) holds exactly this conversation's markers.
    let lower: JsValue = Array::of1(&conversation.as_str().into()).into();
    let upper: JsValue = Array::of2(&conversation.as_str().into(), &Array::new().into()).into();
    let range = idb::KeyRange::bound(&lower, &upper, None, None).map_err(|e| classify(&e))?;
    let values = transaction
        .object_store(READ_MARKERS)
        .and_then(|store| store.get_all(Some(Query::from(range)), None))
        .map_err(|e| classify(&e))?
        .await
        .map_err(|e| classify(&e))?;
    values.into_iter().map(from_js).collect()
}
