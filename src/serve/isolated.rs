//! SQL from the API, run in a child process with hard limits.
//!
//! DataFusion's memory pool counts what its operators hold, not what a
//! scalar function allocates (`repeat('x', 1500000000)` is one string of
//! 1.5 GB), and a timeout only takes effect at the next await point. A query
//! sent over HTTP must not be able to take the service's memory, its async
//! threads or its health checks with it, so it runs in its own process:
//! `epicenter query --sandbox` (this binary), which lowers its own priority
//! and caps its data segment (`RLIMIT_DATA`) and CPU time before it reads
//! anything. The parent waits at most the query timeout, then kills it;
//! a child killed by its limits is a query over its memory limit.
//!
//! The cost is a process start and a cold metadata cache per query (tens
//! of milliseconds; see BENCHMARKS.md); the fixed queries of
//! `/api/v1/incidents` stay in the service.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sinks::history::{Format, QueryLimits};

/// Exit codes of `epicenter query --sandbox`.
pub(crate) mod exit {
    /// The query is refused or invalid (the message on stderr).
    pub(crate) const INVALID: i32 = 2;
    /// It took longer than its timeout.
    pub(crate) const TIMEOUT: i32 = 3;
    /// It needed more memory than it may use.
    pub(crate) const MEMORY: i32 = 4;
}

/// The signal of a process over its CPU time limit.
const SIGXCPU: i32 = 24;

/// How an isolated query ended, when not with a result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("{0}")]
    Invalid(String),
    #[error("the query took longer than {0:?}")]
    Timeout(Duration),
    #[error("the query needed more memory than it may use ({0} bytes): filter or aggregate more")]
    Memory(usize),
    #[error("the query process failed: {0}")]
    Process(String),
}

/// Runs `sql` over the history in `dir` in a child process.
pub(crate) async fn query(
    dir: &Path,
    sql: &str,
    format: Format,
    limits: &QueryLimits,
) -> Result<String, Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Process(format!("cannot find the epicenter binary: {e}")))?;
    let mut child = Command::new(exe)
        .arg("query")
        .arg("--sandbox")
        .arg("--history")
        .arg(dir)
        .args(["--format", format.as_str()])
        .args(["--timeout", &format!("{}ms", limits.timeout.as_millis())])
        .args(["--max-rows", &limits.max_rows.to_string()])
        .args(["--memory", &limits.memory.to_string()])
        .arg("-")
        .env("EPICENTER_LOG", "error")
        // mimalloc reserves 1 GiB of address space at a time by default,
        // writable, which a data-segment cap counts: reserve little.
        .env("MIMALLOC_ARENA_RESERVE", "16MiB")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::Process(format!("cannot start the query process: {e}")))?;
    let pid = rustix::process::Pid::from_child(&child);
    let sql = sql.to_string();
    let mut run = tokio::task::spawn_blocking(move || {
        if let Some(mut stdin) = child.stdin.take() {
            // A child that died at once closed its end: its exit says why.
            let _ = stdin.write_all(sql.as_bytes());
        }
        child.wait_with_output()
    });
    // The child times itself out; this is the backstop.
    let waited = tokio::time::timeout(limits.timeout + Duration::from_secs(2), &mut run).await;
    let output = match waited {
        Err(_) => {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let _ = run.await;
            return Err(Failure::Timeout(limits.timeout));
        }
        Ok(Err(e)) => return Err(Failure::Process(e.to_string())),
        Ok(Ok(Err(e))) => return Err(Failure::Process(e.to_string())),
        Ok(Ok(Ok(o))) => o,
    };
    let message = || {
        let text = String::from_utf8_lossy(&output.stderr);
        let line = text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        line.strip_prefix("epicenter: ").unwrap_or(line).to_string()
    };
    match output.status.code() {
        Some(0) => String::from_utf8(output.stdout)
            .map_err(|e| Failure::Process(format!("the result is not UTF-8: {e}"))),
        Some(exit::INVALID) => Err(Failure::Invalid(message())),
        Some(exit::TIMEOUT) => Err(Failure::Timeout(limits.timeout)),
        Some(exit::MEMORY) => Err(Failure::Memory(limits.memory)),
        Some(code) => Err(Failure::Process(format!("exit {code}: {}", message()))),
        // Killed by a signal: the kernel stopped it at its CPU limit, or an
        // allocation failed at its memory limit (abort).
        None => match std::os::unix::process::ExitStatusExt::signal(&output.status) {
            Some(SIGXCPU) => Err(Failure::Timeout(limits.timeout)),
            _ => Err(Failure::Memory(limits.memory)),
        },
    }
}
