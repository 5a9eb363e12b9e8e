//! Validation of raw values: each check either yields the typed value or
//! records an error that names the place (`file:line:col: field: what`),
//! so one run reports every mistake in the file.

use std::net::SocketAddr;
use std::time::Duration;

use correlate::Span;
use serde_saphyr::{Location, Spanned};

use super::raw::{Count, Flag, Text};

/// Reads an environment variable; injected so tests need not set any.
pub(super) type Env<'e> = &'e dyn Fn(&str) -> Option<String>;

pub(super) struct Checker<'e> {
    file: String,
    env: Env<'e>,
    pub(super) errors: Vec<String>,
}

impl<'e> Checker<'e> {
    pub(super) fn new(file: &str, env: Env<'e>) -> Checker<'e> {
        Checker {
            file: file.to_string(),
            env,
            errors: Vec::new(),
        }
    }

    pub(super) fn at(&self, l: Location) -> String {
        format!("{}:{}:{}", self.file, l.line(), l.column())
    }

    pub(super) fn error(&mut self, l: Location, field: &str, message: impl std::fmt::Display) {
        let place = self.at(l);
        self.errors.push(format!("{place}: {field}: {message}"));
    }

    pub(super) fn span(&mut self, v: Option<&Text>, field: &str) -> Option<Span> {
        let v = v?;
        match Span::parse(&v.value) {
            Some(s) if s >= Span::ZERO => Some(s),
            _ => {
                self.error(
                    v.referenced,
                    field,
                    format_args!("`{}` is not a duration (e.g. 30s, 2m)", v.value),
                );
                None
            }
        }
    }

    /// A duration that must be more than zero.
    pub(super) fn duration(&mut self, v: Option<&Text>, field: &str) -> Option<Duration> {
        let s = self.span(v, field)?;
        if s <= Span::ZERO {
            self.error(
                v.map_or(Location::UNKNOWN, |v| v.referenced),
                field,
                "must be more than zero",
            );
            return None;
        }
        Some(Duration::from_micros(s.as_micros().unsigned_abs()))
    }

    /// A count of at least 1.
    pub(super) fn count(&mut self, v: Option<&Count>, field: &str) -> Option<usize> {
        let v = v?;
        if v.value == 0 {
            self.error(v.referenced, field, "must be at least 1");
            return None;
        }
        Some(usize::try_from(v.value).unwrap_or(usize::MAX))
    }

    /// A size in bytes: `4MiB`, `512KiB`, `1000000`.
    pub(super) fn size(&mut self, v: Option<&Text>, field: &str) -> Option<usize> {
        let v = v?;
        match v.value.trim().parse::<bytesize::ByteSize>() {
            Ok(b) if b.as_u64() > 0 => Some(usize::try_from(b.as_u64()).unwrap_or(usize::MAX)),
            _ => {
                self.error(
                    v.referenced,
                    field,
                    format_args!("`{}` is not a size (e.g. 4MiB)", v.value),
                );
                None
            }
        }
    }

    pub(super) fn addr(&mut self, v: Option<&Text>, field: &str) -> Option<SocketAddr> {
        let v = v?;
        match v.value.trim().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    v.referenced,
                    field,
                    format_args!("`{}` is not an address (e.g. 0.0.0.0:9095)", v.value),
                );
                None
            }
        }
    }

    pub(super) fn flag(v: Option<&Flag>, default: bool) -> bool {
        v.map_or(default, |f| f.value)
    }

    /// A non-empty string.
    pub(super) fn text(&mut self, v: Option<&Text>, field: &str) -> Option<String> {
        let v = v?;
        if v.value.trim().is_empty() {
            self.error(v.referenced, field, "must not be empty");
            return None;
        }
        Some(v.value.clone())
    }

    /// A cluster's name: `${VAR}` expanded (one config for many clusters,
    /// each pod given its cluster's name), not empty.
    pub(super) fn cluster(&mut self, v: Option<&Text>, field: &str) -> Option<String> {
        let v = v?;
        let name = self.expand(v, field)?;
        if name.trim().is_empty() {
            self.error(v.referenced, field, "a cluster's name must not be empty");
            return None;
        }
        if name.chars().any(char::is_control) {
            self.error(
                v.referenced,
                field,
                "a cluster's name must not hold control characters",
            );
            return None;
        }
        Some(name)
    }

    /// A string with `${VAR}` replaced from the environment (`$$` is a
    /// literal `$`). An unset variable is an error at the value's place; the
    /// value itself is never repeated in a message (it may be a secret).
    pub(super) fn expand(&mut self, v: &Spanned<String>, field: &str) -> Option<String> {
        let mut out = String::with_capacity(v.value.len());
        let mut rest = v.value.as_str();
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            if let Some(r) = rest.strip_prefix("$$") {
                out.push('$');
                rest = r;
            } else if let Some(r) = rest.strip_prefix("${") {
                let Some(end) = r.find('}') else {
                    self.error(v.referenced, field, "`${` without a closing `}`");
                    return None;
                };
                let name = &r[..end];
                match (self.env)(name) {
                    Some(value) => out.push_str(&value),
                    None => {
                        self.error(
                            v.referenced,
                            field,
                            format_args!("environment variable `{name}` is not set"),
                        );
                        return None;
                    }
                }
                rest = &r[end + 1..];
            } else {
                out.push('$');
                rest = &rest[1..];
            }
        }
        out.push_str(rest);
        Some(out)
    }
}
