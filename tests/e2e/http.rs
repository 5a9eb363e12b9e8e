//! HTTP hygiene (issue 11, probe 6): a client that sends half a header or
//! half a body, or nothing at all, does not hold its connection for long;
//! connections are limited; and such a client does not keep SIGTERM from
//! finishing.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::Serve;

const CONFIG: &str = "http: {max_connections: 4, header_timeout: 1s, request_timeout: 2s}\n";

fn connect(serve: &Serve) -> TcpStream {
    let addr = serve.base.trim_start_matches("http://");
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads until the server closes the connection; what it said and when.
fn until_closed(mut s: TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn slow_and_silent_clients_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), CONFIG, &[]);

    // Half a header.
    let mut s = connect(&serve);
    s.write_all(b"POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let (_, held) = until_closed(s);
    assert!(held < Duration::from_secs(5), "half a header held {held:?}");

    // Half a body: the request times out with 408.
    let mut s = connect(&serve);
    s.write_all(
        b"POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"version\":",
    )
    .unwrap();
    let (answer, held) = until_closed(s);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(held < Duration::from_secs(6), "half a body held {held:?}");

    // Nothing at all (an idle keep-alive connection).
    let s = connect(&serve);
    let (_, held) = until_closed(s);
    assert!(
        held < Duration::from_secs(5),
        "a silent client held {held:?}"
    );

    // A good request still works.
    assert_eq!(serve.get("/healthz").unwrap().0, 200);
}

#[test]
fn connections_are_limited_and_slow_ones_give_way() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), CONFIG, &[]);
    // The keep-alive connection of the start's health check is closed by now.
    std::thread::sleep(Duration::from_millis(1500));
    // Four connections that never finish their header: the limit.
    let opened = Instant::now();
    let slow: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = connect(&serve);
            s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // A fifth (on a connection of its own) is answered only once one of
    // them was cut off.
    let fresh = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let answered = fresh
        .get(format!("{}/healthz", serve.base))
        .timeout(Duration::from_secs(20))
        .send()
        .unwrap();
    assert_eq!(answered.status().as_u16(), 200);
    let waited = opened.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "answered after {waited:?}, with every connection slot taken"
    );
    drop(slow);
}

#[test]
fn a_slow_client_does_not_hold_up_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        "http: {header_timeout: 60s, request_timeout: 120s}\n",
        &[],
    );
    // Headers sent, the body trickles: a request in flight.
    let mut s = connect(&serve);
    s.write_all(
        b"POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (status, stderr) = serve.terminate();
    let took = started.elapsed();
    assert!(status.success(), "{stderr}");
    assert!(
        took < Duration::from_secs(15),
        "SIGTERM took {took:?} with a slow client connected: {stderr}"
    );
    drop(s);
}
