//! A map with a hard size bound and cheap, deterministic eviction.
//!
//! Two generations of at most `capacity / 2` entries each: inserts go to the
//! young one; when it is full the old generation is dropped (its entries are
//! the evictions) and the young one becomes old. An entry found in the old
//! generation moves back to the young one, so anything touched within the last
//! `capacity / 2` inserts survives: an approximate LRU with O(1) work and no
//! per-entry bookkeeping. Keys are stable 64-bit hashes ([`crate::hash`]).

use rustc_hash::FxHashMap;

#[derive(Debug)]
pub(crate) struct Bounded<V> {
    young: FxHashMap<u64, V>,
    old: FxHashMap<u64, V>,
    generation: usize,
    evicted: u64,
}

impl<V> Bounded<V> {
    /// A map holding at most `capacity` entries (at least 2).
    pub(crate) fn new(capacity: usize) -> Self {
        Bounded {
            young: FxHashMap::default(),
            old: FxHashMap::default(),
            generation: (capacity / 2).max(1),
            evicted: 0,
        }
    }

    /// The entry under `key`, refreshed so that it survives the next rotation.
    pub(crate) fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        if self.young.contains_key(&key) {
            return self.young.get_mut(&key);
        }
        let value = self.old.remove(&key)?;
        self.rotate_if_full();
        Some(self.young.entry(key).or_insert(value))
    }

    /// Inserts or replaces the entry under `key`.
    pub(crate) fn insert(&mut self, key: u64, value: V) {
        if let Some(slot) = self.young.get_mut(&key) {
            *slot = value;
            return;
        }
        self.old.remove(&key);
        self.rotate_if_full();
        self.young.insert(key, value);
    }

    fn rotate_if_full(&mut self) {
        if self.young.len() >= self.generation {
            self.evicted += self.old.len() as u64;
            self.old = std::mem::take(&mut self.young);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// How many entries were dropped to keep the bound, so far.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_and_keeps_recently_used_entries() {
        let mut map = Bounded::new(4);
        for k in 0..100u64 {
            map.insert(k, k);
            // Key 0 is touched after every insert, so it never ages out.
            assert_eq!(map.get_mut(0).copied(), Some(0));
            assert!(map.len() <= 4, "len {} after {k}", map.len());
        }
        assert_eq!(map.get_mut(99).copied(), Some(99));
        assert_eq!(map.get_mut(5), None);
        assert_eq!(map.evicted() + map.len() as u64, 100);
    }
}
