//! The time guard: one record dated far ahead of the stream must not move
//! event time on its own.
//!
//! When the engine drives its own watermark (replay: the newest event time
//! seen, less the lateness), a single record dated 2100 at the top of a
//! file would make every later record late and resolve every open incident
//! at once. The guard stands in front of the watermark:
//!
//! - **The frontier** is the [`CONFIRM`]-th largest event time seen, so up to
//!   `CONFIRM - 1` records, wherever they are dated, cannot move it alone.
//! - **A record ahead** (dated more than the bound past the frontier) is
//!   held, not processed. It is released with its own time as soon as the
//!   frontier comes within the bound of it: enough other records confirmed
//!   that the stream really moved on (a recording with a gap of days).
//! - **A record refuted** (still ahead after [`REFUTE_AFTER`] more records,
//!   or after the frontier itself moved on by the bound) is *clamped*:
//!   processed as if dated at the frontier, and counted.
//! - **Before the frontier exists** (fewer than `CONFIRM` records so far)
//!   every record is held; the first `CONFIRM` then judge each other.
//!
//! Held records keep their arrival order, and there are never more than
//! `CONFIRM - 1` of them once settled: a held record is dated past the
//! frontier, and only `CONFIRM - 1` times can be larger than the
//! `CONFIRM`-th largest. The guard is deterministic: the same input gives
//! the same decisions. The live service does not use it:
//! there the wall clock is the reference (records ahead of it are clamped
//! to it by the pipeline).

use std::collections::VecDeque;

use crate::model::Event;
use crate::time::{EventTime, Span};

/// Records it takes to move the frontier.
pub(super) const CONFIRM: usize = 3;
/// Records after which a held record still ahead is clamped.
pub(super) const REFUTE_AFTER: u64 = 1_000;

/// What the guard decided about a record's time.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Within the bound of the frontier: process it now.
    Pass,
    /// Ahead of the frontier (or no frontier yet): hold it.
    Hold,
}

#[derive(Debug)]
struct Held {
    event: Event<'static>,
    /// Records seen when it was held.
    at_record: u64,
    /// The frontier when it was held.
    frontier_then: Option<EventTime>,
}

/// Counters of the guard, for replay's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Records processed at the frontier's time instead of their own.
    pub clamped: u64,
    /// Records held and later released with their own time.
    pub confirmed: u64,
    /// Time-only observations (duplicates, heartbeats) ahead of the frontier
    /// that were not allowed to move event time.
    pub ignored: u64,
    /// Held now.
    pub held: usize,
}

#[derive(Debug)]
pub(super) struct TimeGuard {
    bound: Span,
    /// The `CONFIRM` largest times seen, largest first.
    top: [EventTime; CONFIRM],
    seen: u64,
    held: VecDeque<Held>,
    stats: GuardStats,
}

impl TimeGuard {
    pub(super) fn new(bound: Span) -> TimeGuard {
        TimeGuard {
            bound,
            top: [EventTime::MIN; CONFIRM],
            seen: 0,
            held: VecDeque::new(),
            stats: GuardStats::default(),
        }
    }

    /// The frontier: the `CONFIRM`-th largest time seen, once there are that
    /// many records.
    pub(super) fn frontier(&self) -> Option<EventTime> {
        (self.seen >= CONFIRM as u64).then(|| self.top[CONFIRM - 1])
    }

    /// Takes note of a record's time, then judges it.
    pub(super) fn admit(&mut self, t: EventTime) -> Verdict {
        self.seen += 1;
        if let Some(slot) = self.top.iter().position(|x| t > *x) {
            self.top[slot..].rotate_right(1);
            self.top[slot] = t;
        }
        match self.frontier() {
            Some(f) if t <= f.saturating_add(self.bound) => Verdict::Pass,
            _ => Verdict::Hold,
        }
    }

    /// A time-only observation ahead of the frontier is ignored (counted).
    pub(super) fn admit_observation(&mut self, t: EventTime) -> Verdict {
        let verdict = self.admit(t);
        if verdict == Verdict::Hold {
            self.stats.ignored += 1;
        }
        verdict
    }

    pub(super) fn hold(&mut self, event: Event<'static>) {
        self.held.push_back(Held {
            event,
            at_record: self.seen,
            frontier_then: self.frontier(),
        });
    }

    /// The next held record that is settled, in arrival order: confirmed
    /// (released with its own time) or refuted (clamped to the frontier).
    /// `finish`: the input ended, everything is settled.
    pub(super) fn next_settled(&mut self, finish: bool) -> Option<Event<'static>> {
        let frontier = self.frontier();
        let pos = self.held.iter().position(|h| {
            let confirmed = frontier.is_some_and(|f| h.event.time <= f.saturating_add(self.bound));
            confirmed || finish || self.refuted(h, frontier)
        });
        let mut held = self.held.remove(pos?)?.event;
        match frontier {
            Some(f) if held.time > f.saturating_add(self.bound) => {
                tracing::warn!(
                    time = %held.time,
                    frontier = %f,
                    line = held.origin.line,
                    "record dated far ahead of the stream: processed at the stream's time"
                );
                held.time = f;
                self.stats.clamped += 1;
            }
            _ => self.stats.confirmed += 1,
        }
        Some(held)
    }

    fn refuted(&self, h: &Held, frontier: Option<EventTime>) -> bool {
        let Some(f) = frontier else {
            return false;
        };
        let moved_on = h
            .frontier_then
            .is_some_and(|then| f.since(then) >= self.bound);
        self.seen - h.at_record >= REFUTE_AFTER || moved_on
    }

    pub(super) fn stats(&self) -> GuardStats {
        GuardStats {
            held: self.held.len(),
            ..self.stats
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{Entity, Source};

    const MIN: i64 = 60_000_000;

    fn at(minutes: i64) -> EventTime {
        EventTime::from_micros(1_700_000_000_000_000 + minutes * MIN)
    }

    fn event(t: EventTime) -> Event<'static> {
        Event::new(t, Source::K8sEvent, Entity::default())
    }

    /// Feeds times through the guard as the engine does; the times
    /// processed, in order.
    fn run(times: &[EventTime]) -> (Vec<EventTime>, GuardStats) {
        let mut g = TimeGuard::new(Span::from_secs(600));
        let mut out = Vec::new();
        for &t in times {
            let verdict = g.admit(t);
            while let Some(e) = g.next_settled(false) {
                out.push(e.time);
            }
            match verdict {
                Verdict::Pass => out.push(t),
                Verdict::Hold => g.hold(event(t)),
            }
        }
        while let Some(e) = g.next_settled(true) {
            out.push(e.time);
        }
        (out, g.stats())
    }

    #[test]
    fn one_record_from_the_future_at_the_top_is_clamped() {
        let mut times = vec![EventTime::parse_rfc3339("2100-01-01T00:00:00Z").unwrap()];
        times.extend((0..20).map(at));
        let (out, stats) = run(&times);
        assert_eq!(out.len(), 21);
        assert!(out.iter().all(|t| *t <= at(19)), "{out:?}");
        assert_eq!(stats.clamped, 1);
    }

    #[test]
    fn one_record_from_the_future_in_the_middle_is_clamped() {
        let mut times: Vec<EventTime> = (0..10).map(at).collect();
        times.push(EventTime::parse_rfc3339("9999-12-31T23:59:59Z").unwrap());
        times.extend((10..20).map(at));
        let (out, stats) = run(&times);
        assert!(out.iter().all(|t| *t <= at(19)), "{out:?}");
        assert_eq!(stats.clamped, 1);
        assert_eq!(out.len(), 21);
    }

    #[test]
    fn a_real_gap_in_the_stream_is_confirmed_not_clamped() {
        // Two days of silence, then the stream goes on: the records after
        // the gap keep their own times, in their order.
        let mut times: Vec<EventTime> = (0..10).map(at).collect();
        times.extend((2880..2890).map(at));
        let (out, stats) = run(&times);
        assert_eq!(out, times);
        assert_eq!(stats.clamped, 0);
        assert_eq!(
            stats.confirmed,
            2 + 2,
            "the first records and the gap's first two"
        );
    }

    #[test]
    fn records_within_the_bound_pass_at_once() {
        let times: Vec<EventTime> = [0, 9, 3, 1, 8, 2].into_iter().map(at).collect();
        let (out, stats) = run(&times);
        let mut sorted = out;
        sorted.sort();
        let mut expected = times;
        expected.sort();
        assert_eq!(sorted, expected);
        assert_eq!(stats.clamped, 0);
    }

    #[test]
    fn a_short_stream_is_released_at_the_end() {
        let times = [at(0), at(1)];
        let (out, stats) = run(&times);
        assert_eq!(out, times);
        assert_eq!(stats.clamped, 0);
    }

    #[test]
    fn at_most_confirm_minus_one_records_stay_held() {
        // Times all over the place, far futures among them.
        let mut g = TimeGuard::new(Span::from_secs(600));
        let mut x: i64 = 7;
        for _ in 0..5_000 {
            x = (x * 1_103_515_245 + 12_345) % 2_147_483_648;
            let t = match x % 10 {
                0 => at(1_000_000 + x % 50_000_000),
                _ => at(x % 100_000),
            };
            if g.admit(t) == Verdict::Hold {
                g.hold(event(t));
            }
            while g.next_settled(false).is_some() {}
            assert!(g.stats().held < CONFIRM, "{:?}", g.stats());
        }
    }
}
