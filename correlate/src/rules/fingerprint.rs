//! Fingerprints of compiled rules: a stable 64-bit hash of what a rule
//! *does*, so state saved under one rule pack is only restored into a rule
//! that still means the same thing.
//!
//! The design choice: hash a canonical text of the compiled definition (its
//! `Debug` form, regexes as their patterns), leaving out what does not change
//! behaviour: the rule's position in its file and its description. Signals
//! are named by id and their own fingerprints, never by index, so adding a
//! signal elsewhere in the pack changes no fingerprint, while editing a
//! signal changes the fingerprints of the rules that read it (their held
//! state was classified by the old definition). The hash is FNV-1a over
//! those bytes: fixed forever, independent of any crate's hasher.

use std::fmt::Write as _;

use super::{
    AbsenceDef, CorrelationDef, EffectDef, ResolveDef, RuleSet, SignalDef, SignalId, SilentPeerDef,
};

/// FNV-1a, 64 bits.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn signal_text(def: &SignalDef) -> String {
    let re = |r: &Option<regex::Regex>| r.as_ref().map(|r| r.as_str().to_string());
    let pairs = |v: &[(String, regex::Regex)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, r)| (k.clone(), r.as_str().to_string()))
            .collect()
    };
    let extract: Vec<&str> = def.extract.iter().map(regex::Regex::as_str).collect();
    format!(
        "signal sources={:?} kinds={:?} reasons={:?} message={:?} container={:?} name={:?} namespace={:?} min_severity={:?} labels={:?} fields={:?} entity={:?} summary={:?} attributes={:?} extract={:?} severity={:?} state={:?}",
        def.sources,
        def.kinds,
        def.reasons,
        re(&def.message),
        re(&def.container),
        re(&def.name),
        re(&def.namespace),
        def.min_severity,
        pairs(&def.labels),
        pairs(&def.fields),
        def.entity,
        def.summary,
        def.attributes,
        extract,
        def.severity,
        def.state,
    )
}

impl RuleSet {
    /// The fingerprint of signal `id`'s definition.
    pub fn signal_fingerprint(&self, id: SignalId) -> u64 {
        fnv1a(signal_text(self.signal(id)).as_bytes())
    }

    /// The fingerprint of correlation rule `ci` (an index into
    /// [`RuleSet::correlations`]), including the signals it reads.
    pub fn correlation_fingerprint(&self, ci: usize) -> u64 {
        let c: &CorrelationDef = &self.correlations[ci];
        let mut s = String::new();
        let _ = write!(
            s,
            "correlation cause={} group_by={:?} root={:?} min_count={} min_entities={} effects={} before={:?} after={:?} min_effects={} severity={:?} title={:?} summary={:?} resolve={}",
            self.signal_list(&c.cause_signals),
            c.group_by,
            c.root,
            c.min_count,
            c.min_entities,
            self.effects_text(&c.effects),
            c.before,
            c.after,
            c.min_effects,
            c.severity,
            c.title,
            c.summary,
            self.resolve_text(&c.resolve),
        );
        // Settings added later are written only when set, so a rule that
        // does not use them keeps the fingerprint its checkpoints carry.
        if c.hold > crate::time::Span::ZERO {
            let _ = write!(s, " hold={:?}", c.hold);
        }
        if c.count_by != super::Selector::Entity {
            let _ = write!(s, " count_by={:?}", c.count_by);
        }
        fnv1a(s.as_bytes())
    }

    /// The fingerprint of absence rule `ai` (an index into
    /// [`RuleSet::absences`]), including the signals it reads.
    pub fn absence_fingerprint(&self, ai: usize) -> u64 {
        let a: &AbsenceDef = &self.absences[ai];
        let silent = a.silent_peer.as_ref().map(
            |SilentPeerDef {
                 min_lines,
                 lookback,
                 quiet,
             }| (min_lines, lookback, quiet),
        );
        let mut s = String::new();
        let _ = write!(
            s,
            "absence signals={} min_entities={} min_count={} for={:?} absent={} silent_peer={:?} effects={} before={:?} after={:?} severity={:?} root={:?} title={:?} summary={:?} resolve={}",
            self.signal_list(&a.signals),
            a.min_entities,
            a.min_count,
            a.duration,
            self.signal_list(&a.absent),
            silent,
            self.effects_text(&a.effects),
            a.before,
            a.after,
            a.severity,
            a.root,
            a.title,
            a.summary,
            self.resolve_text(&a.resolve),
        );
        fnv1a(s.as_bytes())
    }

    /// `[id#fingerprint, ...]`.
    fn signal_list(&self, ids: &[SignalId]) -> String {
        let mut s = String::from("[");
        for id in ids {
            let _ = write!(
                s,
                "{}#{:016x},",
                self.signal(*id).id,
                self.signal_fingerprint(*id)
            );
        }
        s.push(']');
        s
    }

    fn effects_text(&self, effects: &[EffectDef]) -> String {
        let mut s = String::from("[");
        for e in effects {
            let _ = write!(s, "{{{} join={:?}", self.signal_list(&e.signals), e.join);
            if let Some(v) = &e.via {
                let _ = write!(s, " via={}", v.describe());
            }
            s.push_str("},");
        }
        s.push(']');
        s
    }

    fn resolve_text(&self, r: &ResolveDef) -> String {
        format!(
            "quiet={:?} signals={}",
            r.quiet,
            self.signal_list(&r.signals)
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{RuleSource, compile};

    const PACK: &str = r#"
signals:
  - id: cause-a
    match: {source: k8s-event, reason: [BackOff]}
  - id: effect-b
    match: {source: k8s-event, reason: [FailedMount], message: 'driver (?P<driver>\S+)'}
correlations:
  - id: rule-x
    description: the first words
    cause: {signals: [cause-a]}
    effects: [{signals: [effect-b], join: [node]}]
    title: 'x on {node}'
"#;

    fn fingerprints(text: &str) -> (u64, u64, u64) {
        let set = compile(&[RuleSource {
            name: "pack.yaml".into(),
            text: text.into(),
        }])
        .unwrap();
        let b = set.signal_id("effect-b").unwrap();
        let a = set.signal_id("cause-a").unwrap();
        (
            set.signal_fingerprint(a),
            set.signal_fingerprint(b),
            set.correlation_fingerprint(0),
        )
    }

    #[test]
    fn moves_and_descriptions_keep_fingerprints_edits_change_them() {
        let base = fingerprints(PACK);
        // Moved down two lines, described differently, a signal added first.
        let moved = PACK
            .replace(
                "signals:\n",
                "signals:\n  - id: new-one\n    match: {source: log}\n",
            )
            .replace("the first words", "other words");
        assert_eq!(fingerprints(&moved), base);
        // A window edit changes the rule only.
        let window = PACK.replace(
            "title: 'x on {node}'",
            "window: {before: 1m}\n    title: 'x on {node}'",
        );
        let w = fingerprints(&window);
        assert_eq!((w.0, w.1), (base.0, base.1));
        assert_ne!(w.2, base.2);
        // An effect signal's regex edit changes the signal and the rule reading it.
        let regex = fingerprints(&PACK.replace(r"(?P<driver>\S+)", r"(?P<driver>\w+)"));
        assert_eq!(regex.0, base.0);
        assert_ne!(regex.1, base.1);
        assert_ne!(regex.2, base.2);
    }
}
