//! [`sort_by`]: the one sort of the client, engine included.

use std::cmp::Ordering;

/// Sorts `items` by `compare`, stably (items that compare equal keep their order).
///
/// Every call shares one sort, over indices with the comparison behind a `dyn`: a plain merge
/// sort ([`sorted_indices`]), not the standard library's, whose one instance alone was 3.5 KB
/// of wasm; each `sort_unstable_by` with another element type or comparator would be its own
/// copy of it (docs/benchmarks.md, "Package size"). The items are then moved into place by
/// swaps ([`permute`]), so the only code per item type is its comparison and its swap. The cost
/// is two `Vec`s of indices and an indirect call per comparison and per swap.
pub fn sort_by<T>(items: &mut [T], compare: impl Fn(&T, &T) -> Ordering) {
    let mut order = sorted_indices(items.len(), &|a, b| compare(&items[a], &items[b]));
    permute(&mut order, &mut |a, b| items.swap(a, b));
}

/// Moves the item at `order[k]` to `k`, for every `k`, by swaps (`swap(a, b)`): each cycle of the
/// permutation is followed from its first position, which the swaps carry its item along from.
/// Not generic: the item type is only in `swap`.
#[inline(never)]
fn permute(order: &mut [usize], swap: &mut dyn FnMut(usize, usize)) {
    for start in 0..order.len() {
        let mut current = start;
        while order[current] != start {
            let next = order[current];
            swap(current, next);
            // Done: `current` holds its item.
            order[current] = current;
            current = next;
        }
        order[current] = current;
    }
}

/// `0..len` in the order `compare` gives them: a bottom-up merge sort, runs of `width` merged
/// pairwise into `merged` until one run is left.
#[inline(never)]
fn sorted_indices(len: usize, compare: &dyn Fn(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    let mut merged = Vec::with_capacity(len);
    let mut width = 1;
    while width < len {
        for start in (0..len).step_by(2 * width) {
            let middle = len.min(start + width);
            let end = len.min(start + 2 * width);
            let (mut left, mut right) = (start, middle);
            while left < middle && right < end {
                if compare(order[right], order[left]) == Ordering::Less {
                    merged.push(order[right]);
                    right += 1;
                } else {
                    merged.push(order[left]);
                    left += 1;
                }
            }
            merged.extend_from_slice(&order[left..middle]);
            merged.extend_from_slice(&order[right..end]);
        }
        std::mem::swap(&mut order, &mut merged);
        merged.clear();
        width *= 2;
    }
    order
}

#[cfg(test)]
mod tests {
    use super::sort_by;

    #[test]
    fn sorts_by_the_comparator_and_keeps_every_item() {
        let mut words = vec!["pear", "fig", "apple", "kiwi", "fig"];
        sort_by(&mut words, |a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
        assert_eq!(words, ["fig", "fig", "kiwi", "pear", "apple"]);

        let mut owned: Vec<String> = (0..50).rev().map(|n| format!("{n:02}")).collect();
        sort_by(&mut owned, Ord::cmp);
        let expected: Vec<String> = (0..50).map(|n| format!("{n:02}")).collect();
        assert_eq!(owned, expected);

        let mut empty: Vec<u8> = Vec::new();
        sort_by(&mut empty, Ord::cmp);
        assert!(empty.is_empty());
    }

    proptest::proptest! {
        /// Any list comes out as the standard library's stable sort leaves it: in order, and
        /// items with equal keys in the order they came in.
        #[test]
        fn sorts_as_the_standard_stable_sort_does(
            keys in proptest::collection::vec(0u8..8, 0..200),
        ) {
            let items: Vec<(u8, usize)> = keys.into_iter().zip(0..).collect();
            let mut sorted = items.clone();
            sort_by(&mut sorted, |a, b| a.0.cmp(&b.0));
            let mut expected = items;
            expected.sort_by_key(|item| item.0);
            proptest::prop_assert_eq!(sorted, expected);
        }
    }
}
