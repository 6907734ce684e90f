//! Length-prefixed framing: `u32` big-endian payload length, then the payload.
//!
//! ```text
//! +----------------+---------------------------+
//! | len: u32 (BE)  | payload: len bytes        |
//! +----------------+---------------------------+
//! ```
//!
//! The reader never trusts the prefix for allocation: it refuses lengths above the configured
//! maximum and otherwise grows its buffer only as bytes actually arrive.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};

/// Size of the length prefix.
pub(crate) const PREFIX_LEN: usize = 4;

/// Initial buffer for a frame; larger frames grow as their bytes arrive.
const INITIAL_BUFFER: usize = 64 * 1024;

/// Frames up to this size are written with one copy and one write.
const ONE_WRITE_MAX: usize = 64 * 1024;

/// Writes one frame. Fails with `FrameTooLarge` before writing anything if `payload` is too big.
pub(crate) async fn write_frame<W>(writer: &mut W, payload: &[u8], max_len: u32) -> Result<()>
where
    W: AsyncWrite + Unpin,
{
    let len = checked_len(payload.len(), max_len)?;
    if payload.len() <= ONE_WRITE_MAX {
        // One write: with the prefix written apart, QUIC's connection driver (often on the other
        // worker thread) can send the 4 bytes in a packet of their own.
        let mut frame = Vec::with_capacity(PREFIX_LEN + payload.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(payload);
        writer.write_all(&frame).await?;
    } else {
        writer.write_all(&len.to_be_bytes()).await?;
        writer.write_all(payload).await?;
    }
    Ok(())
}

/// Reads one frame. A stream that ends inside the frame yields an `UnexpectedEof` I/O error.
pub(crate) async fn read_frame<R>(reader: &mut R, max_len: u32) -> Result<Bytes>
where
    R: AsyncRead + Unpin,
{
    let mut prefix = [0u8; PREFIX_LEN];
    reader.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix);
    if len > max_len {
        return Err(Error::FrameTooLarge {
            len: len.into(),
            max: max_len,
        });
    }
    let len = len as usize;
    let mut payload = Vec::with_capacity(len.min(INITIAL_BUFFER));
    let read = reader.take(len as u64).read_to_end(&mut payload).await?;
    if read != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("stream ended after {read} of {len} frame bytes"),
        )
        .into());
    }
    Ok(Bytes::from(payload))
}

/// The payload length as it goes on the wire, if it is within `max_len`.
pub(crate) fn checked_len(len: usize, max_len: u32) -> Result<u32> {
    match u32::try_from(len) {
        Ok(l) if l <= max_len => Ok(l),
        _ => Err(Error::FrameTooLarge {
            len: len as u64,
            max: max_len,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let payload = vec![7u8; 10_000];
        // Above the one-write size: prefix and payload go out in two writes.
        let large = vec![9u8; ONE_WRITE_MAX + 1];
        let writer = tokio::spawn(async move {
            write_frame(&mut a, &payload, 1 << 20).await.unwrap();
            write_frame(&mut a, &large, 1 << 20).await.unwrap();
            write_frame(&mut a, b"", 1 << 20).await.unwrap();
        });
        let first = read_frame(&mut b, 1 << 20).await.unwrap();
        assert_eq!(first.len(), 10_000);
        assert!(first.iter().all(|&x| x == 7));
        let second = read_frame(&mut b, 1 << 20).await.unwrap();
        assert_eq!(second.len(), ONE_WRITE_MAX + 1);
        assert!(second.iter().all(|&x| x == 9));
        assert!(read_frame(&mut b, 1 << 20).await.unwrap().is_empty());
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn refuses_oversized_prefix_without_reading_payload() {
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        let err = read_frame(&mut input, 1024).await.unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { max: 1024, .. }));
    }

    #[tokio::test]
    async fn refuses_oversized_payload_on_write() {
        let mut out = Vec::new();
        let err = write_frame(&mut out, &[0u8; 11], 10).await.unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { len: 11, .. }));
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn truncated_frame_is_eof() {
        let mut input: &[u8] = &[0, 0, 0, 5, 1, 2];
        let err = read_frame(&mut input, 1024).await.unwrap_err();
        match err {
            Error::Io(e) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
            other => panic!("unexpected error {other:?}"),
        }
        let mut short_prefix: &[u8] = &[0, 0];
        assert!(read_frame(&mut short_prefix, 1024).await.is_err());
    }
}
