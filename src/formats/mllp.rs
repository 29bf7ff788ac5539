//! MLLP framing (HL7 v2 Minimal Lower Layer Protocol, release 2) as a sans-IO codec.
//! Hospitals send HL7 v2 messages (SS-MIX2, usually ISO-2022-JP) over TCP, each wrapped
//! in a block: `VT` (0x0B) + message bytes + `FS` (0x1C) + `CR` (0x0D). In: whatever bytes
//! a socket read returned, split anywhere, any number of blocks per read. Out: [`Event`]s
//! in stream order — each message payload exactly as sent, and typed [`MllpError`]s that
//! give the stream offset and frame number of anything that was wrong. [`encode_frame`]
//! wraps outgoing payloads (ACKs). It does no I/O and owns no socket or timer: a listener
//! calls [`MllpDecoder::push`] with each read, drains [`MllpDecoder::next_event`], and
//! calls [`MllpDecoder::finish`] at EOF. It must never decode, transcode or otherwise
//! alter payload bytes, never panic on any input, and never hold more than
//! `max_frame_bytes` of a partial frame (plus completed payloads not yet drained).
//!
//! # Why a payload can never contain `VT` or `FS`
//!
//! The decoder treats every 0x0B as a block start and every 0x1C as a block end, without
//! looking at the charset. That is sound for every charset HL7 v2 uses in Japan:
//!
//! - ISO-2022-JP (SS-MIX2) is 7-bit: two-byte JIS X 0208 characters (after `ESC $ B`) use
//!   only bytes 0x21–0x7E, and escape sequences are `ESC` (0x1B) plus printable bytes.
//! - UTF-8: every byte of a multibyte sequence is ≥ 0x80.
//! - Shift_JIS / CP932: lead bytes are 0x81–0x9F or 0xE0–0xFC, trail bytes 0x40–0x7E or
//!   0x80–0xFC, half-width katakana 0xA1–0xDF — never below 0x40.
//! - EUC-JP: every byte of a multibyte character is ≥ 0x8E.
//!
//! So a 0x0B or 0x1C byte is always the control character itself, and HL7 message content
//! does not use those. (UTF-16/UTF-32 would break this; MLLP cannot carry them and this
//! module does not try.) In particular an `FS` always ends the frame, so it can never be
//! the last payload byte: the SS-MIX2 sample files end with `CR FS`, and that `FS` is the
//! block terminator stored with the message — strip it before passing the file to
//! [`encode_frame`].
//!
//! # Decisions
//!
//! - **`FS` without `CR`.** `FS` alone ends the frame; the frame is delivered the moment the
//!   `FS` arrives, without waiting for the `CR` (a sender that omits it would otherwise wait
//!   forever for its ACK). If the next byte is not `CR` (`LF`, the next `VT`, anything else,
//!   or EOF), one [`MllpError::MissingCr`] follows the frame;
//!   [`MllpError::is_warning`] is true for it and only it. That byte is not consumed: it is
//!   read as between-frames data, so a trailing `LF` is then ignored as whitespace.
//! - **Between frames.** `CR`, `LF`, space and tab are ignored silently. Any other run of
//!   bytes before the next `VT` is skipped and reported once as [`MllpError::Garbage`] (from
//!   its first to its last non-whitespace byte) when that `VT` arrives or at `finish`, so a
//!   run split across reads is still one event and costs no memory. A stray `FS` outside a
//!   frame is garbage.
//! - **Empty frame** (`VT FS`): [`MllpError::EmptyFrame`], never an empty `Frame`.
//! - **`VT` inside a frame** (sender restarted mid-message): the partial frame is dropped
//!   with [`MllpError::FrameAbandoned`] and a new frame starts at that `VT`.
//! - **Frame over the limit.** `max_frame_bytes` counts payload bytes only; a payload of
//!   exactly that size is accepted. As soon as a payload exceeds it, the stored bytes are
//!   freed and the rest is only counted; at its `FS` one [`MllpError::FrameTooLarge`] takes
//!   the frame's place in the event order, so a listener can answer AR in position.
//! - **Replies.** [`MllpError::awaits_reply`] is true when the sender completed a block
//!   (sent its `FS`) that produced no `Frame` (too large, empty): with one reply per `Frame`
//!   and per such error, a sender of many messages on one connection gets one answer per
//!   block, in order.
//! - **Where.** Offsets are 0-based byte positions in the stream since the decoder was made
//!   (`u64`). Frame numbers are 1-based and count every `VT` that opened a frame, including
//!   frames later discarded.
//!
//! Bytes are scanned once, as they are pushed (`iter().position`), so decoding is linear in
//! the input however small the reads are; completed payloads are moved out, not copied.

use std::collections::VecDeque;

/// Start of block (VT).
pub const START: u8 = 0x0B;
/// End of block (FS).
pub const END: u8 = 0x1C;
/// Carriage return that follows the end of block.
pub const CR: u8 = 0x0D;

/// Default for [`MllpLimits::max_frame_bytes`]: 16 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Bounds the decoder enforces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MllpLimits {
    /// Largest payload (bytes between `VT` and `FS`) delivered as a frame.
    pub max_frame_bytes: usize,
}

impl Default for MllpLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

/// Something wrong in the byte stream, with where it happened.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MllpError {
    /// Non-whitespace bytes outside any frame. They were skipped; decoding resumes at the
    /// next `VT`.
    #[error(
        "skipped {len} bytes of non-MLLP data at stream offset {offset} (after frame {after_frame})"
    )]
    Garbage {
        /// Offset of the first skipped non-whitespace byte.
        offset: u64,
        /// Bytes from the first to the last non-whitespace byte of the run.
        len: u64,
        /// Number of frames opened before the run.
        after_frame: u64,
    },
    /// A frame whose payload exceeded the limit. Its bytes were discarded (never buffered
    /// beyond the limit); reported at its `FS` so a listener can answer AR in order.
    #[error(
        "frame {frame} at stream offset {offset} has {len} payload bytes, over the limit of {limit}; discarded"
    )]
    FrameTooLarge {
        /// Offset of the frame's `VT`.
        offset: u64,
        /// Frame number.
        frame: u64,
        /// Payload bytes received (all discarded).
        len: u64,
        /// The `max_frame_bytes` in force.
        limit: usize,
    },
    /// `VT` immediately followed by `FS`: a block with no message.
    #[error("frame {frame} at stream offset {offset} is empty")]
    EmptyFrame {
        /// Offset of the frame's `VT`.
        offset: u64,
        /// Frame number.
        frame: u64,
    },
    /// A `VT` arrived inside a frame (the sender restarted mid-message). The partial frame
    /// was discarded and a new frame starts at `restart_offset`.
    #[error(
        "frame {frame} at stream offset {offset} abandoned after {len} payload bytes: new start block at offset {restart_offset}"
    )]
    FrameAbandoned {
        /// Offset of the abandoned frame's `VT`.
        offset: u64,
        /// Number of the abandoned frame.
        frame: u64,
        /// Payload bytes received before the restart (discarded).
        len: u64,
        /// Offset of the `VT` that opened the next frame.
        restart_offset: u64,
    },
    /// Warning: an `FS` not followed by `CR`. The frame before it was delivered normally.
    #[error(
        "frame {frame}: end block not followed by CR at stream offset {offset} (found {})",
        describe_byte(.found)
    )]
    MissingCr {
        /// Offset where the `CR` was expected.
        offset: u64,
        /// Number of the frame the `FS` ended.
        frame: u64,
        /// The byte found instead, or `None` at end of stream.
        found: Option<u8>,
    },
    /// The stream ended inside a frame; its payload was discarded.
    #[error(
        "stream ended at offset {eof_offset} inside frame {frame} (started at offset {offset}, {len} payload bytes received)"
    )]
    Truncated {
        /// Offset of the frame's `VT`.
        offset: u64,
        /// Frame number.
        frame: u64,
        /// Payload bytes received before EOF (discarded).
        len: u64,
        /// Stream length at EOF.
        eof_offset: u64,
    },
}

impl MllpError {
    /// True for reports about a frame that was still delivered (`MissingCr`); false for
    /// errors where bytes were dropped.
    pub fn is_warning(&self) -> bool {
        matches!(self, MllpError::MissingCr { .. })
    }

    /// True when the sender completed a block (sent its `FS`) that did not produce a
    /// [`Event::Frame`], and so is waiting for an answer (a reject) in this position.
    pub fn awaits_reply(&self) -> bool {
        matches!(
            self,
            MllpError::FrameTooLarge { .. } | MllpError::EmptyFrame { .. }
        )
    }
}

fn describe_byte(found: &Option<u8>) -> String {
    match found {
        Some(b) => format!("0x{b:02X}"),
        None => "end of stream".to_owned(),
    }
}

/// What the decoder produced, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete payload, byte-identical to what the sender framed.
    Frame(Vec<u8>),
    /// Something wrong at a known place in the stream; decoding continues after it.
    Error(MllpError),
}

/// True if `payload` can be framed losslessly: non-empty and free of `VT` and `FS`.
pub fn is_frameable(payload: &[u8]) -> bool {
    !payload.is_empty() && !payload.iter().any(|&b| b == START || b == END)
}

/// Appends `VT` + `payload` + `FS` + `CR` to `out`. The payload is copied unchanged; it must
/// satisfy [`is_frameable`] for the receiver to see it as one frame.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(payload.len().saturating_add(3));
    out.push(START);
    out.extend_from_slice(payload);
    out.push(END);
    out.push(CR);
}

fn is_between_frames_whitespace(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | b' ' | b'\t')
}

#[derive(Debug, Clone, Copy)]
struct OpenFrame {
    offset: u64,
    number: u64,
    len: u64,
    oversized: bool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Between,
    InFrame(OpenFrame),
    AfterEnd { frame: u64 },
}

#[derive(Debug, Clone, Copy)]
struct GarbageRun {
    start: u64,
    end: u64,
}

/// Incremental MLLP decoder. Feed it with [`push`](Self::push), take results with
/// [`next_event`](Self::next_event), and call [`finish`](Self::finish) at EOF.
#[derive(Debug)]
pub struct MllpDecoder {
    limits: MllpLimits,
    state: State,
    /// Payload of the open frame; empty once the frame is oversized.
    payload: Vec<u8>,
    garbage: Option<GarbageRun>,
    events: VecDeque<Event>,
    /// Total payload bytes of the `Frame` events in `events`.
    queued_bytes: usize,
    /// Stream offset of the next byte to be pushed.
    stream_offset: u64,
    frames_opened: u64,
}

impl MllpDecoder {
    /// A decoder at the start of a stream.
    pub fn new(limits: MllpLimits) -> Self {
        Self {
            limits,
            state: State::Between,
            payload: Vec::new(),
            garbage: None,
            events: VecDeque::new(),
            queued_bytes: 0,
            stream_offset: 0,
            frames_opened: 0,
        }
    }

    /// Feeds the next bytes of the stream, split anywhere. Each byte is examined once.
    pub fn push(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let done = (bytes.len() - rest.len()) as u64;
            let here = self.stream_offset.saturating_add(done);
            let used = match self.state {
                State::Between => self.scan_between(rest, here),
                State::InFrame(open) => self.scan_in_frame(open, rest, here),
                State::AfterEnd { frame } => self.after_end(frame, rest, here),
            };
            rest = rest.get(used..).unwrap_or(&[]);
        }
        self.stream_offset = self.stream_offset.saturating_add(bytes.len() as u64);
    }

    /// The next frame or error, in stream order; `None` until more bytes are pushed.
    pub fn next_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        if let Event::Frame(payload) = &event {
            self.queued_bytes = self.queued_bytes.saturating_sub(payload.len());
        }
        Some(event)
    }

    /// Call at EOF, after draining [`next_event`](Self::next_event). Reports a frame left
    /// open ([`MllpError::Truncated`]), a garbage run not yet reported, or an `FS` that was
    /// the last byte ([`MllpError::MissingCr`] with `found: None`); `None` for a clean end.
    /// The decoder is left between frames.
    pub fn finish(&mut self) -> Option<MllpError> {
        match std::mem::replace(&mut self.state, State::Between) {
            State::Between => self.take_garbage(),
            State::InFrame(open) => {
                self.payload = Vec::new();
                Some(MllpError::Truncated {
                    offset: open.offset,
                    frame: open.number,
                    len: open.len,
                    eof_offset: self.stream_offset,
                })
            }
            State::AfterEnd { frame } => Some(MllpError::MissingCr {
                offset: self.stream_offset,
                frame,
                found: None,
            }),
        }
    }

    /// Payload bytes held: the open frame (at most `max_frame_bytes`) plus frames not yet
    /// taken. Draining after every push keeps this at most the limit plus one push.
    pub fn buffered(&self) -> usize {
        self.payload.len().saturating_add(self.queued_bytes)
    }

    /// Between frames: skip whitespace, note garbage, open a frame at the next `VT`.
    fn scan_between(&mut self, rest: &[u8], here: u64) -> usize {
        let start_at = rest.iter().position(|&b| b == START);
        let region = match start_at {
            Some(p) => rest.get(..p).unwrap_or(rest),
            None => rest,
        };
        let first = region
            .iter()
            .position(|&b| !is_between_frames_whitespace(b));
        let last = region
            .iter()
            .rposition(|&b| !is_between_frames_whitespace(b));
        if let (Some(first), Some(last)) = (first, last) {
            let end = here.saturating_add(last as u64 + 1);
            match &mut self.garbage {
                Some(run) => run.end = end,
                None => {
                    self.garbage = Some(GarbageRun {
                        start: here.saturating_add(first as u64),
                        end,
                    })
                }
            }
        }
        match start_at {
            Some(p) => {
                if let Some(err) = self.take_garbage() {
                    self.events.push_back(Event::Error(err));
                }
                self.open_frame(here.saturating_add(p as u64));
                p + 1
            }
            None => rest.len(),
        }
    }

    /// Inside a frame: take payload up to the next `VT` or `FS`.
    fn scan_in_frame(&mut self, mut open: OpenFrame, rest: &[u8], here: u64) -> usize {
        let stop = rest.iter().position(|&b| b == START || b == END);
        let run = match stop {
            Some(p) => rest.get(..p).unwrap_or(rest),
            None => rest,
        };
        self.append_payload(&mut open, run);
        match stop.and_then(|p| rest.get(p)) {
            None => {
                self.state = State::InFrame(open);
                rest.len()
            }
            Some(&END) => {
                self.close_frame(open);
                self.state = State::AfterEnd { frame: open.number };
                run.len() + 1
            }
            Some(_) => {
                let restart_offset = here.saturating_add(run.len() as u64);
                self.payload = Vec::new();
                self.events
                    .push_back(Event::Error(MllpError::FrameAbandoned {
                        offset: open.offset,
                        frame: open.number,
                        len: open.len,
                        restart_offset,
                    }));
                self.open_frame(restart_offset);
                run.len() + 1
            }
        }
    }

    /// Just after an `FS`: consume the `CR`, or warn and leave the byte for `Between`.
    fn after_end(&mut self, frame: u64, rest: &[u8], here: u64) -> usize {
        self.state = State::Between;
        match rest.first() {
            Some(&CR) => 1,
            other => {
                self.events.push_back(Event::Error(MllpError::MissingCr {
                    offset: here,
                    frame,
                    found: other.copied(),
                }));
                0
            }
        }
    }

    fn open_frame(&mut self, offset: u64) {
        self.frames_opened = self.frames_opened.saturating_add(1);
        self.payload.clear();
        self.state = State::InFrame(OpenFrame {
            offset,
            number: self.frames_opened,
            len: 0,
            oversized: false,
        });
    }

    fn append_payload(&mut self, open: &mut OpenFrame, run: &[u8]) {
        open.len = open.len.saturating_add(run.len() as u64);
        if open.oversized {
            return;
        }
        if open.len > self.limits.max_frame_bytes as u64 {
            open.oversized = true;
            self.payload = Vec::new();
        } else {
            self.payload.extend_from_slice(run);
        }
    }

    fn close_frame(&mut self, open: OpenFrame) {
        let event = if open.oversized {
            Event::Error(MllpError::FrameTooLarge {
                offset: open.offset,
                frame: open.number,
                len: open.len,
                limit: self.limits.max_frame_bytes,
            })
        } else if open.len == 0 {
            Event::Error(MllpError::EmptyFrame {
                offset: open.offset,
                frame: open.number,
            })
        } else {
            let payload = std::mem::take(&mut self.payload);
            self.queued_bytes = self.queued_bytes.saturating_add(payload.len());
            Event::Frame(payload)
        };
        self.events.push_back(event);
    }

    fn take_garbage(&mut self) -> Option<MllpError> {
        self.garbage.take().map(|run| MllpError::Garbage {
            offset: run.start,
            len: run.end.saturating_sub(run.start),
            after_frame: self.frames_opened,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    fn decoder(max_frame_bytes: usize) -> MllpDecoder {
        MllpDecoder::new(MllpLimits { max_frame_bytes })
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(payload, &mut out);
        out
    }

    fn drain(dec: &mut MllpDecoder) -> Vec<Event> {
        std::iter::from_fn(|| dec.next_event()).collect()
    }

    /// Pushes `stream` in chunks whose sizes cycle through `sizes` (0 counts as 1),
    /// draining after every push; returns all events and the result of `finish`.
    fn decode_chunked(
        dec: &mut MllpDecoder,
        stream: &[u8],
        sizes: &[usize],
    ) -> (Vec<Event>, Option<MllpError>) {
        let mut events = Vec::new();
        let mut rest = stream;
        let mut i = 0;
        while !rest.is_empty() {
            let size = sizes
                .get(i % sizes.len().max(1))
                .copied()
                .unwrap_or(1)
                .max(1);
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            dec.push(chunk);
            events.extend(drain(dec));
            rest = tail;
            i += 1;
        }
        let end = dec.finish();
        (events, end)
    }

    fn decode_whole(max: usize, stream: &[u8]) -> (Vec<Event>, Option<MllpError>) {
        let mut dec = decoder(max);
        dec.push(stream);
        let events = drain(&mut dec);
        (events, dec.finish())
    }

    fn frames(payloads: &[&[u8]]) -> Vec<Event> {
        payloads.iter().map(|p| Event::Frame(p.to_vec())).collect()
    }

    /// Tiny deterministic PRNG (xorshift64*) for chunk sizes.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    #[test]
    fn encode_frame_wraps_payload_in_vt_fs_cr_and_appends() {
        let mut out = b"prev".to_vec();
        encode_frame(b"MSH|^~\\&|\r", &mut out);
        assert_eq!(out, b"prev\x0bMSH|^~\\&|\r\x1c\x0d");
    }

    #[test]
    fn is_frameable_rejects_empty_and_delimiter_bytes() {
        assert!(is_frameable(b"MSH|"));
        assert!(!is_frameable(b""));
        assert!(!is_frameable(b"a\x0bb"));
        assert!(!is_frameable(b"a\x1c"));
    }

    #[test]
    fn single_frame_is_delivered_with_clean_finish() {
        let (events, end) = decode_whole(1024, &frame(b"MSH|1\r"));
        assert_eq!(events, frames(&[b"MSH|1\r"]));
        assert_eq!(end, None);
    }

    #[test]
    fn several_frames_in_one_push_come_out_in_order() {
        let mut stream = Vec::new();
        for p in [&b"MSH|1\r"[..], b"MSH|2\r", b"MSH|3\r"] {
            encode_frame(p, &mut stream);
        }
        let (events, end) = decode_whole(1024, &stream);
        assert_eq!(events, frames(&[b"MSH|1\r", b"MSH|2\r", b"MSH|3\r"]));
        assert_eq!(end, None);
    }

    #[test]
    fn frame_pushed_one_byte_at_a_time_reassembles() {
        let mut stream = frame(b"MSH|first\rPID|1\r");
        stream.extend(frame(b"MSH|second\r"));
        let mut dec = decoder(1024);
        let (events, end) = decode_chunked(&mut dec, &stream, &[1]);
        assert_eq!(events, frames(&[b"MSH|first\rPID|1\r", b"MSH|second\r"]));
        assert_eq!(end, None);
    }

    #[test]
    fn frame_is_delivered_when_fs_arrives_without_waiting_for_cr() {
        let mut dec = decoder(1024);
        dec.push(b"\x0bMSH|1\r\x1c");
        assert_eq!(dec.next_event(), Some(Event::Frame(b"MSH|1\r".to_vec())));
        dec.push(b"\r");
        assert_eq!(dec.next_event(), None);
        assert_eq!(dec.finish(), None);
    }

    #[test]
    fn payload_bytes_are_passed_through_unaltered() {
        // ISO-2022-JP name, Shift_JIS bytes, UTF-8, LF, NUL, ESC, DEL, 0xFF.
        let payload = b"PID|||\x1b$B;3ED\x1b(B\r\x93\xfa\x96\x7b\xe6\x97\xa5\n\x00\x7f\xff";
        let (events, end) = decode_whole(1024, &frame(payload));
        assert_eq!(events, frames(&[payload]));
        assert_eq!(end, None);
    }

    #[test]
    fn whitespace_between_frames_is_ignored_silently() {
        let mut stream = b"\r\n \t".to_vec();
        stream.extend(frame(b"A"));
        stream.extend(b"\n\r\n  ");
        stream.extend(frame(b"B"));
        stream.extend(b"\r\n");
        let (events, end) = decode_whole(1024, &stream);
        assert_eq!(events, frames(&[b"A", b"B"]));
        assert_eq!(end, None);
    }

    #[test]
    fn garbage_between_frames_is_one_error_with_offset_and_length() {
        let mut stream = frame(b"A"); // offsets 0..4
        stream.extend(b"\r\nGET / HTTP/1.1\r\n"); // garbage starts at 6, 14 bytes
        stream.extend(frame(b"B"));
        let (events, end) = decode_whole(1024, &stream);
        assert_eq!(
            events,
            vec![
                Event::Frame(b"A".to_vec()),
                Event::Error(MllpError::Garbage {
                    offset: 6,
                    len: 14,
                    after_frame: 1
                }),
                Event::Frame(b"B".to_vec()),
            ]
        );
        assert_eq!(end, None);
    }

    #[test]
    fn garbage_run_split_across_pushes_is_still_one_error() {
        let mut stream = b"xx \r\n yy".to_vec();
        stream.extend(frame(b"B"));
        let mut dec = decoder(1024);
        let (events, end) = decode_chunked(&mut dec, &stream, &[1, 2]);
        assert_eq!(
            events,
            vec![
                Event::Error(MllpError::Garbage {
                    offset: 0,
                    len: 8,
                    after_frame: 0
                }),
                Event::Frame(b"B".to_vec()),
            ]
        );
        assert_eq!(end, None);
    }

    #[test]
    fn garbage_at_end_of_stream_is_reported_by_finish() {
        let mut stream = frame(b"A");
        stream.extend(b"junk\r\n");
        let (events, end) = decode_whole(1024, &stream);
        assert_eq!(events, frames(&[b"A"]));
        assert_eq!(
            end,
            Some(MllpError::Garbage {
                offset: 4,
                len: 4,
                after_frame: 1
            })
        );
    }

    #[test]
    fn stray_fs_outside_a_frame_is_garbage() {
        let mut stream = frame(b"A");
        stream.extend(b"\x1c\r");
        stream.extend(frame(b"B"));
        let (events, _) = decode_whole(1024, &stream);
        assert_eq!(
            events,
            vec![
                Event::Frame(b"A".to_vec()),
                Event::Error(MllpError::Garbage {
                    offset: 4,
                    len: 1,
                    after_frame: 1
                }),
                Event::Frame(b"B".to_vec()),
            ]
        );
    }

    #[test]
    fn vt_inside_frame_abandons_partial_frame_and_starts_new_one() {
        let mut stream = b"\x0bMSH|half".to_vec(); // VT at 0, 8 payload bytes
        stream.extend(frame(b"MSH|whole\r")); // VT at 9
        let mut dec = decoder(1024);
        let (events, end) = decode_chunked(&mut dec, &stream, &[3]);
        assert_eq!(
            events,
            vec![
                Event::Error(MllpError::FrameAbandoned {
                    offset: 0,
                    frame: 1,
                    len: 8,
                    restart_offset: 9
                }),
                Event::Frame(b"MSH|whole\r".to_vec()),
            ]
        );
        assert_eq!(end, None);
    }

    #[test]
    fn empty_frame_is_an_error_not_a_frame() {
        let mut stream = frame(b"A");
        stream.extend(frame(b""));
        stream.extend(frame(b"B"));
        let (events, end) = decode_whole(1024, &stream);
        assert_eq!(
            events,
            vec![
                Event::Frame(b"A".to_vec()),
                Event::Error(MllpError::EmptyFrame {
                    offset: 4,
                    frame: 2
                }),
                Event::Frame(b"B".to_vec()),
            ]
        );
        assert_eq!(end, None);
    }

    #[test]
    fn fs_without_cr_delivers_frame_then_warns() {
        let mut stream = b"\x0bA\x1c".to_vec(); // no CR; next VT at 3
        stream.extend(frame(b"B"));
        let (events, end) = decode_whole(1024, &stream);
        assert_eq!(
            events,
            vec![
                Event::Frame(b"A".to_vec()),
                Event::Error(MllpError::MissingCr {
                    offset: 3,
                    frame: 1,
                    found: Some(START)
                }),
                Event::Frame(b"B".to_vec()),
            ]
        );
        assert_eq!(end, None);
    }

    #[test]
    fn fs_followed_by_lf_warns_once_and_lf_is_then_ignored() {
        let stream = b"\x0bA\x1c\n\x0bB\x1c\n";
        let (events, end) = decode_whole(1024, stream);
        assert_eq!(
            events,
            vec![
                Event::Frame(b"A".to_vec()),
                Event::Error(MllpError::MissingCr {
                    offset: 3,
                    frame: 1,
                    found: Some(b'\n')
                }),
                Event::Frame(b"B".to_vec()),
                Event::Error(MllpError::MissingCr {
                    offset: 7,
                    frame: 2,
                    found: Some(b'\n')
                }),
            ]
        );
        assert_eq!(end, None);
    }

    #[test]
    fn finish_right_after_fs_warns_missing_cr_at_end_of_stream() {
        let (events, end) = decode_whole(1024, b"\x0bA\x1c");
        assert_eq!(events, frames(&[b"A"]));
        assert_eq!(
            end,
            Some(MllpError::MissingCr {
                offset: 3,
                frame: 1,
                found: None
            })
        );
    }

    #[test]
    fn finish_inside_a_frame_reports_truncation_with_offset_and_frame() {
        let mut stream = frame(b"A");
        stream.extend(b"\r\n\x0bMSH|cut"); // VT at 6, 7 payload bytes, EOF at 14
        let mut dec = decoder(1024);
        let (events, end) = decode_chunked(&mut dec, &stream, &[5]);
        assert_eq!(events, frames(&[b"A"]));
        assert_eq!(
            end,
            Some(MllpError::Truncated {
                offset: 6,
                frame: 2,
                len: 7,
                eof_offset: 14
            })
        );
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn oversized_frame_is_discarded_and_reported_at_its_end_then_resyncs() {
        let mut stream = frame(b"ok");
        stream.extend(frame(b"0123456789")); // VT at 5
        stream.extend(frame(b"fine"));
        let mut dec = decoder(4);
        let (events, end) = decode_chunked(&mut dec, &stream, &[2]);
        assert_eq!(
            events,
            vec![
                Event::Frame(b"ok".to_vec()),
                Event::Error(MllpError::FrameTooLarge {
                    offset: 5,
                    frame: 2,
                    len: 10,
                    limit: 4
                }),
                Event::Frame(b"fine".to_vec()),
            ]
        );
        assert_eq!(end, None);
    }

    #[test]
    fn frame_exactly_at_the_limit_is_delivered_and_one_more_byte_is_not() {
        let (events, _) = decode_whole(4, &frame(b"four"));
        assert_eq!(events, frames(&[b"four"]));
        let (events, _) = decode_whole(4, &frame(b"five!"));
        assert!(matches!(
            events.as_slice(),
            [Event::Error(MllpError::FrameTooLarge { len: 5, .. })]
        ));
    }

    #[test]
    fn hundred_mib_frame_with_one_mib_limit_keeps_memory_bounded() {
        const LIMIT: usize = 1024 * 1024;
        const CHUNK: usize = 64 * 1024;
        const TOTAL: usize = 100 * 1024 * 1024;
        let mut dec = decoder(LIMIT);
        let body = vec![b'A'; CHUNK];
        dec.push(&[START]);
        let mut max_seen = 0;
        for _ in 0..TOTAL / CHUNK {
            dec.push(&body);
            max_seen = max_seen.max(dec.buffered());
            assert!(dec.next_event().is_none());
        }
        dec.push(&[END, CR]);
        dec.push(&frame(b"MSH|after\r"));
        assert!(max_seen <= LIMIT, "buffered peaked at {max_seen}");
        assert_eq!(
            drain(&mut dec),
            vec![
                Event::Error(MllpError::FrameTooLarge {
                    offset: 0,
                    frame: 1,
                    len: TOTAL as u64,
                    limit: LIMIT
                }),
                Event::Frame(b"MSH|after\r".to_vec()),
            ]
        );
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn buffered_counts_open_frame_and_undrained_frames() {
        let mut dec = decoder(1024);
        let mut stream = frame(b"12345");
        stream.extend(b"\x0bab");
        dec.push(&stream);
        assert_eq!(dec.buffered(), 7);
        assert_eq!(dec.next_event(), Some(Event::Frame(b"12345".to_vec())));
        assert_eq!(dec.buffered(), 2);
    }

    #[test]
    fn offsets_and_frame_numbers_continue_across_pushes() {
        let mut dec = decoder(1024);
        dec.push(&frame(b"A")); // 0..4, frame 1
        dec.push(b"\x0b\x1c\r"); // 4..7, frame 2 empty
        dec.push(b"zz"); // 7..9 garbage
        dec.push(&frame(b"")); // VT at 9, frame 3 empty
        assert_eq!(
            drain(&mut dec),
            vec![
                Event::Frame(b"A".to_vec()),
                Event::Error(MllpError::EmptyFrame {
                    offset: 4,
                    frame: 2
                }),
                Event::Error(MllpError::Garbage {
                    offset: 7,
                    len: 2,
                    after_frame: 2
                }),
                Event::Error(MllpError::EmptyFrame {
                    offset: 9,
                    frame: 3
                }),
            ]
        );
    }

    #[test]
    fn only_missing_cr_is_a_warning_and_only_completed_blocks_await_reply() {
        let missing = MllpError::MissingCr {
            offset: 0,
            frame: 1,
            found: None,
        };
        let too_large = MllpError::FrameTooLarge {
            offset: 0,
            frame: 1,
            len: 9,
            limit: 1,
        };
        let empty = MllpError::EmptyFrame {
            offset: 0,
            frame: 1,
        };
        let garbage = MllpError::Garbage {
            offset: 0,
            len: 1,
            after_frame: 0,
        };
        let abandoned = MllpError::FrameAbandoned {
            offset: 0,
            frame: 1,
            len: 1,
            restart_offset: 2,
        };
        let truncated = MllpError::Truncated {
            offset: 0,
            frame: 1,
            len: 1,
            eof_offset: 2,
        };
        assert!(missing.is_warning());
        for e in [&too_large, &empty, &garbage, &abandoned, &truncated] {
            assert!(!e.is_warning(), "{e}");
        }
        assert!(too_large.awaits_reply() && empty.awaits_reply());
        for e in [&missing, &garbage, &abandoned, &truncated] {
            assert!(!e.awaits_reply(), "{e}");
        }
    }

    #[test]
    fn error_messages_say_where() {
        let e = MllpError::FrameTooLarge {
            offset: 1234,
            frame: 7,
            len: 99,
            limit: 10,
        };
        let text = e.to_string();
        assert!(text.contains("1234") && text.contains("frame 7"), "{text}");
        let w = MllpError::MissingCr {
            offset: 5,
            frame: 2,
            found: Some(b'\n'),
        };
        assert_eq!(
            w.to_string(),
            "frame 2: end block not followed by CR at stream offset 5 (found 0x0A)"
        );
    }

    #[test]
    fn one_byte_pushes_of_a_large_frame_take_linear_time() {
        // 2 MiB pushed one byte at a time: linear work is a few million steps; a decoder
        // that rescanned its buffer per push would do ~2 * 10^12 and blow the budget.
        const LEN: usize = 2 * 1024 * 1024;
        let payload: Vec<u8> = (0..LEN).map(|i| b'a' + (i % 26) as u8).collect();
        let stream = frame(&payload);
        const BUDGET: Duration = Duration::from_secs(20);
        let mut dec = decoder(LEN);
        let started = Instant::now();
        for (i, b) in stream.iter().enumerate() {
            dec.push(std::slice::from_ref(b));
            // Checked as it goes, so a quadratic decoder fails instead of hanging.
            if i % 1024 == 0 {
                let elapsed = started.elapsed();
                assert!(elapsed < BUDGET, "{i} one-byte pushes took {elapsed:?}");
            }
        }
        assert_eq!(dec.next_event(), Some(Event::Frame(payload)));
        let elapsed = started.elapsed();
        assert!(elapsed < BUDGET, "took {elapsed:?}");
    }

    fn ssmix2_fixture_dir() -> PathBuf {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest
            .ancestors()
            .map(|dir| dir.join("shared/fixtures/ssmix2/sampleData"))
            .find(|dir| dir.is_dir())
            .unwrap_or_else(|| {
                panic!(
                    "no shared/fixtures/ssmix2/sampleData above {}",
                    manifest.display()
                )
            })
    }

    fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).expect("read fixture dir");
        for entry in entries {
            let path = entry.expect("fixture dir entry").path();
            if path.is_dir() {
                collect_files(&path, out);
            } else {
                out.push(path);
            }
        }
    }

    #[test]
    fn ssmix2_fixtures_survive_framing_and_random_chunking_byte_identical() {
        let mut files = Vec::new();
        collect_files(&ssmix2_fixture_dir(), &mut files);
        files.sort();
        assert!(files.len() >= 20, "only {} fixture files", files.len());
        let payloads: Vec<Vec<u8>> = files
            .iter()
            .map(|path| {
                let mut bytes = std::fs::read(path).expect("read fixture");
                // The stored block terminator is the frame end, not payload.
                if bytes.last() == Some(&END) {
                    bytes.pop();
                }
                assert!(is_frameable(&bytes), "{} not frameable", path.display());
                bytes
            })
            .collect();
        assert!(
            payloads
                .iter()
                .any(|p| p.windows(3).any(|w| w == b"\x1b$B")),
            "fixtures should include ISO-2022-JP text"
        );
        let mut stream = Vec::new();
        for p in &payloads {
            encode_frame(p, &mut stream);
        }
        let expected: Vec<Event> = payloads.iter().cloned().map(Event::Frame).collect();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for round in 0..16 {
            let sizes: Vec<usize> = match round {
                0 => vec![1],
                1 => vec![stream.len()],
                _ => (0..64).map(|_| 1 + (rng.next() % 4096) as usize).collect(),
            };
            let mut dec = MllpDecoder::new(MllpLimits::default());
            let (events, end) = decode_chunked(&mut dec, &stream, &sizes);
            assert_eq!(events, expected, "chunk sizes {sizes:?}");
            assert_eq!(end, None);
            assert_eq!(dec.buffered(), 0);
        }
    }

    fn stream_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            6 => any::<u8>(),
            2 => Just(START),
            2 => Just(END),
            2 => Just(CR),
            1 => Just(b'\n'),
            1 => Just(b' '),
        ]
    }

    fn payload_byte() -> impl Strategy<Value = u8> {
        any::<u8>().prop_map(|b| if b == START || b == END { b'x' } else { b })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_stay_within_limit_plus_chunk(
            stream in prop::collection::vec(stream_byte(), 0..4096),
            sizes in prop::collection::vec(1usize..=97, 1..16),
            limit in 0usize..=64,
        ) {
            let mut dec = decoder(limit);
            let mut rest = stream.as_slice();
            let mut i = 0;
            while !rest.is_empty() {
                let size = sizes[i % sizes.len()].min(rest.len());
                let (chunk, tail) = rest.split_at(size);
                dec.push(chunk);
                prop_assert!(dec.buffered() <= limit + chunk.len());
                for event in drain(&mut dec) {
                    if let Event::Frame(p) = event {
                        prop_assert!(is_frameable(&p) && p.len() <= limit);
                    }
                }
                prop_assert!(dec.buffered() <= limit);
                rest = tail;
                i += 1;
            }
            let _ = dec.finish();
            prop_assert_eq!(dec.buffered(), 0);
        }

        #[test]
        fn decoding_does_not_depend_on_how_the_stream_is_split(
            stream in prop::collection::vec(stream_byte(), 0..4096),
            sizes in prop::collection::vec(1usize..=97, 1..16),
            limit in 0usize..=64,
        ) {
            let whole = decode_whole(limit, &stream);
            let chunked = decode_chunked(&mut decoder(limit), &stream, &sizes);
            prop_assert_eq!(whole, chunked);
        }

        #[test]
        fn encoded_payloads_decode_exactly_under_any_chunking(
            payloads in prop::collection::vec(
                prop::collection::vec(payload_byte(), 1..512), 0..24),
            sizes in prop::collection::vec(1usize..=300, 1..16),
        ) {
            let mut stream = Vec::new();
            for p in &payloads {
                encode_frame(p, &mut stream);
            }
            let (events, end) = decode_chunked(&mut decoder(512), &stream, &sizes);
            let expected: Vec<Event> = payloads.into_iter().map(Event::Frame).collect();
            prop_assert_eq!(events, expected);
            prop_assert_eq!(end, None);
        }
    }
}
