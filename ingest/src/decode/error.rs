//! What can be wrong with one input line, said as WHAT and WHERE in the
//! record (a field path such as `alerts[2].startsAt`, or a column). The
//! caller adds the file and line.

use std::fmt::{self, Write as _};

use serde::Deserializer as _;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::error::Category;

use super::wire::Str;

/// Why a line yielded no events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The line is not JSON at all.
    #[error("not JSON: {message} at column {column}")]
    NotJson { message: String, column: usize },
    /// Valid JSON, but not an object.
    #[error("unrecognised record: {found}, not a JSON object")]
    NotObject { found: &'static str },
    /// A field holds a value of the wrong type.
    #[error("{path}: {message} at column {column}")]
    WrongType {
        path: String,
        message: String,
        column: usize,
    },
    /// An object whose keys match no input shape.
    #[error(
        "unrecognised record: keys [{keys}] match no input shape (Kubernetes watch event or \
         object, Alertmanager v4 body, Vector or Fluent Bit log)"
    )]
    Unrecognised { keys: String },
    /// A field the shape requires is absent or empty.
    #[error("{path}: missing")]
    Missing { path: String },
    #[error("{path}: invalid RFC 3339 timestamp {value:?}")]
    BadTimestamp { path: String, value: String },
    /// None of the fields that give a record its event time is set.
    #[error("{path}: no event time (none of {fields} is set)")]
    NoTime { path: String, fields: &'static str },
    /// A field holds a value that makes no sense for its shape.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// A field holds a value this version does not handle.
    #[error("{path}: unsupported {value:?} (expected {expected})")]
    Unsupported {
        path: String,
        value: String,
        expected: &'static str,
    },
}

pub type Result<T, E = DecodeError> = std::result::Result<T, E>;

impl DecodeError {
    pub(crate) fn missing(prefix: &str, field: &str) -> Self {
        DecodeError::Missing {
            path: format!("{prefix}{field}"),
        }
    }

    /// `prefix` is `object.` inside a watch event, empty for a bare record.
    pub(crate) fn no_time(prefix: &str, fields: &'static str) -> Self {
        DecodeError::NoTime {
            path: match prefix.strip_suffix('.') {
                Some(p) if !p.is_empty() => p.to_owned(),
                _ => "record".to_owned(),
            },
            fields,
        }
    }

    pub(crate) fn bad_timestamp(prefix: &str, field: &str, value: &str) -> Self {
        DecodeError::BadTimestamp {
            path: format!("{prefix}{field}"),
            value: value.to_owned(),
        }
    }

    /// A serde_json error on `line`, with the field path of its position.
    pub(crate) fn from_json(err: &serde_json::Error, line: &str) -> Self {
        let full = err.to_string();
        let suffix = format!(" at line {} column {}", err.line(), err.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        let column = err.column();
        match err.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                DecodeError::NotJson { message, column }
            }
            Category::Data => {
                let path = json_path_at(line, column);
                DecodeError::WrongType {
                    path: if path.is_empty() {
                        "record".to_owned()
                    } else {
                        path
                    },
                    message,
                    column,
                }
            }
        }
    }

    /// A record of no known shape, named by its top-level keys.
    pub(crate) fn unrecognised(line: &str) -> Self {
        DecodeError::Unrecognised {
            keys: top_level_keys(line),
        }
    }
}

/// The field path (`alerts[2].labels`) at byte `pos` of the JSON text `line`:
/// where a serde error occurred. Only runs on the error path.
pub(crate) fn json_path_at(line: &str, pos: usize) -> String {
    enum Frame<'s> {
        Object {
            key: Option<&'s str>,
            want_key: bool,
        },
        Array {
            index: usize,
        },
    }
    let bytes = line.as_bytes();
    let end = pos.min(bytes.len());
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut i = 0;
    while i < end {
        match bytes[i] {
            b'{' => stack.push(Frame::Object {
                key: None,
                want_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { key, want_key }) => {
                    *key = None;
                    *want_key = true;
                }
                None => {}
            },
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object { key, want_key }) = stack.last_mut()
                    && *want_key
                {
                    *key = line.get(start..j.min(bytes.len()));
                    *want_key = false;
                }
                i = j;
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => {
                let _ = write!(path, "[{index}]");
            }
        }
    }
    path
}

/// The top-level keys of a JSON object, in input order, for an error message.
fn top_level_keys(line: &str) -> String {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
            const SHOWN: usize = 12;
            let mut out = String::new();
            let mut n = 0;
            while let Some((key, IgnoredAny)) = map.next_entry::<Str<'de>, IgnoredAny>()? {
                if n < SHOWN {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(key.as_str());
                }
                n += 1;
            }
            if n > SHOWN {
                let _ = write!(out, ", … {} more", n - SHOWN);
            }
            Ok(out)
        }
    }
    serde_json::Deserializer::from_str(line)
        .deserialize_map(Keys)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_field_path_of_a_position() {
        let line = r#"{"receiver":"x","alerts":[{"a":1},{"startsAt":5}]}"#;
        let at = line.find('5').map(|i| i + 1).unwrap_or(0);
        assert_eq!(json_path_at(line, at), "alerts[1].startsAt");
        let line = r#"{"object":{"metadata":{"name":7}}}"#;
        assert_eq!(json_path_at(line, 31), "object.metadata.name");
        assert_eq!(json_path_at(r#"{"a\"b":[1,"#, 11), r#"a\"b[1]"#);
    }

    #[test]
    fn names_top_level_keys_in_order() {
        assert_eq!(
            top_level_keys(r#"{"_HOSTNAME":"h","MESSAGE":"m","time":"t"}"#),
            "_HOSTNAME, MESSAGE, time"
        );
    }
}
