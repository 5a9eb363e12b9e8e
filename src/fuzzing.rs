//! Entry points for the fuzz targets (`fuzz/fuzz_targets/*.rs`, run with
//! `cargo fuzz`) and for the corpus replay test (`tests/e2e/fuzz_corpus.rs`,
//! in every test run). Each takes arbitrary bytes and reads them the way
//! epicenter reads what it is given; whatever the bytes, it must return (an
//! error is an answer), never panic, never hang, never allocate without
//! bound.
//!
//! | target       | what it reads                                          |
//! |--------------|--------------------------------------------------------|
//! | `decode`     | NDJSON lines of every input shape, through one decoder, each event through the classifier |
//! | `webhook`    | an Alertmanager webhook body, as the receiver checks it and the decoder reads it |
//! | `rules`      | a rule file                                            |
//! | `config`     | a configuration file                                   |
//! | `sql`        | a query, through the guard, planned and run on an empty history |
//! | `checkpoint` | a state directory's checkpoint file                    |
//! | `journal`    | a journal segment                                      |
//! | `outbox`     | an outbox store file                                   |

use std::path::Path;
use std::sync::{Arc, OnceLock};

use correlate::{EngineConfig, Origin};
use ingest::{Decoder, Limits};

/// The names of the targets, as `fuzz/fuzz_targets/<name>.rs` and
/// `fuzz/corpus/<name>/`.
pub const TARGETS: [&str; 8] = [
    "decode",
    "webhook",
    "rules",
    "config",
    "sql",
    "checkpoint",
    "journal",
    "outbox",
];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "decode" => decode(data),
        "webhook" => webhook(data),
        "rules" => rules(data),
        "config" => config(data),
        "sql" => sql(data),
        "checkpoint" => checkpoint(data),
        "journal" => journal(data),
        "outbox" => outbox(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// The shipped rule pack, compiled once.
fn pack() -> Arc<correlate::rules::RuleSet> {
    static PACK: OnceLock<Arc<correlate::rules::RuleSet>> = OnceLock::new();
    PACK.get_or_init(|| {
        crate::rules_cmd::load(&[], true)
            .map(|l| l.rules)
            .unwrap_or_else(|e| panic!("the built-in pack: {e}"))
    })
    .clone()
}

pub fn decode(data: &[u8]) {
    static CLASSIFIER: OnceLock<correlate::Classifier> = OnceLock::new();
    let classifier = CLASSIFIER.get_or_init(|| correlate::Classifier::new(pack()));
    let text = String::from_utf8_lossy(data);
    let mut decoder = Decoder::new(Limits {
        max_objects: 64,
        max_occurrences: 64,
        ..Limits::default()
    });
    let mut events = Vec::new();
    let mut hits = Vec::new();
    for (i, line) in text.lines().enumerate() {
        events.clear();
        let origin = Origin {
            file: 0,
            line: i as u64 + 1,
        };
        if decoder.decode(line, origin, &mut events).is_ok() {
            for e in &events {
                hits.clear();
                classifier.classify(e, &mut hits);
            }
        }
        decoder.take_rejected();
    }
}

pub fn webhook(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ingest::decode::readable_alerts(text);
    let mut decoder = Decoder::default();
    let mut events = Vec::new();
    let _ = decoder.decode(text, Origin::default(), &mut events);
    decoder.take_rejected();
}

pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = correlate::rules::compile(&[correlate::rules::RuleSource {
        name: "fuzz.yaml".to_string(),
        text: text.to_string(),
    }]);
}

pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::config::Config::parse("fuzz.yaml", text, Path::new("."), &|name| {
        (name.len() < 8).then(|| "value".to_string())
    });
}

pub fn sql(data: &[u8]) {
    use sinks::history::{Format, QueryLimits, Sql};
    struct Session {
        runtime: tokio::runtime::Runtime,
        sql: Sql,
        _dir: tempfile::TempDir,
    }
    static SESSION: OnceLock<Session> = OnceLock::new();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let s = SESSION.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let limits = QueryLimits {
            timeout: std::time::Duration::from_secs(5),
            memory: 64 << 20,
            max_rows: 1000,
        };
        let sql = runtime
            .block_on(Sql::open(dir.path(), limits))
            .expect("an empty history opens");
        Session {
            runtime,
            sql,
            _dir: dir,
        }
    });
    let _ = s.runtime.block_on(s.sql.query(text, Format::Json));
}

pub fn checkpoint(data: &[u8]) {
    let config = EngineConfig {
        external_watermark: true,
        ..EngineConfig::default()
    };
    let _ = crate::serve::read_checkpoint(data, pack(), config.clone(), Limits::default());
    // And as if every checksum were right: what lies behind them (postcard,
    // the snapshots, restoring the engine) must refuse, never panic.
    if let Some(resealed) = crate::serve::resealed_checkpoint(data) {
        let _ = crate::serve::read_checkpoint(&resealed, pack(), config, Limits::default());
    }
}

pub fn journal(data: &[u8]) {
    replay_segment(data);
    // And as if every checksum were right: the payloads behind them must
    // be refused with their place, never panic.
    let mut resealed = data.to_vec();
    if ingest::source::journal::reseal(&mut resealed) > 0 {
        replay_segment(&resealed);
    }
}

/// Opens a journal whose only segment is `data` and replays it.
fn replay_segment(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let journal = dir.path().join("journal");
    if std::fs::create_dir(&journal).is_err()
        || std::fs::write(journal.join("00000000000000000001.wal"), data).is_err()
    {
        return;
    }
    let settings = ingest::source::journal::Settings::new(&journal);
    if let Ok((replay, _)) = ingest::source::Journal::open(&settings, 0) {
        for d in replay {
            if d.is_err() {
                break;
            }
        }
    }
}

pub fn outbox(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("outbox.redb");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let settings = sinks::outbox::Settings::new(&path);
    if let Ok(o) = sinks::outbox::Outbox::open(settings, Vec::new(), sinks::outbox::wall_clock()) {
        let _ = o.status();
        let _ = o.held_documents();
        let _ = o.dead_letters("stdout", 10);
    }
}
