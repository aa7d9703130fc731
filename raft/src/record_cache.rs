//! Message records apply wrote last, kept in memory for the next events of the same messages.
//!
//! Why: every event after a submission reads its message's record back only to rewrite it, and
//! that point read searches every memtable and then the table files; profiled under end-to-end
//! load, those reads were a quarter of a node's apply time. A message goes through its events
//! within seconds, so the records written last are the ones read next.
//!
//! Coherence: message records are written only by apply, which hands the cache a record after the
//! batch holding it is in RocksDB, and by a snapshot install, which clears the cache. So the cache
//! holds the bytes RocksDB holds for a message, or nothing for it.
//!
//! Eviction is by generation, not exact LRU: records go into the current generation; once it
//! holds half the byte budget it becomes the previous one and the one before is dropped.

use std::collections::HashMap;

pub struct RecordCache {
    current: HashMap<[u8; 8], Vec<u8>>,
    previous: HashMap<[u8; 8], Vec<u8>>,
    current_bytes: usize,
    generation_bytes: usize,
}

impl RecordCache {
    /// A cache holding at most about `budget_bytes` of records.
    pub fn new(budget_bytes: usize) -> Self {
        RecordCache {
            current: HashMap::new(),
            previous: HashMap::new(),
            current_bytes: 0,
            generation_bytes: budget_bytes / 2,
        }
    }

    /// The record stored under `key` (a message key), if the cache holds it.
    pub fn get(&self, key: &[u8]) -> Option<&Vec<u8>> {
        let key: &[u8; 8] = key.try_into().ok()?;
        self.current.get(key).or_else(|| self.previous.get(key))
    }

    /// Records that RocksDB now holds `value` under `key` (`None`: nothing).
    pub fn written(&mut self, key: &[u8], value: Option<Vec<u8>>) {
        let Ok(key) = <[u8; 8]>::try_from(key) else {
            return;
        };
        self.previous.remove(&key);
        let Some(value) = value else {
            if let Some(old) = self.current.remove(&key) {
                self.current_bytes -= old.len();
            }
            return;
        };
        self.current_bytes += value.len();
        if let Some(old) = self.current.insert(key, value) {
            self.current_bytes -= old.len();
        }
        if self.current_bytes > self.generation_bytes {
            self.previous = std::mem::take(&mut self.current);
            self.current_bytes = 0;
        }
    }

    /// Forgets everything (the projection under it was replaced).
    pub fn clear(&mut self) {
        self.current.clear();
        self.previous.clear();
        self.current_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u64) -> [u8; 8] {
        id.to_be_bytes()
    }

    #[test]
    fn holds_the_last_written_value_and_forgets_deleted_ones() {
        let mut cache = RecordCache::new(1 << 20);
        cache.written(&key(1), Some(b"one".to_vec()));
        cache.written(&key(1), Some(b"uno".to_vec()));
        assert_eq!(cache.get(&key(1)).unwrap(), b"uno");
        cache.written(&key(1), None);
        assert!(cache.get(&key(1)).is_none());
        assert!(cache.get(b"not eight bytes").is_none());
    }

    #[test]
    fn older_generations_are_dropped_within_the_budget() {
        let mut cache = RecordCache::new(200);
        for id in 0..100u64 {
            cache.written(&key(id), Some(vec![0; 10]));
        }
        // Two generations of at most 100 bytes each: only the newest records stay.
        assert!(cache.get(&key(99)).is_some());
        assert!(cache.get(&key(0)).is_none());
        let held = (0..100u64)
            .filter(|id| cache.get(&key(*id)).is_some())
            .count();
        assert!(held <= 21, "{held} records held");
    }

    #[test]
    fn a_value_rewritten_after_its_generation_moved_is_the_new_one() {
        let mut cache = RecordCache::new(40);
        cache.written(&key(1), Some(vec![1; 10]));
        cache.written(&key(2), Some(vec![2; 11])); // generation full: both move to previous
        cache.written(&key(1), Some(vec![3; 5]));
        assert_eq!(cache.get(&key(1)).unwrap(), &vec![3; 5]);
        cache.clear();
        assert!(cache.get(&key(2)).is_none());
    }
}
