//! [`Slots`]: the records of one kind that a batch touches, by key: what the store held, then
//! the batch's own changes on top, with the changed ones marked for writing.

use chat_sync_engine::sort::sort_by;

/// A sorted `Vec` of keyed slots. A batch knows every key it touches before it reads anything,
/// so the slots are made once from those keys and afterwards only looked up (binary search) and
/// changed; keys outside them are ignored. (Each `BTreeMap` type would be its own copy of the
/// map's code in the wasm; this is a binary search per key type.)
pub(super) struct Slots<K, V> {
    entries: Vec<(K, Slot<V>)>,
}

struct Slot<V> {
    /// The record as the batch sees it: stored, or as the batch changed it (`None`: absent).
    value: Option<V>,
    /// Changed by the batch and not written yet.
    changed: bool,
}

impl<K: Ord, V> Slots<K, V> {
    /// Empty slots for `keys` (duplicates merged).
    pub(super) fn new(mut keys: Vec<K>) -> Self {
        sort_by(&mut keys, K::cmp);
        keys.dedup();
        let entries = keys
            .into_iter()
            .map(|key| {
                let slot = Slot {
                    value: None,
                    changed: false,
                };
                (key, slot)
            })
            .collect();
        Self { entries }
    }

    /// The keys, in order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(key, _)| key)
    }

    fn index(&self, key: &K) -> Option<usize> {
        self.entries.binary_search_by(|(k, _)| k.cmp(key)).ok()
    }

    fn slot(&mut self, key: &K) -> Option<&mut Slot<V>> {
        let index = self.index(key)?;
        Some(&mut self.entries[index].1)
    }

    /// Records what the store holds for `key`, unless the slot already has a record.
    pub(super) fn stored(&mut self, key: &K, value: Option<V>) {
        if let Some(slot) = self.slot(key) {
            if slot.value.is_none() {
                slot.value = value;
            }
        }
    }

    /// Whether the batch read `key` (so it holds the record, or knows there is none).
    pub(super) fn holds(&self, key: &K) -> bool {
        self.index(key).is_some()
    }

    /// The record as the batch sees it.
    pub(super) fn get(&self, key: &K) -> Option<&V> {
        self.entries[self.index(key)?].1.value.as_ref()
    }

    /// The batch changes the record of `key` (`None`: deletes it); it is written next time.
    pub(super) fn change(&mut self, key: &K, value: Option<V>) {
        if let Some(slot) = self.slot(key) {
            slot.value = value;
            slot.changed = true;
        }
    }

    /// Edits the record of `key`, if there is one; `edit` says whether it changed it.
    pub(super) fn edit(&mut self, key: &K, edit: impl FnOnce(&mut V) -> bool) {
        if let Some(slot) = self.slot(key) {
            if let Some(value) = &mut slot.value {
                slot.changed |= edit(value);
            }
        }
    }

    /// A scan removed the record of `key` from the store (already written).
    pub(super) fn removed(&mut self, key: &K) {
        if let Some(slot) = self.slot(key) {
            slot.value = None;
        }
    }

    /// The store was cleared (already written): every record is gone.
    pub(super) fn removed_all(&mut self) {
        for (_, slot) in &mut self.entries {
            slot.value = None;
        }
    }

    /// The changed records, in key order, marked written.
    pub(super) fn take_changes(&mut self) -> impl Iterator<Item = (&K, Option<&V>)> {
        self.entries
            .iter_mut()
            .filter(|(_, slot)| slot.changed)
            .map(|(key, slot)| {
                slot.changed = false;
                (&*key, slot.value.as_ref())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn only_the_keys_given_have_slots_and_only_changes_are_written() {
        let mut slots = Slots::new(vec!["b", "a", "c", "a"]);
        assert_eq!(slots.keys().copied().collect::<Vec<_>>(), ["a", "b", "c"]);
        slots.stored(&"a", Some(1));
        slots.stored(&"a", Some(9)); // a record read twice keeps the first
        slots.stored(&"z", Some(5)); // no slot: ignored
        slots.change(&"c", Some(3));
        slots.change(&"z", Some(5));
        slots.edit(&"a", |value| {
            *value += 1;
            true
        });
        slots.edit(&"b", |_| true); // no record: nothing to edit
        assert_eq!(slots.get(&"a"), Some(&2));
        assert_eq!(slots.get(&"z"), None);
        assert_eq!(slots.get(&"c"), Some(&3));
        let changes: Vec<_> = slots
            .take_changes()
            .map(|(k, v)| (*k, v.copied()))
            .collect();
        assert_eq!(changes, [("a", Some(2)), ("c", Some(3))]);
        assert_eq!(slots.take_changes().count(), 0, "written once");
        slots.change(&"c", None);
        slots.removed(&"a");
        let changes: Vec<_> = slots
            .take_changes()
            .map(|(k, v)| (*k, v.copied()))
            .collect();
        assert_eq!(changes, [("c", None)]);
        assert_eq!((slots.get(&"a"), slots.get(&"c")), (None, None));
    }
}
