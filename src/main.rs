//! The `epicenter` binary: the allocator, then the command line of the
//! library (`src/lib.rs`).

use std::process::ExitCode;

/// mimalloc: the pipeline allocates on the parsing thread and frees on the
/// correlating one, where glibc's allocator spends more time than the work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    epicenter::main()
}
