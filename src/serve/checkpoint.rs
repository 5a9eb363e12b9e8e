//! The state directory: the checkpoint `serve` resumes from.
//!
//! A checkpoint holds the engine's and the decoder's state and the source
//! positions (Kafka offsets) they cover. It is written whole to a temporary
//! file, synced, and renamed over the previous one, so a crash at any
//! moment leaves either the old checkpoint or the new one, never a torn
//! file. The directory is locked while a process uses it: two replicas
//! sharing a volume would otherwise overwrite each other's state.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use correlate::rules::RuleSet;
use correlate::{Engine, EngineConfig};
use ingest::{Decoder, Limits};
use serde::{Deserialize, Serialize};

use super::pipeline::{Positions, positions_list};
use ingest::source::Position;

const FILE: &str = "checkpoint";
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
        let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let positions = stored
            .positions
            .into_iter()
            .map(|p| ((p.topic, p.partition), p.offset))
            .collect();
        Ok(fresh(positions))
    }

    /// Writes a checkpoint atomically; its size in bytes.
    pub(crate) fn write(
        &self,
        _engine: &Engine,
        _decoder: &Decoder,
        positions: &Positions,
    ) -> Result<usize> {
        let stored = Stored {
            positions: positions_list(positions),
        };
        let bytes = serde_json::to_vec(&stored).map_err(|e| StateError::Io {
            path: self.dir.join(FILE),
            source: std::io::Error::other(e),
        })?;
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
