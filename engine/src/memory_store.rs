//! [`MemoryStore`]: the [`Store`] kept entirely in memory, for native tests, simulations and any
//! host without a database.
//!
//! Clones share one set of data, so a simulation can keep the store across an engine "crash" and
//! hand a clone to the next engine. [`MemoryStore::fail_next_apply`] injects store failures and
//! [`MemoryStore::snapshot`] exposes everything for invariant checks.

use crate::sort::sort_by;
use crate::store::{
    conversation_order, ApplyReport, ConversationSummary, HistoryFloor, LocalMessage, OutboxEntry,
    PendingReadMarker, PersistedState, Store, StoreError, StoreOp, UnreadCount,
};
use chat_sync_protocol::{
    ClientMessageId, Conversation, ConversationId, Cursor, Millis, ReadMarker, UserId,
};
use litemap::LiteMap;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A [`Store`] held in memory.
///
/// Cheap to clone; every clone shares the same data (and the same injected faults). Semantics,
/// beyond the [`StoreOp`] documentation, that the shared contract suite also checks:
///
/// - last-write-wins for conversations and read markers is strict: a write whose `updated_ts` is
///   equal to or lower than the stored one's is ignored (the same rule as
///   [`LocalMessage::supersedes`] for server messages);
/// - [`Store::conversations`] orders by most recent activity, newest first, where a conversation's
///   activity is the greatest of its own `updated_ts`, the `server_ts` of each of its server
///   messages (tombstones included) and the `composed_at` of each of its optimistic messages; ties
///   are broken by conversation id, ascending;
/// - [`Store::messages`] orders by `sort_ts`, then (for equal stamps, which the server never
///   produces) by server id, then by key;
/// - [`Store::read_markers`] orders by user id.
///
/// Every operation on memory is infallible, so [`Store::apply`] is atomic by construction: the only
/// failure, an injected one, is decided before anything changes.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    shared: Arc<Mutex<Shared>>,
}

/// Everything a [`MemoryStore`] holds, as returned by [`MemoryStore::snapshot`], in a deterministic
/// order so two snapshots compare with `==`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemorySnapshot {
    /// Every conversation, by id.
    pub conversations: Vec<Conversation>,
    /// Every message, by conversation, then in message order (`sort_ts`, server id, key).
    pub messages: Vec<LocalMessage>,
    /// Every read marker, by conversation, then user.
    pub read_markers: Vec<ReadMarker>,
    /// Every outbox entry, by `seq`.
    pub outbox: Vec<OutboxEntry>,
    /// The change-feed cursor.
    pub cursor: Option<Cursor>,
    /// When the last sync finished.
    pub last_sync: Option<Millis>,
    /// When maintenance last ran.
    pub last_maintenance: Option<Millis>,
    /// This user's read markers not sent yet.
    pub pending_read_markers: Vec<PendingReadMarker>,
}

#[derive(Debug, Default)]
struct Shared {
    data: Data,
    /// Failures the next `apply` calls return, first one first.
    faults: VecDeque<StoreError>,
}

/// The records. No `BTreeMap`s, as each map type would be its own copy of the map's code in the
/// wasm: conversations and read markers are few (flat `LiteMap`s, in key order), messages many
/// (a `HashMap`: every read sorts what it returns), the outbox a handful (a `Vec`).
#[derive(Debug, Default)]
struct Data {
    conversations: LiteMap<ConversationId, Conversation>,
    /// Recorded history floors, by conversation (see [`HistoryFloor`] for those without).
    floors: LiteMap<ConversationId, HistoryFloor>,
    messages: HashMap<(UserId, ClientMessageId), LocalMessage>,
    read_markers: LiteMap<(ConversationId, UserId), ReadMarker>,
    outbox: Vec<OutboxEntry>,
    cursor: Option<Cursor>,
    last_sync: Option<Millis>,
    last_maintenance: Option<Millis>,
    pending_read_markers: Vec<PendingReadMarker>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Test hook: makes the next [`Store::apply`] return `error` without changing anything; the
    /// call after it works again. Calling it several times queues the failures, one per `apply`.
    /// Reads (`load`, `conversations`, ...) are not affected.
    pub fn fail_next_apply(&self, error: StoreError) {
        self.lock().faults.push_back(error);
    }

    /// Everything the store holds, for invariant checks.
    pub fn snapshot(&self) -> MemorySnapshot {
        let shared = self.lock();
        let data = &shared.data;
        let mut messages: Vec<&LocalMessage> = data.messages.values().collect();
        sort_by(&mut messages, in_store_order);
        MemorySnapshot {
            conversations: data.conversations.values().cloned().collect(),
            messages: messages.into_iter().cloned().collect(),
            read_markers: data.read_markers.values().cloned().collect(),
            outbox: data.outbox_by_seq(),
            cursor: data.cursor.clone(),
            last_sync: data.last_sync,
            last_maintenance: data.last_maintenance,
            pending_read_markers: data.pending_read_markers.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Nothing leaves the data half-written (every op is applied whole), so a panic elsewhere
        // while the lock was held does not make it unusable.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Messages by conversation, then in message order within one: `sort_ts`, then server id
/// (optimistic ones have none and sort first among equals, which never happens as their `sort_ts`
/// is far above), then key. Every sort of messages here uses it (one sort in the wasm, not one per
/// call site). Like every order the stores sort by, it is total (the key is unique): no two
/// messages compare equal.
fn in_store_order(a: &&LocalMessage, b: &&LocalMessage) -> std::cmp::Ordering {
    (a.conversation_id.cmp(&b.conversation_id))
        .then(a.sort_ts.cmp(&b.sort_ts))
        .then_with(|| a.id.cmp(&b.id))
        .then_with(|| a.key().cmp(&b.key()))
}

impl Data {
    fn outbox_by_seq(&self) -> Vec<OutboxEntry> {
        let mut outbox = self.outbox.clone();
        sort_by(&mut outbox, OutboxEntry::compose_order);
        outbox
    }

    fn apply_op(&mut self, op: &StoreOp, report: &mut ApplyReport) {
        match op {
            StoreOp::PutConversation(conversation) => {
                let stored = self.conversations.get(&conversation.id);
                let new = stored.is_none() && !self.floors.contains_key(&conversation.id);
                if stored.is_none_or(|stored| conversation.updated_ts > stored.updated_ts) {
                    self.conversations
                        .insert(conversation.id.clone(), conversation.clone());
                }
                if new {
                    self.floors
                        .insert(conversation.id.clone(), HistoryFloor::Unknown);
                }
            }
            StoreOp::PutMessage(message) => {
                let key = (message.sender_id.clone(), message.client_message_id.clone());
                let newer = self
                    .messages
                    .get(&key)
                    .is_none_or(|stored| message.supersedes(stored));
                if newer {
                    self.messages.insert(key, message.clone());
                }
            }
            StoreOp::RemoveOptimistic {
                sender,
                client_message_id,
            } => {
                let key = (sender.clone(), client_message_id.clone());
                if self
                    .messages
                    .get(&key)
                    .is_some_and(|stored| !stored.is_from_server())
                {
                    self.messages.remove(&key);
                }
            }
            StoreOp::PutReadMarker(marker) => {
                let key = (marker.conversation_id.clone(), marker.user_id.clone());
                let newer = self
                    .read_markers
                    .get(&key)
                    .is_none_or(|stored| marker.updated_ts > stored.updated_ts);
                if newer {
                    self.read_markers.insert(key, marker.clone());
                }
            }
            StoreOp::PutOutbox(entry) => {
                let stored = (self.outbox.iter_mut())
                    .find(|stored| stored.client_message_id == entry.client_message_id);
                match stored {
                    Some(stored) => *stored = entry.clone(),
                    None => self.outbox.push(entry.clone()),
                }
            }
            StoreOp::RemoveOutbox(client_message_id) => {
                self.outbox
                    .retain(|entry| &entry.client_message_id != client_message_id);
            }
            StoreOp::RestampOutbox {
                client_message_id,
                sender,
                by,
                ..
            } => {
                let moved = (self.outbox.iter_mut())
                    .find(|entry| &entry.client_message_id == client_message_id)
                    .filter(|entry| entry.failure.is_none())
                    .map(|entry| {
                        entry.composed_at -= by;
                        LocalMessage::optimistic(entry, sender)
                    });
                if let Some(message) = moved {
                    self.apply_op(&StoreOp::PutMessage(message), report);
                }
            }
            StoreOp::ExpireOutbox {
                client_message_id,
                sender,
                composed_before,
                failure,
                failed,
                ..
            } => {
                let Some(index) = (self.outbox.iter())
                    .position(|entry| &entry.client_message_id == client_message_id)
                else {
                    return;
                };
                let entry = &mut self.outbox[index];
                let op = if entry.composed_at >= *composed_before {
                    // Composed since (retried).
                    report.outbox_held.push(entry.clone());
                    return;
                } else if entry.failure.is_none() {
                    entry.failure = Some(failure.clone());
                    report.outbox_expired.push(client_message_id.clone());
                    StoreOp::PutMessage(LocalMessage::optimistic(entry, sender))
                } else if !failed {
                    // Failed lately by another tab: the user has not been told yet.
                    report.outbox_held.push(entry.clone());
                    return;
                } else {
                    self.outbox.remove(index);
                    report.outbox_removed.push(client_message_id.clone());
                    StoreOp::RemoveOptimistic {
                        sender: sender.clone(),
                        client_message_id: client_message_id.clone(),
                    }
                };
                self.apply_op(&op, report);
            }
            StoreOp::RetryOutbox {
                client_message_id,
                sender,
                composed_at,
                ..
            } => {
                let Some(entry) = (self.outbox.iter_mut())
                    .find(|entry| &entry.client_message_id == client_message_id)
                else {
                    return;
                };
                if entry.failure.is_none() {
                    report.outbox_held.push(entry.clone());
                    return;
                }
                entry.failure = None;
                entry.composed_at = *composed_at;
                let message = LocalMessage::optimistic(entry, sender);
                report.outbox_retried.push(client_message_id.clone());
                self.apply_op(&StoreOp::PutMessage(message), report);
            }
            StoreOp::DiscardOutbox {
                client_message_id,
                sender,
                ..
            } => {
                let Some(index) = (self.outbox.iter())
                    .position(|entry| &entry.client_message_id == client_message_id)
                else {
                    return;
                };
                if self.outbox[index].failure.is_none() {
                    report.outbox_held.push(self.outbox[index].clone());
                    return;
                }
                self.outbox.remove(index);
                report.outbox_discarded.push(client_message_id.clone());
                let op = StoreOp::RemoveOptimistic {
                    sender: sender.clone(),
                    client_message_id: client_message_id.clone(),
                };
                self.apply_op(&op, report);
            }
            StoreOp::SetCursor(cursor) => self.cursor = cursor.clone(),
            StoreOp::SetLastSync(at) => self.last_sync = Some(*at),
            StoreOp::SetLastMaintenance(at) => self.last_maintenance = Some(*at),
            StoreOp::SetPendingReadMarkers(markers) => self.pending_read_markers = markers.clone(),
            StoreOp::ExtendHistory {
                conversation,
                from,
                to,
            } => {
                if let Some(floor) = self.floors.get_mut(conversation) {
                    *floor = floor.clone().extended(from, to);
                }
            }
            StoreOp::RestartHistory { conversation, from } => {
                if let Some(floor) = self.floors.get_mut(conversation) {
                    *floor = floor.clone().restarted(from);
                }
            }
            StoreOp::ForgetServerData => {
                let forgotten = &mut report.forgotten;
                for conversation in self.conversations.keys() {
                    forgotten.add(conversation);
                }
                self.messages.retain(|_, message| {
                    let from_server = message.is_from_server();
                    if from_server {
                        forgotten.add(&message.conversation_id);
                        forgotten.messages += 1;
                    }
                    !from_server
                });
                sort_by(&mut forgotten.conversations, Ord::cmp);
                self.conversations.clear();
                self.read_markers.clear();
                self.floors.clear();
            }
            StoreOp::EvictHistory { keep } => {
                let (evicted, from) = self.evict_history(*keep);
                report.evicted_messages += evicted;
                report.evicted_from.extend(from);
            }
            StoreOp::CompactTombstones { before } => {
                let before = *before;
                let old = self.messages.len();
                self.messages.retain(|_, message| {
                    !(message.deleted && message.updated_ts.is_some_and(|updated| updated < before))
                });
                report.compacted_tombstones += (old - self.messages.len()) as u64;
            }
        }
    }

    /// The oldest cached server message of a conversation.
    fn oldest_server(&self, conversation: &ConversationId) -> Option<&LocalMessage> {
        (self.messages.values())
            .filter(|m| &m.conversation_id == conversation && m.is_from_server())
            .min_by(in_store_order)
    }

    /// Records the floors a batch needs, from the cache as it is before the batch (see
    /// [`HistoryFloor`]).
    fn record_floors(&mut self, ops: &[StoreOp]) {
        for op in ops {
            let conversation = match op {
                StoreOp::PutMessage(message) if message.is_from_server() => {
                    &message.conversation_id
                }
                StoreOp::ExtendHistory { conversation, .. }
                | StoreOp::RestartHistory { conversation, .. } => conversation,
                _ => continue,
            };
            if !self.floors.contains_key(conversation) {
                let floor = HistoryFloor::whole_from(self.oldest_server(conversation));
                self.floors.insert(conversation.clone(), floor);
            }
        }
    }

    /// Keeps the newest `keep` server messages of each conversation and forgets the floors that
    /// lie below what each kept; returns how many it removed, and from which conversations (in
    /// order).
    fn evict_history(&mut self, keep: usize) -> (u64, Vec<ConversationId>) {
        let mut server: Vec<&LocalMessage> = self
            .messages
            .values()
            .filter(|m| m.is_from_server())
            .collect();
        sort_by(&mut server, in_store_order);
        let mut evict: Vec<(UserId, ClientMessageId)> = Vec::new();
        let mut kept_from: Vec<(ConversationId, Option<LocalMessage>)> = Vec::new();
        for messages in server.chunk_by(|a, b| a.conversation_id == b.conversation_id) {
            let (old, kept) = messages.split_at(messages.len().saturating_sub(keep));
            if let Some(first) = old.first() {
                let oldest_kept = kept.first().map(|m| (*m).clone());
                kept_from.push((first.conversation_id.clone(), oldest_kept));
            }
            evict.extend(
                old.iter()
                    .map(|m| (m.sender_id.clone(), m.client_message_id.clone())),
            );
        }
        for key in &evict {
            self.messages.remove(key);
        }
        let mut from = Vec::new();
        for (conversation, oldest_kept) in kept_from {
            if (self.floors.get(&conversation)).is_some_and(|f| f.is_below(oldest_kept.as_ref())) {
                self.floors.remove(&conversation);
            }
            from.push(conversation);
        }
        (evict.len() as u64, from)
    }
}

impl Store for MemoryStore {
    async fn load(&self) -> Result<PersistedState, StoreError> {
        let shared = self.lock();
        let data = &shared.data;
        Ok(PersistedState {
            cursor: data.cursor.clone(),
            outbox: data.outbox_by_seq(),
            last_sync: data.last_sync,
            last_maintenance: data.last_maintenance,
            pending_read_markers: data.pending_read_markers.clone(),
        })
    }

    async fn apply(&self, ops: &[StoreOp]) -> Result<ApplyReport, StoreError> {
        let mut shared = self.lock();
        if let Some(error) = shared.faults.pop_front() {
            return Err(error);
        }
        shared.data.record_floors(ops);
        let mut report = ApplyReport::default();
        for op in ops {
            shared.data.apply_op(op, &mut report);
        }
        Ok(report)
    }

    async fn conversations(&self) -> Result<Vec<Conversation>, StoreError> {
        let shared = self.lock();
        let data = &shared.data;
        // In id order (the map's), so a message finds its conversation by binary search.
        let mut ordered: Vec<(Millis, &Conversation)> = data
            .conversations
            .values()
            .map(|c| (c.updated_ts, c))
            .collect();
        for message in data.messages.values() {
            let Some(stamp) = message.activity() else {
                continue;
            };
            if let Ok(index) = ordered.binary_search_by(|(_, c)| c.id.cmp(&message.conversation_id))
            {
                ordered[index].0 = ordered[index].0.max(stamp);
            }
        }
        sort_by(&mut ordered, |(a_ts, a), (b_ts, b)| {
            conversation_order((*a_ts, &a.id), (*b_ts, &b.id))
        });
        Ok(ordered.into_iter().map(|(_, c)| c.clone()).collect())
    }

    async fn conversation_summaries(
        &self,
        me: &UserId,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let conversations = self.conversations().await?;
        let shared = self.lock();
        let data = &shared.data;
        // Each conversation's messages, in list order, found by id through `by_id`.
        let mut shown: Vec<Vec<&LocalMessage>> = vec![Vec::new(); conversations.len()];
        let mut by_id: Vec<(&ConversationId, usize)> = conversations
            .iter()
            .enumerate()
            .map(|(i, c)| (&c.id, i))
            .collect();
        sort_by(&mut by_id, |a, b| a.0.cmp(b.0));
        for message in data.messages.values() {
            let found = by_id.binary_search_by(|(id, _)| (*id).cmp(&message.conversation_id));
            if let Ok(found) = found {
                shown[by_id[found].1].push(message);
            }
        }
        let summaries = conversations
            .into_iter()
            .zip(shown)
            .map(|(conversation, mut messages)| {
                let id = &conversation.id;
                let floor = data.floors.get(id).map_or(Millis::MIN, |f| f.shows_from());
                messages.retain(|message| message.sort_ts >= floor);
                sort_by(&mut messages, |a, b| in_store_order(b, a));
                let stored = (data.read_markers.get(&(id.clone(), me.clone())))
                    .map(|marker| marker.last_read_server_ts);
                let pending = (data.pending_read_markers.iter())
                    .find(|marker| &marker.conversation_id == id)
                    .map(|marker| marker.server_ts);
                let mut unread = UnreadCount::new(me, stored.max(pending));
                for message in &messages {
                    if !unread.next(message) {
                        break;
                    }
                }
                let last = messages.iter().find(|message| !message.deleted);
                ConversationSummary {
                    last_message: last.map(|message| (*message).clone()),
                    unread: unread.count,
                    conversation,
                }
            });
        Ok(summaries.collect())
    }

    async fn messages(
        &self,
        conversation: &ConversationId,
        before: Option<Millis>,
        limit: usize,
    ) -> Result<Vec<LocalMessage>, StoreError> {
        let shared = self.lock();
        let floor = (shared.data.floors.get(conversation)).map_or(Millis::MIN, |f| f.shows_from());
        let mut page: Vec<&LocalMessage> = shared
            .data
            .messages
            .values()
            .filter(|m| &m.conversation_id == conversation)
            .filter(|m| m.sort_ts >= floor && before.is_none_or(|before| m.sort_ts < before))
            .collect();
        sort_by(&mut page, in_store_order);
        let skip = page.len().saturating_sub(limit);
        Ok(page[skip..].iter().map(|m| (*m).clone()).collect())
    }

    async fn history_floor(
        &self,
        conversation: &ConversationId,
    ) -> Result<HistoryFloor, StoreError> {
        let shared = self.lock();
        let data = &shared.data;
        if let Some(floor) = data.floors.get(conversation) {
            return Ok(floor.clone());
        }
        Ok(HistoryFloor::whole_from(data.oldest_server(conversation)))
    }

    async fn read_markers(
        &self,
        conversation: &ConversationId,
    ) -> Result<Vec<ReadMarker>, StoreError> {
        let shared = self.lock();
        // Keyed by (conversation, user): one conversation's markers are contiguous, by user.
        Ok(shared
            .data
            .read_markers
            .values()
            .filter(|m| &m.conversation_id == conversation)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MessageStatus, OPTIMISTIC_SORT_BASE};
    use chat_sync_protocol::{Message, MessageId};
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// Runs a future that never waits (every `MemoryStore` call is ready at once).
    fn ready<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("a MemoryStore future was pending"),
        }
    }

    fn server_message(id: &str, conversation: &str, ts: Millis) -> LocalMessage {
        LocalMessage::from_server(Message {
            id: MessageId::new(id),
            conversation_id: ConversationId::new(conversation),
            client_message_id: ClientMessageId::new(format!("c-{id}")),
            sender_id: UserId::new("u-bob"),
            body: format!("body of {id}"),
            server_ts: ts,
            updated_ts: ts,
            edited: false,
            deleted: false,
        })
    }

    fn outbox_entry(id: &str, seq: u64) -> OutboxEntry {
        OutboxEntry {
            client_message_id: ClientMessageId::new(id),
            conversation_id: ConversationId::new("c-1"),
            body: "hello".into(),
            seq,
            composed_at: 1_000 + seq as Millis,
            failure: None,
        }
    }

    fn some_ops() -> Vec<StoreOp> {
        let entry = outbox_entry("o-2", 2);
        vec![
            StoreOp::PutOutbox(entry.clone()),
            StoreOp::PutMessage(LocalMessage::optimistic(&entry, &UserId::new("u-me"))),
            StoreOp::PutMessage(server_message("m-2", "c-1", 20)),
            StoreOp::SetCursor(Some(Cursor::new("k-2"))),
            StoreOp::SetLastSync(2_000),
            StoreOp::EvictHistory { keep: 0 },
        ]
    }

    #[test]
    fn failed_apply_changes_nothing_and_the_next_one_works() {
        let store = MemoryStore::new();
        let entry = outbox_entry("o-1", 1);
        ready(store.apply(&[
            StoreOp::PutOutbox(entry.clone()),
            StoreOp::PutMessage(server_message("m-1", "c-1", 10)),
            StoreOp::SetCursor(Some(Cursor::new("k-1"))),
        ]))
        .unwrap();
        let before = store.snapshot();

        store.fail_next_apply(StoreError::QuotaExceeded);
        assert_eq!(
            ready(store.apply(&some_ops())),
            Err(StoreError::QuotaExceeded)
        );
        assert_eq!(store.snapshot(), before);

        let report = ready(store.apply(&some_ops())).unwrap();
        assert_eq!(report.evicted_messages, 2);
        let after = store.snapshot();
        assert_eq!(after.outbox.len(), 2);
        assert_eq!(after.cursor, Some(Cursor::new("k-2")));
        assert_eq!(after.last_sync, Some(2_000));
        assert_eq!(after.messages.len(), 1);
        assert_eq!(after.messages[0].status, MessageStatus::Pending);
        assert_eq!(after.messages[0].sort_ts, OPTIMISTIC_SORT_BASE + 2);
    }

    #[test]
    fn queued_faults_fail_one_apply_each_in_order() {
        let store = MemoryStore::new();
        store.fail_next_apply(StoreError::Unavailable("blocked".into()));
        store.fail_next_apply(StoreError::Failed("disk".into()));
        let op = [StoreOp::SetLastSync(5)];
        assert_eq!(
            ready(store.apply(&op)),
            Err(StoreError::Unavailable("blocked".into()))
        );
        assert_eq!(
            ready(store.apply(&op)),
            Err(StoreError::Failed("disk".into()))
        );
        assert_eq!(store.snapshot(), MemorySnapshot::default());
        assert_eq!(ready(store.apply(&op)), Ok(ApplyReport::default()));
        assert_eq!(store.snapshot().last_sync, Some(5));
    }

    #[test]
    fn a_fault_does_not_affect_reads() {
        let store = MemoryStore::new();
        ready(store.apply(&[StoreOp::SetLastMaintenance(7)])).unwrap();
        store.fail_next_apply(StoreError::QuotaExceeded);
        assert_eq!(ready(store.load()).unwrap().last_maintenance, Some(7));
        assert!(ready(store.conversations()).unwrap().is_empty());
        assert!(ready(store.messages(&ConversationId::new("c-1"), None, 10))
            .unwrap()
            .is_empty());
        assert!(ready(store.apply(&[])).is_err());
    }

    #[test]
    fn clones_share_data_and_faults() {
        let store = MemoryStore::new();
        let after_crash = store.clone();
        ready(store.apply(&[StoreOp::PutOutbox(outbox_entry("o-1", 1))])).unwrap();
        assert_eq!(
            ready(after_crash.load()).unwrap().outbox,
            vec![outbox_entry("o-1", 1)]
        );
        store.fail_next_apply(StoreError::QuotaExceeded);
        assert!(ready(after_crash.apply(&[])).is_err());
        assert!(ready(store.apply(&[])).is_ok());
        drop(store);
        assert_eq!(after_crash.snapshot().outbox.len(), 1);
    }

    #[test]
    fn snapshot_orders_messages_by_conversation_then_sort_ts() {
        let store = MemoryStore::new();
        ready(store.apply(&[
            StoreOp::PutMessage(server_message("m-3", "c-2", 5)),
            StoreOp::PutMessage(server_message("m-2", "c-1", 30)),
            StoreOp::PutMessage(server_message("m-1", "c-1", 10)),
        ]))
        .unwrap();
        let ids: Vec<_> = store
            .snapshot()
            .messages
            .into_iter()
            .map(|m| m.id.unwrap().to_string())
            .collect();
        assert_eq!(ids, ["m-1", "m-2", "m-3"]);
    }
}
