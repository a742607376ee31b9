//! The `gender-classifier` command: parse, run, map the result to an exit code. All the work is in the
//! library crates; this binary is glue.

mod args;
mod commands;
mod out;
mod progress;

use crate::out::errln;
use clap::Parser;
use std::process::ExitCode;

/// Exit codes, documented in the README: 0 all went well, 1 some inputs failed but the run finished,
/// 2 the run could not be done (bad arguments, unreadable model or dataset), 130 stopped by Ctrl-C.
pub enum Status {
    Success,
    SomeFailed,
    Interrupted,
}

fn main() -> ExitCode {
    // burn's layers free and reallocate MiB-sized buffers all the time; keeping them made the
    // ViT 16% and the training step 11% faster, and a single image no slower (gc_core::malloc).
    gc_core::malloc::keep_freed_memory();
    let cli = args::Cli::parse_from(args::with_default_subcommand(std::env::args_os()));
    init_logging(cli.verbose);
    match commands::run(cli.command) {
        Ok(Status::Success) => ExitCode::SUCCESS,
        Ok(Status::SomeFailed) => ExitCode::from(1),
        Ok(Status::Interrupted) => ExitCode::from(130),
        Err(err) => {
            errln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        // Colour codes only for a terminal: in a log file or a pipe they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}
