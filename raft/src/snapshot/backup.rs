//! Backups: the projection as one consistent snapshot — the very bytes of a `snapshot-v1.bin`
//! ([`super::file`], [`super::format`]), not a second format — behind a header that says what it
//! is and lets a restore refuse a damaged file before writing anything.
//!
//! A backup file is `MAGIC`, a header length (u32, big-endian), the header (JSON: cluster name,
//! log index and term it covers, format level, data length, SHA-256 of the data), then the data.
//! [`export`] writes the data from a RocksDB view; [`seed`] checks a whole backup and makes it
//! the state of a new cluster's first node. Sending a backup to a client is the node's job.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use openraft::storage::RaftLogStorage;
use openraft::Membership;
use rocksdb::DB;
use sha2::{Digest, Sha256};

use super::file::{write_meta, SnapshotDir, SnapshotFile, IO_BUFFER};
use super::format::validate;
use crate::db;
use crate::types::{Member, SnapshotMeta, StoredMembership, Vote};

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 14] = b"HERALD-BACKUP\n";

/// The layout of what a backup holds: the snapshot format (its format byte) and these headers.
/// A restore refuses a level it does not know.
pub const FORMAT_LEVEL: u32 = 1;

/// Longest header accepted (a few hundred bytes in practice).
const MAX_HEADER_LEN: u32 = 64 * 1024;

/// What a backup covers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupHeader {
    pub format_level: u32,
    /// The cluster's name (its TLS name; empty for an insecure cluster).
    pub cluster: String,
    /// The last log index and its term the backup includes.
    pub index: u64,
    pub term: u64,
    pub created_at_ms: u64,
    /// The data's length in bytes, and its SHA-256 (hex).
    pub data_len: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{}: not a Herald backup (it does not start with the backup marker)", path.display())]
    NotABackup { path: PathBuf },
    #[error("{}: {reason}", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("{}: format level {level}, this version restores level {FORMAT_LEVEL}", path.display())]
    UnknownLevel { path: PathBuf, level: u32 },
    #[error("--data-dir {}: {reason}", path.display())]
    DataDir { path: PathBuf, reason: String },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Writes the projection as it is now, in the snapshot file layout (meta, then records), to
/// `out`; returns what it covers and the SHA-256 of the bytes written. Blocking.
pub fn export(db: &DB, out: impl Write) -> io::Result<(SnapshotMeta, u64, String)> {
    let view = db.snapshot();
    let meta = super::build::meta_of(db, &view)?;
    let hashing = HashingWriter::new(BufWriter::with_capacity(IO_BUFFER, out));
    let records = super::build::write_projection(db, &view, &meta, hashing)?;
    let mut hashing = records.into_inner();
    hashing.flush()?;
    let (len, digest) = (hashing.len, hex(&hashing.hasher.finalize()));
    Ok((meta, len, digest))
}

/// Writes a backup's magic and header.
pub fn write_header(out: &mut impl Write, header: &BackupHeader) -> io::Result<()> {
    let json = serde_json::to_vec(header).map_err(io::Error::other)?;
    out.write_all(MAGIC)?;
    out.write_all(&(json.len() as u32).to_be_bytes())?;
    out.write_all(&json)
}

/// Reads a backup's magic and header from `input` (positioned at its start).
pub fn read_header(path: &Path, input: &mut impl Read) -> Result<BackupHeader, BackupError> {
    let damaged = |reason: String| BackupError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let mut magic = [0u8; MAGIC.len()];
    if input.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(BackupError::NotABackup {
            path: path.to_path_buf(),
        });
    }
    let mut len = [0u8; 4];
    input
        .read_exact(&mut len)
        .map_err(|_| damaged("truncated in its header".into()))?;
    let len = u32::from_be_bytes(len);
    if len > MAX_HEADER_LEN {
        return Err(damaged(format!(
            "a header of {len} bytes (at most {MAX_HEADER_LEN})"
        )));
    }
    let mut json = vec![0u8; len as usize];
    input
        .read_exact(&mut json)
        .map_err(|_| damaged("truncated in its header".into()))?;
    let header: BackupHeader =
        serde_json::from_slice(&json).map_err(|e| damaged(format!("unreadable header: {e}")))?;
    if header.format_level != FORMAT_LEVEL {
        return Err(BackupError::UnknownLevel {
            path: path.to_path_buf(),
            level: header.format_level,
        });
    }
    Ok(header)
}

/// Checks the whole backup at `path`: header, length, checksum, every record. Returns its
/// header and the meta of its snapshot. Reads the file twice, writes nothing.
pub fn check(path: &Path) -> Result<(BackupHeader, SnapshotMeta), BackupError> {
    let damaged = |reason: String| BackupError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let mut input = BufReader::with_capacity(IO_BUFFER, File::open(path)?);
    let header = read_header(path, &mut input)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; IO_BUFFER];
    let mut len = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    if len != header.data_len {
        return Err(damaged(format!(
            "truncated or extended: {len} bytes of data, the header says {}",
            header.data_len
        )));
    }
    let digest = hex(&hasher.finalize());
    if digest != header.sha256 {
        return Err(damaged(format!(
            "checksum mismatch: the data's SHA-256 is {digest}, the header says {}",
            header.sha256
        )));
    }
    // The checksum holds: now the snapshot's own structure (its meta and every record).
    let data_start = (MAGIC.len() + 4) as u64 + header_len(path)?;
    let mut data = File::open(path)?;
    io::copy(&mut (&mut data).take(data_start), &mut io::sink())?;
    let (meta, data_len) = read_meta(path, &mut data)?;
    validate(
        BufReader::with_capacity(IO_BUFFER, data.take(data_len)),
        data_len,
    )
    .map_err(|e| damaged(format!("bad snapshot records: {e}")))?;
    Ok((header, meta))
}

/// What [`seed`] made.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub header: BackupHeader,
    pub node: u64,
}

/// Makes `data_dir` (absent or empty) the data directory of node `node`, the one voter of a new
/// cluster whose state is the backup's: the projection is installed from it as from a snapshot,
/// the log starts after it, and the membership is `node` at `member`. Checks the whole backup
/// first; a damaged one is refused and nothing is written.
pub async fn seed(
    backup: &Path,
    data_dir: &Path,
    node: u64,
    member: Member,
) -> Result<Seeded, BackupError> {
    let empty = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => return Err(e.into()),
    };
    if !empty {
        return Err(BackupError::DataDir {
            path: data_dir.to_path_buf(),
            reason: "not empty: a restore seeds a new node's data directory only".into(),
        });
    }
    let (header, meta) = check(backup)?;
    let last_log_id = meta.last_log_id.ok_or_else(|| BackupError::Damaged {
        path: backup.to_path_buf(),
        reason: "the backup covers no log entry".into(),
    })?;

    // The new cluster: this node alone, at the backup's position in the log.
    let membership = Membership::new(
        vec![BTreeSet::from([node])],
        BTreeMap::from([(node, member)]),
    )
    .map_err(|e| BackupError::DataDir {
        path: data_dir.to_path_buf(),
        reason: format!("membership of node {node}: {e}"),
    })?;
    let new_meta = SnapshotMeta {
        last_log_id: Some(last_log_id),
        last_membership: StoredMembership::new(Some(last_log_id), membership),
    };

    crate::durable_fs::create_dir_durable(&data_dir.join("db"))?;
    let db = db::open(&data_dir.join("db")).map_err(io::Error::other)?;
    let dir = SnapshotDir::open(&data_dir.join("snapshots"))?;
    let (path, file) = dir.create_temporary("restore")?;
    {
        let mut out = BufWriter::with_capacity(IO_BUFFER, file);
        write_meta(&mut out, &new_meta)?;
        let data_start = (MAGIC.len() + 4) as u64 + header_len(backup)?;
        let mut input = File::open(backup)?;
        io::copy(&mut (&mut input).take(data_start), &mut io::sink())?;
        let (_, data_len) = read_meta(backup, &mut input)?;
        io::copy(&mut input.take(data_len), &mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    let (_, snapshot) = SnapshotFile::open(&path)?;
    super::install::install(&db, &dir, &new_meta, snapshot)?;

    // The log starts after the backup, and this node's first term after the backup's: a vote
    // at the backup's term makes the next election use a higher one.
    let mut log = crate::log_store::LogStore::new(db.clone());
    log.purge(last_log_id).await?;
    log.save_vote(&Vote::new(last_log_id.leader_id.term, node))
        .await?;
    db.flush_wal(true).map_err(io::Error::other)?;
    Ok(Seeded { header, node })
}

/// The length of the header of the backup at `path`.
fn header_len(path: &Path) -> Result<u64, BackupError> {
    let mut input = File::open(path)?;
    let mut prefix = [0u8; MAGIC.len() + 4];
    input.read_exact(&mut prefix)?;
    let mut len = [0u8; 4];
    len.copy_from_slice(&prefix[MAGIC.len()..]);
    Ok(u64::from(u32::from_be_bytes(len)))
}

/// Reads the snapshot meta at the start of the data; returns it and the length of the records
/// after it.
fn read_meta(path: &Path, input: &mut File) -> Result<(SnapshotMeta, u64), BackupError> {
    let damaged = |reason: String| BackupError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let total = input.metadata()?.len();
    let mut len = [0u8; 4];
    input
        .read_exact(&mut len)
        .map_err(|_| damaged("truncated in the snapshot's meta".into()))?;
    let len = u64::from(u32::from_be_bytes(len));
    let mut json = vec![0u8; len.min(1 << 20) as usize];
    input
        .read_exact(&mut json)
        .map_err(|_| damaged("truncated in the snapshot's meta".into()))?;
    let meta: SnapshotMeta = serde_json::from_slice(&json)
        .map_err(|e| damaged(format!("unreadable snapshot meta: {e}")))?;
    let position = io::Seek::stream_position(input)?;
    Ok((meta, total.saturating_sub(position)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts and hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> BackupHeader {
        BackupHeader {
            format_level: FORMAT_LEVEL,
            cluster: "test".into(),
            index: 7,
            term: 2,
            created_at_ms: 1,
            data_len: 0,
            sha256: String::new(),
        }
    }

    /// A backup of a store with records and an applied state: written, checked, seeded into a
    /// new data dir with this node alone as voter; altered, refused with nothing written.
    #[tokio::test]
    async fn a_backup_seeds_a_new_node_and_an_altered_one_writes_nothing() {
        use crate::types::LogId;
        let dir = tempfile::tempdir().expect("temp dir");
        let db = db::open(&dir.path().join("old/db")).expect("db");
        let meta_cf = db::cf(&db, crate::db::CF_SM_META);
        let last: LogId =
            serde_json::from_str(r#"{"leader_id":{"term":3,"node_id":2},"index":41}"#)
                .expect("a log id");
        db.put_cf(
            meta_cf,
            crate::keys::META_LAST_APPLIED,
            serde_json::to_vec(&Some(last)).expect("json"),
        )
        .expect("put");
        db.put_cf(db::cf(&db, crate::db::CF_MESSAGES), b"m1", b"record one")
            .expect("put");

        let backup = dir.path().join("b.backup");
        let mut data = Vec::new();
        let (meta, len, sha256) = export(&db, &mut data).expect("exported");
        assert_eq!(meta.last_log_id, Some(last));
        let mut file = Vec::new();
        write_header(
            &mut file,
            &BackupHeader {
                data_len: len,
                sha256,
                ..header()
            },
        )
        .expect("header");
        file.extend_from_slice(&data);
        std::fs::write(&backup, &file).expect("written");

        let mut altered = file.clone();
        let at = altered.len() - 3;
        altered[at] ^= 1;
        let bad = dir.path().join("bad.backup");
        std::fs::write(&bad, &altered).expect("written");
        let member = Member {
            raft_addr: "10.0.0.1:7151".into(),
            grpc_addr: "10.0.0.1:7101".into(),
        };
        let target = dir.path().join("bad-node");
        let e = seed(&bad, &target, 1, member.clone()).await.unwrap_err();
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
        assert!(!target.exists());

        let target = dir.path().join("node1");
        let seeded = seed(&backup, &target, 1, member).await.expect("seeded");
        assert_eq!(seeded.node, 1);
        let new = db::open(&target.join("db")).expect("the new node's db");
        let got = new
            .get_cf(db::cf(&new, crate::db::CF_MESSAGES), b"m1")
            .expect("get");
        assert_eq!(got.as_deref(), Some(&b"record one"[..]));
        let membership: StoredMembership = serde_json::from_slice(
            &new.get_cf(
                db::cf(&new, crate::db::CF_SM_META),
                crate::keys::META_MEMBERSHIP,
            )
            .expect("get")
            .expect("a membership"),
        )
        .expect("json");
        let voters: Vec<u64> = membership.membership().voter_ids().collect();
        assert_eq!(voters, vec![1]);
        // A second restore into the same directory is refused.
        let e = seed(&backup, &target, 1, Member::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not empty"), "{e}");
    }

    #[test]
    fn a_header_reads_back_and_a_foreign_file_is_refused() {
        let mut bytes = Vec::new();
        write_header(&mut bytes, &header()).expect("written");
        let path = Path::new("b.bin");
        assert_eq!(
            read_header(path, &mut bytes.as_slice()).expect("read"),
            header()
        );
        let e = read_header(path, &mut &b"PK\x03\x04 a zip file"[..]).unwrap_err();
        assert!(e.to_string().contains("not a Herald backup"), "{e}");
        let e = read_header(path, &mut &bytes[..bytes.len() - 3]).unwrap_err();
        assert!(e.to_string().contains("truncated in its header"), "{e}");
    }
}
