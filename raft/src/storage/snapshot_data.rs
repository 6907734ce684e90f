//! The bytes of a snapshot as openraft moves them: a file in the node's snapshot directory.
//!
//! A cut (the group's state in the [`super::snapshot_file`] format) is written once and kept while
//! it is valid; every sender reads it through a handle of its own, so a replica that keeps failing
//! to receive it (a node that is down) costs an `open` per attempt, not a walk of the group's state.
//! A snapshot being received is written chunk by chunk to a staging file of its own. Only the
//! meta-only snapshot that `build_snapshot` returns lives in memory, and it is empty.

use std::io::{Cursor, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// openraft's `SnapshotData` for every group: readable, seekable and writable.
#[derive(Debug)]
pub enum SnapshotData {
    /// In memory: the empty data of a meta-only snapshot.
    Memory(Cursor<Vec<u8>>),
    /// A handle on a cut being sent (the state machine owns the file and removes it).
    Cut(tokio::fs::File),
    /// A snapshot being received. Its file is removed with it unless it is installed.
    Received {
        file: tokio::fs::File,
        path: SnapshotFile,
    },
}

/// A snapshot file's path, and the file removed when it is dropped: a cut that is replaced, or a
/// transfer that openraft abandons (the leader moved on to a newer snapshot), leaves nothing on
/// disk. [`SnapshotFile::keep`] hands a received file to its installer.
#[derive(Debug)]
pub struct SnapshotFile(Option<PathBuf>);

impl SnapshotFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        SnapshotFile(Some(path))
    }

    pub(crate) fn path(&self) -> &Path {
        self.0
            .as_deref()
            .expect("a snapshot file's path is there until kept")
    }

    pub(crate) fn keep(mut self) -> PathBuf {
        self.0.take().expect("a snapshot file is kept once")
    }
}

impl Drop for SnapshotFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl SnapshotData {
    pub fn empty() -> Self {
        SnapshotData::Memory(Cursor::new(Vec::new()))
    }

    /// A new file at `path` to receive a snapshot into.
    pub(crate) async fn create(path: PathBuf) -> std::io::Result<Self> {
        let file = tokio::fs::File::create(&path).await?;
        Ok(SnapshotData::Received {
            file,
            path: SnapshotFile::new(path),
        })
    }

    /// The file of a received snapshot and its path. Anything else (a cut or an in-memory snapshot
    /// handed to `install_snapshot` directly, as openraft's storage suite does) is first copied to a
    /// new file at `copy_to()`.
    pub(crate) async fn into_received(
        self,
        copy_to: impl FnOnce() -> PathBuf,
    ) -> std::io::Result<(tokio::fs::File, SnapshotFile)> {
        match self {
            SnapshotData::Received { file, path } => Ok((file, path)),
            mut other => {
                let path = SnapshotFile::new(copy_to());
                let mut file = tokio::fs::File::create(path.path()).await?;
                other.seek(SeekFrom::Start(0)).await?;
                tokio::io::copy(&mut other, &mut file).await?;
                file.flush().await?;
                Ok((file, path))
            }
        }
    }

    /// A reader over the cut at `path`, from its start.
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        Ok(SnapshotData::Cut(tokio::fs::File::from_std(file)))
    }
}

impl AsyncRead for SnapshotData {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapshotData::Memory(c) => Pin::new(c).poll_read(cx, buf),
            SnapshotData::Cut(f) | SnapshotData::Received { file: f, .. } => {
                Pin::new(f).poll_read(cx, buf)
            }
        }
    }
}

impl AsyncSeek for SnapshotData {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> std::io::Result<()> {
        match self.get_mut() {
            SnapshotData::Memory(c) => Pin::new(c).start_seek(position),
            SnapshotData::Cut(f) | SnapshotData::Received { file: f, .. } => {
                Pin::new(f).start_seek(position)
            }
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        match self.get_mut() {
            SnapshotData::Memory(c) => Pin::new(c).poll_complete(cx),
            SnapshotData::Cut(f) | SnapshotData::Received { file: f, .. } => {
                Pin::new(f).poll_complete(cx)
            }
        }
    }
}

impl AsyncWrite for SnapshotData {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            SnapshotData::Memory(c) => Pin::new(c).poll_write(cx, buf),
            SnapshotData::Cut(f) | SnapshotData::Received { file: f, .. } => {
                Pin::new(f).poll_write(cx, buf)
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapshotData::Memory(c) => Pin::new(c).poll_flush(cx),
            SnapshotData::Cut(f) | SnapshotData::Received { file: f, .. } => {
                Pin::new(f).poll_flush(cx)
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapshotData::Memory(c) => Pin::new(c).poll_shutdown(cx),
            SnapshotData::Cut(f) | SnapshotData::Received { file: f, .. } => {
                Pin::new(f).poll_shutdown(cx)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn received_chunks_land_at_their_offsets_and_read_back_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recv");
        let mut data = SnapshotData::create(path.clone()).await.unwrap();
        data.write_all(b"0123").await.unwrap();
        data.seek(SeekFrom::Start(4)).await.unwrap();
        data.write_all(b"456789").await.unwrap();
        data.shutdown().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");

        let mut reader = SnapshotData::open(&path).unwrap();
        assert_eq!(reader.seek(SeekFrom::End(0)).await.unwrap(), 10);
        reader.seek(SeekFrom::Start(4)).await.unwrap();
        let mut out = [0u8; 3];
        reader.read_exact(&mut out).await.unwrap();
        assert_eq!(&out, b"456");
    }

    #[tokio::test]
    async fn an_abandoned_receive_leaves_no_file_and_a_kept_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let abandoned = dir.path().join("a");
        let mut data = SnapshotData::create(abandoned.clone()).await.unwrap();
        data.write_all(b"part").await.unwrap();
        drop(data);
        assert!(!abandoned.exists());

        let kept = dir.path().join("k");
        let data = SnapshotData::create(kept.clone()).await.unwrap();
        let SnapshotData::Received { path, .. } = data else {
            panic!("a receive is a received file");
        };
        assert_eq!(path.keep(), kept);
        assert!(kept.exists());
    }

    #[tokio::test]
    async fn a_meta_only_snapshot_is_empty() {
        let mut data = SnapshotData::empty();
        assert_eq!(data.seek(SeekFrom::End(0)).await.unwrap(), 0);
    }
}
