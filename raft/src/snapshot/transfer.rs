//! Moving a snapshot file from the leader to a follower in chunks, so that neither holds it
//! whole in memory.
//!
//! Why one client-streaming call (`Internal.InstallSnapshot`) rather than a sequence of unary
//! calls carrying an offset: the transfer is one HTTP/2 stream, whose flow control makes the
//! leader read the file only as fast as the follower writes it (memory on both sides stays at a
//! few chunks), and whose lifetime is the transfer's — a follower keeps no session between calls,
//! needs no id to match chunks to a transfer nor a timer to forget an abandoned one, and a broken
//! stream takes its partial file with it. What unary calls would add, resuming after a broken
//! connection, openraft does not use: it sends the whole snapshot again.
//!
//! The first chunk carries the header (the leader's vote and the snapshot's meta) and the data's
//! length; every chunk says where its data starts. The follower writes the chunks to a temporary
//! file, refuses a chunk out of order, too large or past the announced length, and a stream that
//! ends short; then it reads the whole file once to check its records (see [`super::format`])
//! before anything asks openraft to install it.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use herald_api::v1::SnapshotChunk;
use tokio::io::AsyncWriteExt;
use tonic::Status;

use super::file::{write_meta, SnapshotDir, SnapshotFile};
use super::format::validate;
use crate::network::{decode, encode};
use crate::types::{SnapshotMeta, Vote};

/// Data bytes per chunk sent.
pub const CHUNK_LEN: usize = 1 << 20;
/// Largest chunk data accepted.
pub const MAX_CHUNK_LEN: usize = 4 << 20;
/// Largest header accepted (a vote and a membership: a few hundred bytes).
pub const MAX_HEADER_LEN: usize = 1 << 20;

/// Why a received snapshot was refused.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("the snapshot stream ended before its first chunk")]
    Empty,
    #[error("the first snapshot chunk carries no header")]
    MissingHeader,
    #[error("snapshot header: {0}")]
    BadHeader(String),
    #[error("snapshot chunk at offset {offset} carries a header; only the first may")]
    RepeatedHeader { offset: u64 },
    #[error("snapshot chunk at offset {got}, expected {expected}")]
    OutOfOrder { got: u64, expected: u64 },
    #[error("snapshot chunk of {len} bytes exceeds the limit of {MAX_CHUNK_LEN}")]
    ChunkTooLarge { len: usize },
    #[error("snapshot chunks run past the announced {total} bytes")]
    TooLong { total: u64 },
    #[error("the snapshot stream ended after {received} of {total} bytes")]
    Incomplete { received: u64, total: u64 },
    #[error("the received snapshot is malformed: {0}")]
    Malformed(io::Error),
    #[error("the snapshot stream broke: {0}")]
    Stream(Status),
    #[error("writing the received snapshot: {0}")]
    Io(#[from] io::Error),
}

impl From<TransferError> for Status {
    fn from(e: TransferError) -> Status {
        match e {
            TransferError::Stream(status) => status,
            TransferError::Io(_) => Status::internal(e.to_string()),
            TransferError::Incomplete { .. } | TransferError::Malformed(_) => {
                Status::data_loss(e.to_string())
            }
            _ => Status::invalid_argument(e.to_string()),
        }
    }
}

/// A read of the snapshot that failed while it was being sent (the stream then ends early, which
/// the follower refuses as incomplete; this says why).
#[derive(Clone, Default)]
pub struct ReadFailure(Arc<Mutex<Option<io::Error>>>);

impl ReadFailure {
    pub fn take(&self) -> Option<io::Error> {
        self.0.lock().ok().and_then(|mut e| e.take())
    }

    fn set(&self, e: io::Error) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(e);
        }
    }
}

/// The chunks of `snapshot`, read from its file one at a time as the stream is polled.
/// `header` is the encoded (vote, meta).
pub fn outgoing(
    header: Vec<u8>,
    snapshot: Arc<SnapshotFile>,
) -> (
    impl Stream<Item = SnapshotChunk> + Send + 'static,
    ReadFailure,
) {
    struct State {
        snapshot: Arc<SnapshotFile>,
        header: Option<Vec<u8>>,
        offset: u64,
        failure: ReadFailure,
    }
    let failure = ReadFailure::default();
    let state = State {
        snapshot,
        header: Some(header),
        offset: 0,
        failure: failure.clone(),
    };
    let chunks = futures::stream::unfold(state, |mut state| async move {
        let total = state.snapshot.data_len();
        let header = state.header.take();
        if header.is_none() && state.offset >= total {
            return None;
        }
        let len = (total - state.offset).min(CHUNK_LEN as u64) as usize;
        let (snapshot, offset) = (state.snapshot.clone(), state.offset);
        let read = tokio::task::spawn_blocking(move || {
            let mut data = vec![0u8; len];
            snapshot.read_data_at(offset, &mut data).map(|()| data)
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r);
        let data = match read {
            Ok(data) => data,
            Err(e) => {
                state.failure.set(e);
                return None;
            }
        };
        let chunk = SnapshotChunk {
            total_len: if header.is_some() { total } else { 0 },
            header: header.unwrap_or_default(),
            offset,
            data,
        };
        state.offset += len as u64;
        Some((chunk, state))
    });
    (chunks, failure)
}

/// The encoded header of a snapshot sent to a follower.
pub fn header(vote: &Vote, meta: &SnapshotMeta) -> Result<Vec<u8>, bincode::Error> {
    encode(&(vote, meta))
}

/// A snapshot received whole and checked, ready to install.
#[derive(Debug)]
pub struct Received {
    pub vote: Vote,
    pub meta: SnapshotMeta,
    /// A temporary file of `dir`, removed if dropped before it is installed.
    pub snapshot: SnapshotFile,
}

/// Writes the chunks of one snapshot into a temporary file of `dir` and checks it.
pub async fn receive<S>(dir: &Arc<SnapshotDir>, mut chunks: S) -> Result<Received, TransferError>
where
    S: Stream<Item = Result<SnapshotChunk, Status>> + Unpin,
{
    let first = match chunks.next().await {
        None => return Err(TransferError::Empty),
        Some(chunk) => chunk.map_err(TransferError::Stream)?,
    };
    if first.header.is_empty() {
        return Err(TransferError::MissingHeader);
    }
    if first.header.len() > MAX_HEADER_LEN {
        return Err(TransferError::BadHeader(format!(
            "{} bytes, more than {MAX_HEADER_LEN}",
            first.header.len()
        )));
    }
    let (vote, meta): (Vote, SnapshotMeta) =
        decode(&first.header).map_err(|e| TransferError::BadHeader(e.to_string()))?;
    let total = first.total_len;

    let (path, file) = dir.create_temporary("received")?;
    let partial = Partial(Some(path.clone()));
    let mut file = tokio::fs::File::from_std(file);
    let mut head = Vec::new();
    write_meta(&mut head, &meta)?;
    file.write_all(&head).await?;

    let mut received = 0u64;
    let mut first_chunk = true;
    let mut next = Some(first);
    while let Some(chunk) = next {
        if !std::mem::take(&mut first_chunk) && !chunk.header.is_empty() {
            return Err(TransferError::RepeatedHeader {
                offset: chunk.offset,
            });
        }
        if chunk.offset != received {
            return Err(TransferError::OutOfOrder {
                got: chunk.offset,
                expected: received,
            });
        }
        if chunk.data.len() > MAX_CHUNK_LEN {
            return Err(TransferError::ChunkTooLarge {
                len: chunk.data.len(),
            });
        }
        if chunk.data.len() as u64 > total - received {
            return Err(TransferError::TooLong { total });
        }
        file.write_all(&chunk.data).await?;
        received += chunk.data.len() as u64;
        next = match chunks.next().await {
            None => None,
            Some(chunk) => Some(chunk.map_err(TransferError::Stream)?),
        };
    }
    if received != total {
        return Err(TransferError::Incomplete { received, total });
    }
    file.flush().await?;
    file.sync_all().await?;
    drop(file);

    let snapshot = tokio::task::spawn_blocking(move || checked(partial, total))
        .await
        .map_err(io::Error::other)??;
    Ok(Received {
        vote,
        meta,
        snapshot,
    })
}

/// Writes a snapshot that arrived whole (`Raft` method "snapshot", from a node that predates
/// chunked transfer) into a temporary file of `dir` and checks it. Blocking.
pub fn receive_whole(
    dir: &SnapshotDir,
    meta: &SnapshotMeta,
    data: &[u8],
) -> Result<SnapshotFile, TransferError> {
    let (path, mut file) = dir.create_temporary("received")?;
    let partial = Partial(Some(path));
    let mut head = Vec::new();
    write_meta(&mut head, meta)?;
    file.write_all(&head)?;
    file.write_all(data)?;
    file.sync_all()?;
    drop(file);
    checked(partial, data.len() as u64)
}

/// Opens a received file and reads all its records; a file that fails is removed.
fn checked(mut partial: Partial, data_len: u64) -> Result<SnapshotFile, TransferError> {
    let Some(path) = partial.0.take() else {
        return Err(TransferError::Io(io::Error::other("no received file")));
    };
    let opened = SnapshotFile::open(&path);
    let (_, mut snapshot) = match opened {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(TransferError::Malformed(e));
        }
    };
    // From here the file removes itself if dropped.
    snapshot.mark_temporary();
    if snapshot.data_len() != data_len {
        return Err(TransferError::Io(io::Error::other(
            "the received file's length differs from what was written",
        )));
    }
    let reader = snapshot.data_reader()?;
    validate(reader, snapshot.data_len()).map_err(TransferError::Malformed)?;
    Ok(snapshot)
}

/// A received file not yet checked: removed if the transfer fails.
struct Partial(Option<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    //! What a follower refuses: a stream that ends short, chunks out of order, too large or past
    //! the announced length, a missing or repeated header, a broken stream, and a complete file
    //! whose records are malformed; none leaves a file behind. A good transfer reproduces the
    //! file's data byte for byte.

    use std::io::Read as _;

    use super::*;
    use crate::snapshot::format::tests::{record, snapshot_of};

    fn dir() -> (tempfile::TempDir, Arc<SnapshotDir>) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Arc::new(SnapshotDir::open(tmp.path()).unwrap());
        (tmp, dir)
    }

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(openraft::testing::log_id::<crate::types::TypeConfig>(
                3, 1, 42,
            )),
            last_membership: Default::default(),
        }
    }

    /// A snapshot file of `data` in `dir`, as a builder would leave it.
    fn file_of(dir: &SnapshotDir, data: &[u8]) -> Arc<SnapshotFile> {
        let (path, mut file) = dir.create_temporary("source").unwrap();
        write_meta(&mut file, &meta()).unwrap();
        file.write_all(data).unwrap();
        drop(file);
        let (_, mut snapshot) = SnapshotFile::open(&path).unwrap();
        snapshot.mark_temporary();
        Arc::new(snapshot)
    }

    /// Data of several chunks: records of 300 KiB values.
    fn big_data() -> Vec<u8> {
        let records: Vec<Vec<u8>> = (0..12u8)
            .map(|i| record(i % 5, &[i; 8], &vec![i; 300 << 10]))
            .collect();
        snapshot_of(&records)
    }

    async fn chunks_of(data: &[u8]) -> Vec<SnapshotChunk> {
        let (_tmp, dir) = dir();
        let vote = Vote::new(3, 1);
        let (chunks, failure) = outgoing(header(&vote, &meta()).unwrap(), file_of(&dir, data));
        let chunks: Vec<SnapshotChunk> = chunks.collect().await;
        assert!(failure.take().is_none());
        chunks
    }

    async fn receive_chunks(
        dir: &Arc<SnapshotDir>,
        chunks: Vec<Result<SnapshotChunk, Status>>,
    ) -> Result<Received, TransferError> {
        receive(dir, futures::stream::iter(chunks)).await
    }

    /// Only the files of `dir` that are not temporary.
    fn files(tmp: &tempfile::TempDir) -> Vec<String> {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_complete_transfer_reproduces_the_data() {
        let data = big_data();
        let chunks = chunks_of(&data).await;
        assert_eq!(chunks.len(), data.len().div_ceil(CHUNK_LEN));
        assert_eq!(chunks[0].total_len, data.len() as u64);
        assert!(chunks[1..].iter().all(|c| c.header.is_empty()));

        let (tmp, dir) = dir();
        let received = receive_chunks(&dir, chunks.into_iter().map(Ok).collect())
            .await
            .unwrap();
        assert_eq!(received.meta, meta());
        assert_eq!(received.vote, Vote::new(3, 1));
        let mut got = Vec::new();
        received
            .snapshot
            .data_reader()
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, data);
        // The received file is temporary until installed: dropped, it goes.
        assert_eq!(files(&tmp).len(), 1);
        drop(received);
        assert!(files(&tmp).is_empty());
    }

    #[tokio::test]
    async fn a_stream_that_ends_short_is_refused_at_every_chunk() {
        let data = big_data();
        let chunks = chunks_of(&data).await;
        for keep in 1..chunks.len() {
            let (tmp, dir) = dir();
            let short = chunks[..keep].iter().cloned().map(Ok).collect();
            let err = receive_chunks(&dir, short).await.unwrap_err();
            assert!(
                matches!(err, TransferError::Incomplete { received, total }
                    if received == (keep * CHUNK_LEN) as u64 && total == data.len() as u64),
                "{err}"
            );
            assert!(files(&tmp).is_empty(), "{:?}", files(&tmp));
        }
    }

    #[tokio::test]
    async fn chunks_out_of_order_or_past_the_end_are_refused() {
        let chunks = chunks_of(&big_data()).await;
        let (tmp, dir) = dir();

        let mut skipped: Vec<_> = chunks.iter().cloned().map(Ok).collect();
        let _second = skipped.remove(1);
        let err = receive_chunks(&dir, skipped).await.unwrap_err();
        assert!(matches!(err, TransferError::OutOfOrder { .. }), "{err}");

        let mut repeated: Vec<_> = chunks.iter().cloned().map(Ok).collect();
        repeated.insert(1, Ok(chunks[0].clone()));
        let err = receive_chunks(&dir, repeated).await.unwrap_err();
        assert!(matches!(err, TransferError::RepeatedHeader { .. }), "{err}");

        let mut first_short = chunks.clone();
        first_short[0].total_len = 10;
        let err = receive_chunks(&dir, first_short.into_iter().map(Ok).collect())
            .await
            .unwrap_err();
        assert!(matches!(err, TransferError::TooLong { total: 10 }), "{err}");

        let mut oversized = chunks.clone();
        oversized[1].data = vec![0; MAX_CHUNK_LEN + 1];
        let err = receive_chunks(&dir, oversized.into_iter().map(Ok).collect())
            .await
            .unwrap_err();
        assert!(matches!(err, TransferError::ChunkTooLarge { .. }), "{err}");
        assert!(files(&tmp).is_empty());
    }

    #[tokio::test]
    async fn a_missing_or_malformed_header_is_refused() {
        let chunks = chunks_of(&big_data()).await;
        let (tmp, dir) = dir();

        let err = receive_chunks(&dir, vec![]).await.unwrap_err();
        assert!(matches!(err, TransferError::Empty), "{err}");

        let headless: Vec<_> = chunks[1..].iter().cloned().map(Ok).collect();
        let err = receive_chunks(&dir, headless).await.unwrap_err();
        assert!(matches!(err, TransferError::MissingHeader), "{err}");

        let mut garbled = chunks.clone();
        garbled[0].header = vec![0xFF; 7];
        let err = receive_chunks(&dir, garbled.into_iter().map(Ok).collect())
            .await
            .unwrap_err();
        assert!(matches!(err, TransferError::BadHeader(_)), "{err}");

        let mut huge = chunks.clone();
        huge[0].header = vec![0; MAX_HEADER_LEN + 1];
        let err = receive_chunks(&dir, huge.into_iter().map(Ok).collect())
            .await
            .unwrap_err();
        assert!(matches!(err, TransferError::BadHeader(_)), "{err}");
        assert!(files(&tmp).is_empty());
    }

    #[tokio::test]
    async fn a_broken_stream_is_refused() {
        let chunks = chunks_of(&big_data()).await;
        let (tmp, dir) = dir();
        let mut broken: Vec<_> = chunks[..2].iter().cloned().map(Ok).collect();
        broken.push(Err(Status::cancelled("the leader went away")));
        let err = receive_chunks(&dir, broken).await.unwrap_err();
        assert!(matches!(err, TransferError::Stream(_)), "{err}");
        assert!(files(&tmp).is_empty());
    }

    /// Every byte arrived, but the records are not a snapshot: refused before openraft sees it.
    #[tokio::test]
    async fn a_complete_but_corrupt_file_is_refused() {
        let mut data = big_data();
        // The second record's column family: out of range.
        let second = 1 + 1 + 4 + 8 + 4 + (300 << 10);
        data[second] = 200;
        let chunks = chunks_of(&data).await;
        let (tmp, dir) = dir();
        let err = receive_chunks(&dir, chunks.into_iter().map(Ok).collect())
            .await
            .unwrap_err();
        assert!(matches!(err, TransferError::Malformed(_)), "{err}");
        assert!(err.to_string().contains("column family 200"), "{err}");
        assert!(files(&tmp).is_empty());

        // A snapshot cut at the end, with the announced length cut to match.
        let mut data = big_data();
        data.pop();
        let chunks = chunks_of(&data).await;
        let err = receive_chunks(&dir, chunks.into_iter().map(Ok).collect())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(files(&tmp).is_empty());
    }

    #[test]
    fn a_whole_snapshot_from_an_older_node_is_checked_the_same_way() {
        let (tmp, dir) = dir();
        let data = big_data();
        let snapshot = receive_whole(&dir, &meta(), &data).unwrap();
        assert_eq!(snapshot.data_len(), data.len() as u64);
        drop(snapshot);

        let err = receive_whole(&dir, &meta(), &data[..data.len() - 1]).unwrap_err();
        assert!(matches!(err, TransferError::Malformed(_)), "{err}");
        let err = receive_whole(&dir, &meta(), &[]).unwrap_err();
        assert!(matches!(err, TransferError::Malformed(_)), "{err}");
        assert!(files(&tmp).is_empty());
    }
}
