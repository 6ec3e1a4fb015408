//! The writing half of [`crate::persist`]: the atomic, compacted rewrite of the state file at
//! start ([`open`]) and the writer thread that appends to it afterwards with group commit
//! ([`Persister`]); [`Durable`] lets a request wait for its line's fsync.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::{to_line, Line, Record, FORMAT};
use crate::prediction::{rfc3339, StoredPrediction};

/// Rewrites the state file compacted (`predictions` with their cancels, webhook notes folded
/// in; `addr` and `webhook_secret` in the header), atomically, and returns the writer that
/// appends to it from now on. Creates the parent directory if needed.
pub fn open(
    path: &Path,
    addr: SocketAddr,
    webhook_secret: &str,
    predictions: &[StoredPrediction],
    webhooks_done: &HashSet<String>,
) -> io::Result<Persister> {
    let context = |e: io::Error| {
        let message = format!("cannot write simulator state file {}: {e}", path.display());
        io::Error::new(e.kind(), message)
    };
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(context)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut out = BufWriter::new(File::create(&tmp).map_err(context)?);
    let header = Line::Header {
        format: FORMAT.into(),
        addr: Some(addr),
        webhook_secret: webhook_secret.into(),
    };
    let mut write = |line: &Line| {
        out.write_all(&to_line(line))?;
        out.write_all(b"\n")
    };
    write(&header).map_err(context)?;
    for p in predictions {
        let done = webhooks_done.contains(&p.id);
        write(&Line::Created(Box::new(Record::new(p, done)))).map_err(context)?;
    }
    let file = out.into_inner().map_err(|e| context(e.into_error()))?;
    file.sync_all().map_err(context)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(context)?;
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(context)?;
    let file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(context)?;
    let (tx, rx) = mpsc::channel();
    let owned = path.to_path_buf();
    let writer = std::thread::Builder::new()
        .name("sim-state-writer".into())
        .spawn(move || write_loop(file, &owned, rx))
        .map_err(context)?;
    Ok(Persister {
        tx: Some(tx),
        writer: Some(writer),
    })
}

/// A queued line; with `ack`, the sender learns when it (and all before it) is fsynced.
struct Op {
    line: Option<Vec<u8>>,
    ack: Option<oneshot::Sender<Result<(), String>>>,
}

/// Appends to the state file through its writer thread. Dropping it writes what is queued,
/// fsyncs and waits for the thread.
pub struct Persister {
    tx: Option<mpsc::Sender<Op>>,
    writer: Option<JoinHandle<()>>,
}

/// A pending durable write: [`Durable::wait`] returns once it is on disk.
pub struct Durable(Option<oneshot::Receiver<Result<(), String>>>);

impl Durable {
    /// Nothing to wait for (the simulator does not persist).
    pub fn none() -> Self {
        Durable(None)
    }

    /// Waits for the fsync; the error says why the line is not on disk.
    pub async fn wait(self) -> Result<(), String> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx
                .await
                .unwrap_or_else(|_| Err("the simulator state writer has stopped".into())),
        }
    }
}

impl Persister {
    fn send(&self, line: Option<Line>, durable: bool) -> Durable {
        let (ack, rx) = match durable {
            true => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        let op = Op {
            line: line.as_ref().map(to_line),
            ack,
        };
        // A failed send drops `ack`, so `wait` reports the stopped writer.
        if let Some(tx) = &self.tx {
            let _ = tx.send(op);
        }
        Durable(rx)
    }

    /// Queues a new prediction; call under the store lock so lines keep the store's order.
    pub fn created(&self, prediction: &StoredPrediction) -> Durable {
        let record = Box::new(Record::new(prediction, false));
        self.send(Some(Line::Created(record)), true)
    }

    /// Queues a cancel at `at`; call under the store lock.
    pub fn canceled(&self, id: &str, at: OffsetDateTime) -> Durable {
        let line = Line::Canceled {
            id: id.into(),
            at: rfc3339(at),
        };
        self.send(Some(line), true)
    }

    /// Notes that prediction `id`'s terminal webhook is settled (no fsync wait).
    pub fn webhook_done(&self, id: &str) {
        self.send(Some(Line::WebhookDone { id: id.into() }), false);
    }

    /// Returns once everything queued so far is fsynced.
    pub async fn flush(&self) -> Result<(), String> {
        self.send(None, true).wait().await
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer thread: each round takes every queued line, writes them in one call and fsyncs
/// once if anyone waits. After a failed write it stops writing (a partial line followed by
/// more would corrupt the log) and answers every later wait with the error.
fn write_loop(mut file: File, path: &Path, rx: mpsc::Receiver<Op>) {
    let mut broken: Option<String> = None;
    let mut buf = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        buf.clear();
        for line in batch.iter().filter_map(|op| op.line.as_ref()) {
            buf.extend_from_slice(line);
            buf.push(b'\n');
        }
        let sync = batch.iter().any(|op| op.ack.is_some());
        let result = match &broken {
            Some(error) => Err(error.clone()),
            None => file
                .write_all(&buf)
                .and_then(|()| if sync { file.sync_data() } else { Ok(()) })
                .map_err(|e| format!("cannot write simulator state file {}: {e}", path.display())),
        };
        if let (Err(error), None) = (&result, &broken) {
            tracing::error!(%error, "Simulator state is no longer written.");
            broken = Some(error.clone());
        }
        for ack in batch.into_iter().filter_map(|op| op.ack) {
            let _ = ack.send(result.clone());
        }
    }
    if broken.is_none() {
        if let Err(error) = file.sync_data() {
            tracing::warn!(%error, path = %path.display(), "Final fsync of the simulator state failed.");
        }
    }
}
