//! The on-disk form of a group's snapshot, so that neither the leader cutting one nor the replica
//! receiving it holds a group's state in memory.
//!
//! ```text
//! "HRLDSNP1"                          magic, 8 bytes
//! { u32 key_len, key, u32 value_len, value }*   every row of the group, in key order (LE lengths)
//! u32::MAX, u64 count                 end mark and the number of rows before it
//! ```
//!
//! Keys are the group's application keys without the group prefix. A reader refuses a file without
//! the magic, one that ends before its end mark, one whose count disagrees, and trailing bytes, so
//! a truncated transfer is never taken for a smaller state.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"HRLDSNP1";
const END: u32 = u32::MAX;
const IO_BUFFER: usize = 1 << 20;

/// Rows of a group: application keys (no group prefix) and their values.
pub(super) type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Write `rows` to a new file at `path`. Returns the number of rows. Not synced: a cut is
/// transient, and a received file is synced by its installer.
pub(super) fn write<K, V>(path: &Path, rows: impl Iterator<Item = Result<(K, V)>>) -> Result<u64>
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut out = BufWriter::with_capacity(IO_BUFFER, File::create(path)?);
    out.write_all(MAGIC)?;
    let mut count = 0u64;
    for row in rows {
        let (k, v) = row?;
        write_field(&mut out, k.as_ref())?;
        write_field(&mut out, v.as_ref())?;
        count += 1;
    }
    out.write_all(&END.to_le_bytes())?;
    out.write_all(&count.to_le_bytes())?;
    out.flush()?;
    Ok(count)
}

fn write_field(out: &mut impl Write, bytes: &[u8]) -> Result<()> {
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|l| *l != END)
        .ok_or_else(|| Error::Codec(format!("snapshot row of {} bytes", bytes.len())))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)?;
    Ok(())
}

/// Reads a snapshot file back in batches of rows.
pub(super) struct Reader {
    input: BufReader<File>,
    /// Rows read so far.
    read: u64,
    done: bool,
}

impl Reader {
    pub(super) fn open(path: &Path) -> Result<Reader> {
        let mut input = BufReader::with_capacity(IO_BUFFER, File::open(path)?);
        let mut magic = [0u8; 8];
        input
            .read_exact(&mut magic)
            .map_err(|_| corrupt("shorter than its header"))?;
        if &magic != MAGIC {
            return Err(corrupt("not a Herald snapshot file"));
        }
        Ok(Reader {
            input,
            read: 0,
            done: false,
        })
    }

    /// The next rows, about `max_bytes` of keys and values at most (at least one row); `None` once
    /// the end mark was read and checked.
    pub(super) fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Rows>> {
        if self.done {
            return Ok(None);
        }
        let mut rows = Vec::new();
        let mut bytes = 0;
        while bytes < max_bytes {
            let Some(key) = self.field()? else {
                self.finish()?;
                break;
            };
            let value = self
                .field()?
                .ok_or_else(|| corrupt("end mark inside a row"))?;
            bytes += key.len() + value.len();
            rows.push((key, value));
            self.read += 1;
        }
        Ok((!rows.is_empty()).then_some(rows))
    }

    /// Read every row and check the end, keeping none (a check before anything is replaced).
    pub(super) fn verify(mut self) -> Result<u64> {
        while self.next_batch(IO_BUFFER)?.is_some() {}
        Ok(self.read)
    }

    /// A length-prefixed field, or `None` at the end mark.
    fn field(&mut self) -> Result<Option<Vec<u8>>> {
        let len = u32::from_le_bytes(self.exact::<4>()?);
        if len == END {
            return Ok(None);
        }
        let mut bytes = vec![0u8; len as usize];
        self.input
            .read_exact(&mut bytes)
            .map_err(|_| corrupt("ends inside a row"))?;
        Ok(Some(bytes))
    }

    fn finish(&mut self) -> Result<()> {
        let count = u64::from_le_bytes(self.exact::<8>()?);
        if count != self.read {
            return Err(corrupt("row count does not match its end mark"));
        }
        let mut rest = [0u8; 1];
        if self.input.read(&mut rest)? != 0 {
            return Err(corrupt("bytes after its end mark"));
        }
        self.done = true;
        Ok(())
    }

    fn exact<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.input
            .read_exact(&mut buf)
            .map_err(|_| corrupt("ends before its end mark"))?;
        Ok(buf)
    }
}

fn corrupt(what: &str) -> Error {
    Error::Codec(format!("snapshot file {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Rows {
        (0..n)
            .map(|i| (format!("k{i:04}").into_bytes(), vec![i as u8; i % 7]))
            .collect()
    }

    fn written(n: usize) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let count = write(&path, rows(n).into_iter().map(Ok)).unwrap();
        assert_eq!(count, n as u64);
        (dir, path)
    }

    #[test]
    fn rows_come_back_in_order_and_in_bounded_batches() {
        let (_dir, path) = written(1000);
        let mut reader = Reader::open(&path).unwrap();
        let mut back = Vec::new();
        let mut batches = 0;
        while let Some(batch) = reader.next_batch(100).unwrap() {
            let bytes: usize = batch.iter().map(|(k, v)| k.len() + v.len()).sum();
            // A batch stops at the first row that reaches the bound.
            assert!(bytes < 100 + 5 + 7, "{bytes}");
            back.extend(batch);
            batches += 1;
        }
        assert_eq!(back, rows(1000));
        assert!(batches > 10);
        assert_eq!(Reader::open(&path).unwrap().verify().unwrap(), 1000);
    }

    #[test]
    fn an_empty_state_is_a_valid_file() {
        let (_dir, path) = written(0);
        assert_eq!(Reader::open(&path).unwrap().next_batch(100).unwrap(), None);
        assert_eq!(Reader::open(&path).unwrap().verify().unwrap(), 0);
    }

    #[test]
    fn a_truncated_or_altered_file_is_refused() {
        let (_dir, path) = written(50);
        let full = std::fs::read(&path).unwrap();
        // Cut anywhere (header, inside a row, before or inside the end mark): refused.
        for len in [0, 5, 8, 20, full.len() / 2, full.len() - 12, full.len() - 1] {
            std::fs::write(&path, &full[..len]).unwrap();
            let r = Reader::open(&path).and_then(Reader::verify);
            assert!(r.is_err(), "accepted a file cut at {len} of {}", full.len());
        }
        // Trailing bytes, a wrong count, a wrong magic.
        let mut longer = full.clone();
        longer.push(0);
        let mut miscounted = full.clone();
        let n = miscounted.len();
        miscounted[n - 8] ^= 1;
        let mut foreign = full.clone();
        foreign[0] = b'X';
        for bad in [longer, miscounted, foreign] {
            std::fs::write(&path, &bad).unwrap();
            assert!(Reader::open(&path).and_then(Reader::verify).is_err());
        }
    }
}
