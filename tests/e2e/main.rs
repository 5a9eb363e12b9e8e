//! The binary's end-to-end tests, as one test binary: each module drives the
//! built `epicenter` against real peers (Alertmanager, a Kafka-protocol
//! broker, a local API server, local Slack and ntfy). One binary instead of
//! one per file: each links every dependency of the workspace, and linking
//! them is most of the build. nextest still runs every test in its own
//! process.

#![allow(clippy::unwrap_used)]

mod support;

mod alertmanager;
mod api_limits;
mod backtest;
mod chaos;
mod clusters;
mod corrupt;
mod crash;
mod deploy;
mod diskfull;
mod fuzz_corpus;
mod history;
mod http;
mod kafka;
mod kubernetes;
mod notify;
mod postmortem;
mod readme;
mod renaming;
mod replay;
mod restart;
mod startup;
mod stream;
mod text_view;
mod time;
mod web;
