//! Event time. The engine never reads a clock: every instant it knows comes
//! from a record or from a watermark handed to it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant in event time: microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventTime(i64);

impl EventTime {
    pub const MIN: EventTime = EventTime(i64::MIN);
    pub const MAX: EventTime = EventTime(i64::MAX);

    pub const fn from_micros(us: i64) -> EventTime {
        EventTime(us)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 timestamp (`2026-03-16T08:00:00.194216Z`). The
    /// whole calendar of RFC 3339 is taken, years 0000 to 9999: jiff's
    /// `Timestamp` stops a day short of either end (its range is symmetric
    /// around the epoch in every offset), so instants it cannot hold are
    /// computed from the civil date, time and offset it parsed.
    pub fn parse_rfc3339(s: &str) -> Option<EventTime> {
        let s = s.trim();
        match s.parse::<jiff::Timestamp>() {
            Ok(t) => Some(EventTime(t.as_microsecond())),
            Err(_) => beyond_timestamp(s),
        }
    }

    pub fn saturating_add(self, d: Span) -> EventTime {
        EventTime(self.0.saturating_add(d.0))
    }

    pub fn saturating_sub(self, d: Span) -> EventTime {
        EventTime(self.0.saturating_sub(d.0))
    }

    /// The span from `earlier` to `self` (negative when `earlier` is later).
    pub fn since(self, earlier: EventTime) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_microsecond(self.0) {
            Ok(t) => write!(f, "{t}"),
            Err(_) => write!(f, "@{}us", self.0),
        }
    }
}

impl Serialize for EventTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Reads what `Serialize` writes: RFC 3339, or `@<µs>us` for instants
/// outside the calendar (`EventTime::MIN`).
impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EventTime, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if let Some(us) = s.strip_prefix('@').and_then(|r| r.strip_suffix("us")) {
            return us
                .parse()
                .map(EventTime)
                .map_err(|_| serde::de::Error::custom(format_args!("`{s}` is not a time")));
        }
        EventTime::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format_args!("`{s}` is not an RFC 3339 time")))
    }
}

/// An RFC 3339 instant at the edge of the calendar (`9999-12-31T23:59:59Z`),
/// from its parsed pieces; `None` for anything else that is not RFC 3339.
fn beyond_timestamp(s: &str) -> Option<EventTime> {
    let pieces = jiff::fmt::temporal::Pieces::parse(s).ok()?;
    if pieces.time_zone_annotation().is_some() {
        return None;
    }
    let time = pieces.time()?;
    let offset = pieces.to_numeric_offset()?;
    let days = pieces
        .date()
        .since((jiff::Unit::Day, jiff::civil::date(1970, 1, 1)))
        .ok()?
        .get_days();
    let seconds = i64::from(days) * 86_400
        + i64::from(time.hour()) * 3_600
        + i64::from(time.minute()) * 60
        + i64::from(time.second())
        - i64::from(offset.seconds());
    seconds
        .checked_mul(1_000_000)?
        .checked_add(i64::from(time.subsec_nanosecond()) / 1_000)
        .map(EventTime)
}

/// A length of event time, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span(i64);

impl Span {
    pub const ZERO: Span = Span(0);
    /// Longer than any stream: "never", for deadlines that do not apply.
    pub const FOREVER: Span = Span(i64::MAX);

    pub const fn from_micros(us: i64) -> Span {
        Span(us)
    }

    pub const fn from_secs(s: i64) -> Span {
        Span(s * 1_000_000)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// Parses a duration as people write them: `90s`, `5m`, `2m30s`, `1h`.
    pub fn parse(s: &str) -> Option<Span> {
        let d: jiff::SignedDuration = s.trim().parse().ok()?;
        i64::try_from(d.as_micros()).ok().map(Span)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000;
        let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
        match (h, m, s) {
            (0, 0, s) => write!(f, "{s}s"),
            (0, m, 0) => write!(f, "{m}m"),
            (0, m, s) => write!(f, "{m}m{s}s"),
            (h, 0, 0) => write!(f, "{h}h"),
            (h, m, _) => write!(f, "{h}h{m}m"),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Span::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format_args!("`{s}` is not a duration")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_rfc3339_with_micros() {
        let t = EventTime::parse_rfc3339("2026-03-16T08:00:00.194216Z").expect("valid");
        assert_eq!(t.to_string(), "2026-03-16T08:00:00.194216Z");
        let offset = EventTime::parse_rfc3339("2026-03-16T10:00:00+02:00").expect("valid");
        assert_eq!(offset.to_string(), "2026-03-16T08:00:00Z");
        assert_eq!(EventTime::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn the_whole_rfc3339_calendar_parses() {
        // Valid RFC 3339 beyond jiff's Timestamp range (a day short of
        // year 10000); a probe's far-future alert carried the first.
        let end = EventTime::parse_rfc3339("9999-12-31T23:59:59Z").expect("valid");
        assert_eq!(end.as_micros(), 253_402_300_799_000_000);
        let shifted = EventTime::parse_rfc3339("9999-12-31T23:59:59.5-01:00").expect("valid");
        assert_eq!(shifted.as_micros(), 253_402_304_399_500_000);
        let start = EventTime::parse_rfc3339("0000-01-01T00:00:00Z").expect("valid");
        assert_eq!(start.as_micros(), -62_167_219_200_000_000);
        // Inside the range both paths agree.
        let inside = "2026-03-16T10:00:00.25+02:00";
        assert_eq!(beyond_timestamp(inside), EventTime::parse_rfc3339(inside),);
        for bad in ["9999-12-31", "9999-12-31T23:59:59", "10000-01-01T00:00:00Z"] {
            assert_eq!(EventTime::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn spans_parse_as_people_write_them() {
        assert_eq!(Span::parse("5m"), Some(Span::from_secs(300)));
        assert_eq!(Span::parse("2m30s"), Some(Span::from_secs(150)));
        assert_eq!(Span::parse("1h"), Some(Span::from_secs(3600)));
        assert_eq!(Span::parse("soon"), None);
        assert_eq!(Span::from_secs(150).to_string(), "2m30s");
    }

    #[test]
    fn times_and_spans_read_back_what_they_write() {
        for t in [
            EventTime::parse_rfc3339("2026-03-16T08:00:00.194216Z").expect("valid"),
            EventTime::MIN,
        ] {
            let json = serde_json::to_string(&t).expect("serializes");
            assert_eq!(serde_json::from_str::<EventTime>(&json).expect("reads"), t);
        }
        let s = Span::from_secs(3600 + 120);
        let json = serde_json::to_string(&s).expect("serializes");
        assert_eq!(serde_json::from_str::<Span>(&json).expect("reads"), s);
        assert!(serde_json::from_str::<EventTime>("\"soon\"").is_err());
    }
}
