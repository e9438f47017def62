//! Walking a `.log` file: the entries (v2 batches or legacy messages) one after another.
//!
//! Both formats share the framing `offset int64 | size int32 | size bytes`, with the magic byte
//! at position 16 of every entry, so one walker serves both. [`LogEntries`] walks a byte slice;
//! [`LogReader`] streams from any `Read` with one reusable buffer, so memory stays at one batch
//! whatever the segment size, and a forged size field cannot make it allocate more than the
//! input actually holds.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{ReadError, ReadErrorKind};
use crate::record::batch::{RecordBatch, LOG_OVERHEAD};
use crate::record::legacy::LegacyEntry;

/// Smallest valid entry: a v0 message with null key and value (`LegacyRecord.RECORD_OVERHEAD_V0`
/// plus the 12-byte log overhead).
const MIN_ENTRY_LEN: usize = LOG_OVERHEAD + 14;

/// One entry of a log file.
#[derive(Clone, Debug)]
pub enum LogEntry<'a> {
    /// A magic v2 record batch.
    Batch(RecordBatch<'a>),
    /// A magic v0/v1 message (possibly a compressed wrapper).
    Legacy(LegacyEntry<'a>),
}

impl<'a> LogEntry<'a> {
    /// Parses one entry from exactly its bytes.
    pub fn parse(bytes: &'a [u8], position: u64) -> Result<LogEntry<'a>, ReadError> {
        match bytes.get(16).map(|&m| m as i8) {
            Some(2) => RecordBatch::parse(bytes, position).map(LogEntry::Batch),
            Some(0 | 1) => LegacyEntry::parse(bytes, position).map(LogEntry::Legacy),
            Some(other) => Err(ReadError::new(position, ReadErrorKind::UnsupportedMagic(other))),
            None => Err(ReadError::new(
                position,
                ReadErrorKind::Truncated { what: "log entry", needed: 17, available: bytes.len() as u64 },
            )),
        }
    }

    pub fn position(&self) -> u64 {
        match self {
            LogEntry::Batch(b) => b.position,
            LogEntry::Legacy(l) => l.position,
        }
    }

    /// The entry's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        match self {
            LogEntry::Batch(b) => b.bytes(),
            LogEntry::Legacy(l) => l.bytes(),
        }
    }

    /// Verifies the entry's checksum (CRC-32C for v2, CRC-32 for legacy).
    pub fn verify_crc(&self) -> Result<(), ReadError> {
        match self {
            LogEntry::Batch(b) => b.verify_crc(),
            LogEntry::Legacy(l) => l.verify_crc(),
        }
    }
}

/// Reads the 12-byte framing at the start of `head` and returns the entry's total size.
fn entry_size(head: &[u8; LOG_OVERHEAD], position: u64) -> Result<usize, ReadError> {
    let size = i32::from_be_bytes(head[8..12].try_into().unwrap());
    if (size as i64) < (MIN_ENTRY_LEN - LOG_OVERHEAD) as i64 {
        return Err(ReadError::new(position, ReadErrorKind::InvalidLength { what: "log entry", length: size.into() }));
    }
    Ok(size as usize + LOG_OVERHEAD)
}

/// The entries of a log held in memory.
#[derive(Clone, Debug)]
pub struct LogEntries<'a> {
    data: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> LogEntries<'a> {
    pub fn new(data: &'a [u8]) -> LogEntries<'a> {
        LogEntries { data, pos: 0, failed: false }
    }
}

impl<'a> Iterator for LogEntries<'a> {
    type Item = Result<LogEntry<'a>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let position = self.pos as u64;
        let rest = &self.data[self.pos..];
        let result = (|| {
            let head: &[u8; LOG_OVERHEAD] = rest.get(..LOG_OVERHEAD).and_then(|h| h.try_into().ok()).ok_or_else(|| {
                ReadError::new(
                    position,
                    ReadErrorKind::Truncated { what: "log entry header", needed: 12, available: rest.len() as u64 },
                )
            })?;
            let size = entry_size(head, position)?;
            let bytes = rest.get(..size).ok_or_else(|| {
                ReadError::new(
                    position,
                    ReadErrorKind::Truncated { what: "log entry", needed: size as u64, available: rest.len() as u64 },
                )
            })?;
            let entry = LogEntry::parse(bytes, position)?;
            Ok((entry, size))
        })();
        match result {
            Ok((entry, size)) => {
                self.pos += size;
                Some(Ok(entry))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Streams the entries of a log from a reader, one reusable buffer at a time.
#[derive(Debug)]
pub struct LogReader<R> {
    inner: R,
    position: u64,
    buf: Vec<u8>,
    file: Option<PathBuf>,
}

impl LogReader<BufReader<File>> {
    /// Opens a `.log` file; errors carry its path.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let file = File::open(path).map_err(|e| ReadError::new(0, ReadErrorKind::Io(e)).in_file(path))?;
        let mut reader = LogReader::new(BufReader::with_capacity(1 << 20, file));
        reader.file = Some(path.to_path_buf());
        Ok(reader)
    }
}

impl<R: Read> LogReader<R> {
    pub fn new(inner: R) -> Self {
        LogReader { inner, position: 0, buf: Vec::new(), file: None }
    }

    /// Byte position of the next entry.
    pub fn position(&self) -> u64 {
        self.position
    }

    fn error(&self, position: u64, kind: ReadErrorKind) -> ReadError {
        self.attach(ReadError::new(position, kind))
    }

    /// The next entry, or `None` at a clean end of the log.
    pub fn next_entry(&mut self) -> Result<Option<LogEntry<'_>>, ReadError> {
        let position = self.position;
        self.buf.clear();
        let got = (&mut self.inner)
            .take(LOG_OVERHEAD as u64)
            .read_to_end(&mut self.buf)
            .map_err(|e| self.error(position, ReadErrorKind::Io(e)))?;
        if got == 0 {
            return Ok(None);
        }
        if got < LOG_OVERHEAD {
            return Err(self.error(
                position,
                ReadErrorKind::Truncated { what: "log entry header", needed: 12, available: got as u64 },
            ));
        }
        let head: [u8; LOG_OVERHEAD] = self.buf[..LOG_OVERHEAD].try_into().unwrap();
        let size = entry_size(&head, position).map_err(|e| self.attach(e))?;
        let want = (size - LOG_OVERHEAD) as u64;
        let got = (&mut self.inner)
            .take(want)
            .read_to_end(&mut self.buf)
            .map_err(|e| self.error(position, ReadErrorKind::Io(e)))?;
        if (got as u64) < want {
            return Err(self.error(
                position,
                ReadErrorKind::Truncated { what: "log entry", needed: size as u64, available: (LOG_OVERHEAD + got) as u64 },
            ));
        }
        self.position += size as u64;
        match LogEntry::parse(&self.buf, position) {
            Ok(entry) => Ok(Some(entry)),
            Err(e) => Err(attach(&self.file, e)),
        }
    }

    fn attach(&self, e: ReadError) -> ReadError {
        attach(&self.file, e)
    }
}

fn attach(file: &Option<PathBuf>, e: ReadError) -> ReadError {
    match file {
        Some(f) => e.in_file(f),
        None => e,
    }
}

/// Reads a whole file into memory, with the path in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>, ReadError> {
    std::fs::read(path).map_err(|e| ReadError::new(0, ReadErrorKind::Io(e)).in_file(path))
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::new(0, ReadErrorKind::Io(e))
    }
}
