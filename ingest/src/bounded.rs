//! A map with a hard size bound and cheap, deterministic eviction.
//!
//! Two generations of at most `capacity / 2` entries each: inserts go to the
//! young one; when it is full the old generation is dropped (its entries are
//! the evictions) and the young one becomes old. An entry found in the old
//! generation moves back to the young one, so anything touched within the last
//! `capacity / 2` inserts survives: an approximate LRU with O(1) work and no
//! per-entry bookkeeping. Keys are stable 64-bit hashes ([`crate::hash`]).
//!
//! A map of things that only matter for a while (the deliveries an
//! Alertmanager repeat or a relist may bring again) can also rotate by event
//! time ([`Bounded::with_horizon`], [`Bounded::age`]): then an entry lives
//! between one and two horizons after it was last touched, and the map holds
//! what the last two horizons brought, however long the service runs.

use correlate::{EventTime, Span};
use rustc_hash::FxHashMap;

#[derive(Debug)]
pub(crate) struct Bounded<V> {
    young: FxHashMap<u64, V>,
    old: FxHashMap<u64, V>,
    generation: usize,
    evicted: u64,
    horizon: Option<Span>,
    /// Event time at which the young generation started (with a horizon).
    young_since: Option<EventTime>,
}

impl<V> Bounded<V> {
    /// A map holding at most `capacity` entries (at least 2).
    pub(crate) fn new(capacity: usize) -> Self {
        Bounded {
            young: FxHashMap::default(),
            old: FxHashMap::default(),
            generation: (capacity / 2).max(1),
            evicted: 0,
            horizon: None,
            young_since: None,
        }
    }

    /// As [`Bounded::new`], also rotating once the young generation is
    /// `horizon` old in event time (see [`Bounded::age`]).
    pub(crate) fn with_horizon(mut self, horizon: Span) -> Self {
        self.horizon = Some(horizon);
        self
    }

    /// Event time has reached `now`: past the horizon since the young
    /// generation started, the old one goes and the young one becomes old.
    pub(crate) fn age(&mut self, now: EventTime) {
        let Some(horizon) = self.horizon else {
            return;
        };
        match self.young_since {
            None => self.young_since = Some(now),
            Some(since) if now.since(since) >= horizon => {
                self.evicted += self.old.len() as u64;
                self.old = std::mem::take(&mut self.young);
                self.old.shrink_to_fit();
                self.young_since = Some(now);
            }
            Some(_) => {}
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
            self.young_since = None;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// How many entries were dropped to keep the bound, so far.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The young and the old generation, each sorted by key (for
    /// checkpoints: the same contents always list the same way).
    pub(crate) fn generations(&self) -> [Vec<(u64, &V)>; 2] {
        [sorted_entries(&self.young), sorted_entries(&self.old)]
    }

    /// A map of at most `capacity` entries holding `young` and `old` as
    /// [`Bounded::generations`] listed them. With a smaller capacity than
    /// they were saved under, the surplus is dropped as evictions would have
    /// dropped it: the old generation first, then the young one's excess.
    pub(crate) fn from_generations(
        capacity: usize,
        young: Vec<(u64, V)>,
        old: Vec<(u64, V)>,
        evicted: u64,
    ) -> Self {
        let mut map = Bounded::new(capacity);
        map.evicted = evicted;
        map.young = young.into_iter().collect();
        map.old = old.into_iter().collect();
        if map.young.len() > map.generation {
            map.evicted += map.old.len() as u64;
            map.old = std::mem::take(&mut map.young);
        }
        if map.old.len() > map.generation {
            let mut keys: Vec<u64> = map.old.keys().copied().collect();
            keys.sort_unstable();
            for k in &keys[map.generation..] {
                map.old.remove(k);
                map.evicted += 1;
            }
        }
        map.old.retain(|k, _| !map.young.contains_key(k));
        map
    }
}

fn sorted_entries<V>(m: &FxHashMap<u64, V>) -> Vec<(u64, &V)> {
    let mut v: Vec<(u64, &V)> = m.iter().map(|(k, v)| (*k, v)).collect();
    v.sort_unstable_by_key(|(k, _)| *k);
    v
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

    #[test]
    fn rebuilt_from_its_generations_behaves_the_same() {
        let mut a = Bounded::new(6);
        for k in 0..8u64 {
            a.insert(k, k * 10);
        }
        let own = |g: Vec<(u64, &u64)>| g.into_iter().map(|(k, v)| (k, *v)).collect::<Vec<_>>();
        let [young, old] = a.generations();
        let mut b = Bounded::from_generations(6, own(young), own(old), a.evicted());
        for k in 8..20u64 {
            a.insert(k, k);
            b.insert(k, k);
            assert_eq!(a.get_mut(k / 2).copied(), b.get_mut(k / 2).copied());
            assert_eq!((a.len(), a.evicted()), (b.len(), b.evicted()));
        }
        // Under a smaller bound the surplus counts as evicted.
        let [young, old] = a.generations();
        let total = a.len() as u64 + a.evicted();
        let c = Bounded::from_generations(2, own(young), own(old), a.evicted());
        assert!(c.len() <= 2);
        assert_eq!(c.len() as u64 + c.evicted(), total);
    }

    #[test]
    fn with_a_horizon_it_holds_what_two_horizons_brought() {
        let hour = |h: i64| EventTime::from_micros(1_800_000_000_000_000 + h * 3_600_000_000);
        let mut map = Bounded::new(1_000_000).with_horizon(Span::from_secs(24 * 3600));
        // A month of deliveries, 100 an hour: never near the count bound.
        for h in 0..(30 * 24) {
            map.age(hour(h));
            for i in 0..100u64 {
                map.insert((h as u64) << 32 | i, ());
            }
            assert!(map.len() <= 100 * 48, "hour {h}: {}", map.len());
        }
        // A delivery of the last day is still known, one of a week ago not.
        assert!(map.get_mut((719u64 << 32) | 5).is_some());
        assert!(map.get_mut((550u64 << 32) | 5).is_none());
        // Times going back do not rotate.
        let before = map.len();
        map.age(hour(0));
        assert_eq!(map.len(), before);
    }
}
