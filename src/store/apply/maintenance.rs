//! Maintenance inside a batch, reading only what it removes (no walk over every message):
//!
//! - eviction counts each conversation's server messages in the `[conversationId, sortTs]`
//!   index, and for those over retention reads the keys of the oldest ones and the record of the
//!   oldest it keeps (for the history floor);
//! - compaction reads the tombstones deleted before its bound through the `tombstoneTs` index,
//!   which only tombstones are in. Until the tombstones of an older schema carry the field, it
//!   walks every message once ([`compact_and_mark`]).
//!
//! Deletes are issued without awaiting each; their results arrive with the transaction's.

use super::*;
use web_sys::IdbCursor;

/// What eviction removed: how many messages, and for each conversation it took messages from,
/// the oldest server message it kept there (`None`: none).
#[derive(Default)]
pub(super) struct Evicted {
    pub(super) removed: u64,
    pub(super) kept_from: Vec<(ConversationId, Option<LocalMessage>)>,
}

/// What compaction removed: how many tombstones, and from which conversations (repeated).
#[derive(Default)]
pub(super) struct Compacted {
    pub(super) removed: u64,
    pub(super) conversations: Vec<ConversationId>,
}

/// Keeps the newest `keep` server messages of each conversation; returns what it removed.
pub(super) async fn evict(stores: &Stores, keep: usize) -> Result<Evicted, Failure> {
    let index = conversation_index(stores)?;
    let over = over_retention(&index, keep).await?;
    if over.is_empty() {
        return Ok(Evicted::default());
    }
    // The oldest `excess` of each go, and the next one up is the oldest kept.
    let mut reads = Reads::default();
    let mut oldest = Vec::with_capacity(over.len());
    for (conversation, excess) in &over {
        let range: JsValue = server_messages(conversation)
            .map_err(|e| classify(&e))?
            .into();
        let limit = u32::try_from(excess + usize::from(keep > 0)).unwrap_or(u32::MAX);
        let request = index
            .get_all_keys_with_key_and_limit(&range, limit)
            .map_err(|error| classify(&idb::Error::GetAllKeysFailed(error)))?;
        oldest.push(reads.issue(request));
    }
    reads.settle().await?;
    let mut evicted = Evicted::default();
    let mut kept_keys = Vec::new();
    for ((conversation, excess), request) in over.into_iter().zip(oldest) {
        let keys: Array = Reads::value(&request)?
            .map(JsCast::unchecked_into)
            .unwrap_or_default();
        for key in keys.iter().take(excess) {
            drop(stores.messages.delete(key).map_err(|e| classify(&e))?);
            evicted.removed += 1;
        }
        let kept = keys.get(excess as u32);
        kept_keys.push((!kept.is_undefined()).then_some(kept));
        evicted.kept_from.push((conversation, None));
    }
    let found: Vec<(usize, JsValue)> = (kept_keys.into_iter().enumerate())
        .filter_map(|(at, key)| Some((at, key?)))
        .collect();
    let mut reads = Reads::default();
    let kept = reads.get_all(&stores.messages, found.iter().map(|(_, key)| key.clone()))?;
    reads.settle().await?;
    for ((at, _), request) in found.iter().zip(kept) {
        evicted.kept_from[*at].1 = Reads::record(&request)?;
    }
    Ok(evicted)
}

fn conversation_index(stores: &Stores) -> Result<IdbIndex, Failure> {
    Ok(stores
        .messages
        .index(BY_CONVERSATION)
        .map_err(|e| classify(&e))?
        .into())
}

/// The conversations holding more than `keep` server messages, each with how many more: every
/// conversation's server messages counted in the index (`IDBIndex.count`), all at once.
async fn over_retention(
    index: &IdbIndex,
    keep: usize,
) -> Result<Vec<(ConversationId, usize)>, Failure> {
    let conversations = conversations_with_messages(index).await?;
    let mut reads = Reads::default();
    let mut counts = Vec::with_capacity(conversations.len());
    for conversation in &conversations {
        let range: JsValue = server_messages(conversation)
            .map_err(|e| classify(&e))?
            .into();
        let request = index
            .count_with_key(&range)
            .map_err(|error| classify(&idb::Error::CountFailed(error)))?;
        counts.push(reads.issue(request));
    }
    reads.settle().await?;
    let mut over = Vec::new();
    for (conversation, request) in conversations.into_iter().zip(counts) {
        let count = Reads::value(&request)?
            .and_then(|count| count.as_f64())
            .unwrap_or(0.0) as usize;
        if count > keep {
            over.push((conversation, count - keep));
        }
    }
    Ok(over)
}

/// Every conversation that holds a message (a conversation record is not needed for that):
/// a key cursor over the `[conversationId, sortTs]` index that jumps from each conversation's
/// first key past its last, one request per conversation.
async fn conversations_with_messages(index: &IdbIndex) -> Result<Vec<ConversationId>, Failure> {
    let fail = |error: JsValue| classify(&idb::Error::OpenCursorFailed(error));
    let request = index.open_key_cursor().map_err(fail)?;
    let mut conversations = Vec::new();
    loop {
        let cursor = request_result(&request).await?;
        if cursor.is_null() || cursor.is_undefined() {
            return Ok(conversations);
        }
        let cursor: IdbCursor = cursor.unchecked_into();
        let key: Array = cursor.key().map_err(fail)?.unchecked_into();
        let conversation = key.get(0);
        conversations.push(ConversationId::new(
            conversation.as_string().unwrap_or_default(),
        ));
        // An array sorts after every number: `[id, []]` lies past all of the conversation's keys.
        let past = Array::of2(&conversation, &Array::new());
        cursor.continue_with_key(&past).map_err(fail)?;
    }
}

/// Removes the tombstones deleted before `before`, found through the `tombstoneTs` index;
/// returns what it removed.
pub(super) async fn compact(stores: &Stores, before: Millis) -> Result<Compacted, Failure> {
    let fail = |error: idb::Error| classify(&error);
    let index: IdbIndex = stores.messages.index(BY_TOMBSTONE_TS).map_err(fail)?.into();
    let range = idb::KeyRange::upper_bound(&(before as f64).into(), Some(true)).map_err(fail)?;
    let request = index
        .get_all_with_key(&range.into())
        .map_err(|error| classify(&idb::Error::GetAllFailed(error)))?;
    let mut reads = Reads::default();
    reads.issue(request.clone());
    reads.settle().await?;
    let tombstones: Array = Reads::value(&request)?
        .map(JsCast::unchecked_into)
        .unwrap_or_default();
    let field = |record: &JsValue, name: &str| {
        Reflect::get(record, &name.into())
            .ok()
            .and_then(|value| value.as_string())
            .unwrap_or_default()
    };
    let mut compacted = Compacted::default();
    for record in tombstones.iter() {
        let key = message_key(
            &field(&record, "senderId"),
            &field(&record, "clientMessageId"),
        );
        drop(stores.messages.delete(key).map_err(fail)?);
        compacted.removed += 1;
        let conversation = ConversationId::new(field(&record, "conversationId"));
        compacted.conversations.push(conversation);
    }
    Ok(compacted)
}

/// [`compact`] for a store whose tombstones may not all carry `tombstoneTs` yet (written before
/// schema 4): walks every message, removes the tombstones deleted before `before` and writes the
/// others again with the field. Afterwards the index finds every tombstone.
pub(super) async fn compact_and_mark(
    stores: &Stores,
    before: Millis,
) -> Result<Compacted, Failure> {
    let mut kept = Vec::new();
    let removed = sweep(stores, CursorDirection::Next, |message| {
        if !message.deleted {
            return false;
        }
        let old = message.updated_ts.is_some_and(|ts| ts < before);
        if !old {
            kept.push(message.clone());
        }
        old
    })
    .await?;
    for tombstone in &kept {
        drop((stores.messages.put(&message_record(tombstone)?, None)).map_err(|e| classify(&e))?);
    }
    Ok(Compacted {
        removed: removed.len() as u64,
        conversations: removed.into_iter().map(|(_, id)| id).collect(),
    })
}

/// The old eviction, a walk over every message, for `bench/maintenance.mjs` to compare.
#[cfg(feature = "legacy-maintenance")]
pub(super) async fn evict_walking(stores: &Stores, keep: usize) -> Result<Evicted, Failure> {
    let mut conversation: Option<ConversationId> = None;
    let mut kept = 0;
    let mut oldest_kept: Option<LocalMessage> = None;
    let mut kept_from = Vec::new();
    let removed = sweep(stores, CursorDirection::Prev, |message| {
        if conversation.as_ref() != Some(&message.conversation_id) {
            conversation = Some(message.conversation_id.clone());
            kept = 0;
            oldest_kept = None;
        }
        if !message.is_from_server() {
            return false;
        }
        kept += 1;
        if kept == keep {
            oldest_kept = Some(message.clone());
        }
        if kept == keep + 1 {
            kept_from.push((message.conversation_id.clone(), oldest_kept.take()));
        }
        kept > keep
    })
    .await?;
    Ok(Evicted {
        removed: removed.len() as u64,
        kept_from,
    })
}
