//! Minidote's TCP framing, shared by the relay and the Python binding:
//! a 4-byte big-endian length, then the frame (PROTOCOL.md §9).
//!
//! The framing is tokio-util's [`LengthDelimitedCodec`], used through
//! `FramedRead`/`FramedWrite`, which keep partial frames in their own
//! buffer, so a read is cancel-safe (a `select!` may drop it at any
//! await). Around it, [`FrameCodec`] adds what a public endpoint needs:
//!
//! * the declared length and the frame's first two bytes (version and tag)
//!   go to a [`Check`] before any of the body is read, so a frame too large
//!   for its kind, or of a kind not allowed yet, is refused at once;
//! * nothing is reserved for a declared length: the buffer grows as bytes
//!   arrive, so a peer that declares 64 MiB and sends nothing costs what it
//!   sent, not 64 MiB.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Decides, from the declared length and the first (up to) two bytes of a
/// frame, whether it may be read.
pub trait Check {
    /// The error of a refused or broken frame.
    type Error: From<std::io::Error>;
    /// `Ok` if a frame of `len` bytes starting with `head` may be read.
    fn check(&self, head: &[u8], len: usize) -> Result<(), Self::Error>;
    /// The largest length any frame may have.
    fn most(&self) -> usize;
}

/// A plain maximum length.
#[derive(Clone, Copy, Debug)]
pub struct MaxLen(pub usize);

/// A frame over a [`MaxLen`]: its declared length and the limit.
#[derive(Debug)]
pub enum LenError {
    /// Declared length, limit.
    TooLarge(usize, usize),
    /// The connection failed or ended inside a frame.
    Io(std::io::Error),
}

impl From<std::io::Error> for LenError {
    fn from(e: std::io::Error) -> Self {
        LenError::Io(e)
    }
}

impl Check for MaxLen {
    type Error = LenError;
    fn check(&self, _head: &[u8], len: usize) -> Result<(), LenError> {
        if len > self.0 {
            Err(LenError::TooLarge(len, self.0))
        } else {
            Ok(())
        }
    }
    fn most(&self) -> usize {
        self.0
    }
}

/// The codec: decodes frames that pass `C`, encodes any frame.
#[derive(Debug)]
pub struct FrameCodec<C> {
    inner: LengthDelimitedCodec,
    /// What the next frame must pass; change it between frames (for
    /// example once the handshake is done).
    pub check: C,
    /// The current frame's head passed the check.
    checked: bool,
}

impl<C: Check> FrameCodec<C> {
    /// A codec whose frames must pass `check`.
    pub fn new(check: C) -> Self {
        let inner = LengthDelimitedCodec::builder()
            .length_field_type::<u32>()
            .big_endian()
            .max_frame_length(usize::MAX)
            .new_codec();
        FrameCodec {
            inner,
            check,
            checked: false,
        }
    }
}

impl<C: Check> Decoder for FrameCodec<C> {
    type Item = BytesMut;
    type Error = C::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, C::Error> {
        let Some(len) = src.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        let head = len.min(2);
        if src.len() < 4 + head {
            if len > self.check.most() {
                // Over every limit: refused without waiting for the head.
                self.check.check(&src[4..], len)?;
            }
            return Ok(None);
        }
        if !self.checked {
            self.check.check(&src[4..4 + head], len)?;
            self.checked = true;
        }
        if src.len() < 4 + len {
            // Not reserved: the buffer grows only as the bytes arrive.
            return Ok(None);
        }
        self.checked = false;
        self.inner.set_max_frame_length(self.check.most().max(len));
        Ok(self.inner.decode(src)?)
    }
}

impl<C> Encoder<Bytes> for FrameCodec<C> {
    type Error = std::io::Error;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        // Decoding narrows the shared codec's limit; writing has none.
        self.inner.set_max_frame_length(usize::MAX);
        self.inner.encode(frame, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio::io::AsyncWriteExt as _;
    use tokio_util::codec::{FramedRead, FramedWrite};

    /// Refuses tag 3 frames over 10 bytes, anything over 100.
    struct Tagged;

    impl Check for Tagged {
        type Error = LenError;
        fn check(&self, head: &[u8], len: usize) -> Result<(), LenError> {
            let limit = if head.get(1) == Some(&3) { 10 } else { 100 };
            MaxLen(limit).check(head, len)
        }
        fn most(&self) -> usize {
            100
        }
    }

    #[tokio::test]
    async fn frames_round_trip_and_heads_are_checked_before_bodies() {
        let (a, b) = tokio::io::duplex(4096);
        let mut w = FramedWrite::new(a, FrameCodec::new(Tagged));
        let mut r = FramedRead::new(b, FrameCodec::new(Tagged));
        for f in [&b"\x04\x01abc"[..], b"", &[7u8; 90]] {
            w.send(Bytes::copy_from_slice(f)).await.unwrap();
            assert_eq!(&r.next().await.unwrap().unwrap()[..], f);
        }
        // A tag-3 frame declared at 50 bytes is refused with only its head
        // sent: the body is never waited for.
        let inner = w.get_mut();
        inner.write_all(&50u32.to_be_bytes()).await.unwrap();
        inner.write_all(&[4, 3]).await.unwrap();
        inner.flush().await.unwrap();
        assert!(matches!(
            r.next().await,
            Some(Err(LenError::TooLarge(50, 10)))
        ));
        // A length over every limit is refused before the head arrives.
        let (mut a, b) = tokio::io::duplex(64);
        let mut r = FramedRead::new(b, FrameCodec::new(MaxLen(10)));
        a.write_all(&1000u32.to_be_bytes()).await.unwrap();
        assert!(matches!(
            r.next().await,
            Some(Err(LenError::TooLarge(1000, 10)))
        ));
    }

    #[tokio::test]
    async fn a_declared_length_reserves_nothing_and_an_early_end_is_an_error() {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let mut r = FramedRead::new(b, FrameCodec::new(MaxLen(64 << 20)));
        a.write_all(&(64u32 << 20).to_be_bytes()).await.unwrap();
        a.write_all(&[4, 1, 0, 0]).await.unwrap();
        drop(a);
        assert!(matches!(r.next().await, Some(Err(LenError::Io(_)))));
        assert!(
            r.read_buffer().capacity() < 1 << 20,
            "{} bytes held for a frame that sent 4",
            r.read_buffer().capacity()
        );
    }
}
