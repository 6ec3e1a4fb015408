//! Why prediction owners are keyed by time: the journal's write pattern for finished tasks,
//! replayed on sled 0.34 through `SledBackend::apply` (one `apply_batch`, `flush`,
//! `fdatasync` per batch), with the owner entries keyed three ways.
//!
//! ```sh
//! cargo run --release -p stepwise-engine --example sled_owner_keys
//! ```
//!
//! Each simulated task (200, then 1 000 in flight; 100 advanced per batch) writes what a three-step
//! task writes: a listing key and an unfinished key at its start, ten ~190 B events over its
//! life, three 16-byte owner entries (one per prediction), and at the end one ~720 B sealed
//! record in the batch that deletes its events and its unfinished key. Only the owners'
//! keys change between runs: random (a prediction id, as the first layout had), after a
//! time prefix (as now), or not written at all (the floor). With more tasks in flight, each
//! one's events wait longer in pages that other writes keep touching, and every layout
//! costs more: that is sled's log cleaning, not the owner keys (docs/benchmarks-history.md,
//! "sled alone: entries and segments").

mod common;

use common::dir_bytes;
use stepwise_engine::journal::{Backend, Op, SledBackend};

const TASKS: u64 = 10_000;
const PER_BATCH: u64 = 100;
const STAGES: u64 = 11;

#[derive(Clone, Copy, PartialEq)]
enum Owners {
    Random,
    TimeOrdered,
    None,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "{:<10} {:<14} {:>10} {:>12} {:>12}",
        "in flight", "owner keys", "disk MB", "disk B/task", "live B/task"
    );
    for (in_flight, owners) in [200, 1_000].into_iter().flat_map(|n| {
        [
            (n, Owners::Random),
            (n, Owners::TimeOrdered),
            (n, Owners::None),
        ]
    }) {
        let dir = tempfile::tempdir()?;
        let backend = SledBackend::open(dir.path(), 32 << 20)?;
        let before = dir_bytes(dir.path())?;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut stage = vec![0u64; in_flight as usize];
        let mut task_of = (0..in_flight).collect::<Vec<u64>>();
        let (mut next_task, mut finished, mut batch_no, mut cursor) =
            (in_flight, 0u64, 0u64, 0usize);
        while finished < TASKS {
            let mut ops: Vec<Op> = vec![];
            for _ in 0..PER_BATCH {
                let slot = cursor % in_flight as usize;
                cursor += 1;
                let task = task_of[slot];
                let id = task.to_be_bytes();
                let event = |seq: u64| [&[b'e'][..], &id, &[0; 8], &seq.to_be_bytes()].concat();
                stage[slot] += 1;
                match stage[slot] {
                    1 => {
                        ops.push(([&[b'c'][..], &id, &id, &[0; 8]].concat(), Some(vec![])));
                        ops.push(([&[b'a'][..], &id, &[0; 8]].concat(), Some(vec![])));
                        ops.push((event(1), Some(noise(&mut rng, 190))));
                    }
                    s if s < STAGES => {
                        ops.push((event(s), Some(noise(&mut rng, 190))));
                        if s % 3 == 0 {
                            let prediction: Vec<u8> =
                                noise(&mut rng, 26).iter().map(|b| b'a' + b % 26).collect();
                            let key = match owners {
                                Owners::Random => Some([&[b'p'][..], &prediction].concat()),
                                Owners::TimeOrdered => Some(
                                    [&[b'q'][..], &batch_no.to_be_bytes(), &prediction].concat(),
                                ),
                                Owners::None => None,
                            };
                            if let Some(key) = key {
                                ops.push((key, Some([id, [0; 8]].concat())));
                            }
                        }
                    }
                    _ => {
                        for seq in 1..STAGES {
                            ops.push((event(seq), None));
                        }
                        ops.push(([&[b'a'][..], &id, &[0; 8]].concat(), None));
                        ops.push((
                            [&[b's'][..], &id, &[0; 8]].concat(),
                            Some(noise(&mut rng, 720)),
                        ));
                        finished += 1;
                        stage[slot] = 0;
                        task_of[slot] = next_task;
                        next_task += 1;
                    }
                }
            }
            backend.apply(ops)?;
            batch_no += 1;
        }
        let grown = dir_bytes(dir.path())? - before;
        let live_per_task = 25 + 25 + 720 + if owners == Owners::None { 0 } else { 3 * 51 };
        let name = match owners {
            Owners::Random => "random",
            Owners::TimeOrdered => "time-ordered",
            Owners::None => "none",
        };
        println!(
            "{:<10} {:<14} {:>10.1} {:>12.0} {:>12}",
            in_flight,
            name,
            grown as f64 / 1e6,
            grown as f64 / finished as f64,
            live_per_task
        );
    }
    Ok(())
}

/// `len` pseudo-random bytes (xorshift), so nothing compresses.
fn noise(state: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state as u8
        })
        .collect()
}
