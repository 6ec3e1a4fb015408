//! Task ids (`tsk_` + 32 hex digits: 48 bits of creation time, 80 random) and the cheap
//! hasher of the runtime's maps keyed by them.

use super::Millis;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A task id: 128 bits (48 of creation time, then 80 random ones), printed as `tsk_` + 32 hex
/// digits. It is the capability to read a task's status, so it must be unguessable (see
/// `TaskId::time_ordered`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId(pub [u8; 16]);

impl TaskId {
    const PREFIX: &'static str = "tsk_";

    /// A fresh id that sorts by creation time: `at` (ms, 48 bits, big-endian) then 80 bits
    /// from the operating system's random source, as in a ULID. 80 random bits keep the id
    /// unguessable; the time prefix puts a task's journal keys next to those of tasks created
    /// about when it was, so sled stops rewriting the pages of finished tasks (every new
    /// random id used to land in some old task's page).
    pub fn time_ordered(at: Millis) -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes[6..])?;
        bytes[..6].copy_from_slice(&(at.max(0) as u64).to_be_bytes()[2..]);
        Ok(TaskId(bytes))
    }
}

/// The hasher of the runtime's per-task maps (`TaskIdMap`, the timer wheel's index). std's
/// default, SipHash, is keyed so that chosen keys cannot collide on purpose; these maps hold
/// only ids this engine made, 80 bits of them random, so a plain multiply-rotate hash (as
/// rustc's own FxHash) is as good and costs less at every lookup and at every resize, which
/// rehashes the whole map while the runtime loop waits.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            // `chunks_exact(8)` yields 8-byte slices only.
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        for byte in chunks.remainder() {
            self.add(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A map keyed by task ids, hashed with `IdHasher`.
pub type TaskIdMap<V> =
    std::collections::HashMap<TaskId, V, std::hash::BuildHasherDefault<IdHasher>>;
/// A set of task ids, hashed with `IdHasher`.
pub type TaskIdSet = std::collections::HashSet<TaskId, std::hash::BuildHasherDefault<IdHasher>>;

impl fmt::Display for TaskId {
    /// Without allocating: ids are written into every answer and `Location` header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut digits = [0u8; 32];
        // 16 bytes take exactly 32 hex digits, the buffer's length.
        hex::encode_to_slice(self.0, &mut digits).expect("32 digits for 16 bytes");
        f.write_str(Self::PREFIX)?;
        // Hex digits are ASCII.
        f.write_str(std::str::from_utf8(&digits).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for TaskId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let hex_part = s.strip_prefix(Self::PREFIX).ok_or(())?;
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| ())?;
        Ok(TaskId(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_id_round_trips_through_its_text_form() {
        let id = TaskId::time_ordered(1_764_000_000_000).unwrap();
        let text = id.to_string();
        assert!(text.starts_with("tsk_") && text.len() == 36);
        assert_eq!(text.parse::<TaskId>(), Ok(id));
        assert!("tsk_xyz".parse::<TaskId>().is_err());
        assert!("abc".parse::<TaskId>().is_err());
    }

    /// hashbrown picks a bucket from a hash's low bits and a control byte from its top 7:
    /// ids of one millisecond must spread over both.
    #[test]
    fn id_hashes_of_one_millisecond_spread_over_low_and_high_bits() {
        use std::hash::BuildHasher;
        let hasher = std::hash::BuildHasherDefault::<IdHasher>::default();
        let hashes: Vec<u64> = (0..4096)
            .map(|_| hasher.hash_one(TaskId::time_ordered(7_000).unwrap()))
            .collect();
        let low: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 0xfff).collect();
        let high: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert!(
            low.len() > 2500,
            "{} distinct low 12 bits of 4096",
            low.len()
        );
        assert_eq!(high.len(), 128, "every top-7-bit value");
        let mut map = TaskIdMap::default();
        map.insert(TaskId([1; 16]), 1);
        assert_eq!(map.get(&TaskId([1; 16])), Some(&1));
        assert_eq!(map.get(&TaskId([2; 16])), None);
    }

    #[test]
    fn ids_sort_by_creation_time_and_differ_in_80_random_bits() {
        let (a, b) = (
            TaskId::time_ordered(5_000).unwrap(),
            TaskId::time_ordered(5_000).unwrap(),
        );
        assert_ne!(a, b, "same millisecond, different random part");
        assert_eq!(a.0[..6], b.0[..6]);
        assert!(
            TaskId::time_ordered(4_999).unwrap() < a && a < TaskId::time_ordered(5_001).unwrap()
        );
        let late = TaskId::time_ordered(1_764_000_000_000).unwrap();
        assert_eq!(
            u64::from_be_bytes([
                0, 0, late.0[0], late.0[1], late.0[2], late.0[3], late.0[4], late.0[5]
            ]),
            1_764_000_000_000
        );
    }
}
