//! `serve` says what it does (issue 13, part 5): with no log level set it
//! logs at info what it loaded and where it listens, and a log that is not a
//! terminal (a pod's log, a file) gets no colour codes.

use crate::support::Serve;

#[test]
fn serve_says_at_start_what_it_loaded_and_where_it_listens_without_colour() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), "", &[]);
    let (status, stderr) = serve.terminate();
    assert!(status.success(), "{stderr}");
    for said in [
        "rules loaded",
        "pack=built-in",
        "state loaded",
        "sources starting",
        "http server listening",
    ] {
        assert!(stderr.contains(said), "`{said}` not in:\n{stderr}");
    }
    let signals = stderr
        .split_once("signals=")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no signal count in:\n{stderr}"));
    assert!(signals > 50, "the built-in pack's signals: {signals}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a log file:\n{stderr}"
    );
}
