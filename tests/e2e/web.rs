//! The web page `serve` renders, in a real browser: Debian's chromium driven
//! by tests/browser/web.js (playwright-core; scripts/test.sh installs both).
//! Over a replayed history it signs in, loads the list, follows the link
//! into an incident, checks the root, an affected pod, the timeline and the
//! explanation, then sees an incident formed from alerts posted meanwhile
//! arrive in the open list, and saves screenshots to docs/screenshots/.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{Serve, bin, program, root, volume_alerts};
use testkit::webhook::WebhookReceiver;

const TOKEN: &str = "web-token";

#[test]
fn the_page_lists_incidents_shows_one_and_updates_live() {
    let chromium = program(&["chromium"], "apt-get install chromium");
    let node = program(&["node"], "apt-get install nodejs npm");
    let browser = root().join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in tests/browser (scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    // A replayed history: the example's incidents, before serve starts.
    let out = bin()
        .arg("replay")
        .arg("--history")
        .arg(dir.path().join("state/history"))
        .arg(root().join("examples/nfs-csi-cascade.ndjson"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // A webhook to notify: the incident page lists the deliveries.
    let hook = WebhookReceiver::start();
    let config = format!(
        "pipeline: {{checkpoint_interval: 1s, idle_timeout: 1s}}\n\
         sinks:\n  history: {{flush_interval: 200ms}}\n\
         api: {{token: '{TOKEN}'}}\n\
         notify:\n  receivers:\n    - name: ops\n      webhook: [{{url: '{}', timeout: 2s}}]\n",
        hook.url()
    );
    let serve = Serve::start(dir.path(), &config, &[]);

    // Without the token: the login form; health and metrics stay open.
    let client = testkit::blocking_client();
    let get = |path: &str, bearer: Option<&str>| {
        let mut r = client.get(format!("{}{path}", serve.base));
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (status, body) = get("/", None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("name=\"token\""), "{body}");
    assert_eq!(get("/healthz", None).0, 200);
    assert_eq!(get("/metrics", None).0, 200);
    let (status, body) = get("/", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("CSI driver"), "{body}");
    assert_eq!(get("/assets/style.css", None).0, 200);
    // The sign-in form: a wrong token is refused, the right one is kept in
    // a cookie only this site's pages send back.
    let no_redirects = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |token: &str| {
        no_redirects
            .post(format!("{}/login", serve.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}&next=%2Fincidents%2Fx"))
            .send()
            .unwrap()
    };
    assert_eq!(login("wrong").status().as_u16(), 401);
    let ok = login(TOKEN);
    assert_eq!(ok.status().as_u16(), 303);
    assert_eq!(ok.headers()["location"], "/incidents/x");
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in [
        "epicenter_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(
        !cookie.contains(TOKEN),
        "the cookie holds no token: {cookie}"
    );
    // A cookie made of the token itself opens nothing.
    let forged = no_redirects
        .get(format!("{}/", serve.base))
        .header("cookie", format!("epicenter_session={TOKEN}"))
        .send()
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let with_cookie = no_redirects
        .get(format!("{}/", serve.base))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .unwrap();
    assert_eq!(with_cookie.status().as_u16(), 200);
    // The cookie is for the pages: the JSON API still wants the header.
    let api = no_redirects
        .get(format!("{}/api/v1/incidents", serve.base))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .unwrap();
    assert_eq!(api.status().as_u16(), 401);

    let shots = root().join("docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut child = Command::new(node)
        .arg(browser.join("web.js"))
        .arg(&serve.base)
        .arg(&shots)
        .arg(TOKEN)
        .env("CHROMIUM", &chromium)
        .current_dir(&browser)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut log = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "READY" {
            // The list is open in the browser: an incident forms now.
            for body in volume_alerts() {
                serve.post_alerts(body);
            }
        }
        log.push(line);
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "web.js: {status}\n{}\n--- serve:\n{}",
        log.join("\n"),
        serve.stderr()
    );
    assert!(log.iter().any(|l| l == "READY"), "{log:?}");
    for shot in ["list.png", "incident.png", "list-phone.png"] {
        let len = std::fs::metadata(shots.join(shot)).unwrap().len();
        assert!(len > 10_000, "{shot}: {len} bytes");
    }
    let (status, stderr) = serve.terminate();
    assert!(status.success(), "{stderr}");
    // Every query behind the pages answered (a failing one is only logged).
    for failed in [
        "web: the incident's versions",
        "web: incidents seen before",
        "web: the incident's notifications",
    ] {
        assert!(!stderr.contains(failed), "{stderr}");
    }
}
