//! How many bytes sled 0.34 puts on disk per byte the journal stores, through the journal's
//! own durable write path (`SledBackend::apply`: one `apply_batch`, `flush`, `fdatasync`),
//! with nothing of stepwise above it. This is the floor under `bench e2e`'s disk per task.
//!
//! ```sh
//! cargo run --release -p stepwise-engine --example sled_write_amplification
//! ```
//!
//! For each key order (ascending, as time-ordered task ids give; random, as prediction ids
//! give) and value size, it writes 40 000 entries in batches of 100 into a fresh data dir
//! and prints the growth of its files against the keys and values written.

mod common;

use common::dir_bytes;
use stepwise_engine::journal::{Backend, SledBackend};

const ENTRIES: u64 = 40_000;
const BATCH: u64 = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "{:<10} {:>7} {:>12} {:>12} {:>6} {:>14}",
        "keys", "value B", "content B", "disk B", "ratio", "disk B/entry"
    );
    for ascending in [true, false] {
        for value_bytes in [50usize, 200, 1000] {
            let dir = tempfile::tempdir()?;
            let backend = SledBackend::open(dir.path(), 32 << 20)?;
            let before = dir_bytes(dir.path())?;
            let mut content = 0u64;
            let mut state = 0x9e37_79b9_7f4a_7c15u64;
            for first in (0..ENTRIES).step_by(BATCH as usize) {
                let ops = (first..first + BATCH)
                    .map(|n| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        // 25-byte keys, like an event's: a tag, 16 bytes of id, a sequence.
                        let mut key = vec![b'e'];
                        key.extend_from_slice(&(if ascending { n } else { state }).to_be_bytes());
                        key.extend_from_slice(&[0; 8]);
                        key.extend_from_slice(&n.to_be_bytes());
                        let value = (0..value_bytes)
                            .map(|i| (state >> (i % 57)) as u8)
                            .collect::<Vec<u8>>();
                        content += (key.len() + value.len()) as u64;
                        (key, Some(value))
                    })
                    .collect();
                backend.apply(ops)?;
            }
            let grown = dir_bytes(dir.path())? - before;
            println!(
                "{:<10} {:>7} {:>12} {:>12} {:>6.2} {:>14.0}",
                if ascending { "ascending" } else { "random" },
                value_bytes,
                content,
                grown,
                grown as f64 / content as f64,
                grown as f64 / ENTRIES as f64
            );
        }
    }
    Ok(())
}
