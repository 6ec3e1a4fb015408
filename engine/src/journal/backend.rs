//! The storage under the journal: an ordered key-value store with atomic, durable batches
//! (`SledBackend` on disk, `MemoryBackend` in tests), and the writes `KvStore` gives it.

use super::StoreError;

/// One stored entry: its key and value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One write of a batch: `None` deletes the key.
pub type Op = (Vec<u8>, Option<Vec<u8>>);

/// Ops to apply only if `key` holds `expected` (see `Backend::apply_guarded`).
pub struct Guarded {
    pub key: Vec<u8>,
    pub expected: Vec<u8>,
    pub ops: Vec<Op>,
}

/// An ordered key-value store with atomic, durable batches.
pub trait Backend: Send + Sync + 'static {
    /// Applies every op atomically; returns once they are durable.
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError>;
    /// Applies every op atomically; they become durable soon, with the next `apply` at the
    /// latest. For writes that may be lost in a crash (cleanup that is done again).
    fn apply_lazily(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.apply(ops)
    }
    /// Applies the ops of each group whose guard key still holds the expected value, all in
    /// one atomic step: no other write lands between a check and its ops. Durable lazily,
    /// like `apply_lazily`. Returns how many groups applied.
    fn apply_guarded(&self, groups: Vec<Guarded>) -> Result<usize, StoreError>;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` entries with keys in `[from, to)`, ascending or (with `reverse`) descending.
    fn scan(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;
}
