//! The node's one RocksDB database and its column families.
//!
//! The Raft log and the projection share one database so that a single WAL fsync makes both
//! durable. Column family names carry a format version (`_v1`), because a node of the next version
//! must recognise — and migrate — what an older node wrote.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, LogLevel,
    Options, DB,
};

/// The RocksDB this build links (checked at build time to be at least
/// [`crate::rocksdb_version::MINIMUM`]: group commit's `FlushWAL(true)` needs it).
pub const ROCKSDB_VERSION: &str = env!("HERALD_ROCKSDB_VERSION");

/// Raft log entries, keyed by big-endian log index.
pub const CF_LOG: &str = "raft_log_v1";
/// Raft metadata: vote, last purged log id, committed log id; and the marker of a snapshot install
/// under way (`snapshot::install::INSTALLING`), kept outside the projection the install clears.
pub const CF_RAFT_META: &str = "raft_meta_v1";
/// Message records, keyed by big-endian message id.
pub const CF_MESSAGES: &str = "sm_messages_v1";
/// `client \0 idempotency key` → message id.
pub const CF_IDEMPOTENCY: &str = "sm_idempotency_v1";
/// `link \0 carrier id` → message id and segment: how delivery reports find their message.
pub const CF_CARRIER_IDS: &str = "sm_carrier_ids_v1";
/// `link \0 priority \0 message id`: messages waiting to be dispatched on a link, in send order.
pub const CF_QUEUE: &str = "sm_queue_v1";
/// `link \0 message id` → dispatch epoch: messages handed to a link and not yet fully acknowledged.
pub const CF_INFLIGHT: &str = "sm_inflight_v1";
/// `link \0 carrier id` → a delivery report that arrived before its carrier acknowledgement.
pub const CF_ORPHAN_REPORTS: &str = "sm_orphan_reports_v1";
/// `expires-at (ms, big-endian) ++ message id` for every message not yet terminal: lets the leader
/// find the messages whose validity ran out without scanning them all.
pub const CF_EXPIRY: &str = "sm_expiry_v1";
/// `due (ms, big-endian) ++ message id` for every SCHEDULED message: lets the leader release the
/// messages whose time came.
pub const CF_SCHEDULED: &str = "sm_scheduled_v1";
/// MO assemblies: `src \0 dest \0 'c' reference total` (a long message's parts) or
/// `src \0 dest \0 'i' carrier id` (a single message's duplicate guard) → `MoAssemblyRecord`.
pub const CF_MO_ASSEMBLY: &str = "sm_mo_assembly_v1";
/// `since (ms, big-endian) ++ assembly key`: lets the leader find the assemblies to close.
pub const CF_MO_AGE: &str = "sm_mo_age_v1";
/// Replies (`ReplyRecord`), keyed by big-endian reply id.
pub const CF_REPLIES: &str = "sm_replies_v1";
/// `client \0 reply id`: each client system's replies in id order (client empty = unrouted).
pub const CF_CLIENT_REPLIES: &str = "sm_client_replies_v1";
/// Subscriber number (normalised) → the client that last sent it a message: routes replies.
pub const CF_LAST_SENDER: &str = "sm_last_sender_v1";
/// Client systems (`ClientRecord`), keyed by name.
pub const CF_CLIENTS: &str = "sm_clients_v1";
/// A key's public id → the name of the client holding it: how a call's key finds its client.
pub const CF_CLIENT_KEYS: &str = "sm_client_keys_v1";
/// The audit trail (`AuditRecord`), keyed by a big-endian sequence number in log order.
pub const CF_AUDIT: &str = "sm_audit_v1";
/// Projection metadata: last applied log id, membership, id counter, link assignments.
pub const CF_SM_META: &str = "sm_meta_v1";

/// The column families that make up the projection (everything a snapshot carries).
pub const PROJECTION_CFS: &[&str] = &[
    CF_MESSAGES,
    CF_IDEMPOTENCY,
    CF_CARRIER_IDS,
    CF_QUEUE,
    CF_INFLIGHT,
    CF_ORPHAN_REPORTS,
    CF_SM_META,
    CF_EXPIRY,
    CF_SCHEDULED,
    CF_MO_ASSEMBLY,
    CF_MO_AGE,
    CF_REPLIES,
    CF_CLIENT_REPLIES,
    CF_LAST_SENDER,
    CF_CLIENTS,
    CF_CLIENT_KEYS,
    CF_AUDIT,
];

/// Every column family of the database.
pub const ALL_CFS: &[&str] = &[
    CF_LOG,
    CF_RAFT_META,
    CF_MESSAGES,
    CF_IDEMPOTENCY,
    CF_CARRIER_IDS,
    CF_QUEUE,
    CF_INFLIGHT,
    CF_ORPHAN_REPORTS,
    CF_SM_META,
    CF_EXPIRY,
    CF_SCHEDULED,
    CF_MO_ASSEMBLY,
    CF_MO_AGE,
    CF_REPLIES,
    CF_CLIENT_REPLIES,
    CF_LAST_SENDER,
    CF_CLIENTS,
    CF_CLIENT_KEYS,
    CF_AUDIT,
];

/// Memory for unflushed writes (memtables), shared by every column family.
const MEMTABLE_BUDGET: usize = 128 << 20;

/// Blocks of table files kept in memory, shared by every column family (RocksDB's default is a
/// small cache per column family).
const BLOCK_CACHE: usize = 64 << 20;

/// Index and filter partitions: small enough that a point read loads a few KiB of them.
const METADATA_BLOCK: usize = 4 << 10;

/// Options of every column family: bloom filters on table files and on memtables, and
/// partitioned indexes and filters held in the shared block cache.
///
/// Why filters: applying an event is mostly point reads (the message, an idempotency key, a
/// carrier id, a counter), and many of them miss — every new submission's idempotency key, every
/// memtable but the one holding the key. Without filters each miss searched every memtable's skip
/// list and every level's index; profiled, those searches were a large share of a node's apply
/// time.
///
/// Why partitioned: a whole-file filter is one block of ~10 bits per key, megabytes for a large
/// table file, and it must sit in the block cache to be used. With a few million messages the
/// filters and indexes of all files outgrew the cache, so nearly every point read re-read and
/// checksummed a multi-megabyte filter block from disk: intake fell from 34,000/s to about
/// 2,000/s by 2.8 million messages. Partitioned, only a small top-level index per file stays
/// pinned; a read loads the one 4 KiB partition it needs, and memory stays bounded by the cache.
fn column_family_options(cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_block_cache(cache);
    table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_partition_filters(true);
    table.set_metadata_block_size(METADATA_BLOCK);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_top_level_index_and_filter(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table);
    opts.set_memtable_whole_key_filtering(true);
    opts.set_memtable_prefix_bloom_ratio(0.05);
    opts
}

/// RocksDB's own diagnostic log (`LOG` in the database directory; older ones `LOG.old.*`) is
/// rotated at this size…
pub const INFO_LOG_FILE_SIZE: usize = 16 << 20;
/// …and this many rotated files are kept, so it never takes more than about 100 MiB.
pub const INFO_LOG_FILES_KEPT: usize = 5;

/// Opens (creating if needed) the node's database under `dir`.
pub fn open(dir: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    // The library's default level is DEBUG in the build Herald links, which writes a line for
    // every group-commit fsync (`FlushWAL`): gigabytes a day under steady load, never rotated.
    // INFO keeps what diagnosis needs (flushes, compactions, stalls, the periodic statistics).
    opts.set_log_level(LogLevel::Info);
    opts.set_max_log_file_size(INFO_LOG_FILE_SIZE);
    opts.set_keep_log_file_num(INFO_LOG_FILES_KEPT);
    // Every column family would otherwise keep up to two 64 MiB memtables of its own: with a
    // dozen written ones a busy node grew past 1 GiB resident holding under a million messages.
    // One budget for all of them flushes the largest when it is spent.
    opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
    let cache = Cache::new_lru_cache(BLOCK_CACHE);
    let cfs = ALL_CFS
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, column_family_options(&cache)));
    Ok(Arc::new(DB::open_cf_descriptors(&opts, dir, cfs)?))
}

/// Why a database could not be opened for reading.
#[derive(Debug, thiserror::Error)]
pub enum OpenReadOnlyError {
    #[error("{}: no such directory", .0.display())]
    Missing(PathBuf),
    #[error("{}: holds no Herald database (no RocksDB CURRENT file there)", .0.display())]
    NotADatabase(PathBuf),
    #[error("{}: cannot be opened read-only: {source}", .dir.display())]
    RocksDb {
        dir: PathBuf,
        source: rocksdb::Error,
    },
}

/// Opens the database of a stopped node read-only, for diagnosis. Creates nothing: a missing
/// directory, or one without a database, is an error (the RocksDB wrapper would otherwise create
/// the directory before finding nothing in it), and RocksDB opened read-only writes no file.
pub fn open_read_only(dir: &Path) -> Result<DB, OpenReadOnlyError> {
    if !dir.is_dir() {
        return Err(OpenReadOnlyError::Missing(dir.to_path_buf()));
    }
    if !dir.join("CURRENT").is_file() {
        return Err(OpenReadOnlyError::NotADatabase(dir.to_path_buf()));
    }
    DB::open_cf_for_read_only(&Options::default(), dir, ALL_CFS, false).map_err(|source| {
        OpenReadOnlyError::RocksDb {
            dir: dir.to_path_buf(),
            source,
        }
    })
}

/// The handle of a column family that [`open`] always creates.
pub fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} is created by db::open"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The newest `OPTIONS-*` file RocksDB wrote: the options it really runs with.
    fn options_file(dir: &Path) -> String {
        let newest = std::fs::read_dir(dir)
            .expect("database directory")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|name| name.starts_with("OPTIONS-"))
            .max()
            .expect("RocksDB writes an OPTIONS file");
        std::fs::read_to_string(dir.join(newest)).expect("readable OPTIONS file")
    }

    #[test]
    fn the_info_log_is_at_info_level_and_rotated_with_a_cap() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = open(dir.path()).expect("open");
        drop(db);
        let options = options_file(dir.path());
        for line in [
            "info_log_level=INFO_LEVEL".to_string(),
            format!("max_log_file_size={INFO_LOG_FILE_SIZE}"),
            format!("keep_log_file_num={INFO_LOG_FILES_KEPT}"),
        ] {
            assert!(
                options.lines().any(|l| l.trim() == line),
                "{line} missing from the OPTIONS file:\n{options}"
            );
        }
    }

    #[test]
    fn opening_read_only_creates_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("absent");
        let Err(err) = open_read_only(&missing) else {
            panic!("a missing directory is refused");
        };
        assert_eq!(
            err.to_string(),
            format!("{}: no such directory", missing.display())
        );
        assert!(!missing.exists(), "nothing was created");

        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).expect("mkdir");
        let Err(err) = open_read_only(&empty) else {
            panic!("an empty directory is refused");
        };
        assert!(
            err.to_string().contains("holds no Herald database"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(&empty).expect("read dir").count(), 0);

        let db_dir = dir.path().join("db");
        drop(open(&db_dir).expect("open"));
        let listing = |d: &Path| {
            let mut names: Vec<_> = std::fs::read_dir(d)
                .expect("read dir")
                .map(|e| e.expect("entry").file_name())
                .collect();
            names.sort();
            names
        };
        let before = listing(&db_dir);
        let log_before = std::fs::read(db_dir.join("LOG")).expect("LOG");
        drop(open_read_only(&db_dir).expect("a database opens read-only"));
        assert_eq!(listing(&db_dir), before, "no file added or rotated");
        assert_eq!(std::fs::read(db_dir.join("LOG")).expect("LOG"), log_before);
    }
}
