//! Joins between a cause and its effects: which values tie them, which
//! incidents wait for which values, and the effects held because their
//! cause has not been seen yet (effects are often seen first).

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::classify::Hit;
use crate::graph::Graph;
use crate::incident::entity_key;
use crate::model::Entity;
use crate::rules::{EffectDef, JoinDef, Selector};
use crate::time::EventTime;

/// Reads a selector off an entity and its attributes.
pub(crate) fn select(
    sel: &Selector,
    entity: &Entity<'_>,
    attrs: &[(String, String)],
) -> Option<String> {
    let v = match sel {
        Selector::Entity => entity_key(entity),
        Selector::Workload => entity_key(&entity.workload()),
        Selector::Node => match (&entity.node, entity.kind.as_ref()) {
            (Some(n), _) => n.to_string(),
            (None, "Node") => entity.name.to_string(),
            (None, _) => return None,
        },
        Selector::Namespace => entity.namespace.as_deref()?.to_string(),
        Selector::Name => entity.name.to_string(),
        Selector::Kind => entity.kind.to_string(),
        Selector::Cluster => String::new(),
        Selector::Attribute(a) => attrs.iter().find(|(k, _)| k == a)?.1.clone(),
    };
    Some(v)
}

pub(crate) fn select_hit(sel: &Selector, hit: &Hit) -> Option<String> {
    select(sel, &hit.entity, &hit.attributes)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Cause,
    Effect,
}

/// The join key of one side: every selector's value, or `None` when one is
/// missing (an effect without the attribute cannot be tied to anything).
pub(crate) fn join_key(
    join: &[JoinDef],
    side: Side,
    entity: &Entity<'_>,
    attrs: &[(String, String)],
) -> Option<String> {
    let mut key = String::new();
    for j in join {
        let sel = match side {
            Side::Cause => &j.cause,
            Side::Effect => &j.effect,
        };
        let v = select(sel, entity, attrs)?;
        if v.is_empty() && !matches!(sel, Selector::Cluster) {
            return None;
        }
        key.push_str(&v);
        key.push('\u{1f}');
    }
    Some(key)
}

/// Where a `via` key starts: apart from every `join` key.
const VIA: char = '\u{1e}';

/// Every key that ties one side of an effect rule: each object its `via`
/// path reaches in the graph at `at`, and its `join` key. A cause and an
/// effect are tied when they share one. The `join` is the fallback for
/// what the graph does not know: a cause offers both, an effect offers its
/// `join` key only when its path reaches nothing known.
pub(crate) fn tie_keys(
    e: &EffectDef,
    side: Side,
    entity: &Entity<'_>,
    attrs: &[(String, String)],
    graph: &Graph,
    at: EventTime,
) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(v) = &e.via {
        let path = match side {
            Side::Cause => &v.cause,
            Side::Effect => &v.effect,
        };
        keys.extend(
            path.eval(graph, entity, attrs, at)
                .into_iter()
                .map(|k| format!("{VIA}{k}")),
        );
    }
    if !e.join.is_empty()
        && (side == Side::Cause || keys.is_empty())
        && let Some(k) = join_key(&e.join, side, entity, attrs)
    {
        keys.push(k);
    }
    keys
}

/// How an effect was tied, for its explanation: the join's values, or the
/// path and the object it met the cause at.
pub(crate) fn describe_tie(e: &EffectDef, key: &str, hit: &Hit) -> Vec<String> {
    match (key.strip_prefix(VIA), &e.via) {
        (Some(object), Some(v)) => vec![format!("via {} = {object}", v.describe())],
        _ => describe_join(&e.join, hit),
    }
}

/// `node = k8s-node1, driver = nfs.csi.k8s.io`, for explanations.
pub(crate) fn describe_join(join: &[JoinDef], hit: &Hit) -> Vec<String> {
    join.iter()
        .map(|j| {
            let v = select_hit(&j.effect, hit).unwrap_or_default();
            if j.cause == j.effect {
                format!("same {} = {v}", j.cause.describe())
            } else {
                format!(
                    "cause {} = effect {} = {v}",
                    j.cause.describe(),
                    j.effect.describe()
                )
            }
        })
        .collect()
}

/// Bytes a held hit costs, for the held-state cap: the struct, and each heap
/// allocation as an allocator rounds it (16-byte granules, 16 bytes of
/// header).
pub(crate) fn hit_bytes(h: &Hit) -> usize {
    fn alloc(len: usize) -> usize {
        if len == 0 {
            0
        } else {
            len.div_ceil(16) * 16 + 16
        }
    }
    let owned = |s: &std::borrow::Cow<'_, str>| match s {
        std::borrow::Cow::Owned(o) => alloc(o.len()),
        std::borrow::Cow::Borrowed(_) => 0,
    };
    let e = &h.entity;
    std::mem::size_of::<Hit>()
        + alloc(h.summary.len())
        + owned(&e.kind)
        + owned(&e.name)
        + e.namespace.as_ref().map_or(0, owned)
        + e.node.as_ref().map_or(0, owned)
        + alloc(e.owners.len() * std::mem::size_of::<crate::model::Owner<'_>>())
        + e.owners
            .iter()
            .map(|o| owned(&o.kind) + owned(&o.name))
            .sum::<usize>()
        + alloc(h.attributes.len() * std::mem::size_of::<(String, String)>())
        + h.attributes
            .iter()
            .map(|(k, v)| alloc(k.len()) + alloc(v.len()))
            .sum::<usize>()
}

#[derive(Debug)]
pub(crate) struct Joiner {
    /// (effect index, join key) -> group keys that provide it.
    pub(super) index: FxHashMap<(usize, String), Vec<String>>,
    /// (effect index, join key) -> effects waiting for a cause, oldest first.
    pub(super) held: FxHashMap<(usize, String), VecDeque<Hit>>,
    pub(crate) held_entries: usize,
    pub(crate) held_bytes: usize,
    /// Effects dropped because no cause appeared within their window.
    pub(crate) dropped: u64,
    /// Effects evicted because held state reached a cap.
    pub(crate) evicted: u64,
    pub(crate) evicted_logged: u64,
    pub(super) max_entries: usize,
    pub(super) max_bytes: usize,
}

impl Default for Joiner {
    fn default() -> Self {
        Joiner::with_caps(usize::MAX, usize::MAX)
    }
}

impl Joiner {
    pub(crate) fn with_caps(max_entries: usize, max_bytes: usize) -> Joiner {
        Joiner {
            index: FxHashMap::default(),
            held: FxHashMap::default(),
            held_entries: 0,
            held_bytes: 0,
            dropped: 0,
            evicted: 0,
            evicted_logged: 0,
            max_entries,
            max_bytes,
        }
    }

    pub(crate) fn register(&mut self, effect: usize, key: &str, group: &str) {
        let v = self.index.entry((effect, key.to_string())).or_default();
        if !v.iter().any(|g| g == group) {
            v.push(group.to_string());
        }
    }

    pub(crate) fn targets(&self, effect: usize, key: &str) -> &[String] {
        self.index
            .get(&(effect, key.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    pub(crate) fn hold(&mut self, effect: usize, key: String, hit: Hit) {
        self.held_entries += 1;
        self.held_bytes += hit_bytes(&hit);
        self.held.entry((effect, key)).or_default().push_back(hit);
        if self.held_entries > self.max_entries || self.held_bytes > self.max_bytes {
            self.evict_to(self.max_entries, self.max_bytes);
        }
    }

    /// Takes the held effects for `key` at or after `since`, oldest first.
    pub(crate) fn take(&mut self, effect: usize, key: &str, since: EventTime) -> Vec<Hit> {
        let Some(q) = self.held.remove(&(effect, key.to_string())) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for h in q {
            self.held_entries -= 1;
            self.held_bytes -= hit_bytes(&h);
            if h.time >= since {
                out.push(h);
            } else {
                self.dropped += 1;
            }
        }
        out
    }

    /// Drops held effects older than `before`.
    pub(crate) fn expire(&mut self, before: EventTime) {
        let mut dropped = 0;
        self.held.retain(|_, q| {
            while q.front().is_some_and(|h| h.time < before) {
                if let Some(h) = q.pop_front() {
                    dropped += 1;
                    self.held_entries -= 1;
                    self.held_bytes -= hit_bytes(&h);
                }
            }
            !q.is_empty()
        });
        self.dropped += dropped;
    }

    /// Evicts the oldest held effects until under both caps.
    fn evict_to(&mut self, max_entries: usize, max_bytes: usize) {
        let mut evicted = 0;
        while self.held_entries > max_entries || self.held_bytes > max_bytes {
            let oldest = self
                .held
                .iter()
                .filter_map(|(k, q)| q.front().map(|h| (h.time, k.clone())))
                .min();
            let Some((_, key)) = oldest else { break };
            if let Some(q) = self.held.get_mut(&key)
                && let Some(h) = q.pop_front()
            {
                evicted += 1;
                self.held_entries -= 1;
                self.held_bytes -= hit_bytes(&h);
                if q.is_empty() {
                    self.held.remove(&key);
                }
            }
        }
        self.evicted += evicted;
    }

    /// Forgets registrations of groups that no longer exist.
    pub(crate) fn retain_groups(&mut self, alive: impl Fn(&str) -> bool) {
        self.index.retain(|_, gs| {
            gs.retain(|g| alive(g));
            !gs.is_empty()
        });
    }
}
