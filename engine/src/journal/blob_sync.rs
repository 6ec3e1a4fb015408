//! fsync of sled's blob files. sled 0.34 writes any page bigger than a quarter of a log
//! segment (128 KiB: a leaf whose entries add up to that, which a few events with 10 KB
//! items reach) to its own file under `blobs/`, and never syncs it: `flush()` covers the log
//! only. In each durable batch, after `flush()` and before the log's `sync_data()`,
//! `BlobSync::sync` fsyncs the blob files it has not synced yet, then the directory, so no
//! durable log record points at a blob a power cut could lose.
//!
//! Listing the directory at every commit would cost O(blob files); its mtime says whether
//! anything was added since the last listing. An mtime is trusted only once it is older than
//! `RACY` (the kernel stamps directories with a coarse clock, so two changes a millisecond
//! apart can carry one stamp): the same rule git uses for its index.

use super::StoreError;
use std::collections::HashSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How old a directory's mtime must be before an unchanged one proves nothing was added.
const RACY: Duration = Duration::from_millis(50);

pub struct BlobSync {
    dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    synced: HashSet<OsString>,
    /// The directory's mtime at the last full listing, if it was old enough to trust.
    trusted_mtime: Option<SystemTime>,
}

impl BlobSync {
    pub fn new(data_dir: &std::path::Path) -> Self {
        BlobSync {
            dir: data_dir.join("blobs"),
            state: Mutex::default(),
        }
    }

    /// Fsyncs every blob file not synced before, and the directory when there was one.
    /// Returns how many files it synced.
    pub fn sync(&self) -> Result<usize, StoreError> {
        let mtime = match std::fs::metadata(&self.dir) {
            Ok(meta) => meta.modified().ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(e)),
        };
        // Only the committing thread calls this; a poisoned lock held a consistent set.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if mtime.is_some() && mtime == state.trusted_mtime {
            return Ok(0);
        }
        let mut present = HashSet::new();
        let mut synced = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            if !state.synced.contains(&name) {
                match std::fs::File::open(entry.path()) {
                    Ok(file) => file.sync_all().map_err(io)?,
                    // sled removed it meanwhile (its page was rewritten): nothing to keep.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io(e)),
                }
                synced += 1;
            }
            present.insert(name);
        }
        if synced > 0 {
            std::fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        state.synced = present;
        let old_enough = mtime
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > RACY);
        state.trusted_mtime = if old_enough { mtime } else { None };
        Ok(synced)
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::io("syncing sled's blob files", e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_files_are_synced_once_and_an_old_mtime_skips_the_listing() {
        let dir = tempfile::tempdir().unwrap();
        let sync = BlobSync::new(dir.path());
        assert_eq!(sync.sync().unwrap(), 0, "no blobs directory yet");
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        std::fs::write(dir.path().join("blobs/17"), b"page").unwrap();
        std::fs::write(dir.path().join("blobs/18"), b"page").unwrap();
        assert_eq!(sync.sync().unwrap(), 2);
        assert_eq!(sync.sync().unwrap(), 0, "already synced");
        std::fs::write(dir.path().join("blobs/19"), b"page").unwrap();
        assert_eq!(
            sync.sync().unwrap(),
            1,
            "a file added within the racy window is found"
        );
        std::thread::sleep(RACY * 2);
        assert_eq!(sync.sync().unwrap(), 0);
        assert!(
            sync.state.lock().unwrap().trusted_mtime.is_some(),
            "an old mtime is trusted"
        );
        std::fs::remove_file(dir.path().join("blobs/17")).unwrap();
        std::fs::write(dir.path().join("blobs/20"), b"page").unwrap();
        assert_eq!(sync.sync().unwrap(), 1, "a changed mtime lists again");
    }
}
