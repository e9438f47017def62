//! The `calving` command: what an operator reaches for to inspect Kafka segments and, as the
//! product grows, to convert, verify and maintain Calving tables.
//!
//! Modules by what they work on: `segment` (a segment's files: dump), `warehouse` (the table:
//! convert, cat, verify, segments, sweep, maintain) and `bench` (parse and convert benchmarks on generated
//! segments).
//! Output goes to stdout; logs (`RUST_LOG`) and errors to stderr; a failure exits non-zero.

mod bench;
mod segment;
mod warehouse;

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
    /// Convert segment files or broker partition directories into the topic's Iceberg table.
    Convert(warehouse::ConvertArgs),
    /// Rebuild a stored segment (or one of its indexes) from the table.
    Cat(warehouse::CatArgs),
    /// Check segment files against what the table serves for them.
    Verify(warehouse::VerifyArgs),
    /// List the stored segments of a topic.
    Segments(warehouse::SegmentsArgs),
    /// Delete what copies that never committed left in a topic's table location.
    Sweep(warehouse::SweepArgs),
    /// Maintain a topic's table: compact small files, merge manifests, expire snapshots and
    /// delete the files they alone referenced (Kafka reads survive all of it).
    Maintain(warehouse::MaintainArgs),
    /// Measure parsing, conversion and serving on generated segments, beside plain copies and
    /// reads of the same files.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Segment(cmd) => segment::run(cmd).map_err(Into::into),
        Command::Convert(args) => warehouse::convert::run(args).map_err(Into::into),
        Command::Cat(args) => warehouse::cat::run(args).map_err(Into::into),
        Command::Verify(args) => warehouse::verify::run(args).map_err(Into::into),
        Command::Segments(args) => warehouse::segments(args).map_err(Into::into),
        Command::Sweep(args) => warehouse::sweep(args).map_err(Into::into),
        Command::Maintain(args) => warehouse::maintain(args).map_err(Into::into),
        Command::Bench(cmd) => bench::run(cmd).map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("calving: {e}");
            ExitCode::FAILURE
        }
    }
}
