//! Watermarks for live streams: how far event time is final.
//!
//! Each ordered stream (a watch, a Kafka partition) reports the newest event
//! time it has delivered; event time is roughly ordered within a stream, not
//! across streams, so the watermark is the *slowest* active stream's newest
//! time, less the allowed lateness. A stream silent for `idle` stops holding
//! it back (a quiet namespace must not stall every rule). When every stream
//! is silent, event time is taken to move on with the wall clock from the
//! newest record seen: silence from a caught-up source means nothing
//! happened, and absence rules ("46 pods Pending and no FailedScheduling for
//! ten minutes") must still fire.
//!
//! Unordered streams (Alertmanager repeats carry old `startsAt`) never hold
//! the watermark back; they only move the newest time seen.
//!
//! Event time never runs ahead of the wall clock: the watermark stays at or
//! below `now - lateness`, so a record dated in the future (a skewed clock,
//! a bad timestamp the pipeline let through because it was within
//! `engine.max_ahead`) waits for its time instead of resolving everything
//! before it.
//!
//! Wall time is a parameter (`now`, µs since the epoch), never read here:
//! the tracker is deterministic and tested without sleeping.

use std::time::Duration;

use correlate::{EventTime, Span};
use ingest::source::StreamId;
use rustc_hash::FxHashMap;

/// Streams silent this many idle timeouts are forgotten (a deleted pod's
/// log stream), so the table stays as large as the live streams.
const FORGET_AFTER_IDLE: i64 = 10;

#[derive(Debug, Clone, Copy)]
struct StreamClock {
    /// Newest event time delivered.
    max: EventTime,
    /// Wall time of the stream's latest delivery.
    seen_at: EventTime,
}

/// One cluster's watermarks (the pipeline keeps a set per cluster).
#[derive(Debug, Clone)]
pub(crate) struct Watermarks {
    lateness: Span,
    idle: Span,
    streams: FxHashMap<StreamId, StreamClock>,
    /// Newest event time of any record, and the wall time it was seen.
    newest: EventTime,
    newest_seen_at: EventTime,
    /// The watermark handed out last; it never goes back.
    current: EventTime,
}

impl Watermarks {
    pub(crate) fn new(lateness: Span, idle: Duration) -> Watermarks {
        Watermarks {
            lateness,
            idle: Span::from_micros(i64::try_from(idle.as_micros()).unwrap_or(i64::MAX)),
            streams: FxHashMap::default(),
            newest: EventTime::MIN,
            newest_seen_at: EventTime::MIN,
            current: EventTime::MIN,
        }
    }

    /// Starts from a restored watermark (after a restart).
    pub(crate) fn resume_from(&mut self, watermark: EventTime, newest: EventTime, now: EventTime) {
        self.current = self.current.max(watermark);
        if newest > self.newest {
            self.newest = newest;
            self.newest_seen_at = now;
        }
    }

    /// A record of `stream` with event time `time` arrived at wall time `now`.
    pub(crate) fn observe(
        &mut self,
        stream: &StreamId,
        ordered: bool,
        time: EventTime,
        now: EventTime,
    ) {
        self.newest = self.newest.max(time);
        self.newest_seen_at = self.newest_seen_at.max(now);
        if !ordered {
            return;
        }
        match self.streams.get_mut(stream) {
            Some(c) => {
                c.max = c.max.max(time);
                c.seen_at = now;
            }
            None => {
                self.streams.insert(
                    stream.clone(),
                    StreamClock {
                        max: time,
                        seen_at: now,
                    },
                );
            }
        }
    }

    /// The watermark at wall time `now`.
    pub(crate) fn watermark(&mut self, now: EventTime) -> EventTime {
        let idle = self.idle;
        let forget = Span::from_micros(idle.as_micros().saturating_mul(FORGET_AFTER_IDLE));
        self.streams.retain(|_, c| now.since(c.seen_at) < forget);
        let slowest_active = self
            .streams
            .values()
            .filter(|c| now.since(c.seen_at) < idle)
            .map(|c| c.max)
            .min();
        let candidate = match slowest_active {
            Some(t) => t.saturating_sub(self.lateness),
            None if self.newest == EventTime::MIN => EventTime::MIN,
            None => {
                let quiet = now.since(self.newest_seen_at).max(Span::ZERO);
                self.newest
                    .saturating_add(quiet)
                    .saturating_sub(self.lateness)
            }
        };
        let candidate = candidate.min(now.saturating_sub(self.lateness));
        self.current = self.current.max(candidate);
        self.current
    }

    /// Ordered streams tracked now.
    pub(crate) fn streams(&self) -> usize {
        self.streams.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    fn at(minutes: i64) -> EventTime {
        EventTime::from_micros(1_000_000_000_000_000 + minutes * MIN)
    }

    fn marks() -> Watermarks {
        Watermarks::new(Span::from_secs(120), Duration::from_secs(30))
    }

    #[test]
    fn the_slowest_active_stream_holds_the_watermark() {
        let mut w = marks();
        let (a, b) = (StreamId::new("a"), StreamId::new("b"));
        w.observe(&a, true, at(10), at(20));
        w.observe(&b, true, at(4), at(20));
        assert_eq!(w.watermark(at(20)), at(2), "b's 4m less 2m lateness");
        w.observe(&b, true, at(9), at(20));
        assert_eq!(w.watermark(at(20)), at(7));
    }

    #[test]
    fn event_time_never_runs_ahead_of_the_wall_clock() {
        let mut w = marks();
        let a = StreamId::new("a");
        // A record dated 9 minutes ahead of the wall clock.
        w.observe(&a, true, at(109), at(100));
        assert_eq!(w.watermark(at(100)), at(98), "now less the lateness");
        // Idle since: event time follows the wall clock, never past it.
        assert_eq!(w.watermark(at(115)), at(113));
    }

    #[test]
    fn a_silent_stream_stops_holding_it_back_after_the_idle_timeout() {
        let mut w = marks();
        let (a, b) = (StreamId::new("a"), StreamId::new("b"));
        let t0 = at(100);
        w.observe(&a, true, at(10), t0);
        w.observe(&b, true, at(4), t0);
        // 20 s later a is still flowing, b is silent but not yet idle.
        let t1 = t0.saturating_add(Span::from_secs(20));
        w.observe(&a, true, at(11), t1);
        assert_eq!(w.watermark(t1), at(2));
        // 31 s after b's last record it is idle: a alone decides.
        let t2 = t0.saturating_add(Span::from_secs(31));
        w.observe(&a, true, at(12), t2);
        assert_eq!(w.watermark(t2), at(10));
    }

    #[test]
    fn when_every_stream_is_silent_event_time_follows_the_wall_clock() {
        let mut w = marks();
        let a = StreamId::new("a");
        let t0 = at(100);
        w.observe(&a, true, at(10), t0);
        assert_eq!(w.watermark(t0), at(8));
        // Idle for 5 minutes: event time has moved 5 minutes on.
        assert_eq!(w.watermark(t0.saturating_add(Span::from_secs(300))), at(13));
    }

    #[test]
    fn unordered_streams_never_hold_it_back_and_it_never_goes_back() {
        let mut w = marks();
        let (a, am) = (StreamId::new("a"), StreamId::new("alertmanager"));
        w.observe(&a, true, at(10), at(20));
        // A repeat of a day-old alert.
        w.observe(&am, false, at(-1440), at(20));
        assert_eq!(w.watermark(at(20)), at(8));
        // A stream that starts late and behind does not move it back.
        w.observe(&StreamId::new("late"), true, at(1), at(20));
        assert_eq!(w.watermark(at(20)), at(8));
    }

    #[test]
    fn nothing_seen_means_no_watermark() {
        let mut w = marks();
        assert_eq!(w.watermark(at(0)), EventTime::MIN);
    }

    #[test]
    fn long_silent_streams_are_forgotten() {
        let mut w = marks();
        w.observe(&StreamId::new("gone"), true, at(1), at(0));
        w.observe(&StreamId::new("live"), true, at(1), at(10));
        w.watermark(at(10));
        assert_eq!(w.streams(), 1);
    }
}
