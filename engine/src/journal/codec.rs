//! The on-disk record envelope: `[format u8][schema u16 BE][bincode payload][crc32 BE]`.
//! The CRC covers everything before it. Each stored type has a schema number; a later
//! version keeps the old schemas as frozen types and converts them forward on read.

use super::schema_v3::TaskV3;
use crate::event::Event;
use crate::model::Task;
use serde::{de::DeserializeOwned, Serialize};

pub const FORMAT: u8 = 1;
/// Task snapshots before steps kept output files (`journal::schema_v1`); read, never written.
pub const SCHEMA_TASK_V1: u16 = 1;
pub const SCHEMA_EVENT_V1: u16 = 2;
/// Task snapshots with `Step::kept_output` (`journal::schema_v2`); read, never written.
pub const SCHEMA_TASK_V2: u16 = 3;
/// A settled task's events in one record (`journal::sealed`): the first sequence number and
/// the events, bincode with variable-length integers, then LZ4 (block, size prepended).
pub const SCHEMA_SEALED_V1: u16 = 4;
/// The events one commit appended to one task, in order, as one journal entry keyed by the
/// last one's sequence number; a commit of a single event still writes `SCHEMA_EVENT_V1`.
pub const SCHEMA_EVENT_RUN_V1: u16 = 5;
/// Task snapshots with `Step::sent` (`journal::schema_v3`); read, never written.
pub const SCHEMA_TASK_V3: u16 = 6;
/// Task snapshots with stages (`Task::stages`, `Step::stage` and the fields after it).
pub const SCHEMA_TASK_V4: u16 = 7;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("record too short ({0} bytes)")]
    TooShort(usize),
    #[error("checksum mismatch")]
    Checksum,
    #[error("unknown record format {0}")]
    Format(u8),
    #[error("unexpected schema {found}, expected {expected}")]
    Schema { found: u16, expected: u16 },
    #[error("undecodable payload: {0}")]
    Payload(String),
}

pub fn encode_task(task: &Task) -> Vec<u8> {
    encode(SCHEMA_TASK_V4, task)
}

/// Today's task, from a snapshot of any schema this version knows.
pub fn decode_task(bytes: &[u8]) -> Result<Task, CodecError> {
    match schema_of(bytes) {
        Some(SCHEMA_TASK_V1) => decode::<super::schema_v1::TaskV1>(SCHEMA_TASK_V1, bytes)
            .map(|v1| Task::from(TaskV3::from(v1))),
        Some(SCHEMA_TASK_V2) => decode::<super::schema_v2::TaskV2>(SCHEMA_TASK_V2, bytes)
            .map(|v2| Task::from(TaskV3::from(v2))),
        Some(SCHEMA_TASK_V3) => decode::<TaskV3>(SCHEMA_TASK_V3, bytes).map(Task::from),
        _ => decode(SCHEMA_TASK_V4, bytes),
    }
}

/// The schema number of a record, when it is long enough to have one.
fn schema_of(bytes: &[u8]) -> Option<u16> {
    (bytes.len() >= 3).then(|| u16::from_be_bytes([bytes[1], bytes[2]]))
}

pub fn encode_event(event: &Event) -> Vec<u8> {
    encode(SCHEMA_EVENT_V1, event)
}

pub fn decode_event(bytes: &[u8]) -> Result<Event, CodecError> {
    decode(SCHEMA_EVENT_V1, bytes)
}

/// Consecutive events of one task as one record (at least two: one is `encode_event`).
pub fn encode_event_run(events: &[&Event]) -> Vec<u8> {
    encode(SCHEMA_EVENT_RUN_V1, &events)
}

/// The events of one journal entry, in order: a run, or a single event.
pub fn decode_events(bytes: &[u8]) -> Result<Vec<Event>, CodecError> {
    match schema_of(bytes) {
        Some(SCHEMA_EVENT_RUN_V1) => decode(SCHEMA_EVENT_RUN_V1, bytes),
        _ => decode_event(bytes).map(|event| vec![event]),
    }
}

/// A settled task's events from `first_seq` on, as one record. Compressed because a task's
/// events repeat themselves: every step's input copies its item, prediction ids appear twice,
/// output URLs share their host and path.
pub fn encode_sealed<E: std::borrow::Borrow<Event> + Serialize>(
    first_seq: u64,
    events: &[E],
) -> Vec<u8> {
    use bincode::Options;
    // As in `encode`: serializing our own plain types cannot fail.
    let payload = bincode::DefaultOptions::new()
        .serialize(&(first_seq, events))
        .expect("bincode can encode our types");
    let compressed = lz4_flex::compress_prepend_size(&payload);
    let mut out = Vec::with_capacity(3 + compressed.len() + 4);
    out.push(FORMAT);
    out.extend_from_slice(&SCHEMA_SEALED_V1.to_be_bytes());
    out.extend_from_slice(&compressed);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The first sequence number and the events of a sealed record.
pub fn decode_sealed(bytes: &[u8]) -> Result<(u64, Vec<Event>), CodecError> {
    use bincode::Options;
    let payload = open(SCHEMA_SEALED_V1, bytes)?;
    // The CRC matched, so the prepended size is the one we wrote, not a corrupt huge one.
    let plain = lz4_flex::decompress_size_prepended(payload)
        .map_err(|e| CodecError::Payload(e.to_string()))?;
    bincode::DefaultOptions::new()
        .deserialize(&plain)
        .map_err(|e| CodecError::Payload(e.to_string()))
}

fn encode<T: Serialize>(schema: u16, value: &T) -> Vec<u8> {
    // Serializing (or sizing) our own plain types cannot fail: no maps with non-string keys,
    // and none of the serde features bincode 1 cannot encode, since it is not
    // self-describing (`flatten`, `untagged`, `tag`, `skip*` on stored types).
    let payload = bincode::serialized_size(value).expect("bincode can size our types");
    let mut out = Vec::with_capacity(3 + payload as usize + 4);
    out.push(FORMAT);
    out.extend_from_slice(&schema.to_be_bytes());
    bincode::serialize_into(&mut out, value).expect("bincode into a Vec cannot fail");
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn decode<T: DeserializeOwned>(expected: u16, bytes: &[u8]) -> Result<T, CodecError> {
    bincode::deserialize(open(expected, bytes)?).map_err(|e| CodecError::Payload(e.to_string()))
}

/// The payload of a record of the `expected` schema, once its CRC, format and schema hold.
fn open(expected: u16, bytes: &[u8]) -> Result<&[u8], CodecError> {
    if bytes.len() < 7 {
        return Err(CodecError::TooShort(bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != crc {
        return Err(CodecError::Checksum);
    }
    if body[0] != FORMAT {
        return Err(CodecError::Format(body[0]));
    }
    let schema = u16::from_be_bytes([body[1], body[2]]);
    if schema != expected {
        return Err(CodecError::Schema {
            found: schema,
            expected,
        });
    }
    Ok(&body[3..])
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
