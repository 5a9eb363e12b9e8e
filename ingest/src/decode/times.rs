//! Event time of a record: which timestamp field counts, and parsing them.

use correlate::EventTime;

use super::error::{DecodeError, Result};
use super::wire::{Stamp, Str};

/// Parses the optional RFC 3339 field `field` (under `prefix`): `None` when
/// absent, null or empty; an error naming the field when malformed.
pub(crate) fn parse_opt(
    prefix: &str,
    field: &str,
    value: &Option<Str<'_>>,
) -> Result<Option<EventTime>> {
    match value.as_ref().map(Str::as_str) {
        None | Some("") => Ok(None),
        Some(text) => EventTime::parse_rfc3339(text)
            .map(Some)
            .ok_or_else(|| DecodeError::bad_timestamp(prefix, field, text)),
    }
}

/// Parses a log record's time: RFC 3339 text or epoch seconds.
pub(crate) fn parse_stamp(prefix: &str, field: &str, stamp: &Stamp<'_>) -> Result<EventTime> {
    match stamp {
        Stamp::Text(text) => EventTime::parse_rfc3339(text)
            .ok_or_else(|| DecodeError::bad_timestamp(prefix, field, text)),
        Stamp::EpochSeconds(secs) => {
            let micros = (secs * 1e6).round();
            if micros.is_finite() && micros.abs() < 9.0e18 {
                Ok(EventTime::from_micros(micros as i64))
            } else {
                Err(DecodeError::bad_timestamp(prefix, field, &secs.to_string()))
            }
        }
    }
}

/// The newest of the candidate times of a record, each parsed and checked
/// (a malformed one is an error even when another would win).
pub(crate) fn newest<'v, 'a: 'v>(
    prefix: &str,
    candidates: impl IntoIterator<Item = (&'static str, &'v Option<Str<'a>>)>,
) -> Result<Option<EventTime>> {
    let mut best = None;
    for (field, value) in candidates {
        if let Some(t) = parse_opt(prefix, field, value)? {
            best = best.max(Some(t));
        }
    }
    Ok(best)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn s(text: &str) -> Option<Str<'_>> {
        Some(Str(Cow::Borrowed(text)))
    }

    #[test]
    fn newest_skips_nulls_and_takes_the_latest() {
        let series = s("2026-03-10T12:04:24.317897Z");
        let last = None;
        let event_time = s("2026-03-10T12:04:13.817897Z");
        let created = s("2026-03-10T12:04:13Z");
        let t = newest(
            "",
            [
                ("series.lastObservedTime", &series),
                ("lastTimestamp", &last),
                ("eventTime", &event_time),
                ("metadata.creationTimestamp", &created),
            ],
        )
        .unwrap();
        assert_eq!(t.unwrap().to_string(), "2026-03-10T12:04:24.317897Z");
        let none: Option<Str<'_>> = None;
        assert_eq!(newest("", [("eventTime", &none)]).unwrap(), None);
    }

    #[test]
    fn newest_reports_a_malformed_candidate_by_path() {
        let bad = s("yesterday");
        let err = newest("object.", [("lastTimestamp", &bad)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "object.lastTimestamp: invalid RFC 3339 timestamp \"yesterday\""
        );
    }

    #[test]
    fn epoch_seconds_keep_microseconds() {
        let t = parse_stamp("", "time", &Stamp::EpochSeconds(1_773_647_103.570_5)).unwrap();
        assert_eq!(t.to_string(), "2026-03-16T07:45:03.5705Z");
        assert!(parse_stamp("", "time", &Stamp::EpochSeconds(f64::NAN)).is_err());
    }
}
