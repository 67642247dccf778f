//! [`sort_by`]: the one sort of the client, engine included.

use std::cmp::Ordering;

/// Sorts `items` by `compare` (unstably: the orders used are total, so the result is the same).
///
/// Every call shares one instance of the standard library's sort, over indices with the
/// comparison behind a `dyn`. Each `sort_unstable_by` with another element type or comparator
/// would be its own copy of the sort, about 3 KB of wasm each (docs/benchmarks.md, "Package
/// size"). The cost is a `Vec` of indices and an indirect call per comparison.
pub fn sort_by<T>(items: &mut Vec<T>, compare: impl Fn(&T, &T) -> Ordering) {
    let order = sorted_indices(items.len(), &|a, b| compare(&items[a], &items[b]));
    let mut taken: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(order.into_iter().map(|index| {
        taken[index]
            .take()
            .expect("a permutation names each index once")
    }));
}

/// `0..len` in the order `compare` gives them.
#[inline(never)]
fn sorted_indices(len: usize, compare: &dyn Fn(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_unstable_by(|a, b| compare(*a, *b));
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
}
