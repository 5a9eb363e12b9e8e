//! The state directory: the checkpoint `serve` resumes from.
//!
//! A checkpoint holds the engine's and the decoder's state and the source
//! positions (Kafka offsets) they cover, in the checkpoint byte format of
//! `correlate::checkpoint` (header, length, CRC-32, postcard). Restoring
//! under an edited rule pack keeps what still applies and logs what was
//! dropped (`RestoreReport`). It is written whole to a temporary
//! file, synced, and renamed over the previous one, so a crash at any
//! moment leaves either the old checkpoint or the new one, never a torn
//! file. The directory is locked while a process uses it: two replicas
//! sharing a volume would otherwise overwrite each other's state.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use correlate::checkpoint::{self as format, FormatError, Kind};
use correlate::rules::RuleSet;
use correlate::{Engine, EngineConfig, EngineSnapshot};
use ingest::{Decoder, DecoderSnapshot, Limits};
use serde::{Deserialize, Serialize};

use super::pipeline::{Positions, positions_list};
use ingest::source::Position;

const FILE: &str = "checkpoint";
/// The schema of [`Stored`]; the engine and decoder parts carry their own.
const VERSION: u16 = 1;
const LOCK: &str = "lock";

#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: in use by another epicenter process (the directory is locked)")]
    Locked(PathBuf),
    #[error(
        "{path}: not a checkpoint this version can read: {reason}; move it away to start with empty state"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot encode the checkpoint: {0}")]
    Encode(#[from] FormatError),
}

pub(crate) type Result<T> = std::result::Result<T, StateError>;

/// What a restart resumes from.
#[derive(Debug)]
pub(crate) struct Checkpoint {
    pub(crate) engine: Engine,
    pub(crate) decoder: Decoder,
    pub(crate) positions: Positions,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    positions: Vec<Position>,
    /// `DecoderSnapshot` and `EngineSnapshot` bytes, each in its own format.
    decoder: Vec<u8>,
    engine: Vec<u8>,
}

/// The locked state directory.
#[derive(Debug)]
pub(crate) struct StateDir {
    dir: PathBuf,
    /// Held for the life of the process: the lock goes with it.
    _lock: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl StateDir {
    /// Creates the directory if needed and locks it.
    pub(crate) fn open(dir: &Path) -> Result<StateDir> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StateError::Locked(dir.to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The last checkpoint, or empty state when there is none.
    pub(crate) fn load(
        &self,
        rules: Arc<RuleSet>,
        config: EngineConfig,
        limits: Limits,
    ) -> Result<Checkpoint> {
        let path = self.dir.join(FILE);
        let fresh = |positions| Checkpoint {
            engine: Engine::new(rules.clone(), config.clone()),
            decoder: Decoder::new(limits),
            positions,
        };
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(fresh(Positions::new()));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let corrupt = |reason: String| StateError::Corrupt {
            path: path.clone(),
            reason,
        };
        let stored: Stored =
            format::decode(Kind::Service, VERSION, &bytes).map_err(|e| corrupt(e.to_string()))?;
        let decoder =
            DecoderSnapshot::from_bytes(&stored.decoder).map_err(|e| corrupt(e.to_string()))?;
        let engine =
            EngineSnapshot::from_bytes(&stored.engine).map_err(|e| corrupt(e.to_string()))?;
        let (engine, report) =
            Engine::restore(rules, config, engine).map_err(|e| corrupt(e.to_string()))?;
        if !report.is_clean() {
            for d in &report.dropped {
                tracing::warn!(kind = ?d.kind, id = %d.id, reason = ?d.reason, held_effects = d.held_effects, groups = d.groups, "rule changed since the checkpoint: its state was dropped");
            }
            for id in &report.orphaned_incidents {
                tracing::warn!(incident = %id, "open incident whose rule changed: only its quiet period resolves it now");
            }
            tracing::info!(
                added = report.added.len(),
                "rules new since the checkpoint start empty"
            );
        }
        Ok(Checkpoint {
            engine,
            decoder: Decoder::restore(limits, decoder),
            positions: stored
                .positions
                .into_iter()
                .map(|p| ((p.topic, p.partition), p.offset))
                .collect(),
        })
    }

    /// Writes a checkpoint atomically; its size in bytes.
    pub(crate) fn write(
        &self,
        engine: &Engine,
        decoder: &Decoder,
        positions: &Positions,
    ) -> Result<usize> {
        let stored = Stored {
            positions: positions_list(positions),
            decoder: decoder.snapshot().to_bytes()?,
            engine: engine.snapshot().to_bytes()?,
        };
        let bytes = format::encode(Kind::Service, VERSION, &stored)?;
        self.replace(&bytes)?;
        Ok(bytes.len())
    }

    /// Replaces the checkpoint file with `bytes`: temp file, sync, rename,
    /// sync the directory.
    fn replace(&self, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join(FILE);
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io(&self.dir))?;
        tmp.write_all(bytes).map_err(io(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io(&path))?;
        tmp.persist(&path).map_err(|e| io(&path)(e.error))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(())
    }
}
