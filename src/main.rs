//! Argument parsing and wiring only; everything else lives in the library.

use clap::Parser;
use pio::cli::{Cli, Command};

/// jemalloc, with one arena, no per-thread caches and freed pages returned at once:
/// the operator holds many small, long-lived objects (one cached copy of every resource), where
/// glibc's per-thread arenas and musl's allocator both leave far more resident, and its CPU goes
/// to waiting on the network, not to allocating. The figures behind the choice are in the
/// README's Performance section (`benches/scale.rs`). Freed pages are returned at once
/// (`dirty_decay_ms:0`): a burst at 1 s of API latency frees megabytes a second, and keeping them
/// half a second made 2 MiB of its peak; it costs about 0.2 s of CPU per 1,000 creates.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's compiled-in options (the `_RJEM_MALLOC_CONF` environment variable still overrides them).
/// A C `const char *`: a thin pointer to the first byte of a NUL-terminated string.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &u8 = &b"narenas:1,tcache:false,dirty_decay_ms:0,muzzy_decay_ms:0\0"[0];

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Emulator(args) => {
            pio::telemetry::init(cli.log_format, &cli.log_level);
            pio::emulator::run(args).await
        }
        Command::Crd => pio::crd::print_yaml(),
        Command::Rbac => {
            println!("{:#}", pio::rbac::rules_json());
            Ok(())
        }
        Command::Run(args) => {
            pio::telemetry::init(cli.log_format, &cli.log_level);
            pio::run::run(args).await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
