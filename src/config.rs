//! The configuration file (`--config FILE`): parsed as written, with
//! positions, then validated into typed settings; every error is reported
//! with file:line:col.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use correlate::{EngineConfig, Span};
use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Rule directories, relative to the config file.
    #[serde(default)]
    rules: Vec<Spanned<String>>,
    #[serde(default)]
    engine: Option<RawEngine>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    #[serde(default)]
    lateness: Option<Spanned<String>>,
    #[serde(default)]
    max_buffered: Option<Spanned<u64>>,
    #[serde(default)]
    max_held_entries: Option<Spanned<u64>>,
    #[serde(default)]
    max_held_bytes: Option<Spanned<u64>>,
    #[serde(default)]
    max_tracked_pods: Option<Spanned<u64>>,
}

/// Validated settings.
#[derive(Debug, Default)]
pub(crate) struct Config {
    pub(crate) rules: Vec<PathBuf>,
    pub(crate) engine: EngineConfig,
}

impl Config {
    pub(crate) fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read config: {e}", path.display()))?;
        Config::parse(
            &path.display().to_string(),
            &text,
            path.parent().unwrap_or(Path::new(".")),
        )
    }

    pub(crate) fn parse(name: &str, text: &str, base: &Path) -> Result<Config> {
        let raw: RawConfig = match serde_saphyr::from_str(text) {
            Ok(r) => r,
            Err(e) => bail!("{}", correlate::rules::yaml_error(name, &e)),
        };
        let mut errors = Vec::new();
        let mut config = Config {
            rules: raw.rules.iter().map(|r| base.join(&r.value)).collect(),
            engine: EngineConfig::default(),
        };
        if let Some(e) = raw.engine {
            let at = |l: serde_saphyr::Location| format!("{name}:{}:{}", l.line(), l.column());
            if let Some(l) = e.lateness {
                match Span::parse(&l.value) {
                    Some(s) if s >= Span::ZERO => config.engine.lateness = s,
                    _ => errors.push(format!(
                        "{}: engine.lateness: `{}` is not a duration (e.g. 2m)",
                        at(l.referenced),
                        l.value
                    )),
                }
            }
            let mut count = |v: Option<Spanned<u64>>, field: &str, slot: &mut usize| {
                if let Some(v) = v {
                    if v.value == 0 {
                        errors.push(format!(
                            "{}: engine.{field}: must be at least 1",
                            at(v.referenced)
                        ));
                    } else {
                        *slot = usize::try_from(v.value).unwrap_or(usize::MAX);
                    }
                }
            };
            count(
                e.max_buffered,
                "max_buffered",
                &mut config.engine.max_buffered,
            );
            count(
                e.max_held_entries,
                "max_held_entries",
                &mut config.engine.max_held_entries,
            );
            count(
                e.max_held_bytes,
                "max_held_bytes",
                &mut config.engine.max_held_bytes,
            );
            count(
                e.max_tracked_pods,
                "max_tracked_pods",
                &mut config.engine.max_tracked_pods,
            );
        }
        if !errors.is_empty() {
            bail!("{}", errors.join("\n"));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_unknown_keys_and_bad_values_with_positions() {
        let err = Config::parse("c.yaml", "engine:\n  latenes: 2m\n", Path::new("."))
            .expect_err("unknown key");
        assert!(err.to_string().starts_with("c.yaml:2:3:"), "{err}");
        let err = Config::parse(
            "c.yaml",
            "engine:\n  lateness: soon\n  max_buffered: 0\n",
            Path::new("."),
        )
        .expect_err("bad values");
        let msg = err.to_string();
        assert!(msg.contains("c.yaml:2:13: engine.lateness"), "{msg}");
        assert!(msg.contains("c.yaml:3:17: engine.max_buffered"), "{msg}");
    }

    #[test]
    fn resolves_rule_dirs_against_the_config_file() {
        let c = Config::parse(
            "c.yaml",
            "rules: [rules]\nengine: {lateness: 30s}\n",
            Path::new("/etc/epicenter"),
        )
        .expect("valid");
        assert_eq!(c.rules, [PathBuf::from("/etc/epicenter/rules")]);
        assert_eq!(c.engine.lateness, Span::from_secs(30));
    }
}
