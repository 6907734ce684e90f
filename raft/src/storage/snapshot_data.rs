//! The bytes of a snapshot as openraft moves them.
//!
//! A cut (the group's whole state, encoded) is shared: the state machine keeps the last one and
//! hands every sender a reader over the same bytes, so a replica that keeps failing to receive it
//! (a node that is down) costs a reference count per attempt, not a walk of the group's state.
//! A snapshot being received is a growing buffer of its own.

use std::io::{Cursor, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// openraft's `SnapshotData` for every group: readable, seekable and writable.
#[derive(Debug)]
pub enum SnapshotData {
    /// A cut being sent: read-only bytes shared with the state machine's cache.
    Shared(Cursor<Arc<[u8]>>),
    /// A snapshot being received (or built, empty).
    Owned(Cursor<Vec<u8>>),
}

impl SnapshotData {
    pub fn shared(bytes: Arc<[u8]>) -> Self {
        SnapshotData::Shared(Cursor::new(bytes))
    }

    pub fn empty() -> Self {
        SnapshotData::Owned(Cursor::new(Vec::new()))
    }

    /// All the bytes, whatever the position.
    pub fn bytes(&self) -> &[u8] {
        match self {
            SnapshotData::Shared(c) => c.get_ref(),
            SnapshotData::Owned(c) => c.get_ref(),
        }
    }

    /// The writable form: a shared cut is copied the first time it is written to (openraft only
    /// writes to snapshots it receives, so this does not happen in practice).
    fn owned(&mut self) -> &mut Cursor<Vec<u8>> {
        if let SnapshotData::Shared(c) = self {
            let mut owned = Cursor::new(c.get_ref().to_vec());
            owned.set_position(c.position());
            *self = SnapshotData::Owned(owned);
        }
        match self {
            SnapshotData::Owned(c) => c,
            SnapshotData::Shared(_) => unreachable!("converted above"),
        }
    }
}

impl AsyncRead for SnapshotData {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapshotData::Shared(c) => Pin::new(c).poll_read(cx, buf),
            SnapshotData::Owned(c) => Pin::new(c).poll_read(cx, buf),
        }
    }
}

impl AsyncSeek for SnapshotData {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> std::io::Result<()> {
        match self.get_mut() {
            SnapshotData::Shared(c) => Pin::new(c).start_seek(position),
            SnapshotData::Owned(c) => Pin::new(c).start_seek(position),
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        match self.get_mut() {
            SnapshotData::Shared(c) => Pin::new(c).poll_complete(cx),
            SnapshotData::Owned(c) => Pin::new(c).poll_complete(cx),
        }
    }
}

impl AsyncWrite for SnapshotData {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(self.get_mut().owned()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn shared_bytes_read_from_any_offset_without_copying() {
        let bytes: Arc<[u8]> = Arc::from(&b"0123456789"[..]);
        let mut data = SnapshotData::shared(bytes.clone());
        data.seek(SeekFrom::Start(4)).await.unwrap();
        let mut out = [0u8; 3];
        data.read_exact(&mut out).await.unwrap();
        assert_eq!(&out, b"456");
        assert_eq!(Arc::strong_count(&bytes), 2, "the reader shares the cut");
        assert_eq!(data.bytes(), b"0123456789");
    }

    #[tokio::test]
    async fn received_chunks_land_at_their_offsets() {
        let mut data = SnapshotData::empty();
        data.write_all(b"abc").await.unwrap();
        data.seek(SeekFrom::Start(3)).await.unwrap();
        data.write_all(b"def").await.unwrap();
        assert_eq!(data.bytes(), b"abcdef");
    }

    #[tokio::test]
    async fn writing_to_a_shared_cut_copies_it_first() {
        let bytes: Arc<[u8]> = Arc::from(&b"xyz"[..]);
        let mut data = SnapshotData::shared(bytes.clone());
        data.seek(SeekFrom::Start(1)).await.unwrap();
        data.write_all(b"Y").await.unwrap();
        assert_eq!(data.bytes(), b"xYz");
        assert_eq!(&*bytes, b"xyz", "the shared cut is untouched");
    }
}
