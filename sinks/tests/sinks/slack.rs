//! The Slack notifier against the local Slack (`testkit::slack`) over real
//! HTTP: the message lifecycle (open, update in place with a thread reply,
//! resolve), what Slack's refusals and rate limits mean for a retry, the
//! in-doubt case and its recovery, incoming webhooks, and every fixture
//! incident (real replay outputs and a pathological one) rendered within
//! Slack's limits and accepted.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use correlate::{IncidentReport, Severity, Status};
use serde_json::{Value, json};
use sinks::notify::slack::kit::limits;
use sinks::notify::slack::{SlackNotifier, SlackSettings, SlackTarget, blocks};
use sinks::notify::{DeliveryError, Event, Link, Notification, Reason, Receipt, Secret};
use testkit::slack::{
    CHANNEL_ID, CHANNEL_NAME, FakeChannel, FakeSlack, FakeSlackOptions, Fault, Outcome, WEBHOOK,
    blockkit,
};

/// Long enough for a loaded 2-core machine; the in-doubt tests hold the
/// answer back far longer.
const TIMEOUT: Duration = Duration::from_secs(3);
const HELD_BACK: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(30);

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/incidents")
}

/// Every incident fixture (one IncidentReport per file), by file name.
fn fixtures() -> Vec<(String, IncidentReport)> {
    let mut out: Vec<(String, IncidentReport)> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let report: IncidentReport = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not an IncidentReport: {e}", p.display()));
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                report,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 12, "the fixtures are there: {}", out.len());
    out
}

fn fixture(name: &str) -> IncidentReport {
    let path = fixtures_dir().join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn links(report: &IncidentReport) -> Vec<Link> {
    vec![
        Link {
            title: "Runbook".into(),
            url: format!("https://runbooks.example.com/{}", report.rule),
        },
        Link {
            title: "Incident".into(),
            url: format!("http://epicenter.example:9090/incidents/{}", report.id),
        },
    ]
}

fn opened(report: &IncidentReport) -> Notification {
    Notification {
        event: Event::Opened,
        sequence: 1,
        reasons: vec![Reason::Opened],
        links: links(report),
        incident: report.clone(),
    }
}

fn updated(report: &IncidentReport, sequence: u32) -> Notification {
    let mut signals: Vec<String> = report.affected.iter().map(|a| a.signal.clone()).collect();
    signals.sort();
    signals.dedup();
    let mut reasons = vec![
        Reason::NewEffects { signals },
        Reason::BlastRadius {
            from: 1,
            to: report.affected.len(),
        },
        Reason::SeverityRaised {
            from: Severity::Warning,
            to: report.severity,
        },
    ];
    reasons.extend(report.explanation.merged.iter().map(|m| Reason::Absorbed {
        id: m.id.clone(),
        rule: m.rule.clone(),
    }));
    Notification {
        event: Event::Updated,
        sequence,
        reasons,
        links: links(report),
        incident: report.clone(),
    }
}

fn resolved(report: &IncidentReport, sequence: u32) -> Notification {
    let mut incident = report.clone();
    incident.status = Status::Resolved;
    incident.resolved_at.get_or_insert(incident.last_seen);
    Notification {
        event: Event::Resolved,
        sequence,
        reasons: vec![Reason::Resolved],
        links: links(report),
        incident,
    }
}

fn api_notifier(fake: &FakeSlack, channel: &str, timeout: Duration) -> SlackNotifier {
    SlackNotifier::new(SlackSettings {
        target: SlackTarget::Api {
            token: Secret::new(fake.token()),
            channel: channel.to_string(),
            api_url: fake.api_url(),
        },
        mention: Some("<!here>".into()),
        timeout,
    })
    .unwrap()
}

fn webhook_notifier(url: String) -> SlackNotifier {
    SlackNotifier::new(SlackSettings {
        target: SlackTarget::Webhook {
            url: Secret::new(url),
        },
        mention: Some("<!here>".into()),
        timeout: TIMEOUT,
    })
    .unwrap()
}

fn ts_of(r: &Receipt) -> &str {
    match r {
        Receipt::Slack { ts, .. } => ts,
        other => panic!("not a Slack receipt: {other:?}"),
    }
}

fn small() -> IncidentReport {
    fixture("slack-nfs-csi-cascade-3.json")
}

#[tokio::test]
async fn opening_posts_one_message_and_keeps_its_ts() {
    let fake = FakeSlack::start(FakeSlackOptions::default());
    let report = small();
    // Configured by name: the receipt holds the channel's id.
    let slack = api_notifier(&fake, CHANNEL_NAME, TIMEOUT);
    let receipt = slack.deliver(&opened(&report), None).await.unwrap();
    let messages = fake.messages(CHANNEL_ID);
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(
        receipt,
        Receipt::Slack {
            channel: CHANNEL_ID.into(),
            ts: m.ts.clone(),
            replied: 1
        }
    );
    let payload = m.payload().unwrap();
    assert_eq!(payload["incident_id"], report.id.as_str());
    assert_eq!(payload["sequence"], 1);
    assert_eq!(payload["rule"], report.rule.as_str());
    assert_eq!(payload["status"], "firing");
    assert_eq!(
        m.metadata.as_ref().unwrap()["event_type"],
        "epicenter_incident"
    );
    // A critical opening pings; the header is the title.
    assert!(m.text.starts_with("<!here> "), "{}", m.text);
    assert_eq!(m.blocks[1]["type"], "header");
    let all = m.all_text();
    assert!(all.contains(&report.root_cause.entity.name), "{all}");
    let port = format!("*port*\n`{}`", report.root_cause.attributes["port"]);
    assert!(
        all.contains(&port),
        "the decisive attribute is shown: {all}"
    );
    assert!(m.replies.is_empty());
    // No unfurling, and nothing else was called.
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn update_replaces_the_message_and_replies_once_in_its_thread() {
    let fake = FakeSlack::start(FakeSlackOptions::default());
    let report = fixture("slack-nfs-csi-cascade-1.json");
    let slack = api_notifier(&fake, CHANNEL_ID, TIMEOUT);
    let first = slack.deliver(&opened(&report), None).await.unwrap();
    let update = updated(&report, 2);
    let second = slack.deliver(&update, Some(&first)).await.unwrap();
    assert_eq!(
        second,
        Receipt::Slack {
            channel: CHANNEL_ID.into(),
            ts: ts_of(&first).into(),
            replied: 2
        }
    );
    let messages = fake.messages(CHANNEL_ID);
    assert_eq!(messages.len(), 1, "one message per incident");
    let m = &messages[0];
    assert_eq!(m.edits.len(), 1, "replaced once");
    assert_eq!(m.payload().unwrap()["sequence"], 2);
    assert!(!m.text.contains("<!here>"), "an update does not ping again");
    assert!(m.all_text().contains("Latest change"), "{}", m.all_text());
    assert_eq!(m.replies.len(), 1);
    let reply = &m.replies[0];
    assert_eq!(reply.thread_ts.as_deref(), Some(m.ts.as_str()));
    assert!(!reply.broadcast);
    assert_eq!(reply.payload().unwrap()["sequence"], 2);
    let text = reply.all_text();
    assert!(
        text.contains("Blast radius grew from 1 to *22* affected"),
        "{text}"
    );
    assert!(text.contains("New kinds of effect"), "{text}");

    // The same notification again (the outbox retrying after a lost
    // answer): the message is refreshed, no second reply.
    let again = slack.deliver(&update, Some(&second)).await.unwrap();
    assert_eq!(again, second);
    assert_eq!(fake.messages(CHANNEL_ID)[0].replies.len(), 1);

    // An older notification after a newer one: the message keeps the
    // newer state, nothing is called.
    let third = slack
        .deliver(&updated(&report, 3), Some(&second))
        .await
        .unwrap();
    let calls = fake.requests().len();
    let stale = slack.deliver(&update, Some(&third)).await.unwrap();
    assert_eq!(stale, third);
    assert_eq!(fake.requests().len(), calls);
    assert_eq!(
        fake.messages(CHANNEL_ID)[0].payload().unwrap()["sequence"],
        3
    );
}

#[tokio::test]
async fn resolution_reads_as_resolved_and_is_broadcast() {
    let fake = FakeSlack::start(FakeSlackOptions::default());
    let report = fixture("slack-vault-raft-leader-stuck-1.json");
    let slack = api_notifier(&fake, CHANNEL_ID, TIMEOUT);
    let first = slack.deliver(&opened(&report), None).await.unwrap();
    let done = resolved(&report, 2);
    slack.deliver(&done, Some(&first)).await.unwrap();
    let m = &fake.messages(CHANNEL_ID)[0];
    assert!(m.text.contains("Resolved"), "{}", m.text);
    let header = m.blocks[0]["text"]["text"].as_str().unwrap();
    assert!(
        header.starts_with(":white_check_mark: Resolved: "),
        "{header}"
    );
    assert_eq!(m.payload().unwrap()["status"], "resolved");
    let reply = &m.replies[0];
    assert!(reply.broadcast, "the resolution is sent to the channel too");
    assert!(
        reply.all_text().contains("*Resolved* after"),
        "{}",
        reply.all_text()
    );
}

#[tokio::test]
async fn a_deleted_message_is_posted_again() {
    let fake = FakeSlack::start(FakeSlackOptions::default());
    let report = small();
    let slack = api_notifier(&fake, CHANNEL_ID, TIMEOUT);
    let first = slack.deliver(&opened(&report), None).await.unwrap();
    assert!(fake.delete_message(CHANNEL_ID, ts_of(&first)));
    let second = slack
        .deliver(&updated(&report, 2), Some(&first))
        .await
        .unwrap();
    assert_ne!(ts_of(&second), ts_of(&first));
    let messages = fake.messages(CHANNEL_ID);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].ts, ts_of(&second));
    assert_eq!(messages[0].payload().unwrap()["sequence"], 2);
    assert_eq!(
        fake.calls("chat.update")[0].outcome,
        Outcome::Error("message_not_found".into())
    );
}

#[tokio::test]
async fn rate_limits_say_when_to_retry_and_post_nothing() {
    let fake = FakeSlack::start(FakeSlackOptions::default());
    let report = small();
    let slack = api_notifier(&fake, CHANNEL_ID, TIMEOUT);
    fake.fault_on("chat.postMessage", Fault::RateLimited { retry_after: 7 }, 1);
    let e = slack.deliver(&opened(&report), None).await.unwrap_err();
    assert_eq!(
        e,
        DeliveryError::Retry {
            reason: "slack chat.postMessage: ratelimited (HTTP 429)".into(),
            retry_after: Some(Duration::from_secs(7)),
            in_doubt: false,
            progress: None,
        }
    );
    assert!(fake.messages(CHANNEL_ID).is_empty());
    let first = slack.deliver(&opened(&report), None).await.unwrap();

    // On the update: nothing replaced, nothing replied.
    fake.fault_on("chat.update", Fault::RateLimited { retry_after: 3 }, 1);
    let e = slack
        .deliver(&updated(&report, 2), Some(&first))
        .await
        .unwrap_err();
    assert!(
        matches!(e, DeliveryError::Retry { retry_after: Some(d), in_doubt: false, .. } if d == Duration::from_secs(3))
    );
    let m = &fake.messages(CHANNEL_ID)[0];
    assert!(m.edits.is_empty() && m.replies.is_empty());

    // The reply rate limited after the update worked: the progress says so.
    fake.fault_on("chat.postMessage", Fault::RateLimited { retry_after: 2 }, 1);
    let e = slack
        .deliver(&updated(&report, 2), Some(&first))
        .await
        .unwrap_err();
    assert_eq!(e.progress(), Some(&first));
    assert!(matches!(
        e,
        DeliveryError::Retry {
            retry_after: Some(_),
            ..
        }
    ));
    let retried = slack
        .deliver(&updated(&report, 2), e.progress())
        .await
        .unwrap();
    assert_eq!(fake.messages(CHANNEL_ID)[0].replies.len(), 1);
    assert!(matches!(retried, Receipt::Slack { replied: 2, .. }));
}

#[tokio::test]
async fn server_errors_are_retried_and_in_doubt_for_posts() {
    let fake = FakeSlack::start(FakeSlackOptions::default());
    let report = small();
    let slack = api_notifier(&fake, CHANNEL_ID, TIMEOUT);
    fake.fault_on("chat.postMessage", Fault::ServerError, 1);
    let e = slack.deliver(&opened(&report), None).await.unwrap_err();
    assert!(
        matches!(e, DeliveryError::Retry { in_doubt: true, .. }),
        "{e:?}"
    );
    // It did not land: recovery says so, and the retry posts once.
    assert_eq!(slack.recover(&opened(&report), None).await.unwrap(), None);
    slack.deliver(&opened(&report), None).await.unwrap();
    assert_eq!(fake.messages(CHANNEL_ID).len(), 1);
}

#[tokio::test]
async fn refusals_are_permanent_and_say_what_to_fix() {
    let report = small();
    let cases: Vec<(&str, FakeSlackOptions, &str, Option<&str>)> = vec![
        (
            "bad token",
            FakeSlackOptions::default(),
            CHANNEL_ID,
            Some("xoxb-wrong"),
        ),
        (
            "no token",
            FakeSlackOptions::default(),
            CHANNEL_ID,
            Some(""),
        ),
        (
            "unknown channel",
            FakeSlackOptions::default(),
            "C0NOSUCH01",
            None,
        ),
        (
            "archived",
            FakeSlackOptions {
                channels: vec![FakeChannel::public(CHANNEL_ID, CHANNEL_NAME).archived()],
                ..FakeSlackOptions::default()
            },
            CHANNEL_ID,
            None,
        ),
        (
            "bot not invited",
            FakeSlackOptions {
                channels: vec![FakeChannel::public(CHANNEL_ID, CHANNEL_NAME).without_bot()],
                ..FakeSlackOptions::default()
            },
            CHANNEL_ID,
            None,
        ),
        (
            "no chat:write",
            FakeSlackOptions::with_scopes(&["channels:history"]),
            CHANNEL_ID,
            None,
        ),
    ];
    let expected = [
        "invalid_auth",
        "not_authed",
        "channel_not_found",
        "is_archived",
        "not_in_channel",
        "missing_scope",
    ];
    for ((name, options, channel, token), code) in cases.into_iter().zip(expected) {
        let fake = FakeSlack::start(options);
        let slack = SlackNotifier::new(SlackSettings {
            target: SlackTarget::Api {
                token: Secret::new(token.map_or_else(|| fake.token(), str::to_string)),
                channel: channel.into(),
                api_url: fake.api_url(),
            },
            mention: None,
            timeout: TIMEOUT,
        })
        .unwrap();
        let e = slack.deliver(&opened(&report), None).await.unwrap_err();
        assert!(e.is_permanent(), "{name}: {e:?}");
        let reason = e.to_string();
        assert!(
            reason.contains("chat.postMessage") && reason.contains(code),
            "{name}: {reason}"
        );
        assert!(fake.messages(CHANNEL_ID).is_empty(), "{name}");
    }
    // The token is never in an error.
    let fake = FakeSlack::start(FakeSlackOptions::default());
    fake.revoke_token();
    let e = api_notifier(&fake, CHANNEL_ID, TIMEOUT)
        .deliver(&opened(&report), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("token_revoked"));
    assert!(!e.to_string().contains(&fake.token()));
}

#[tokio::test]
async fn an_in_doubt_opening_is_recovered_not_posted_twice() {
    let fake = FakeSlack::start(FakeSlackOptions::default());
    let report = small();
    let slack = api_notifier(&fake, CHANNEL_ID, TIMEOUT);
    let n = opened(&report);
    // Others talk in the channel too.
    fake.seed_message(CHANNEL_ID, "looking into it", None)
        .unwrap();
    fake.fault_on("chat.postMessage", Fault::Delay(HELD_BACK), 1);
    let e = slack.deliver(&n, None).await.unwrap_err();
    assert!(
        matches!(e, DeliveryError::Retry { in_doubt: true, .. }),
        "{e:?}"
    );
    assert!(
        fake.wait_until_async(WAIT, |f| !f.calls("chat.postMessage").is_empty())
            .await
    );
    fake.seed_message(CHANNEL_ID, "any news?", None).unwrap();

    let recovered = slack.recover(&n, None).await.unwrap().expect("it landed");
    let messages = fake.messages(CHANNEL_ID);
    let ours: Vec<_> = messages.iter().filter(|m| m.by_app).collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(
        recovered,
        Receipt::Slack {
            channel: CHANNEL_ID.into(),
            ts: ours[0].ts.clone(),
            replied: 1
        }
    );
    // The outbox carries on from the recovered receipt: still one message.
    slack
        .deliver(&updated(&report, 2), Some(&recovered))
        .await
        .unwrap();
    assert_eq!(
        fake.messages(CHANNEL_ID)
            .iter()
            .filter(|m| m.by_app)
            .count(),
        1
    );
    assert_eq!(
        fake.calls("chat.postMessage").len(),
        2,
        "the opening and one reply"
    );
}

#[tokio::test]
async fn an_in_doubt_thread_reply_is_recovered() {
    let fake = FakeSlack::start(FakeSlackOptions::default());
    let report = small();
    let slack = api_notifier(&fake, CHANNEL_ID, TIMEOUT);
    let first = slack.deliver(&opened(&report), None).await.unwrap();
    let n = updated(&report, 2);
    // Not found before anything was sent.
    assert_eq!(slack.recover(&n, Some(&first)).await.unwrap(), None);
    fake.fault_on("chat.postMessage", Fault::Delay(HELD_BACK), 1);
    let e = slack.deliver(&n, Some(&first)).await.unwrap_err();
    assert!(
        matches!(e, DeliveryError::Retry { in_doubt: true, .. }),
        "{e:?}"
    );
    assert_eq!(e.progress(), Some(&first), "the update is done");
    assert!(
        fake.wait_until_async(WAIT, |f| f.calls("chat.postMessage").len() == 2)
            .await
    );
    let recovered = slack.recover(&n, e.progress()).await.unwrap();
    assert_eq!(
        recovered,
        Some(Receipt::Slack {
            channel: CHANNEL_ID.into(),
            ts: ts_of(&first).into(),
            replied: 2
        })
    );
    // Delivered and confirmed: recovery of the same says so at once.
    let again = slack.recover(&n, recovered.as_ref()).await.unwrap();
    assert_eq!(again, recovered);
    assert_eq!(fake.messages(CHANNEL_ID)[0].replies.len(), 1);
}

#[tokio::test]
async fn an_in_doubt_replacement_of_a_deleted_message_is_recovered() {
    let fake = FakeSlack::start(FakeSlackOptions::default());
    let report = small();
    let slack = api_notifier(&fake, CHANNEL_ID, TIMEOUT);
    let first = slack.deliver(&opened(&report), None).await.unwrap();
    fake.delete_message(CHANNEL_ID, ts_of(&first));
    let n = updated(&report, 2);
    fake.fault_on("chat.postMessage", Fault::Delay(HELD_BACK), 1);
    let e = slack.deliver(&n, Some(&first)).await.unwrap_err();
    assert!(
        matches!(e, DeliveryError::Retry { in_doubt: true, .. }),
        "{e:?}"
    );
    assert!(
        fake.wait_until_async(WAIT, |f| f.calls("chat.postMessage").len() == 2)
            .await
    );
    let recovered = slack
        .recover(&n, Some(&first))
        .await
        .unwrap()
        .expect("found");
    let messages = fake.messages(CHANNEL_ID);
    assert_eq!(messages.len(), 1);
    assert_eq!(ts_of(&recovered), messages[0].ts);
    assert!(matches!(recovered, Receipt::Slack { replied: 2, .. }));
}

#[tokio::test]
async fn recovery_reads_history_pages_and_skips_what_is_not_the_message() {
    // Slack's cap for non-Marketplace apps: 15 messages a page.
    let fake = FakeSlack::start(FakeSlackOptions {
        history_page_cap: 15,
        ..FakeSlackOptions::default()
    });
    let report = small();
    let slack = api_notifier(&fake, CHANNEL_ID, TIMEOUT);
    let first = slack.deliver(&opened(&report), None).await.unwrap();
    slack
        .deliver(&updated(&report, 2), Some(&first))
        .await
        .unwrap();
    // The resolution is broadcast: a channel message with the same
    // incident's metadata, which is not the incident's message.
    slack
        .deliver(&resolved(&report, 3), Some(&first))
        .await
        .unwrap();
    let other = json!({"event_type": "epicenter_incident",
        "event_payload": {"incident_id": "someone-else", "sequence": 9}});
    let deploy = json!({"event_type": "deploy", "event_payload": {"incident_id": report.id}});
    for i in 0..40 {
        let meta = match i % 3 {
            0 => Some(other.clone()),
            1 => Some(deploy.clone()),
            _ => None,
        };
        fake.seed_message(CHANNEL_ID, &format!("chatter {i}"), meta)
            .unwrap();
    }
    let recovered = slack.recover(&opened(&report), None).await.unwrap();
    assert_eq!(
        recovered,
        Some(Receipt::Slack {
            channel: CHANNEL_ID.into(),
            ts: ts_of(&first).into(),
            replied: 3
        })
    );
    let pages = fake.calls("conversations.history").len();
    assert!(pages >= 3, "{pages} pages read");
    // Another incident was never posted.
    let mut unknown = report.clone();
    unknown.id = "0000000000000000".into();
    assert_eq!(slack.recover(&opened(&unknown), None).await.unwrap(), None);
}

#[tokio::test]
async fn recovery_by_channel_name_finds_the_channel_id() {
    let fake = FakeSlack::start(FakeSlackOptions {
        channels: vec![
            FakeChannel::public("C0OTHER001", "general"),
            FakeChannel::private("G0EPICNTR9", "ops-private"),
        ],
        ..FakeSlackOptions::default()
    });
    let report = small();
    api_notifier(&fake, "#ops-private", TIMEOUT)
        .deliver(&opened(&report), None)
        .await
        .unwrap();
    // A fresh notifier (a restart) knows only the name.
    let restarted = api_notifier(&fake, "ops-private", TIMEOUT);
    let recovered = restarted.recover(&opened(&report), None).await.unwrap();
    assert!(
        matches!(&recovered, Some(Receipt::Slack { channel, .. }) if channel == "G0EPICNTR9"),
        "{recovered:?}"
    );
    assert_eq!(fake.calls("conversations.list").len(), 1);
}

#[tokio::test]
async fn recovery_without_history_scopes_is_skipped() {
    let fake = FakeSlack::start(FakeSlackOptions::with_scopes(&["chat:write"]));
    let report = small();
    let slack = api_notifier(&fake, CHANNEL_ID, TIMEOUT);
    let first = slack.deliver(&opened(&report), None).await.unwrap();
    assert_eq!(slack.recover(&opened(&report), None).await.unwrap(), None);
    assert_eq!(
        slack
            .recover(&updated(&report, 2), Some(&first))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        fake.calls("conversations.history")[0].outcome,
        Outcome::Error("missing_scope".into())
    );
}

#[tokio::test]
async fn recovery_that_cannot_ask_now_is_an_error() {
    let fake = FakeSlack::start(FakeSlackOptions::default());
    let report = small();
    let slack = api_notifier(&fake, CHANNEL_ID, TIMEOUT);
    fake.fault_on(
        "conversations.history",
        Fault::RateLimited { retry_after: 60 },
        1,
    );
    let e = slack.recover(&opened(&report), None).await.unwrap_err();
    assert!(
        matches!(e, DeliveryError::Retry { retry_after: Some(d), .. } if d == Duration::from_secs(60)),
        "{e:?}"
    );
}

#[tokio::test]
async fn incoming_webhooks_post_each_notification() {
    let fake = FakeSlack::start(FakeSlackOptions::default());
    let report = fixture("slack-registry-orphan-index-1.json");
    let slack = webhook_notifier(fake.webhook_url());
    assert!(!slack.can_recover());
    let sequence = [opened(&report), updated(&report, 2), resolved(&report, 3)];
    for n in &sequence {
        assert_eq!(slack.deliver(n, None).await.unwrap(), Receipt::Sent);
        assert_eq!(slack.recover(n, None).await.unwrap(), None);
    }
    let messages = fake.messages(CHANNEL_ID);
    assert_eq!(messages.len(), 3);
    assert!(messages.iter().all(|m| m.via_webhook && m.edits.is_empty()));
    assert!(messages[0].text.starts_with("<!here> "));
    let header = |m: &testkit::slack::Message| {
        let blocks = m.blocks.as_array().unwrap();
        let h = blocks.iter().find(|b| b["type"] == "header").unwrap();
        h["text"]["text"].as_str().unwrap().to_string()
    };
    assert!(
        header(&messages[1]).contains("Update: "),
        "{}",
        header(&messages[1])
    );
    // Raised to critical: the update pings.
    assert!(
        messages[1].text.starts_with("<!here> "),
        "{}",
        messages[1].text
    );
    assert!(header(&messages[2]).contains("Resolved: "));
    assert!(
        messages[1].blocks.as_array().unwrap().len() < messages[0].blocks.as_array().unwrap().len(),
        "updates are compact"
    );
    assert!(
        messages[2].text.contains("Resolved"),
        "{}",
        messages[2].text
    );
}

#[tokio::test]
async fn incoming_webhook_answers_map_to_retry_or_permanent() {
    let fake = FakeSlack::start(FakeSlackOptions {
        channels: vec![
            FakeChannel::public(CHANNEL_ID, CHANNEL_NAME),
            FakeChannel::public("C0ARCHIVE1", "old").archived(),
        ],
        ..FakeSlackOptions::default()
    });
    let n = opened(&small());
    let good = webhook_notifier(fake.webhook_url());
    fake.fault_on(WEBHOOK, Fault::RateLimited { retry_after: 5 }, 1);
    let e = good.deliver(&n, None).await.unwrap_err();
    assert!(
        matches!(e, DeliveryError::Retry { retry_after: Some(d), .. } if d == Duration::from_secs(5)),
        "{e:?}"
    );
    fake.fault_on(WEBHOOK, Fault::ServerError, 1);
    assert!(matches!(
        good.deliver(&n, None).await,
        Err(DeliveryError::Retry { .. })
    ));
    assert!(fake.messages(CHANNEL_ID).is_empty());

    let archived = webhook_notifier(fake.webhook_url_for("C0ARCHIVE1"));
    let e = archived.deliver(&n, None).await.unwrap_err();
    assert!(
        e.is_permanent() && e.to_string().contains("channel_is_archived"),
        "{e}"
    );
    let removed = webhook_notifier(fake.webhook_url_for("C0REMOVED1"));
    let e = removed.deliver(&n, None).await.unwrap_err();
    assert!(
        e.is_permanent() && e.to_string().contains("no_service"),
        "{e}"
    );
    assert!(
        !e.to_string().contains("hookc0removed1"),
        "the URL is a secret: {e}"
    );
}

/// Every limit of the brief, checked on a rendered message; and the local
/// Slack's own validator agrees.
fn assert_within_limits(what: &str, m: &blocks::Message) {
    let chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    assert!(
        !m.text.is_empty() && m.text.chars().count() <= limits::MESSAGE_TEXT,
        "{what}: text"
    );
    assert!(
        !m.blocks.is_empty() && m.blocks.len() <= limits::BLOCKS,
        "{what}: blocks"
    );
    for b in &m.blocks {
        match b["type"].as_str().unwrap() {
            "header" => assert!(
                chars(&b["text"]["text"]) <= limits::HEADER_TEXT,
                "{what}: header"
            ),
            "section" => {
                if b.get("text").is_some() {
                    assert!(
                        chars(&b["text"]["text"]) <= limits::SECTION_TEXT,
                        "{what}: section"
                    );
                }
                if let Some(fields) = b.get("fields").and_then(Value::as_array) {
                    assert!(fields.len() <= limits::FIELDS, "{what}: fields");
                    assert!(
                        fields
                            .iter()
                            .all(|f| chars(&f["text"]) <= limits::FIELD_TEXT),
                        "{what}"
                    );
                }
            }
            "context" => {
                let e = b["elements"].as_array().unwrap();
                assert!(e.len() <= limits::CONTEXT_ELEMENTS, "{what}: context");
            }
            "actions" => {
                let e = b["elements"].as_array().unwrap();
                assert!(e.len() <= limits::ACTIONS_ELEMENTS, "{what}: actions");
                for button in e {
                    assert!(
                        chars(&button["text"]["text"]) <= limits::BUTTON_TEXT,
                        "{what}: button"
                    );
                    assert!(chars(&button["url"]) <= limits::BUTTON_URL, "{what}: url");
                }
            }
            "divider" => {}
            other => panic!("{what}: unexpected block {other}"),
        }
    }
    let errors = blockkit::validate(&Value::Array(m.blocks.clone()));
    assert!(errors.is_empty(), "{what}: {errors:?}");
}

fn pathological_links() -> Vec<Link> {
    let mut links: Vec<Link> = (0..40)
        .map(|i| Link {
            title: format!("Dashboard {i} <&> {}", "t".repeat(200)),
            url: format!("https://grafana.example.com/d/{i}?var={}", "v".repeat(100)),
        })
        .collect();
    links.push(Link {
        title: "too long".into(),
        url: format!("https://example.com/{}", "u".repeat(4000)),
    });
    links.push(Link {
        title: String::new(),
        url: "not a url".into(),
    });
    links
}

#[tokio::test]
async fn every_fixture_renders_within_limits_and_slack_accepts_it() {
    let fake = FakeSlack::start(FakeSlackOptions::default());
    let api = api_notifier(&fake, CHANNEL_ID, TIMEOUT);
    let hook = webhook_notifier(fake.webhook_url());
    let fixtures = fixtures();
    for (name, report) in &fixtures {
        let mut sequence = [opened(report), updated(report, 2), resolved(report, 3)];
        if name.contains("pathological") {
            for n in &mut sequence {
                n.links = pathological_links();
                n.reasons.extend((0..100).map(|i| Reason::Absorbed {
                    id: format!("{i:016x}"),
                    rule: format!("rule <&> {}", "r".repeat(300)),
                }));
            }
        }
        for n in &sequence {
            let what = format!("{name} {}", n.event.as_str());
            let mention = Some("<!here>");
            assert_within_limits(&format!("{what} incident"), &blocks::incident(n, mention));
            assert_within_limits(&format!("{what} reply"), &blocks::reply(n, mention));
            assert_within_limits(
                &format!("{what} standalone"),
                &blocks::standalone(n, mention),
            );
        }
        // And the local Slack takes them all, through both targets.
        let mut receipt = None;
        for n in &sequence {
            let r = api
                .deliver(n, receipt.as_ref())
                .await
                .unwrap_or_else(|e| panic!("{name} {}: {e}", n.event.as_str()));
            receipt = Some(r);
            hook.deliver(n, None)
                .await
                .unwrap_or_else(|e| panic!("{name} {} (webhook): {e}", n.event.as_str()));
        }
        // What a person reads: the root cause entity and the blast radius.
        let m = fake
            .message(CHANNEL_ID, ts_of(receipt.as_ref().unwrap()))
            .unwrap();
        let all = m.all_text();
        let entity: String = report.root_cause.entity.name.chars().take(40).collect();
        let entity = entity
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(all.contains(&entity), "{name}: root cause entity missing");
        let pods = report
            .affected
            .iter()
            .filter(|a| a.entity.kind == "Pod")
            .map(|a| (&a.entity.namespace, &a.entity.name))
            .collect::<std::collections::HashSet<_>>()
            .len();
        if pods > 0 {
            let count = if pods == 1 {
                "1 pod".to_string()
            } else {
                format!("{pods} pods")
            };
            assert!(all.contains(&count), "{name}: `{count}` missing");
        }
        assert_eq!(m.replies.len(), 2, "{name}");
    }
    let refused: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.outcome != Outcome::Ok)
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(fake.messages(CHANNEL_ID).len(), fixtures.len() * 4);
}

/// The local Slack refuses what Slack refuses (so the tests above can
/// fail): raw calls, one per rule.
#[tokio::test]
async fn the_local_slack_checks_what_slack_checks() {
    let fake = FakeSlack::start(FakeSlackOptions::default());
    let client = sinks::notify::http::client(TIMEOUT).unwrap();
    let token = fake.token();
    let post = |method: &str, body: Value| {
        client
            .post(format!("{}/{method}", fake.api_url()))
            .bearer_auth(&token)
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string())
    };
    let answer = |r: reqwest::RequestBuilder| async move {
        let v: Value = r.send().await.unwrap().json().await.unwrap();
        v
    };
    let meta = json!({"event_type": "epicenter_incident", "event_payload": {"incident_id": "x"}});
    let posted = answer(post(
        "chat.postMessage",
        json!({"channel": "#incidents", "text": "hi", "metadata": meta}),
    ))
    .await;
    assert_eq!(posted["ok"], true, "{posted}");
    let ts = posted["ts"].as_str().unwrap().to_string();
    let cases = vec![
        (
            "chat.postMessage",
            json!({"channel": CHANNEL_ID}),
            "no_text",
        ),
        (
            "chat.postMessage",
            json!({"channel": "nope", "text": "x"}),
            "channel_not_found",
        ),
        (
            "chat.postMessage",
            json!({"channel": CHANNEL_ID, "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]}),
            "invalid_blocks",
        ),
        (
            "chat.postMessage",
            json!({"channel": CHANNEL_ID, "text": "x", "thread_ts": "1.000001"}),
            "thread_not_found",
        ),
        (
            "chat.postMessage",
            json!({"channel": CHANNEL_ID, "text": "x".repeat(40_001)}),
            "msg_too_long",
        ),
        (
            "chat.postMessage",
            json!({"channel": CHANNEL_ID, "text": "x", "metadata": {"event_type": "bad type!"}}),
            "invalid_metadata_format",
        ),
        // Updates take the channel id, not its name.
        (
            "chat.update",
            json!({"channel": CHANNEL_NAME, "ts": ts, "text": "y"}),
            "channel_not_found",
        ),
        (
            "chat.update",
            json!({"channel": CHANNEL_ID, "ts": "1.000001", "text": "y"}),
            "message_not_found",
        ),
    ];
    for (method, body, code) in cases {
        let v = answer(post(method, body)).await;
        assert_eq!(v["ok"], false, "{method} {code}: {v}");
        assert_eq!(v["error"], code, "{v}");
    }
    let invalid = answer(post(
        "chat.postMessage",
        json!({"channel": CHANNEL_ID, "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]}),
    ))
    .await;
    assert_eq!(
        invalid["errors"][0],
        "must be less than 151 characters [json-pointer:/blocks/0/text/text]"
    );
    // Without a charset, Slack warns.
    let v = answer(
        client
            .post(format!("{}/chat.postMessage", fake.api_url()))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(json!({"channel": CHANNEL_ID, "text": "x"}).to_string()),
    )
    .await;
    assert_eq!(v["warning"], "missing_charset");
    // No token, and a token in a JSON body is not read.
    let v = answer(
        client
            .post(format!("{}/chat.postMessage", fake.api_url()))
            .header("content-type", "application/json; charset=utf-8")
            .body(json!({"token": token, "channel": CHANNEL_ID, "text": "x"}).to_string()),
    )
    .await;
    assert_eq!(v["error"], "not_authed");
    // Metadata only with include_all_metadata.
    let history = |with: bool| {
        let mut url =
            reqwest::Url::parse(&format!("{}/conversations.history", fake.api_url())).unwrap();
        url.query_pairs_mut().append_pair("channel", CHANNEL_ID);
        if with {
            url.query_pairs_mut()
                .append_pair("include_all_metadata", "true");
        }
        client.get(url).bearer_auth(&token)
    };
    let plain = answer(history(false)).await;
    let oldest = plain["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(oldest["ts"], ts.as_str());
    assert!(oldest.get("metadata").is_none(), "{oldest}");
    let with = answer(history(true)).await;
    let oldest = with["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(oldest["metadata"]["event_payload"]["incident_id"], "x");
    // Reads ignore JSON bodies, as Slack's read methods do.
    let v = answer(post(
        "conversations.history",
        json!({"channel": CHANNEL_ID}),
    ))
    .await;
    assert_eq!(v["error"], "channel_not_found");
}
