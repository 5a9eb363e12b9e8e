//! The `notify:` section: what people are told (policy), who is told
//! (Alertmanager-style routes), and how (receivers with Slack, ntfy and
//! webhook configs). Raw as written, then validated into the sinks' types
//! with every error at its place.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use sinks::notify::Secret;
use sinks::notify::ntfy::{NtfyAuth, NtfyPublish, NtfySettings};
use sinks::notify::policy::{LinkTemplate, PolicySettings};
use sinks::notify::route::{Matcher, Route};
use sinks::notify::slack::{SlackSettings, SlackTarget};
use sinks::notify::webhook::{WebhookFormat, WebhookSettings};
use sinks::outbox::{RateLimit, RetrySettings};

use super::check::Checker;
use super::raw::{Count, Flag, Text};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    /// Least time between two updates of one incident (`5m`).
    #[serde(default)]
    pub(super) throttle: Option<Text>,
    /// Affected-entity counts whose crossing is news.
    #[serde(default)]
    pub(super) blast_radius_steps: Option<Spanned<Vec<Count>>>,
    #[serde(default)]
    pub(super) links: Vec<Spanned<RawLink>>,
    #[serde(default)]
    pub(super) route: Option<Spanned<RawRoute>>,
    #[serde(default)]
    pub(super) receivers: Vec<Spanned<RawReceiver>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    #[serde(default)]
    pub(super) title: Option<Text>,
    #[serde(default)]
    pub(super) url: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    #[serde(default)]
    pub(super) receiver: Option<Text>,
    #[serde(default)]
    pub(super) matchers: Vec<Text>,
    #[serde(default, rename = "continue")]
    pub(super) continue_matching: Option<Flag>,
    #[serde(default)]
    pub(super) routes: Vec<Spanned<RawRoute>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReceiver {
    #[serde(default)]
    pub(super) name: Option<Text>,
    #[serde(default)]
    pub(super) slack: Vec<Spanned<RawSlack>>,
    #[serde(default)]
    pub(super) ntfy: Vec<Spanned<RawNtfy>>,
    #[serde(default)]
    pub(super) webhook: Vec<Spanned<RawWebhook>>,
}

/// What every notifier config may say about its delivery (the keys are
/// repeated in each notifier's raw struct: `serde(flatten)` would lose
/// their positions).
#[derive(Debug, Clone, Copy)]
pub(super) struct RawDelivery<'r> {
    timeout: Option<&'r Text>,
    rate_limit: Option<&'r Text>,
    burst: Option<&'r Count>,
    give_up_after: Option<&'r Text>,
}

macro_rules! delivery_of {
    ($($t:ty),*) => {$(
        impl $t {
            fn delivery(&self) -> RawDelivery<'_> {
                RawDelivery {
                    timeout: self.timeout.as_ref(),
                    rate_limit: self.rate_limit.as_ref(),
                    burst: self.burst.as_ref(),
                    give_up_after: self.give_up_after.as_ref(),
                }
            }
        }
    )*};
}
delivery_of!(RawSlack, RawNtfy, RawWebhook);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlack {
    /// Bot token (`xoxb-...`): the Web API, messages updated in place.
    #[serde(default)]
    pub(super) token: Option<Text>,
    #[serde(default)]
    pub(super) channel: Option<Text>,
    #[serde(default)]
    pub(super) api_url: Option<Text>,
    /// An incoming webhook instead: post only.
    #[serde(default)]
    pub(super) webhook_url: Option<Text>,
    #[serde(default)]
    pub(super) mention: Option<Text>,
    /// Per request (`10s`).
    #[serde(default)]
    pub(super) timeout: Option<Text>,
    /// Deliveries per period after a burst: `1/s`, `20/m`.
    #[serde(default)]
    pub(super) rate_limit: Option<Text>,
    #[serde(default)]
    pub(super) burst: Option<Count>,
    /// Dead-letter a notification failing this long (`24h`).
    #[serde(default)]
    pub(super) give_up_after: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNtfy {
    #[serde(default)]
    pub(super) server: Option<Text>,
    #[serde(default)]
    pub(super) topic: Option<Text>,
    #[serde(default)]
    pub(super) token: Option<Text>,
    #[serde(default)]
    pub(super) user: Option<Text>,
    #[serde(default)]
    pub(super) password: Option<Text>,
    /// `headers` or `json`.
    #[serde(default)]
    pub(super) publish: Option<Text>,
    #[serde(default)]
    pub(super) tags: Vec<Text>,
    /// Per request (`10s`).
    #[serde(default)]
    pub(super) timeout: Option<Text>,
    /// Deliveries per period after a burst: `1/s`, `20/m`.
    #[serde(default)]
    pub(super) rate_limit: Option<Text>,
    #[serde(default)]
    pub(super) burst: Option<Count>,
    /// Dead-letter a notification failing this long (`24h`).
    #[serde(default)]
    pub(super) give_up_after: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    #[serde(default)]
    pub(super) url: Option<Text>,
    /// `incident` or `alertmanager`.
    #[serde(default)]
    pub(super) format: Option<Text>,
    /// HMAC-SHA256 key of the signature header.
    #[serde(default)]
    pub(super) secret: Option<Text>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, Text>,
    /// Per request (`10s`).
    #[serde(default)]
    pub(super) timeout: Option<Text>,
    /// Deliveries per period after a burst: `1/s`, `20/m`.
    #[serde(default)]
    pub(super) rate_limit: Option<Text>,
    #[serde(default)]
    pub(super) burst: Option<Count>,
    /// Dead-letter a notification failing this long (`24h`).
    #[serde(default)]
    pub(super) give_up_after: Option<Text>,
}

/// A configured notifier, ready to be built.
#[derive(Debug, Clone)]
pub(crate) enum NotifierConfig {
    Slack(SlackSettings),
    Ntfy(NtfySettings),
    Webhook(WebhookSettings),
}

impl NotifierConfig {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            NotifierConfig::Slack(_) => "slack",
            NotifierConfig::Ntfy(_) => "ntfy",
            NotifierConfig::Webhook(_) => "webhook",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct NotifierTarget {
    /// `<receiver>/<kind>/<index>`: stable across restarts (the outbox
    /// keys queued notifications and receipts by it).
    pub(crate) name: String,
    pub(crate) notifier: NotifierConfig,
    pub(crate) retry: RetrySettings,
    pub(crate) rate: Option<RateLimit>,
}

/// The validated `notify:` section.
#[derive(Debug, Clone, Default)]
pub(crate) struct NotifyConfig {
    pub(crate) policy: PolicySettings,
    pub(crate) route: Route,
    /// Receiver name -> its targets' names.
    pub(crate) receivers: BTreeMap<String, Vec<String>>,
    pub(crate) targets: Vec<NotifierTarget>,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn validate(
    c: &mut Checker<'_>,
    raw: &RawNotify,
    external_url: Option<&str>,
) -> NotifyConfig {
    let mut policy = PolicySettings::default();
    if let Some(t) = c.duration(raw.throttle.as_ref(), "notify.throttle") {
        policy.throttle = t;
    }
    if let Some(steps) = &raw.blast_radius_steps {
        let mut v = Vec::new();
        for s in &steps.value {
            if let Some(n) = c.count(Some(s), "notify.blast_radius_steps") {
                v.push(n);
            }
        }
        if v.windows(2).any(|w| w[0] >= w[1]) {
            c.error(
                steps.referenced,
                "notify.blast_radius_steps",
                "must be ascending",
            );
        }
        policy.blast_radius_steps = v;
    }
    for l in &raw.links {
        let field = "notify.links";
        let title = required(
            c,
            l.value.title.as_ref(),
            l.referenced,
            &format!("{field}.title"),
        );
        let url = required(
            c,
            l.value.url.as_ref(),
            l.referenced,
            &format!("{field}.url"),
        );
        if let (Some(title), Some(url), Some(at)) = (title, url, l.value.url.as_ref()) {
            let unknown = LinkTemplate::unknown_placeholders(&url);
            if !unknown.is_empty() {
                c.error(
                    at.referenced,
                    &format!("{field}.url"),
                    format_args!(
                        "unknown placeholder {} (known: {})",
                        unknown
                            .iter()
                            .map(|u| format!("{{{u}}}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        sinks::notify::policy::LINK_PLACEHOLDERS
                            .iter()
                            .map(|p| format!("{{{p}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            policy.links.push(LinkTemplate { title, url });
        }
    }

    let mut receivers = BTreeMap::new();
    let mut targets = Vec::new();
    for r in &raw.receivers {
        let Some(name) = required(
            c,
            r.value.name.as_ref(),
            r.referenced,
            "notify.receivers.name",
        ) else {
            continue;
        };
        if receivers.contains_key(&name) {
            c.error(
                r.value.name.as_ref().map_or(r.referenced, |n| n.referenced),
                "notify.receivers.name",
                format_args!("receiver `{name}` is defined twice"),
            );
            continue;
        }
        let field = format!("notify.receivers[{name}]");
        let mut names = Vec::new();
        let mut add = |t: NotifierTarget| {
            names.push(t.name.clone());
            targets.push(t);
        };
        for (i, s) in r.value.slack.iter().enumerate() {
            if let Some(t) = slack(c, s, &format!("{field}.slack")) {
                add(target(
                    c,
                    &name,
                    i,
                    NotifierConfig::Slack(t.0),
                    t.1,
                    &format!("{field}.slack"),
                ));
            }
        }
        for (i, n) in r.value.ntfy.iter().enumerate() {
            if let Some(t) = ntfy(c, n, &format!("{field}.ntfy")) {
                add(target(
                    c,
                    &name,
                    i,
                    NotifierConfig::Ntfy(t.0),
                    t.1,
                    &format!("{field}.ntfy"),
                ));
            }
        }
        for (i, w) in r.value.webhook.iter().enumerate() {
            if let Some(t) = webhook(c, w, &format!("{field}.webhook"), external_url, &name) {
                add(target(
                    c,
                    &name,
                    i,
                    NotifierConfig::Webhook(t.0),
                    t.1,
                    &format!("{field}.webhook"),
                ));
            }
        }
        if names.is_empty() {
            c.error(
                r.referenced,
                &field,
                "name at least one of slack, ntfy, webhook",
            );
        }
        receivers.insert(name, names);
    }

    let route = match &raw.route {
        Some(r) => route(c, &r.value, r.referenced, "notify.route", &receivers, true),
        // No routes: every notification to every receiver.
        None => Route {
            routes: receivers
                .keys()
                .map(|r| Route {
                    receivers: vec![r.clone()],
                    continue_matching: true,
                    ..Route::default()
                })
                .collect(),
            ..Route::default()
        },
    };
    NotifyConfig {
        policy,
        route,
        receivers,
        targets,
    }
}

fn route(
    c: &mut Checker<'_>,
    raw: &RawRoute,
    at: serde_saphyr::Location,
    field: &str,
    receivers: &BTreeMap<String, Vec<String>>,
    root: bool,
) -> Route {
    let mut out = Route::default();
    match &raw.receiver {
        Some(r) if !receivers.contains_key(&r.value) => c.error(
            r.referenced,
            &format!("{field}.receiver"),
            format_args!(
                "no receiver is named `{}` (receivers: {})",
                r.value,
                receivers.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ),
        Some(r) => out.receivers.push(r.value.clone()),
        None if root => c.error(
            at,
            &format!("{field}.receiver"),
            "required at the root of the routes (where what matches no route goes)",
        ),
        None => {}
    }
    if root && !raw.matchers.is_empty() {
        c.error(
            at,
            &format!("{field}.matchers"),
            "the root route matches every incident; put matchers on its routes",
        );
    }
    for m in &raw.matchers {
        match Matcher::parse(&m.value) {
            Ok(m) => out.matchers.push(m),
            Err(e) => c.error(m.referenced, &format!("{field}.matchers"), e),
        }
    }
    out.continue_matching = Checker::flag(raw.continue_matching.as_ref(), false);
    for child in &raw.routes {
        let r = route(
            c,
            &child.value,
            child.referenced,
            &format!("{field}.routes"),
            receivers,
            false,
        );
        out.routes.push(r);
    }
    out
}

fn target(
    c: &mut Checker<'_>,
    receiver: &str,
    index: usize,
    notifier: NotifierConfig,
    delivery: RawDelivery<'_>,
    field: &str,
) -> NotifierTarget {
    let mut retry = RetrySettings::notifier();
    if let Some(g) = c.duration(delivery.give_up_after, &format!("{field}.give_up_after")) {
        retry.give_up_after = Some(g);
    }
    let default_rate = match notifier {
        // Slack allows about one message a second per channel.
        NotifierConfig::Slack(_) => Some((Duration::from_secs(1), 3)),
        NotifierConfig::Ntfy(_) => Some((Duration::from_secs(1), 10)),
        NotifierConfig::Webhook(_) => None,
    };
    let rate = match delivery.rate_limit {
        Some(r) => rate_limit(c, r, &format!("{field}.rate_limit")),
        None => default_rate.map(|(every, _)| every),
    };
    let burst = c
        .count(delivery.burst, &format!("{field}.burst"))
        .or(default_rate.map(|(_, b)| b))
        .unwrap_or(1);
    NotifierTarget {
        name: format!("{receiver}/{}/{index}", notifier.kind()),
        notifier,
        retry,
        rate: rate.map(|every| RateLimit {
            every,
            burst: NonZeroU32::new(u32::try_from(burst).unwrap_or(u32::MAX))
                .unwrap_or(NonZeroU32::MIN),
        }),
    }
}

/// `N/s`, `N/m`, `N/h`: the period of one delivery.
fn rate_limit(c: &mut Checker<'_>, v: &Text, field: &str) -> Option<Duration> {
    let parsed = v.value.split_once('/').and_then(|(n, unit)| {
        let n: u32 = n.trim().parse().ok().filter(|&n| n > 0)?;
        let period = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return None,
        };
        Some(period / n)
    });
    if parsed.is_none() {
        c.error(
            v.referenced,
            field,
            format_args!("`{}` is not a rate (e.g. 1/s, 30/m)", v.value),
        );
    }
    parsed.filter(|d| !d.is_zero())
}

fn timeout(c: &mut Checker<'_>, d: RawDelivery<'_>, field: &str) -> Duration {
    c.duration(d.timeout, &format!("{field}.timeout"))
        .unwrap_or(DEFAULT_TIMEOUT)
}

fn slack<'r>(
    c: &mut Checker<'_>,
    raw: &'r Spanned<RawSlack>,
    field: &str,
) -> Option<(SlackSettings, RawDelivery<'r>)> {
    let (s, at) = (&raw.value, raw.referenced);
    let target = match (&s.token, &s.webhook_url) {
        (Some(_), Some(w)) => {
            c.error(
                w.referenced,
                field,
                "give either token (and channel) or webhook_url, not both",
            );
            None
        }
        (Some(token), None) => {
            let token = c.expand(token, &format!("{field}.token"));
            let channel = required(c, s.channel.as_ref(), at, &format!("{field}.channel"));
            let api_url = s
                .api_url
                .as_ref()
                .and_then(|u| url(c, u, &format!("{field}.api_url")))
                .unwrap_or_else(|| "https://slack.com/api".to_string());
            Some(SlackTarget::Api {
                token: Secret::new(token?),
                channel: channel?,
                api_url,
            })
        }
        (None, Some(w)) => {
            if s.channel.is_some() {
                c.error(
                    at,
                    &format!("{field}.channel"),
                    "an incoming webhook posts to the channel it was made for",
                );
            }
            let u = c.expand(w, &format!("{field}.webhook_url"))?;
            check_url(c, &u, w, &format!("{field}.webhook_url"))?;
            Some(SlackTarget::Webhook {
                url: Secret::new(u),
            })
        }
        (None, None) => {
            c.error(
                at,
                field,
                "give token and channel (Web API) or webhook_url (incoming webhook)",
            );
            None
        }
    };
    let timeout = timeout(c, s.delivery(), field);
    Some((
        SlackSettings {
            target: target?,
            mention: s.mention.as_ref().map(|m| m.value.clone()),
            timeout,
        },
        s.delivery(),
    ))
}

fn ntfy<'r>(
    c: &mut Checker<'_>,
    raw: &'r Spanned<RawNtfy>,
    field: &str,
) -> Option<(NtfySettings, RawDelivery<'r>)> {
    let (n, at) = (&raw.value, raw.referenced);
    let server = n
        .server
        .as_ref()
        .and_then(|u| url(c, u, &format!("{field}.server")))
        .unwrap_or_else(|| "https://ntfy.sh".to_string());
    let topic = required(c, n.topic.as_ref(), at, &format!("{field}.topic"));
    if let (Some(t), Some(raw_topic)) = (&topic, &n.topic)
        && !(t.len() <= 64
            && t.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'))
    {
        c.error(
            raw_topic.referenced,
            &format!("{field}.topic"),
            "ntfy topics are 1 to 64 of A-Z a-z 0-9 _ -",
        );
    }
    let auth = match (&n.token, &n.user, &n.password) {
        (Some(t), None, None) => c
            .expand(t, &format!("{field}.token"))
            .map(|t| NtfyAuth::Token(Secret::new(t))),
        (None, Some(u), Some(p)) => {
            let password = c.expand(p, &format!("{field}.password"));
            password.map(|p| NtfyAuth::Basic {
                user: u.value.clone(),
                password: Secret::new(p),
            })
        }
        (None, None, None) => None,
        (_, Some(u), None) => {
            c.error(
                u.referenced,
                &format!("{field}.password"),
                "required with user",
            );
            None
        }
        (_, None, Some(p)) => {
            c.error(
                p.referenced,
                &format!("{field}.user"),
                "required with password",
            );
            None
        }
        (Some(t), Some(_), Some(_)) => {
            c.error(
                t.referenced,
                field,
                "give either token or user and password",
            );
            None
        }
    };
    let publish = match n.publish.as_ref().map(|p| (p.value.as_str(), p.referenced)) {
        None | Some(("headers", _)) => NtfyPublish::Headers,
        Some(("json", _)) => NtfyPublish::Json,
        Some((other, at)) => {
            c.error(
                at,
                &format!("{field}.publish"),
                format_args!("`{other}` is not headers or json"),
            );
            NtfyPublish::Headers
        }
    };
    let timeout = timeout(c, n.delivery(), field);
    Some((
        NtfySettings {
            server,
            topic: topic?,
            auth,
            publish,
            tags: n.tags.iter().map(|t| t.value.clone()).collect(),
            timeout,
        },
        n.delivery(),
    ))
}

fn webhook<'r>(
    c: &mut Checker<'_>,
    raw: &'r Spanned<RawWebhook>,
    field: &str,
    external_url: Option<&str>,
    receiver: &str,
) -> Option<(WebhookSettings, RawDelivery<'r>)> {
    let (w, at) = (&raw.value, raw.referenced);
    let u = match &w.url {
        Some(u) => {
            let expanded = c.expand(u, &format!("{field}.url"));
            expanded.and_then(|e| check_url(c, &e, u, &format!("{field}.url")).map(|()| e))
        }
        None => {
            c.error(
                at,
                &format!("{field}.url"),
                "required (e.g. `https://example.com/hook`)",
            );
            None
        }
    };
    let format = match w.format.as_ref().map(|f| (f.value.as_str(), f.referenced)) {
        None | Some(("incident", _)) => WebhookFormat::Incident,
        Some(("alertmanager", _)) => WebhookFormat::Alertmanager,
        Some((other, at)) => {
            c.error(
                at,
                &format!("{field}.format"),
                format_args!("`{other}` is not incident or alertmanager"),
            );
            WebhookFormat::Incident
        }
    };
    let secret = w
        .secret
        .as_ref()
        .and_then(|s| c.expand(s, &format!("{field}.secret")))
        .map(Secret::new);
    let mut headers = Vec::new();
    for (k, v) in &w.headers {
        if let Some(v) = c.expand(v, &format!("{field}.headers.{k}")) {
            headers.push((k.clone(), Secret::new(v)));
        }
    }
    let timeout = timeout(c, w.delivery(), field);
    Some((
        WebhookSettings {
            url: u?,
            format,
            secret,
            headers,
            receiver: receiver.to_string(),
            external_url: external_url.map(str::to_string),
            timeout,
        },
        w.delivery(),
    ))
}

fn required(
    c: &mut Checker<'_>,
    v: Option<&Text>,
    section: serde_saphyr::Location,
    field: &str,
) -> Option<String> {
    if v.is_none() {
        c.error(section, field, "required");
    }
    c.text(v, field)
}

fn url(c: &mut Checker<'_>, v: &Text, field: &str) -> Option<String> {
    let u = v.value.trim().trim_end_matches('/').to_string();
    check_url(c, &u, v, field)?;
    Some(u)
}

/// An http(s) URL; the value itself is not repeated (it may hold a secret).
fn check_url(c: &mut Checker<'_>, u: &str, at: &Text, field: &str) -> Option<()> {
    let ok = (u.starts_with("https://") || u.starts_with("http://"))
        && reqwest::Url::parse(u).is_ok_and(|p| p.host().is_some());
    if !ok {
        c.error(at.referenced, field, "not an http(s) URL");
        return None;
    }
    Some(())
}
