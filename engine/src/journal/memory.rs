//! An in-memory `Backend` (a BTreeMap under a mutex) for fast tests. It can be told to fail
//! writes, to test how the engine behaves when the disk is full or broken.

use super::backend::{Backend, Guarded, Op};
use super::StoreError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryBackend {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    fail_writes: AtomicBool,
}

impl MemoryBackend {
    /// While set, every `apply` fails without writing anything.
    pub fn fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::SeqCst);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // A panic while holding this lock can only come from a bug in BTreeMap itself; the
        // map is never left half-updated by our code, so the poisoned guard is still usable.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Backend for MemoryBackend {
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::io("writing", "injected write failure"));
        }
        let mut map = self.map();
        for (key, value) in ops {
            match value {
                Some(value) => map.insert(key, value),
                None => map.remove(&key),
            };
        }
        Ok(())
    }

    fn apply_guarded(&self, groups: Vec<Guarded>) -> Result<usize, StoreError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::io("writing", "injected write failure"));
        }
        let mut map = self.map();
        let mut applied = 0;
        for group in groups {
            if map.get(&group.key) != Some(&group.expected) {
                continue;
            }
            for (key, value) in group.ops {
                match value {
                    Some(value) => map.insert(key, value),
                    None => map.remove(&key),
                };
            }
            applied += 1;
        }
        Ok(applied)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map().get(key).cloned())
    }

    fn scan(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        if from >= to {
            return Ok(vec![]);
        }
        let map = self.map();
        let range = map.range::<[u8], _>((
            std::ops::Bound::Included(from),
            std::ops::Bound::Excluded(to),
        ));
        let pairs = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
        Ok(if reverse {
            range.rev().take(limit).map(pairs).collect()
        } else {
            range.take(limit).map(pairs).collect()
        })
    }
}
