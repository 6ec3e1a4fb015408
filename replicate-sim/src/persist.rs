//! Optional persistence of the simulator's state ([`crate::SimConfig::state_file`]), so that a
//! restarted simulator keeps serving the predictions it had: an append-only JSON-lines log.
//!
//! The first line is a header: a format tag, the address the simulator listened on (so a
//! restart can bind it again, see [`previous_addr`]) and the webhook signing secret. Every other
//! line records one change: a prediction created (every stored field, its plan included, so its
//! timeline, computed from its creation time, continues unchanged), canceled, or its terminal
//! webhook settled (delivered or given up).
//!
//! A create or cancel is answered only once its line is on disk: one writer thread takes every
//! queued line, writes them at once and fsyncs once for all (group commit), so `kill -9` never
//! loses an acknowledged prediction. Webhook notes do not wait for the fsync (losing one only
//! means a duplicate delivery after a restart, which receivers must tolerate anyway).
//!
//! On start the log is read back ([`load`]) and rewritten compacted ([`open`]: a temp file,
//! fsync, rename, fsync of the directory, so that step never tears). A crash can only tear the
//! last line of the log; such a line is skipped. Any other line that does not parse is an error.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::prediction::{rfc3339, Plan, StoredPrediction};
use crate::OutputShape;

/// The header's format tag; another value is refused.
const FORMAT: &str = "replicate-sim-state/1";

/// One line of the log.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Header {
        format: String,
        addr: Option<SocketAddr>,
        webhook_secret: String,
    },
    Created(Box<Record>),
    Canceled {
        id: String,
        at: String,
    },
    WebhookDone {
        id: String,
    },
}

/// A [`StoredPrediction`] as written; times are RFC 3339 with full precision.
#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    model: String,
    version: String,
    deployment: Option<String>,
    model_key: String,
    input: Value,
    created_at: String,
    deadline: Option<String>,
    webhook: Option<String>,
    webhook_events_filter: Option<Vec<String>>,
    starting_ns: u64,
    processing_ns: u64,
    failure: Option<String>,
    output: String,
    canceled_at: Option<String>,
    /// Only in compacted logs: the terminal webhook was settled before the last restart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    webhook_done: bool,
}

impl Record {
    fn new(p: &StoredPrediction, webhook_done: bool) -> Record {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Record {
            id: p.id.clone(),
            model: p.model.clone(),
            version: p.version.clone(),
            deployment: p.deployment.clone(),
            model_key: p.model_key.clone(),
            input: p.input.clone(),
            created_at: rfc3339(p.created_at),
            deadline: p.deadline.map(rfc3339),
            webhook: p.webhook.clone(),
            webhook_events_filter: p.webhook_events_filter.clone(),
            starting_ns: nanos(p.plan.starting),
            processing_ns: nanos(p.plan.processing),
            failure: p.plan.failure.clone(),
            output: match p.plan.output {
                OutputShape::Url => "url",
                OutputShape::UrlList => "url_list",
                OutputShape::Echo => "echo",
            }
            .into(),
            canceled_at: p.canceled_at.map(rfc3339),
            webhook_done,
        }
    }

    fn into_stored(self) -> Result<StoredPrediction, String> {
        let output = match self.output.as_str() {
            "url" => OutputShape::Url,
            "url_list" => OutputShape::UrlList,
            "echo" => OutputShape::Echo,
            other => return Err(format!("unknown output shape {other:?}")),
        };
        Ok(StoredPrediction {
            id: self.id,
            model: self.model,
            version: self.version,
            deployment: self.deployment,
            model_key: self.model_key,
            input: self.input,
            created_at: parse_time(&self.created_at)?,
            deadline: self.deadline.as_deref().map(parse_time).transpose()?,
            webhook: self.webhook,
            webhook_events_filter: self.webhook_events_filter,
            plan: Plan {
                starting: Duration::from_nanos(self.starting_ns),
                processing: Duration::from_nanos(self.processing_ns),
                failure: self.failure,
                output,
            },
            canceled_at: self.canceled_at.as_deref().map(parse_time).transpose()?,
        })
    }
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("bad time {text:?}: {e}"))
}

fn to_line(line: &Line) -> Vec<u8> {
    // Serialising cannot fail: every map key is a string and no Serialize impl here errs.
    serde_json::to_vec(line).expect("a state line serialises")
}

/// What a state file held.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Where the simulator that wrote it listened.
    pub addr: Option<SocketAddr>,
    pub webhook_secret: Option<String>,
    /// In creation order, cancels applied.
    pub predictions: Vec<StoredPrediction>,
    /// Ids of the predictions whose terminal webhook was delivered or given up on.
    pub webhooks_done: HashSet<String>,
}

/// Reads a state file: a missing or empty file is an empty state; a file that does not parse
/// is an `InvalidData` error naming the path and the line.
pub fn load(path: &Path) -> io::Result<Loaded> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => {
            let message = format!("cannot read simulator state file {}: {e}", path.display());
            return Err(io::Error::new(e.kind(), message));
        }
    };
    let (loaded, torn) = parse(&bytes).map_err(|e| {
        let message = format!("cannot load simulator state file {}: {e}", path.display());
        io::Error::new(io::ErrorKind::InvalidData, message)
    })?;
    if torn {
        tracing::warn!(path = %path.display(), "Skipped the torn last line of the simulator state (a crash mid-write).");
    }
    Ok(loaded)
}

/// Parses a whole log; also says whether a torn last line was skipped.
fn parse(bytes: &[u8]) -> Result<(Loaded, bool), String> {
    let mut loaded = Loaded::default();
    if bytes.is_empty() {
        return Ok((loaded, false));
    }
    let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
        return Err("no complete line: not a replicate-sim state file".into());
    };
    let torn = end + 1 < bytes.len();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (n, raw) in bytes[..end].split(|&b| b == b'\n').enumerate() {
        let at = |e: String| format!("line {}: {e}", n + 1);
        let line: Line = serde_json::from_slice(raw).map_err(|e| at(e.to_string()))?;
        match (n, line) {
            (
                0,
                Line::Header {
                    format,
                    addr,
                    webhook_secret,
                },
            ) => {
                if format != FORMAT {
                    return Err(at(format!("format {format:?}, expected {FORMAT:?}")));
                }
                loaded.addr = addr;
                loaded.webhook_secret = Some(webhook_secret);
            }
            (0, _) => return Err(at("not a replicate-sim state header".into())),
            (_, Line::Header { .. }) => return Err(at("a second header".into())),
            (_, Line::Created(record)) => {
                let done = record.webhook_done;
                let prediction = (*record).into_stored().map_err(at)?;
                if index.contains_key(&prediction.id) {
                    return Err(at(format!("prediction {} created twice", prediction.id)));
                }
                if done {
                    loaded.webhooks_done.insert(prediction.id.clone());
                }
                index.insert(prediction.id.clone(), loaded.predictions.len());
                loaded.predictions.push(prediction);
            }
            (_, Line::Canceled { id, at: time }) => {
                let Some(&i) = index.get(&id) else {
                    return Err(at(format!("cancel of unknown prediction {id}")));
                };
                loaded.predictions[i].canceled_at = Some(parse_time(&time).map_err(at)?);
            }
            (_, Line::WebhookDone { id }) => {
                if !index.contains_key(&id) {
                    return Err(at(format!("webhook note for unknown prediction {id}")));
                }
                loaded.webhooks_done.insert(id);
            }
        }
    }
    Ok((loaded, torn))
}

/// The address recorded in the state file's header, if it has a readable one. Lets a restart
/// try the same port first, so the output URLs the simulator served keep working.
pub fn previous_addr(path: &Path) -> Option<SocketAddr> {
    let mut first = String::new();
    BufReader::new(File::open(path).ok()?)
        .read_line(&mut first)
        .ok()?;
    match serde_json::from_str(first.trim_end()).ok()? {
        Line::Header { addr, .. } => addr,
        _ => None,
    }
}

mod writer;

pub use writer::{open, Durable, Persister};

#[cfg(test)]
mod tests;
