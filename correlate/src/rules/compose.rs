//! Rule packs that compose: the built-in pack first, then each directory a
//! user names, in order. Signals have one set of ids and rules
//! (correlations and absences) another; a signal or rule whose id a later
//! pack defines again is replaced by the later definition, as a later
//! Prometheus rule file cannot do but a config overlay can. Each
//! replacement is reported once ([`Override`]), unless the two definitions
//! are the same data (a copy of the built-in pack mounted beside it, as the
//! deploy manifests do): that is counted, not said.
//!
//! Within one pack a second definition of an id stays an error: it is a
//! mistake, not an override.

use std::collections::{BTreeMap, BTreeSet};

use serde_saphyr::Location;

use super::compile::{Parsed, RuleSource};
use super::error::{Diagnostics, Position};

/// The name of the pack built into the binary.
pub const BUILTIN_PACK: &str = "built-in";

/// A named set of rule files: [`BUILTIN_PACK`], or a directory.
#[derive(Debug, Clone)]
pub struct RulePack {
    pub name: String,
    pub sources: Vec<RuleSource>,
}

/// A definition replaced by one of the same id in a later pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// `signal`, `correlation` or `absence rule` (the replacing one's kind).
    pub what: &'static str,
    pub id: String,
    /// Where the definition in force is, and its pack.
    pub by: Position,
    pub by_pack: String,
    /// Where the replaced one was, and its pack.
    pub replaced: Position,
    pub replaced_pack: String,
}

impl std::fmt::Display for Override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let of = if self.replaced_pack == BUILTIN_PACK {
            "the built-in one".to_string()
        } else {
            format!("the one of {}", self.replaced_pack)
        };
        write!(
            f,
            "{}: {} `{}` replaces {of} ({})",
            self.by, self.what, self.id, self.replaced
        )
    }
}

/// What composing the packs did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Composition {
    pub overrides: Vec<Override>,
    /// Definitions a later pack repeated unchanged (one of each kept).
    pub identical: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Signals,
    Correlations,
    Absences,
}

impl Section {
    fn key(self) -> &'static str {
        match self {
            Section::Signals => "signals",
            Section::Correlations => "correlations",
            Section::Absences => "absences",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Section::Signals => "signal",
            Section::Correlations => "correlation",
            Section::Absences => "absence rule",
        }
    }
}

/// One definition: where it is and its id.
struct Def {
    file: usize,
    section: Section,
    index: usize,
    pack: usize,
    id: String,
    at: Location,
}

fn defs(parsed: &[Parsed]) -> Vec<Def> {
    let mut out = Vec::new();
    for (file, p) in parsed.iter().enumerate() {
        let mut push = |section, index, id: &serde_saphyr::Spanned<String>| {
            out.push(Def {
                file,
                section,
                index,
                pack: p.pack,
                id: id.value.clone(),
                at: id.referenced,
            });
        };
        for (i, r) in p.file.signals.iter().enumerate() {
            push(Section::Signals, i, &r.value.id);
        }
        for (i, r) in p.file.correlations.iter().enumerate() {
            push(Section::Correlations, i, &r.value.id);
        }
        for (i, r) in p.file.absences.iter().enumerate() {
            push(Section::Absences, i, &r.value.id);
        }
    }
    out
}

/// The definition as plain data (positions left out), if it parsed so.
fn plain<'p>(parsed: &'p [Parsed], d: &Def) -> Option<&'p serde_json::Value> {
    parsed[d.file]
        .plain
        .as_ref()?
        .get(d.section.key())?
        .get(d.index)
}

/// Removes every definition a later pack replaces, and says which.
pub(super) fn drop_overridden(parsed: &mut [Parsed], packs: &[RulePack]) -> Composition {
    let mut composition = Composition::default();
    if packs.len() < 2 {
        return composition;
    }
    let all = defs(parsed);
    let position = |d: &Def| Diagnostics::new(&parsed[d.file].name).at(d.at);
    let mut dropped: BTreeSet<(usize, Section, usize)> = BTreeSet::new();
    let spaces: [&[Section]; 2] = [
        &[Section::Signals],
        &[Section::Correlations, Section::Absences],
    ];
    for space in spaces {
        let defs: Vec<&Def> = all.iter().filter(|d| space.contains(&d.section)).collect();
        // The pack each id is finally defined in, and its first definition there.
        let mut last: BTreeMap<&str, &Def> = BTreeMap::new();
        for d in &defs {
            match last.get(d.id.as_str()) {
                Some(w) if w.pack >= d.pack => {}
                _ => {
                    last.insert(&d.id, d);
                }
            }
        }
        for d in &defs {
            let Some(w) = last.get(d.id.as_str()) else {
                continue;
            };
            if d.pack >= w.pack {
                continue;
            }
            dropped.insert((d.file, d.section, d.index));
            let same = matches!((plain(parsed, d), plain(parsed, w)), (Some(a), Some(b)) if a == b);
            if same {
                composition.identical += 1;
            } else {
                composition.overrides.push(Override {
                    what: w.section.what(),
                    id: d.id.clone(),
                    by: position(w),
                    by_pack: packs[w.pack].name.clone(),
                    replaced: position(d),
                    replaced_pack: packs[d.pack].name.clone(),
                });
            }
        }
    }
    for (file, p) in parsed.iter_mut().enumerate() {
        let keep = |section: Section, i: usize| !dropped.contains(&(file, section, i));
        let mut i = 0;
        p.file.signals.retain(|_| {
            i += 1;
            keep(Section::Signals, i - 1)
        });
        let mut i = 0;
        p.file.correlations.retain(|_| {
            i += 1;
            keep(Section::Correlations, i - 1)
        });
        let mut i = 0;
        p.file.absences.retain(|_| {
            i += 1;
            keep(Section::Absences, i - 1)
        });
    }
    composition.overrides.sort_by(|a, b| a.by.cmp(&b.by));
    composition
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::rules::compile_packs;

    const BUILTIN: &str = "\
signals:
  - id: plugin-down
    match: {source: k8s-event, reason: BackOff}
  - id: mount-failed
    match: {source: k8s-event, reason: FailedMount}
correlations:
  - id: driver-down
    cause: {signals: [plugin-down]}
    effects: [{signals: [mount-failed], join: [node]}]
    title: 'driver down'
";

    fn pack(name: &str, files: &[(&str, &str)]) -> RulePack {
        RulePack {
            name: name.to_string(),
            sources: files
                .iter()
                .map(|(n, t)| RuleSource {
                    name: (*n).to_string(),
                    text: (*t).to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_later_pack_adds_rules_and_replaces_those_of_the_same_id_once() {
        let mine = "\
correlations:
  - id: driver-down
    cause: {signals: [plugin-down]}
    effects: [{signals: [mount-failed], join: [node]}]
    window: {after: 2h}
    title: 'driver down, my way'
  - id: mounts-everywhere
    cause: {signals: [mount-failed]}
    min_effects: 0
    title: 'mounts fail'
";
        let (set, c) = compile_packs(&[
            pack("built-in", &[("rules/storage.yaml", BUILTIN)]),
            pack("mine/", &[("mine/storage.yaml", mine)]),
        ])
        .unwrap();
        let ids: Vec<&str> = set.correlations.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["driver-down", "mounts-everywhere"]);
        assert_eq!(set.signals.len(), 2, "the built-in signals stay");
        assert_eq!(
            set.correlations[0].title.render(|_| None),
            "driver down, my way"
        );
        assert_eq!(c.identical, 0);
        assert_eq!(c.overrides.len(), 1, "{:?}", c.overrides);
        assert_eq!(
            c.overrides[0].to_string(),
            "mine/storage.yaml:2:9: correlation `driver-down` replaces the built-in one \
             (rules/storage.yaml:7:9)"
        );
    }

    #[test]
    fn a_copy_of_the_built_in_pack_beside_it_is_not_an_override() {
        let (set, c) = compile_packs(&[
            pack("built-in", &[("rules/storage.yaml", BUILTIN)]),
            pack("/etc/epicenter/rules", &[("/etc/x/storage.yaml", BUILTIN)]),
        ])
        .unwrap();
        assert_eq!(set.correlations.len(), 1);
        assert_eq!(set.signals.len(), 2);
        assert!(c.overrides.is_empty(), "{:?}", c.overrides);
        assert_eq!(c.identical, 3);
    }

    #[test]
    fn twice_in_one_pack_is_still_an_error() {
        let twice = "\
signals:
  - id: a
    match: {source: log, message: x}
  - id: a
    match: {source: log, message: y}
";
        let e = compile_packs(&[
            pack("built-in", &[("rules/storage.yaml", BUILTIN)]),
            pack("mine", &[("mine/a.yaml", twice)]),
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains("signal `a` is already defined at"),
            "{e}"
        );
    }
}
