//! The `calving` command: what an operator reaches for to inspect Kafka segments and, as the
//! product grows, to convert, verify and maintain Calving tables.
//!
//! Each subcommand group is one module: `segment` (dump a segment's files, benchmark the codec).
//! Output goes to stdout; logs (`RUST_LOG`) and errors to stderr; a failure exits non-zero.

mod segment;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "calving", version, about = "Kafka tiered storage on Apache Iceberg: operator tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect Kafka log segments and their index files.
    #[command(subcommand)]
    Segment(segment::SegmentCommand),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Segment(cmd) => segment::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("calving: {e}");
            ExitCode::FAILURE
        }
    }
}
