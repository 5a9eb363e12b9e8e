//! The reorder buffer: items wait here until the watermark passes their
//! event time, then leave in event-time order. Ties are broken by the
//! item's content, never by arrival, so any arrival order within the
//! lateness bound releases the same sequence.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::time::EventTime;

/// The total order of released items: time, then a content key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct OrderKey {
    pub(crate) time: EventTime,
    /// Transitions (0) before hits (1) at the same instant.
    pub(crate) class: u8,
    pub(crate) content: u64,
}

#[derive(Debug)]
pub(super) struct Entry<T> {
    pub(super) key: OrderKey,
    pub(super) seq: u64,
    pub(super) item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.key, self.seq) == (other.key, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.key, self.seq).cmp(&(other.key, other.seq))
    }
}

#[derive(Debug)]
pub(crate) struct Reorder<T> {
    pub(super) heap: BinaryHeap<Reverse<Entry<T>>>,
    pub(super) seq: u64,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Reorder {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T> Reorder<T> {
    pub(crate) fn push(&mut self, key: OrderKey, item: T) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            key,
            seq: self.seq,
            item,
        }));
    }

    /// The next item at or before `upto`, in order.
    pub(crate) fn pop_until(&mut self, upto: EventTime) -> Option<(OrderKey, T)> {
        if self
            .heap
            .peek()
            .is_some_and(|Reverse(e)| e.key.time <= upto)
        {
            self.heap.pop().map(|Reverse(e)| (e.key, e.item))
        } else {
            None
        }
    }

    /// The oldest item, whatever the watermark (for the held-state cap).
    pub(crate) fn pop_oldest(&mut self) -> Option<(OrderKey, T)> {
        self.heap.pop().map(|Reverse(e)| (e.key, e.item))
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: i64, c: u64) -> OrderKey {
        OrderKey {
            time: EventTime::from_micros(t),
            class: 1,
            content: c,
        }
    }

    #[test]
    fn releases_in_time_then_content_order_up_to_the_watermark() {
        let mut r = Reorder::default();
        r.push(key(30, 1), "c");
        r.push(key(10, 9), "b");
        r.push(key(10, 2), "a");
        r.push(key(50, 0), "late");
        let mut out = Vec::new();
        while let Some((_, item)) = r.pop_until(EventTime::from_micros(30)) {
            out.push(item);
        }
        assert_eq!(out, ["a", "b", "c"]);
        assert_eq!(r.len(), 1);
    }
}
