//! Reading NDJSON input line by line.
//!
//! [`Lines`] yields `(line number, text)` from any [`BufRead`]: it strips the
//! `\n` / `\r\n` ending (and a UTF-8 byte order mark on line 1), and turns a
//! line that is not UTF-8 or longer than the limit into an error for that
//! line only; reading goes on with the next one. An over-long line is skipped
//! as it streams by, never buffered whole.

use std::io::{self, BufRead};

/// Default longest line accepted: 16 MiB.
pub const DEFAULT_MAX_LINE: usize = 16 << 20;

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The line is not valid UTF-8; the line is skipped.
    #[error("line {line}: not UTF-8 (invalid byte at column {column})")]
    NotUtf8 { line: u64, column: usize },
    /// The line exceeds the limit; the line is skipped.
    #[error("line {line}: longer than {max} bytes, skipped")]
    TooLong { line: u64, max: usize },
    /// Reading failed; nothing more will be read.
    #[error("read error after line {line}: {source}")]
    Io {
        line: u64,
        #[source]
        source: io::Error,
    },
}

impl LineError {
    /// The 1-based line the error is about (for `Io`, the last line read).
    pub fn line(&self) -> u64 {
        match self {
            LineError::NotUtf8 { line, .. }
            | LineError::TooLong { line, .. }
            | LineError::Io { line, .. } => *line,
        }
    }

    /// Whether reading can go on after this error.
    pub fn is_fatal(&self) -> bool {
        matches!(self, LineError::Io { .. })
    }
}

pub type Result<T, E = LineError> = std::result::Result<T, E>;

/// A line reader over a [`BufRead`]; see the module docs.
#[derive(Debug)]
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    line: u64,
    max: usize,
    done: bool,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R) -> Self {
        Lines::with_max_line(reader, DEFAULT_MAX_LINE)
    }

    /// A reader that rejects lines longer than `max` bytes (ending excluded).
    pub fn with_max_line(reader: R, max: usize) -> Self {
        Lines {
            reader,
            buf: Vec::new(),
            line: 0,
            max,
            done: false,
        }
    }

    /// The next line as `(line number, text)` borrowed from the reader's
    /// buffer, an error for this line, or `None` at the end of input (and
    /// after an IO error).
    pub fn next_line(&mut self) -> Option<Result<(u64, &str)>> {
        if self.done {
            return None;
        }
        let too_long = match self.fill_line() {
            Ok(Some(too_long)) => too_long,
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(source) => {
                self.done = true;
                return Some(Err(LineError::Io {
                    line: self.line,
                    source,
                }));
            }
        };
        self.line += 1;
        let line = self.line;
        if too_long {
            return Some(Err(LineError::TooLong {
                line,
                max: self.max,
            }));
        }
        let mut bytes = self.buf.as_slice();
        if let Some(b) = bytes.strip_suffix(b"\r") {
            bytes = b;
        }
        if line == 1
            && let Some(b) = bytes.strip_prefix(b"\xef\xbb\xbf")
        {
            bytes = b;
        }
        Some(
            std::str::from_utf8(bytes)
                .map(|text| (line, text))
                .map_err(|e| LineError::NotUtf8 {
                    line,
                    column: e.valid_up_to() + 1,
                }),
        )
    }

    /// Reads one line into `buf` without its `\n`: `Some(too_long)`, or
    /// `None` at end of input. Past `max` bytes the rest of the line is
    /// consumed and dropped.
    fn fill_line(&mut self) -> io::Result<Option<bool>> {
        self.buf.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(any.then_some(too_long));
            }
            any = true;
            let (chunk, used, end) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            if !too_long {
                if self.buf.len() + chunk.len() > self.max {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(chunk);
                }
            }
            self.reader.consume(used);
            if end {
                return Ok(Some(too_long));
            }
        }
    }
}

/// Owned lines, for callers that keep them.
impl<R: BufRead> Iterator for Lines<R> {
    type Item = Result<(u64, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_line()
            .map(|r| r.map(|(n, text)| (n, text.to_owned())))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::BufReader;

    use super::*;

    fn read_all(input: &[u8], max: usize, capacity: usize) -> Vec<String> {
        let mut lines = Lines::with_max_line(BufReader::with_capacity(capacity, input), max);
        let mut out = Vec::new();
        while let Some(r) = lines.next_line() {
            out.push(match r {
                Ok((n, text)) => format!("{n}:{text}"),
                Err(e) => format!("{}:ERR {e}", e.line()),
            });
        }
        out
    }

    #[test]
    fn strips_endings_and_numbers_lines() {
        let got = read_all(b"\xef\xbb\xbf{\"a\":1}\r\n\nlast", 100, 4);
        assert_eq!(got, ["1:{\"a\":1}", "2:", "3:last"]);
        assert_eq!(read_all(b"one\n", 100, 4), ["1:one"]);
        assert!(read_all(b"", 100, 4).is_empty());
    }

    #[test]
    fn bad_lines_are_errors_of_their_own() {
        let got = read_all(b"ok\nbad\xff\n0123456789abc\nfine\n", 10, 3);
        assert_eq!(
            got,
            [
                "1:ok",
                "2:ERR line 2: not UTF-8 (invalid byte at column 4)",
                "3:ERR line 3: longer than 10 bytes, skipped",
                "4:fine"
            ]
        );
    }

    #[test]
    fn a_long_line_is_never_buffered_whole() {
        let mut input = vec![b'x'; 1 << 20];
        input.extend_from_slice(b"\nafter\n");
        let mut lines = Lines::with_max_line(BufReader::with_capacity(64, input.as_slice()), 100);
        assert!(matches!(
            lines.next_line(),
            Some(Err(LineError::TooLong { line: 1, .. }))
        ));
        assert!(lines.buf.capacity() <= 200);
        assert_eq!(lines.next_line().unwrap().unwrap(), (2, "after"));
        assert!(lines.next_line().is_none());
    }

    #[test]
    fn owned_iteration() {
        let all: Vec<_> = Lines::new("a\nb".as_bytes()).map(|r| r.unwrap()).collect();
        assert_eq!(all, [(1, "a".to_owned()), (2, "b".to_owned())]);
    }
}
