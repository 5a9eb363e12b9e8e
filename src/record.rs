//! `replay --history DIR`: every incident version a replay forms, written to
//! the incident history as `serve` would, so SQL works on recordings.
//!
//! Design choice: versions are recorded at the engine's own changes
//! (opened, updated, resolved, merged), one row per incident version, with
//! the change's event time as `recorded_at`; a replay's history is thus as
//! deterministic as its output. A version already recorded is not recorded
//! again, and the final state of every incident is recorded at the end.

use std::path::Path;

use anyhow::{Context, Result};
use correlate::incident::Change;
use correlate::{Clusters, Engine, IncidentReport, IncidentUpdate, Lane, Status};
use rustc_hash::FxHashMap;
use sinks::change::{ChangeKind, IncidentChange};
use sinks::history::HistoryWriter;

/// Rows buffered before they are written out.
const FLUSH_ROWS: usize = 50_000;

#[derive(Debug)]
pub(crate) struct HistoryRecorder {
    writer: HistoryWriter,
    /// The version and status last recorded, per cluster lane and incident
    /// index.
    recorded: FxHashMap<(Lane, usize), (u32, Status)>,
    pub(crate) rows: u64,
}

impl HistoryRecorder {
    pub(crate) fn open(dir: &Path, rules: &correlate::rules::RuleSet) -> Result<HistoryRecorder> {
        let writer = HistoryWriter::open(dir, crate::serve::signal_sources(rules))
            .with_context(|| format!("--history {}", dir.display()))?;
        Ok(HistoryRecorder {
            writer,
            recorded: FxHashMap::default(),
            rows: 0,
        })
    }

    /// Records the incidents `updates` changed in the cluster of `lane`.
    pub(crate) fn record(
        &mut self,
        engine: &Engine,
        lane: Lane,
        updates: &[IncidentUpdate],
    ) -> Result<()> {
        let store = engine.store();
        for u in updates {
            if u.change == Change::Merged {
                let folded = store.get(u.incident);
                if folded.status != Status::Pending {
                    let survivor = store.get(store.find(u.incident));
                    self.add(
                        (lane, u.incident),
                        folded,
                        ChangeKind::Merged,
                        Some(survivor.id.clone()),
                        u.at,
                    );
                }
                continue;
            }
            let root = store.find(u.incident);
            let inc = store.get(root);
            if inc.is_reported() {
                self.add((lane, root), inc, ChangeKind::from(u.change), None, u.at);
            }
        }
        if self.writer.buffered() >= FLUSH_ROWS {
            self.writer.flush().context("writing the history")?;
        }
        Ok(())
    }

    fn add(
        &mut self,
        idx: (Lane, usize),
        inc: &correlate::Incident,
        change: ChangeKind,
        merged_into: Option<String>,
        at: correlate::EventTime,
    ) {
        let state = (inc.version, inc.status);
        if self.recorded.get(&idx) == Some(&state) && change != ChangeKind::Merged {
            return;
        }
        self.recorded.insert(idx, state);
        let c = IncidentChange {
            change,
            merged_into,
            incident: IncidentReport::new(inc),
        };
        self.writer.append(&c, at, None);
        self.rows += 1;
    }

    /// Records the final state of every incident not yet recorded at its
    /// last version, and writes everything out.
    pub(crate) fn finish(mut self, clusters: &Clusters) -> Result<u64> {
        let every = clusters.iter().enumerate().flat_map(|(lane, e)| {
            e.store()
                .iter()
                .enumerate()
                .map(move |(i, inc)| ((lane, i), inc))
        });
        for (idx, inc) in every {
            if inc.is_reported() && self.recorded.get(&idx) != Some(&(inc.version, inc.status)) {
                let at = inc.resolved_at.unwrap_or(inc.last_seen).max(inc.last_seen);
                let change = if inc.status == Status::Resolved {
                    ChangeKind::Resolved
                } else {
                    ChangeKind::Updated
                };
                self.add(idx, inc, change, None, at);
            }
        }
        self.writer.flush().context("writing the history")?;
        Ok(self.rows)
    }
}
