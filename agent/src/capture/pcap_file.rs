//! Replay of pcap and pcapng files through the [`PacketSource`] seam.
//!
//! The format is chosen by the file's magic bytes, never its name: several real captures are
//! pcapng files named `.pcap`. Parsing is `pcap-parser`'s streaming readers; this module adds
//! what they leave to the caller: per-interface link types and timestamp resolutions for pcapng,
//! timestamps in one unit, bounded buffer growth, and errors that carry the byte offset of the
//! damage. Records before the damage are delivered as usual, so a truncated capture still counts.
//!
//! A gzip-compressed capture (`.pcap.gz`, as packet archives publish them) is recognised by its
//! magic bytes too and read through `flate2` as it streams, as Wireshark does; its offsets count
//! decompressed bytes, and its errors say so. Other compressions are named in the error, so the
//! user knows to decompress rather than wonder why a capture is "not a capture".

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flate2::read::MultiGzDecoder;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{LegacyPcapReader, PcapBlockOwned, PcapError, PcapNGReader, build_ts_resolution};

use super::{CaptureStats, LinkType, Packet, PacketSource, Timestamp};

/// The reader's starting buffer; a typical pcapng block is well under this.
const INITIAL_BUFFER: usize = 64 * 1024;

/// The most the reader's buffer may grow to for one block. Larger blocks are treated as damage:
/// no packet is this large, and an attacker-chosen length must not size an allocation.
pub const MAX_BLOCK_BYTES: usize = 16 * 1024 * 1024;

/// libpcap's `MAXIMUM_SNAPLEN`: no capture tool writes a larger record.
const MAX_CAPLEN: u32 = 262_144;

/// Cap on interfaces per pcapng section, so a file of interface blocks cannot grow memory.
pub const MAX_INTERFACES: usize = 4096;

/// The first four bytes of a pcapng file (its section header block type).
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// The first two bytes of a gzip member (RFC 1952 section 2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Compressions a capture is often shipped in that this reader does not decompress, by their
/// leading magic bytes.
const OTHER_COMPRESSIONS: [(&[u8], &str); 4] = [
    (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
    (&[0xfd, 0x37, 0x7a, 0x58], "xz"),
    (&[0x42, 0x5a, 0x68], "bzip2"),
    (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
];

/// What went wrong with a capture file, with where.
#[derive(Debug, thiserror::Error)]
pub enum PcapFileError {
    /// Occurs when the file cannot be opened.
    #[error("cannot open capture {path}: {source}")]
    Open {
        /// The path given.
        path: PathBuf,
        /// Why the operating system refused.
        source: io::Error,
    },
    /// Occurs when reading the first bytes fails.
    #[error("cannot read the start of the capture: {0}")]
    ReadStart(#[source] io::Error),
    /// Occurs when reading fails part-way: the disk, or a gzip stream that is corrupt or cut
    /// short.
    #[error("read failed at byte offset {offset}: {source}")]
    Read {
        /// Bytes consumed before the failed read.
        offset: u64,
        /// What the read said (pcap-parser drops it; the reader's input keeps it for us).
        source: io::Error,
    },
    /// Occurs when the file starts with neither a pcap nor a pcapng magic number.
    #[error("{}", not_a_capture(.magic))]
    NotACapture {
        /// The first bytes of the file (fewer than four if the file is that short).
        magic: Vec<u8>,
    },
    /// Occurs when the file is compressed in a format this reader does not decompress.
    #[error("compressed with {format}: decompress it first (only gzip is read as it is)")]
    Compressed {
        /// The compression its magic bytes name.
        format: &'static str,
    },
    /// Occurs when a gzip-compressed capture is damaged, or what it holds is not a capture;
    /// offsets in `source` count decompressed bytes.
    #[error("{}", in_gzip(.source))]
    Gzip {
        /// What went wrong with the decompressed capture.
        source: Box<PcapFileError>,
    },
    /// Occurs when the file ends inside a record: a capture cut short while being copied or written.
    #[error("capture truncated: the record at byte offset {offset} is incomplete")]
    Truncated {
        /// Byte offset of the incomplete record.
        offset: u64,
    },
    /// Occurs when a record cannot be parsed or breaks the format's rules.
    #[error("corrupt capture at byte offset {offset}: {kind}")]
    Corrupt {
        /// Byte offset of the bad record.
        offset: u64,
        /// What was wrong with it.
        kind: CorruptKind,
    },
}

impl PcapFileError {
    /// The byte offset of the damage, when the error is about a place in the file.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Self::Read { offset, .. }
            | Self::Truncated { offset }
            | Self::Corrupt { offset, .. } => Some(*offset),
            Self::Gzip { source } => source.offset(),
            Self::Open { .. }
            | Self::ReadStart(_)
            | Self::NotACapture { .. }
            | Self::Compressed { .. } => None,
        }
    }
}

/// What [`PcapFileError::Gzip`] says: where an offset is given, which bytes it counts.
fn in_gzip(source: &PcapFileError) -> String {
    if source.offset().is_some() {
        format!("gzip-compressed (offsets are in the decompressed data): {source}")
    } else {
        format!("gzip-compressed: {source}")
    }
}

/// What [`PcapFileError::NotACapture`] says: an empty file is named as such, not as one that
/// starts with nothing.
fn not_a_capture(magic: &[u8]) -> String {
    if magic.is_empty() {
        "the file is empty, not a pcap or pcapng file".to_owned()
    } else {
        format!("not a pcap or pcapng file: it starts with {magic:02x?}")
    }
}

/// Why a record was judged corrupt; `as_str` gives a fixed metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptKind {
    /// Occurs when pcap-parser rejects a record's structure (bad block length, mismatched trailer).
    #[error("unparsable record")]
    Unparsable,
    /// Occurs when a record claims more bytes than [`MAX_BLOCK_BYTES`] or libpcap's snap maximum.
    #[error("record larger than any capture tool writes")]
    RecordTooLarge,
    /// Occurs when a pcapng section declares more than [`MAX_INTERFACES`] interfaces.
    #[error("too many interfaces in one section")]
    TooManyInterfaces,
    /// Occurs when a pcapng packet block comes before any section header.
    #[error("packet before the section header")]
    NoSection,
}

impl CorruptKind {
    /// A fixed label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unparsable => "unparsable",
            Self::RecordTooLarge => "record_too_large",
            Self::TooManyInterfaces => "too_many_interfaces",
            Self::NoSection => "no_section",
        }
    }
}

/// What a pcapng interface description block says about the packets that name it.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: LinkType,
    /// Timestamp units per second; `None` when `if_tsresol` is out of range.
    units_per_sec: Option<u64>,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: i64,
    /// 0 means no limit.
    snaplen: u32,
}

/// Per-format state: what the headers read so far say about the packets that follow.
#[derive(Debug)]
enum Format {
    /// Legacy pcap: one link type for the file.
    Pcap {
        link_type: LinkType,
        nanos: bool,
        big_endian: bool,
    },
    /// pcapng: interfaces of the current section, in declaration order (their ids).
    PcapNg {
        interfaces: Vec<Interface>,
        in_section: bool,
        /// The current section's byte order, which its blocks' lengths are written in.
        big_endian: bool,
    },
}

/// A pcap or pcapng file read as a [`PacketSource`].
pub struct PcapFile {
    reader: Box<dyn PcapReaderIterator + Send>,
    format: Format,
    /// The current packet's bytes, reused for every packet.
    packet: Vec<u8>,
    stats: CaptureStats,
    /// Records skipped because they named an interface the file never declared, or had an
    /// unusable timestamp resolution.
    skipped_records: u64,
    /// The reader's buffer size, doubled when a block does not fit.
    capacity: usize,
    finished: bool,
    /// The last error the input returned, which pcap-parser reports only as "read error".
    read_failure: ReadFailureCell,
    /// Whether the capture is gzip-compressed: its errors are wrapped in
    /// [`PcapFileError::Gzip`].
    gzip: bool,
}

/// Where [`Recording`] leaves the input's last error for the reader's owner to collect.
type ReadFailureCell = Arc<Mutex<Option<io::Error>>>;

impl std::fmt::Debug for PcapFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapFile")
            .field("format", &self.format)
            .field("stats", &self.stats)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// What one parsed block means for the caller.
enum Step {
    /// A packet is in `self.packet`; the caller returns it.
    Packet {
        ts: Timestamp,
        link_type: LinkType,
        orig_len: u32,
        interface: u32,
    },
    /// Not a packet: a header, statistics, name resolution...
    Skip,
    /// A packet record that cannot be delivered (undeclared interface, unusable timestamp
    /// resolution); counted, and reading goes on.
    Dropped,
    /// The block was parsed but breaks the rules.
    Corrupt(CorruptKind),
}

impl PcapFile {
    /// Opens a capture file and reads its header.
    ///
    /// # Errors
    ///
    /// Returns [`PcapFileError::Open`] when the file cannot be opened, and the errors of
    /// [`PcapFile::from_reader`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, PcapFileError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| PcapFileError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(file)
    }

    /// Reads a capture from any byte stream, choosing pcap, pcapng or gzip-compressed either by
    /// its magic number.
    ///
    /// # Errors
    ///
    /// Returns [`PcapFileError::NotACapture`] when the magic number is none of those,
    /// [`PcapFileError::Compressed`] when it names another compression,
    /// [`PcapFileError::Truncated`] when the stream ends inside the file header, and
    /// [`PcapFileError::ReadStart`] when the first read fails; a gzip stream's errors come
    /// wrapped in [`PcapFileError::Gzip`].
    pub fn from_reader(input: impl Read + Send + 'static) -> Result<Self, PcapFileError> {
        Self::from_stream(Box::new(input), false)
    }

    /// [`PcapFile::from_reader`] for a boxed stream, so a gzip stream can be opened by the same
    /// code without a new type per nesting; `gzip` says the stream is already decompressed.
    fn from_stream(mut input: Box<dyn Read + Send>, gzip: bool) -> Result<Self, PcapFileError> {
        let mut magic = [0_u8; 4];
        let got = read_full(&mut input, &mut magic).map_err(PcapFileError::ReadStart)?;
        let head = magic.get(..got).unwrap_or_default();
        if !gzip && head.starts_with(&GZIP_MAGIC) {
            let decoder = MultiGzDecoder::new(Prefixed::new(magic, got, input));
            return Self::from_stream(Box::new(decoder), true).map_err(|e| PcapFileError::Gzip {
                source: Box::new(e),
            });
        }
        if let Some((_, format)) = OTHER_COMPRESSIONS.iter().find(|(m, _)| head.starts_with(m)) {
            return Err(PcapFileError::Compressed { format });
        }
        let is_pcapng = head == PCAPNG_MAGIC;
        let is_pcap = matches!(
            magic,
            [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
                | [0x34, 0xcd, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xcd, 0x34]
        ) && got == magic.len();
        if !is_pcap && !is_pcapng {
            return Err(PcapFileError::NotACapture {
                magic: head.to_vec(),
            });
        }
        let read_failure = ReadFailureCell::default();
        let stream = Recording {
            inner: Prefixed::new(magic, got, input),
            failure: Arc::clone(&read_failure),
        };
        let reader: Box<dyn PcapReaderIterator + Send> = if is_pcapng {
            PcapNGReader::new(INITIAL_BUFFER, stream)
                .map(|r| Box::new(r) as Box<dyn PcapReaderIterator + Send>)
                .map_err(|e| header_error(&e, &read_failure))?
        } else {
            LegacyPcapReader::new(INITIAL_BUFFER, stream)
                .map(|r| Box::new(r) as Box<dyn PcapReaderIterator + Send>)
                .map_err(|e| header_error(&e, &read_failure))?
        };
        let format = if is_pcapng {
            Format::PcapNg {
                interfaces: Vec::new(),
                in_section: false,
                big_endian: false,
            }
        } else {
            // Replaced by the header block, which the legacy reader returns first.
            Format::Pcap {
                link_type: LinkType::ETHERNET,
                nanos: false,
                big_endian: false,
            }
        };
        Ok(Self {
            reader,
            format,
            packet: Vec::new(),
            stats: CaptureStats::default(),
            skipped_records: 0,
            capacity: INITIAL_BUFFER,
            finished: false,
            read_failure,
            gzip,
        })
    }

    /// Whether the capture is gzip-compressed (and its offsets count decompressed bytes).
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// Packet records skipped and counted: ones naming an undeclared interface, or whose
    /// interface has an unusable timestamp resolution.
    pub fn skipped_records(&self) -> u64 {
        self.skipped_records
    }

    /// Byte offset of the next record: how far into the file the reader has got.
    pub fn offset(&self) -> u64 {
        u64::try_from(self.reader.consumed()).unwrap_or(u64::MAX)
    }

    /// What is wrong with the next record's length, when its header lies about it: a legacy
    /// pcap record claiming more than any capture tool writes, or a pcapng block shorter than
    /// the 12 bytes of its own type and two lengths (pcapng §3.1).
    ///
    /// Checked before parsing so a lying length is reported as such, rather than as a truncated
    /// file or after growing the buffer towards it. pcap-parser subtracts 12 from a process
    /// information block's length having only checked it is at least 4, which overflows (a
    /// panic with overflow checks, a 4 GiB claim without; found by the `pcap_file` fuzz
    /// target).
    fn lying_length(&self) -> Option<CorruptKind> {
        // Before the file header is consumed the buffer starts with the header, not a record.
        if self.reader.consumed() == 0 {
            return None;
        }
        let data = self.reader.data();
        match self.format {
            Format::Pcap { big_endian, .. } => {
                let caplen = read_u32(data.get(8..12)?, big_endian)?;
                (caplen > MAX_CAPLEN).then_some(CorruptKind::RecordTooLarge)
            }
            Format::PcapNg { big_endian, .. } => {
                // A section header says its own byte order; pcap-parser checks its length.
                if data.get(..4)? == PCAPNG_MAGIC {
                    return None;
                }
                let length = read_u32(data.get(4..8)?, big_endian)?;
                (length < 12).then_some(CorruptKind::Unparsable)
            }
        }
    }

    /// Doubles the reader's buffer for a block larger than it, up to [`MAX_BLOCK_BYTES`].
    fn grow(&mut self, offset: u64) -> Result<(), PcapFileError> {
        self.capacity = self.capacity.saturating_mul(2);
        if self.capacity > MAX_BLOCK_BYTES || !self.reader.grow(self.capacity) {
            return Err(self.fail(PcapFileError::Corrupt {
                offset,
                kind: CorruptKind::RecordTooLarge,
            }));
        }
        if self.reader.refill().is_err() {
            return Err(self.fail_read(offset));
        }
        Ok(())
    }

    fn fail(&mut self, err: PcapFileError) -> PcapFileError {
        self.finished = true;
        err
    }

    /// A failed read at `offset`, with what the input said.
    fn fail_read(&mut self, offset: u64) -> PcapFileError {
        let source = take_failure(&self.read_failure);
        self.fail(PcapFileError::Read { offset, source })
    }
}

/// Four bytes as a `u32` in the given byte order; `None` unless there are exactly four.
fn read_u32(bytes: &[u8], big_endian: bool) -> Option<u32> {
    let bytes = <[u8; 4]>::try_from(bytes).ok()?;
    Some(if big_endian {
        u32::from_be_bytes(bytes)
    } else {
        u32::from_le_bytes(bytes)
    })
}

/// Wraps a gzip stream's errors, so their offsets are read as decompressed bytes.
fn located(gzip: bool, err: PcapFileError) -> PcapFileError {
    if gzip {
        PcapFileError::Gzip {
            source: Box::new(err),
        }
    } else {
        err
    }
}

/// The input's last error, or a stand-in if pcap-parser failed a read the input never saw.
fn take_failure(cell: &ReadFailureCell) -> io::Error {
    cell.lock()
        .ok()
        .and_then(|mut failure| failure.take())
        .unwrap_or_else(|| io::Error::other("the capture reader failed without an I/O error"))
}

/// Maps a failure to read the file header to an error without an offset (it is at offset 0).
fn header_error(err: &PcapError<&'static [u8]>, read_failure: &ReadFailureCell) -> PcapFileError {
    match err {
        PcapError::Incomplete(_) | PcapError::UnexpectedEof | PcapError::Eof => {
            PcapFileError::Truncated { offset: 0 }
        }
        PcapError::ReadError => PcapFileError::Read {
            offset: 0,
            source: take_failure(read_failure),
        },
        _ => PcapFileError::Corrupt {
            offset: 0,
            kind: CorruptKind::Unparsable,
        },
    }
}

impl PacketSource for PcapFile {
    type Error = PcapFileError;

    #[inline]
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, PcapFileError> {
        let gzip = self.gzip;
        self.next_record().map_err(|e| located(gzip, e))
    }

    fn stats(&self) -> CaptureStats {
        CaptureStats {
            internal_drops: self.skipped_records,
            ..self.stats
        }
    }
}

impl PcapFile {
    /// The next packet, with errors whose offsets count the bytes of the (decompressed) capture.
    #[inline]
    fn next_record(&mut self) -> Result<Option<Packet<'_>>, PcapFileError> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let offset = self.offset();
            if let Some(kind) = self.lying_length() {
                return Err(self.fail(PcapFileError::Corrupt { offset, kind }));
            }
            // Classify into owned values first: the parsed block borrows the reader, and the
            // reader must be refilled or grown in the other arms.
            let parsed = match self.reader.next() {
                Ok((len, block)) => Ok((len, absorb(&mut self.format, &mut self.packet, block))),
                Err(err) => Err(ReadFailure::from(&err)),
            };
            match parsed {
                Ok((len, step)) => {
                    // A block that consumes nothing would be returned again forever.
                    if len == 0 {
                        return Err(self.fail(PcapFileError::Corrupt {
                            offset,
                            kind: CorruptKind::Unparsable,
                        }));
                    }
                    self.reader.consume(len);
                    match step {
                        Step::Skip => {}
                        Step::Dropped => {
                            self.skipped_records = self.skipped_records.saturating_add(1);
                        }
                        Step::Corrupt(kind) => {
                            return Err(self.fail(PcapFileError::Corrupt { offset, kind }));
                        }
                        Step::Packet {
                            ts,
                            link_type,
                            orig_len,
                            interface,
                        } => {
                            self.stats.packets = self.stats.packets.saturating_add(1);
                            let captured = u64::try_from(self.packet.len()).unwrap_or(u64::MAX);
                            self.stats.bytes = self.stats.bytes.saturating_add(captured);
                            return Ok(Some(Packet {
                                ts,
                                link_type,
                                data: &self.packet,
                                orig_len,
                                interface,
                                outgoing: None,
                            }));
                        }
                    }
                }
                Err(ReadFailure::Eof) => {
                    self.finished = true;
                    return Ok(None);
                }
                Err(ReadFailure::NeedMore) => {
                    let before = self.reader.data().len();
                    if self.reader.refill().is_err() {
                        return Err(self.fail_read(offset));
                    }
                    // A full buffer reads nothing yet is not at the end: the block is bigger
                    // than the buffer, and only growing it can make progress.
                    if self.reader.data().len() == before && !self.reader.reader_exhausted() {
                        self.grow(offset)?;
                    }
                }
                Err(ReadFailure::UnexpectedEof) => {
                    // The reader reports a clean end this way when its buffer was consumed
                    // without being shifted back; only leftover bytes mean a cut record.
                    self.finished = true;
                    if self.reader.data().is_empty() {
                        return Ok(None);
                    }
                    return Err(PcapFileError::Truncated { offset });
                }
                Err(ReadFailure::BufferTooSmall) => self.grow(offset)?,
                Err(ReadFailure::Read) => {
                    return Err(self.fail_read(offset));
                }
                Err(ReadFailure::Unparsable) => {
                    return Err(self.fail(PcapFileError::Corrupt {
                        offset,
                        kind: CorruptKind::Unparsable,
                    }));
                }
            }
        }
    }
}

/// A reader error with its borrowed input dropped, so the reader can be used again.
enum ReadFailure {
    Eof,
    NeedMore,
    UnexpectedEof,
    BufferTooSmall,
    Read,
    Unparsable,
}

impl From<&PcapError<&[u8]>> for ReadFailure {
    fn from(err: &PcapError<&[u8]>) -> Self {
        match err {
            PcapError::Eof => Self::Eof,
            PcapError::Incomplete(_) => Self::NeedMore,
            PcapError::UnexpectedEof => Self::UnexpectedEof,
            PcapError::BufferTooSmall => Self::BufferTooSmall,
            PcapError::ReadError => Self::Read,
            PcapError::HeaderNotRecognized
            | PcapError::NomError(..)
            | PcapError::OwnedNomError(..) => Self::Unparsable,
        }
    }
}

/// Applies one parsed block: headers update `format`, packets are copied into `packet`.
fn absorb(format: &mut Format, packet: &mut Vec<u8>, block: PcapBlockOwned<'_>) -> Step {
    match (format, block) {
        (
            Format::Pcap {
                link_type,
                nanos,
                big_endian,
            },
            PcapBlockOwned::LegacyHeader(header),
        ) => {
            *link_type = LinkType(u32::try_from(header.network.0).unwrap_or(u32::MAX));
            *nanos = header.is_nanosecond_precision();
            *big_endian = header.is_bigendian();
            Step::Skip
        }
        (
            Format::Pcap {
                link_type, nanos, ..
            },
            PcapBlockOwned::Legacy(record),
        ) => {
            if record.caplen > MAX_CAPLEN {
                return Step::Corrupt(CorruptKind::RecordTooLarge);
            }
            let frac = u64::from(record.ts_usec);
            let nanos_in_sec = if *nanos {
                frac
            } else {
                frac.saturating_mul(1000)
            };
            let ts = Timestamp::from_secs_nanos(u64::from(record.ts_sec), nanos_in_sec);
            copy_into(packet, record.data);
            Step::Packet {
                ts,
                link_type: *link_type,
                orig_len: record.origlen,
                interface: 0,
            }
        }
        (
            Format::PcapNg {
                interfaces,
                in_section,
                big_endian,
            },
            PcapBlockOwned::NG(block),
        ) => absorb_pcapng(interfaces, in_section, big_endian, packet, block),
        // A pcapng block from a legacy reader or the reverse cannot happen; a legacy header
        // mid-file is not something pcap-parser produces either. Skip rather than trust that.
        _ => Step::Skip,
    }
}

fn absorb_pcapng(
    interfaces: &mut Vec<Interface>,
    in_section: &mut bool,
    big_endian: &mut bool,
    packet: &mut Vec<u8>,
    block: Block<'_>,
) -> Step {
    match block {
        Block::SectionHeader(shb) => {
            // Interface ids are per section (pcapng §4.1).
            interfaces.clear();
            *in_section = true;
            *big_endian = shb.big_endian();
            Step::Skip
        }
        Block::InterfaceDescription(idb) => {
            if interfaces.len() >= MAX_INTERFACES {
                return Step::Corrupt(CorruptKind::TooManyInterfaces);
            }
            interfaces.push(Interface {
                link_type: LinkType(u32::try_from(idb.linktype.0).unwrap_or(u32::MAX)),
                units_per_sec: build_ts_resolution(idb.if_tsresol).filter(|u| *u > 0),
                offset_secs: idb.if_tsoffset,
                snaplen: idb.snaplen,
            });
            Step::Skip
        }
        Block::EnhancedPacket(epb) => {
            if !*in_section {
                return Step::Corrupt(CorruptKind::NoSection);
            }
            let Some(iface) = usize::try_from(epb.if_id)
                .ok()
                .and_then(|i| interfaces.get(i))
            else {
                return Step::Dropped;
            };
            let Some(units) = iface.units_per_sec else {
                return Step::Dropped;
            };
            if epb.caplen > MAX_CAPLEN {
                return Step::Corrupt(CorruptKind::RecordTooLarge);
            }
            let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
            let ts = pcapng_timestamp(raw, units, iface.offset_secs);
            // `data` is padded to 32 bits; the capture length says how much is packet.
            let caplen = usize::try_from(epb.caplen).unwrap_or(usize::MAX);
            let data = epb.data.get(..caplen).unwrap_or(epb.data);
            copy_into(packet, data);
            Step::Packet {
                ts,
                link_type: iface.link_type,
                orig_len: epb.origlen,
                interface: epb.if_id,
            }
        }
        Block::SimplePacket(spb) => {
            if !*in_section {
                return Step::Corrupt(CorruptKind::NoSection);
            }
            // A simple packet belongs to the first interface and has no timestamp (§4.4).
            let Some(iface) = interfaces.first() else {
                return Step::Dropped;
            };
            let mut caplen = usize::try_from(spb.origlen).unwrap_or(usize::MAX);
            if iface.snaplen > 0 {
                caplen = caplen.min(usize::try_from(iface.snaplen).unwrap_or(usize::MAX));
            }
            let data = spb.data.get(..caplen).unwrap_or(spb.data);
            copy_into(packet, data);
            Step::Packet {
                ts: Timestamp::default(),
                link_type: iface.link_type,
                orig_len: spb.origlen,
                interface: 0,
            }
        }
        _ => Step::Skip,
    }
}

/// Converts a pcapng timestamp in interface units to nanoseconds since the epoch.
fn pcapng_timestamp(raw: u64, units_per_sec: u64, offset_secs: i64) -> Timestamp {
    let secs = raw / units_per_sec;
    let frac = raw % units_per_sec;
    // frac < units_per_sec, so frac * 1e9 fits in u128 and the quotient is below 1e9.
    let nanos = u128::from(frac) * 1_000_000_000 / u128::from(units_per_sec);
    let secs = i128::from(secs).saturating_add(i128::from(offset_secs));
    if secs < 0 {
        return Timestamp::default();
    }
    let secs = u64::try_from(secs).unwrap_or(u64::MAX);
    Timestamp::from_secs_nanos(secs, u64::try_from(nanos).unwrap_or(0))
}

/// Replaces the reused packet buffer's contents without giving back its capacity.
fn copy_into(packet: &mut Vec<u8>, data: &[u8]) {
    packet.clear();
    packet.extend_from_slice(data);
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while let Some(rest) = buf.get_mut(got..) {
        if rest.is_empty() {
            break;
        }
        match input.read(rest) {
            Ok(0) => break,
            Ok(n) => got = got.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The input with its already-read magic bytes put back in front.
///
/// pcap-parser's readers parse the file header from their first `read`, so that read must
/// return the whole header: this fills each read as far as the input allows, rather than
/// returning the four magic bytes alone.
///
/// An error after some bytes were read is held back for the next call, so those bytes (the
/// packets before a gzip stream's cut) are delivered first.
struct Prefixed<R> {
    head: [u8; 4],
    head_len: usize,
    pos: usize,
    inner: R,
    pending: Option<io::Error>,
}

impl<R> Prefixed<R> {
    /// `inner` with the first `head_len` bytes of `head` put back in front of it.
    fn new(head: [u8; 4], head_len: usize, inner: R) -> Self {
        Self {
            head,
            head_len,
            pos: 0,
            inner,
            pending: None,
        }
    }
}

impl<R: Read> Read for Prefixed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let mut written = 0;
        if let Some(head) = self.head.get(self.pos..self.head_len) {
            let n = head.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..n), head.get(..n)) {
                dst.copy_from_slice(src);
            }
            self.pos = self.pos.saturating_add(n);
            written = n;
        }
        while let Some(rest) = buf.get_mut(written..) {
            if rest.is_empty() {
                break;
            }
            match self.inner.read(rest) {
                Ok(0) => break,
                Ok(n) => written = written.saturating_add(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if written == 0 => return Err(e),
                Err(e) => {
                    self.pending = Some(e);
                    break;
                }
            }
        }
        Ok(written)
    }
}

/// The input with its errors kept: pcap-parser turns a failed read into a bare "read error",
/// and a gzip stream's "corrupt deflate stream" or a disk's I/O error is what the user needs.
struct Recording<R> {
    inner: R,
    failure: ReadFailureCell,
}

impl<R: Read> Read for Recording<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let kind = e.kind();
            if let Ok(mut failure) = self.failure.lock() {
                *failure = Some(e);
            }
            io::Error::from(kind)
        })
    }
}
