//! Writes a synthetic replay stream (NDJSON) to stdout.
//!
//! ```text
//! gen --records 1000000 --mix k8s-events|logs|mixed [--seed N] [--noise N|none]
//!     [--rate RECORDS_PER_SEC] [--nodes N] [--namespaces N] [--pods-per-namespace N]
//!     [--shape SHAPE] > stream.ndjson
//! ```

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use epicenter_benches::{Config, Generator, Mix, Shape};

const USAGE: &str = "usage: gen --records N --mix k8s-events|logs|mixed [--seed N] [--noise N|none] \
[--rate N] [--nodes N] [--namespaces N] [--pods-per-namespace N] [--shape SHAPE]";

fn parse_args() -> Result<(Config, usize), String> {
    let mut cfg = Config::new(Mix::Mixed, 1);
    let mut records = 100_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| -> Result<f64, String> {
            v.replace('_', "")
                .parse::<f64>()
                .map_err(|_| format!("{flag}: `{v}` is not a number"))
        };
        match flag.as_str() {
            "--records" => records = num(&value)? as usize,
            "--mix" => {
                cfg.mix = Mix::parse(&value)
                    .ok_or_else(|| format!("--mix: unknown `{value}`\n{USAGE}"))?;
            }
            "--seed" => cfg.seed = num(&value)? as u64,
            "--noise" => {
                cfg.noise_per_failure = if value == "none" {
                    None
                } else {
                    Some(num(&value)?)
                };
            }
            "--rate" => cfg.rate = num(&value)?,
            "--nodes" => cfg.nodes = num(&value)? as usize,
            "--namespaces" => cfg.namespaces = num(&value)? as usize,
            "--pods-per-namespace" => cfg.pods_per_namespace = num(&value)? as usize,
            "--shape" => {
                cfg.only = Some(
                    Shape::ALL
                        .into_iter()
                        .find(|s| s.as_str() == value)
                        .ok_or_else(|| format!("--shape: unknown `{value}`"))?,
                );
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok((cfg, records))
}

fn main() -> ExitCode {
    let (cfg, records) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut bytes = 0u64;
    let mut generator = Generator::new(cfg.clone());
    for _ in 0..records {
        let line = generator.next_line();
        bytes += line.len() as u64 + 1;
        if writeln!(out, "{line}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    if out.flush().is_err() {
        return ExitCode::FAILURE;
    }
    eprintln!(
        "gen: {records} {} records, {:.1} MiB ({} bytes/record), {} pods on {} nodes, {:.0} records/s of event time",
        cfg.mix,
        bytes as f64 / (1 << 20) as f64,
        bytes / records.max(1) as u64,
        generator.pods(),
        cfg.nodes,
        cfg.rate
    );
    ExitCode::SUCCESS
}
