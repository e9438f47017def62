//! `calving segment …`: look inside a Kafka segment's files.

mod dump;

use std::path::PathBuf;

use clap::Subcommand;

/// Errors of the segment commands.
#[derive(Debug, thiserror::Error)]
pub enum SegmentCommandError {
    #[error(transparent)]
    Read(#[from] calving_segment::ReadError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("writing output: {0}")]
    Output(std::io::Error),
    #[error("{0}")]
    Usage(String),
}

#[derive(Debug, Subcommand)]
pub enum SegmentCommand {
    /// Print every batch and record of a `.log` file (or the entries of an `.index`,
    /// `.timeindex`, `.txnindex`, `.snapshot` or `leader-epoch-checkpoint` file).
    Dump(dump::DumpArgs),
}

pub fn run(cmd: SegmentCommand) -> Result<(), SegmentCommandError> {
    match cmd {
        SegmentCommand::Dump(args) => dump::run(args),
    }
}
