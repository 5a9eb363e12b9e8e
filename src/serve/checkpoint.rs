//! The state directory: the checkpoint `serve` resumes from.
//!
//! A checkpoint holds each cluster's engine and decoder state and the
//! source positions they cover (Kafka offsets, and the journal's sequence number:
//! every acknowledged webhook delivery up to it is in the state), in the
//! checkpoint byte format of
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
use correlate::{Clusters, Engine, EngineConfig, EngineSnapshot, Lane};
use ingest::{Decoder, DecoderSnapshot};
use serde::{Deserialize, Serialize};

use super::pipeline::{Positions, positions_list};
use crate::decoding::Decoding;
use ingest::source::Position;

const FILE: &str = "checkpoint";
/// The schema of [`Stored`]; the engine and decoder parts carry their own.
/// Version 1 had no journal sequence number (read as 0: replay it all);
/// versions 1 and 2 held one engine and one decoder (read as the unnamed
/// cluster's).
const VERSION: u16 = 3;
const LOCK: &str = "lock";
/// Other things the state directory holds: if they are there and the
/// checkpoint is not, state was lost and starting fresh must say so.
const SIBLINGS: [&str; 3] = ["outbox.redb", "journal", "history"];

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

/// What a restart resumes from: each cluster's decoder and engine, in the
/// same lanes.
#[derive(Debug)]
pub(crate) struct Checkpoint {
    pub(crate) clusters: Clusters,
    pub(crate) decoding: Decoding,
    pub(crate) positions: Positions,
    /// The journal's records up to this sequence number are in the state.
    pub(crate) journal: u64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    positions: Vec<Position>,
    journal: u64,
    clusters: Vec<StoredCluster>,
}

/// One cluster's state.
#[derive(Serialize, Deserialize)]
struct StoredCluster {
    /// `None`: the unnamed cluster.
    name: Option<String>,
    /// `DecoderSnapshot` and `EngineSnapshot` bytes, each in its own format.
    decoder: Vec<u8>,
    engine: Vec<u8>,
}

/// [`Stored`] of version 2.
#[derive(Deserialize)]
struct StoredV2 {
    positions: Vec<Position>,
    decoder: Vec<u8>,
    engine: Vec<u8>,
    journal: u64,
}

/// [`Stored`] of version 1.
#[derive(Deserialize)]
struct StoredV1 {
    positions: Vec<Position>,
    decoder: Vec<u8>,
    engine: Vec<u8>,
}

/// `bytes` with the length and checksum of every frame in it (the
/// service's, the decoder's and the engine's inside) made right: the
/// checkpoint fuzz target's way past the checksums. `None` when the outer
/// frame does not decode even then.
pub(crate) fn resealed(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut outer = bytes.to_vec();
    if !format::reseal(&mut outer) {
        return None;
    }
    let mut stored = decode_stored(&outer).ok()?;
    for c in &mut stored.clusters {
        format::reseal(&mut c.engine);
        format::reseal(&mut c.decoder);
    }
    format::encode(Kind::Service, VERSION, &stored).ok()
}

fn decode_stored(bytes: &[u8]) -> std::result::Result<Stored, FormatError> {
    let unnamed = |decoder, engine| {
        vec![StoredCluster {
            name: None,
            decoder,
            engine,
        }]
    };
    match format::decode(Kind::Service, VERSION, bytes) {
        Err(FormatError::UnsupportedVersion { found: 2, .. }) => {
            let v2: StoredV2 = format::decode(Kind::Service, 2, bytes)?;
            Ok(Stored {
                positions: v2.positions,
                journal: v2.journal,
                clusters: unnamed(v2.decoder, v2.engine),
            })
        }
        Err(FormatError::UnsupportedVersion { found: 1, .. }) => {
            let v1: StoredV1 = format::decode(Kind::Service, 1, bytes)?;
            Ok(Stored {
                positions: v1.positions,
                journal: 0,
                clusters: unnamed(v1.decoder, v1.engine),
            })
        }
        other => other,
    }
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
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last checkpoint, or empty state when there is none (said loudly
    /// when the directory shows there was state).
    pub(crate) fn load(
        &self,
        rules: Arc<RuleSet>,
        config: EngineConfig,
        decoding: Decoding,
    ) -> Result<Checkpoint> {
        let path = self.dir.join(FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let others: Vec<&str> = SIBLINGS
                    .into_iter()
                    .filter(|s| self.dir.join(s).exists())
                    .collect();
                if others.is_empty() {
                    tracing::info!(state_dir = %self.dir.display(), "no checkpoint: starting with empty state");
                } else {
                    tracing::warn!(
                        state_dir = %self.dir.display(),
                        present = %others.join(", "),
                        "no checkpoint, though the state directory holds state: starting with an empty engine \
                         (incidents open before are not known; the journal's deliveries are replayed)"
                    );
                }
                return Ok(Checkpoint {
                    clusters: Clusters::new(rules, config),
                    decoding,
                    positions: Positions::new(),
                    journal: 0,
                });
            }
            Err(e) => return Err(io(&path)(e)),
        };
        read(&path, &bytes, rules, config, decoding)
    }

    /// Writes a checkpoint of every cluster atomically; its size in bytes.
    #[cfg(test)]
    pub(crate) fn write(
        &self,
        clusters: &Clusters,
        decoding: &Decoding,
        positions: &Positions,
        journal: u64,
    ) -> Result<usize> {
        self.write_lanes(clusters, decoding, 0..clusters.len(), positions, journal)
    }

    /// Writes a checkpoint of the clusters in `lanes` atomically (a
    /// replica's own, or one Kafka partition's); its size in bytes.
    pub(crate) fn write_lanes(
        &self,
        clusters: &Clusters,
        decoding: &Decoding,
        lanes: impl Iterator<Item = Lane>,
        positions: &Positions,
        journal: u64,
    ) -> Result<usize> {
        let mut stored = Stored {
            positions: positions_list(positions),
            journal,
            clusters: Vec::new(),
        };
        for lane in lanes {
            let (name, decoder) = decoding.get(lane);
            stored.clusters.push(StoredCluster {
                name: name.map(str::to_owned),
                decoder: decoder.snapshot().to_bytes()?,
                engine: clusters.engine(lane).snapshot().to_bytes()?,
            });
        }
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

/// Moves an unreadable checkpoint aside (`checkpoint.unreadable-<unix
/// seconds>`), so the directory starts empty and the file stays for a
/// person to look at; where it went, or why it could not be moved.
pub(crate) fn set_aside(dir: &Path) -> std::result::Result<PathBuf, String> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let to = dir.join(format!("{FILE}.unreadable-{secs}"));
    fs::rename(dir.join(FILE), &to)
        .map(|()| to)
        .map_err(|e| e.to_string())
}

/// What a restore under another rule pack could not carry over, in two
/// lines at most: a warning only when state that held something was
/// dropped (naming the first few), and one line of counts.
fn say_restored(cluster: Option<&str>, report: &correlate::engine::RestoreReport) {
    let cluster = cluster.unwrap_or_default();
    let held = |d: &&correlate::engine::DroppedState| {
        d.buffered_signals + d.entity_states + d.held_effects + d.groups > 0
    };
    let lost: Vec<&correlate::engine::DroppedState> = report.dropped.iter().filter(held).collect();
    if !lost.is_empty() || !report.orphaned_incidents.is_empty() {
        let ids: Vec<&str> = lost.iter().take(8).map(|d| d.id.as_str()).collect();
        tracing::warn!(
            rules = lost.len(),
            first = %ids.join(", "),
            held_effects = lost.iter().map(|d| d.held_effects).sum::<u64>(),
            groups = lost.iter().map(|d| d.groups).sum::<u64>(),
            entity_states = lost.iter().map(|d| d.entity_states).sum::<u64>(),
            buffered_signals = lost.iter().map(|d| d.buffered_signals).sum::<u64>(),
            open_incidents_left_to_their_quiet_period = report.orphaned_incidents.len(),
            cluster,
            "rules changed since the checkpoint: the state they held was dropped"
        );
    }
    tracing::info!(
        changed_or_removed = report.dropped.len(),
        of_them_holding_state = lost.len(),
        added = report.added.len(),
        cluster,
        "the rule pack differs from the checkpoint's: new rules start empty"
    );
}

/// Reads a checkpoint file's bytes (`path` names it in errors) into the
/// state it holds, under `rules`.
pub(crate) fn read(
    path: &Path,
    bytes: &[u8],
    rules: Arc<RuleSet>,
    config: EngineConfig,
    decoding: Decoding,
) -> Result<Checkpoint> {
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let stored = decode_stored(bytes).map_err(|e| corrupt(e.to_string()))?;
    if stored.journal > ingest::source::journal::MAX_SEQ {
        return Err(corrupt(format!(
            "it covers the journal up to sequence number {}, beyond what any journal reaches",
            stored.journal
        )));
    }

    let mut clusters = Clusters::new(rules, config);
    let mut decoding = decoding;
    let limits = decoding.limits();
    for c in stored.clusters {
        let named = |e: String| match &c.name {
            Some(name) => format!("cluster {name}: {e}"),
            None => e,
        };
        if c.name.as_deref() == Some("") {
            return Err(corrupt("a cluster with an empty name".to_string()));
        }
        let decoder =
            DecoderSnapshot::from_bytes(&c.decoder).map_err(|e| corrupt(named(e.to_string())))?;
        let engine =
            EngineSnapshot::from_bytes(&c.engine).map_err(|e| corrupt(named(e.to_string())))?;
        let config = EngineConfig {
            cluster: c.name.clone(),
            ..clusters.config().clone()
        };
        let (engine, report) = Engine::restore(clusters.rules().clone(), config, engine)
            .map_err(|e| corrupt(named(e.to_string())))?;
        if !report.is_clean() {
            say_restored(c.name.as_deref(), &report);
        }
        if clusters.insert(engine).is_err() {
            return Err(corrupt(named("the cluster is there twice".to_string())));
        }
        decoding.insert(c.name.as_deref(), Decoder::restore(limits, decoder));
    }
    Ok(Checkpoint {
        clusters,
        decoding,
        positions: stored
            .positions
            .into_iter()
            .map(|p| ((p.topic, p.partition), p.offset))
            .collect(),
        journal: stored.journal,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ingest::Limits;

    /// A checkpoint of the last version (one engine, one decoder) is read
    /// as the unnamed cluster's, with its positions and journal number.
    #[test]
    fn a_version_2_checkpoint_is_the_unnamed_clusters() {
        #[derive(Serialize)]
        struct V2 {
            positions: Vec<Position>,
            decoder: Vec<u8>,
            engine: Vec<u8>,
            journal: u64,
        }
        let tmp = tempfile::tempdir().unwrap();
        let rules = Arc::new(RuleSet::default());
        let engine = Engine::new(rules.clone(), EngineConfig::default());
        let decoder = Decoder::new(Limits::default());
        let v2 = V2 {
            positions: vec![Position {
                topic: "k8s-records".to_string(),
                partition: 3,
                offset: 41,
            }],
            decoder: decoder.snapshot().to_bytes().unwrap(),
            engine: engine.snapshot().to_bytes().unwrap(),
            journal: 7,
        };
        let bytes = format::encode(Kind::Service, 2, &v2).unwrap();
        std::fs::write(tmp.path().join(FILE), &bytes).unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let read = dir
            .load(rules.clone(), EngineConfig::default(), Decoding::default())
            .unwrap();
        assert_eq!(read.clusters.len(), 1);
        assert_eq!(read.clusters.find(None), Some(0));
        assert_eq!(read.decoding.cluster(0), None);
        assert_eq!(read.journal, 7);
        assert_eq!(
            read.positions.get(&("k8s-records".to_string(), 3)),
            Some(&41)
        );
        // Written again, it is version 3 and reads back the same.
        dir.write(
            &read.clusters,
            &read.decoding,
            &read.positions,
            read.journal,
        )
        .unwrap();
        let again = dir
            .load(rules, EngineConfig::default(), Decoding::default())
            .unwrap();
        assert_eq!(again.clusters.find(None), Some(0));
        assert_eq!(again.journal, 7);
    }

    /// Two clusters' state written and read back keep their names and
    /// lanes; the same name twice is refused as damage.
    #[test]
    fn every_clusters_state_is_kept_and_a_name_twice_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let rules = Arc::new(RuleSet::default());
        let mut clusters = Clusters::new(rules.clone(), EngineConfig::default());
        let mut decoding = Decoding::default();
        for name in ["edge", "core"] {
            clusters.lane(Some(name));
            decoding.lane(Some(name)).unwrap();
        }
        dir.write(&clusters, &decoding, &Positions::new(), 0)
            .unwrap();
        let read = dir
            .load(rules.clone(), EngineConfig::default(), Decoding::default())
            .unwrap();
        assert_eq!(read.clusters.find(Some("edge")), Some(0));
        assert_eq!(read.clusters.find(Some("core")), Some(1));
        assert_eq!(read.decoding.cluster(1), Some("core"));
        assert_eq!(
            read.clusters.engine(1).config().cluster.as_deref(),
            Some("core")
        );

        let twice = Stored {
            positions: Vec::new(),
            journal: 0,
            clusters: ["edge", "edge"]
                .map(|n| StoredCluster {
                    name: Some(n.to_string()),
                    decoder: Decoder::new(Limits::default())
                        .snapshot()
                        .to_bytes()
                        .unwrap(),
                    engine: clusters.engine(0).snapshot().to_bytes().unwrap(),
                })
                .into(),
        };
        let bytes = format::encode(Kind::Service, VERSION, &twice).unwrap();
        let e = read_checkpoint_bytes(&bytes, rules)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cluster edge: the cluster is there twice"),
            "{e}"
        );
    }

    fn read_checkpoint_bytes(bytes: &[u8], rules: Arc<RuleSet>) -> Result<Checkpoint> {
        read(
            Path::new("checkpoint"),
            bytes,
            rules,
            EngineConfig::default(),
            Decoding::default(),
        )
    }

    /// The journal fuzz target found a sequence number that overflowed the
    /// next one; a checkpoint claiming to cover the journal "up to
    /// u64::MAX" is the same number from the other file.
    #[test]
    fn a_checkpoint_beyond_any_journal_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let rules = Arc::new(RuleSet::default());
        let clusters = Clusters::new(rules.clone(), EngineConfig::default());
        let decoding = Decoding::default();
        for (journal, ok) in [(ingest::source::journal::MAX_SEQ, true), (u64::MAX, false)] {
            dir.write(&clusters, &decoding, &Positions::new(), journal)
                .unwrap();
            let read = dir.load(rules.clone(), EngineConfig::default(), Decoding::default());
            match read {
                Ok(_) => assert!(ok, "journal {journal} accepted"),
                Err(e) => {
                    assert!(!ok, "journal {journal} refused: {e}");
                    let text = e.to_string();
                    assert!(text.contains("checkpoint"), "{text}");
                    assert!(text.contains("beyond what any journal reaches"), "{text}");
                }
            }
        }
    }
}
