//! Newline-delimited JSON: one incident per line, on stdout or in a file.

use std::io::{self, Write};

use correlate::IncidentReport;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing incidents: {0}")]
    Io(#[from] io::Error),
    #[error("encoding incident {id}: {source}")]
    Encode {
        id: String,
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Writes incidents as NDJSON, one line each, flushing at the end.
#[derive(Debug)]
pub struct NdjsonSink<W: Write> {
    out: W,
}

impl<W: Write> NdjsonSink<W> {
    pub fn new(out: W) -> Self {
        NdjsonSink { out }
    }

    pub fn write(&mut self, report: &IncidentReport) -> Result<()> {
        serde_json::to_writer(&mut self.out, report).map_err(|source| {
            if source.is_io() {
                Error::Io(io::Error::other(source))
            } else {
                Error::Encode {
                    id: report.id.clone(),
                    source,
                }
            }
        })?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
