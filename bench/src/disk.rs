//! What a benchmark's data dir holds: its files' sizes on disk, and the journal's own
//! content (keys and values by kind), against which the disk growth is overhead.

use std::path::Path;

/// Size of everything under `dir`: (apparent bytes: the sum of file lengths, allocated
/// bytes: the sum of `st_blocks` × 512, what `du` reports).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct DiskUse {
    pub apparent_bytes: u64,
    pub allocated_bytes: u64,
    pub files: u64,
}

pub fn disk_use(dir: &Path) -> std::io::Result<DiskUse> {
    use std::os::unix::fs::MetadataExt;
    let mut total = DiskUse::default();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // sled deletes blob files as it rewrites their pages; one can go mid-walk.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total.apparent_bytes += meta.len();
                total.allocated_bytes += meta.blocks() * 512;
                total.files += 1;
            }
        }
    }
    Ok(total)
}

/// Reopens the closed journal and sums its keys and values by kind (the key's first byte:
/// `t` snapshot, `e` event, `c` listing index, `p` prediction owner, `i` idempotency key,
/// `a` older versions' recovery marks, `s` sealed, `q` prediction owner), journal and archive together: what the
/// store holds, against which the disk growth is overhead.
pub fn live_bytes(dir: &std::path::Path) -> anyhow::Result<Vec<(char, u64, u64)>> {
    use stepwise_engine::journal::KvStore;
    let store = KvStore::open(dir, 64 << 20)?;
    let mut by_kind: std::collections::BTreeMap<char, (u64, u64)> = Default::default();
    tally(store.backend(), &mut by_kind)?;
    tally(store.archive(), &mut by_kind)?;
    Ok(by_kind
        .into_iter()
        .map(|(kind, (keys, bytes))| (kind, keys, bytes))
        .collect())
}

/// Adds the keys and their bytes of one store to `by_kind`.
fn tally(
    backend: &impl stepwise_engine::journal::Backend,
    by_kind: &mut std::collections::BTreeMap<char, (u64, u64)>,
) -> anyhow::Result<()> {
    let mut from = vec![0u8];
    loop {
        let chunk = backend.scan(&from, &[0xff; 8], false, 4096)?;
        let Some((last, _)) = chunk.last() else {
            return Ok(());
        };
        from = last.clone();
        from.push(0);
        for (key, value) in &chunk {
            let entry = by_kind.entry(key[0] as char).or_default();
            entry.0 += 1;
            entry.1 += (key.len() + value.len()) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_use_sums_files_below_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 24]).unwrap();
        let used = disk_use(dir.path()).unwrap();
        assert_eq!((used.apparent_bytes, used.files), (1024, 2));
        assert!(used.allocated_bytes >= 4096 || used.allocated_bytes == 0);
    }
}
