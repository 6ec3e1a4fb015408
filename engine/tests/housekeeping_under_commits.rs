//! Housekeeping never breaks the store while commits run: on the real on-disk store, group
//! commits (`apply_batch`, flush, sync), archive moves (an archive batch, then a sled
//! transaction on the journal: `apply_guarded`), retention sweeps and status reads all run
//! at once, on their own threads, for seconds. Every call must return `Ok`, no thread may
//! panic (sled's own IO threads included) or hang, and after reopening the data dir every
//! committed task that was not swept reads back exactly as its last commit left it, from
//! the archive if it was moved, while every swept task is gone.
//!
//! It guards the storage engine itself: a fork of sled 0.34.7 that released `apply_batch`'s
//! concurrency-control guard before the batch was sealed let a transaction run in that gap,
//! and sled panicked (`assert!(bsl < high)` in `pagecache/iobuf.rs`) on the committing
//! thread or on an IO-pool thread, where the panic could leave later flushes waiting
//! forever. A committer and a transaction on one tree hit it within a fraction of a second;
//! nothing short of running them together finds it (docs/ARCHITECTURE.md, "Storage: why
//! sled, and what our code adds"). Run against that fork, this test failed in every run:
//! within half a second with that panic, or through its watchdog with the threads stuck.
//!
//! The sweep and the mover never take the same task here: in the engine a task reaches its
//! retention long after its move, so only the sweep's reads race the moves.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use stepwise_engine::event::Event;
use stepwise_engine::journal::{KvStore, ListQuery, SledBackend, Store, TaskWrite, MOVE_BATCH};
use stepwise_engine::machine;
use stepwise_engine::model::{Json, Millis, Task, TaskId, TaskStatus};

/// How long the four threads run together (wall clock)...
const RUN: Duration = Duration::from_secs(6);
/// ...or until the committer has written this many groups, whichever comes first.
const MAX_GROUPS: u64 = 4_000;
/// How long past the planned end a thread may take before the test calls it stuck.
const HANG_AFTER: Duration = Duration::from_secs(60);
/// New tasks in each group; tasks already in flight join the group when their next events
/// are due.
const NEW_PER_GROUP: u64 = 3;
const CACHE_BYTES: u64 = 16 << 20;

/// Event times (ms) of tasks that end before the sweep's cutoff ("old") and after it.
/// `+ group number` keeps every old time below the cutoff.
const OLD: Millis = 1_000_000;
const CUTOFF: Millis = 5_000_000;
const NEW: Millis = 10_000_000;
const SWEEP_LIMIT: usize = 25;

type Shared = Arc<KvStore<SledBackend>>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Script {
    /// Created, run and succeeded in one group.
    Quick,
    /// Two steps over five groups.
    TwoSteps,
    /// One step whose prediction fails, over three groups.
    Fails,
    /// Eight failed attempts before one succeeds, two events a group: past the checkpoint
    /// at sequence 16, so the task has a snapshot besides its events.
    Retries,
    /// Canceled with its prediction running (not settled yet), then the cancel settles.
    Canceled,
    /// Starts and never ends: recovery's business, never housekeeping's.
    Forever,
}

/// What task number `k` does, and whether it starts and ends before the cutoff.
struct Plan {
    script: Script,
    created_old: bool,
    ends_old: bool,
    idempotent: bool,
}

impl Plan {
    fn of(k: u64) -> Plan {
        use Script::*;
        let (script, created_old, ends_old, idempotent) = match k % 16 {
            0 | 8 => (Quick, true, true, false),
            1 => (TwoSteps, true, true, true),
            2 => (Quick, false, false, false),
            3 => (Retries, true, false, true),
            4 => (Fails, true, true, false),
            5 => (Forever, true, true, false),
            6 => (Canceled, false, false, false),
            7 => (TwoSteps, false, false, false),
            9 => (Fails, false, false, false),
            10 => (Canceled, true, true, false),
            11 => (Retries, true, true, false),
            12 => (TwoSteps, false, false, true),
            13 => (Forever, false, false, false),
            14 => (Quick, false, false, true),
            _ => (Fails, false, false, false),
        };
        Plan {
            script,
            created_old,
            ends_old,
            idempotent,
        }
    }

    /// Settles before the cutoff: the sweep's, never handed to the mover.
    fn swept_class(&self) -> bool {
        self.ends_old && self.script != Script::Forever
    }
}

/// The events task `k` commits at its `stage`-th turn (0: its start), at time `at`; `None`
/// once its script is over.
fn batch(plan: &Plan, k: u64, stage: usize, at: Millis) -> Option<Vec<Event>> {
    use Event::*;
    use Script::*;
    let pid = |step: u32, attempt: u32| format!("p-{k}-{step}-{attempt}");
    let request = |step: u32, attempt: u32| StepRequested {
        step,
        attempt,
        input: Json(format!("{{\"n\":{k}}}")),
        at,
    };
    let made = |step: u32, attempt: u32| PredictionCreated {
        step,
        attempt,
        prediction_id: pid(step, attempt),
        at,
    };
    let started = |step: u32, attempt: u32| PredictionStarted {
        step,
        prediction_id: pid(step, attempt),
        at,
    };
    let succeeded = |step: u32, attempt: u32| StepSucceeded {
        step,
        prediction_id: pid(step, attempt),
        output: Json(format!("\"out-{k}\"")),
        at,
    };
    if stage == 0 {
        let steps = if plan.script == TwoSteps { 2 } else { 1 };
        let created = TaskCreated {
            workflow: format!("w{}", k % 3),
            params: Json("{}".into()),
            items: (0..steps)
                .map(|s| Json(format!("{{\"n\":\"{k}-{s}\"}}")))
                .collect(),
            idempotency_key: plan.idempotent.then(|| format!("key-{k}")),
            at,
        };
        return Some(match plan.script {
            Quick => vec![created, request(1, 1), made(1, 1), succeeded(1, 1)],
            _ => vec![created, request(1, 1)],
        });
    }
    let events = match (plan.script, stage) {
        (TwoSteps, 1) => vec![made(1, 1)],
        (TwoSteps, 2) => vec![succeeded(1, 1), request(2, 1)],
        (TwoSteps, 3) => vec![made(2, 1), started(2, 1)],
        (TwoSteps, 4) => vec![succeeded(2, 1)],
        (Fails, 1) => vec![made(1, 1), started(1, 1)],
        (Fails, 2) => vec![StepFailed {
            step: 1,
            prediction_id: Some(pid(1, 1)),
            error: "nsfw".into(),
            canceled: false,
            at,
        }],
        (Retries, 1..=8) => {
            let attempt = stage as u32;
            vec![
                AttemptFailed {
                    step: 1,
                    prediction_id: None,
                    error: "busy".into(),
                    at,
                },
                request(1, attempt + 1),
            ]
        }
        (Retries, 9) => vec![made(1, 9)],
        (Retries, 10) => vec![succeeded(1, 9)],
        (Canceled, 1) => vec![made(1, 1)],
        (Canceled, 2) => vec![TaskCanceled {
            reason: "canceled by the client".into(),
            at,
        }],
        (Canceled, 3) => vec![CancelSettled { step: 1, at }],
        (Forever, 1) => vec![made(1, 1)],
        (Forever, 2) => vec![started(1, 1)],
        _ => return None,
    };
    Some(events)
}

/// A small xorshift64* generator for the test's choices (which in-flight task is due when).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

struct InFlight {
    k: u64,
    write: TaskWrite,
    stage: usize,
    due: u64,
}

/// What the committer wrote: every group (ids and sequence numbers), each task's last
/// committed state, and which tasks may be swept.
#[derive(Default)]
struct Committed {
    groups: Vec<Vec<(TaskId, u64)>>,
    last: HashMap<TaskId, Arc<Task>>,
    swept_class: HashSet<TaskId>,
}

/// Commits groups of new tasks and of tasks in flight as fast as it can; hands every task
/// of the mover's class to the mover once the commit that settled it returned.
fn committer(
    store: Shared,
    to_mover: mpsc::Sender<Arc<Task>>,
    readable: Arc<Mutex<Vec<(TaskId, bool)>>>,
    stop: Arc<AtomicBool>,
    end: Instant,
) -> Result<Committed, String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut committed = Committed::default();
    let mut in_flight: Vec<InFlight> = vec![];
    let mut next_k = 0u64;
    let mut g = 0u64;
    while g < MAX_GROUPS && Instant::now() < end && !stop.load(Ordering::Relaxed) {
        g += 1;
        let mut group: Vec<InFlight> = vec![];
        for _ in 0..NEW_PER_GROUP {
            let (k, plan) = (next_k, Plan::of(next_k));
            next_k += 1;
            let at = if plan.created_old { OLD } else { NEW } + g as Millis;
            let events = batch(&plan, k, 0, at).expect("every script starts");
            let id = TaskId::time_ordered(at).map_err(|e| e.to_string())?;
            let task = machine::create(id, &events[0]).map_err(|e| format!("task {k}: {e:?}"))?;
            let mut write = TaskWrite {
                task: Arc::new(task),
                events: vec![(1, events[0].clone())],
            };
            for event in &events[1..] {
                apply(&mut write, event.clone(), k)?;
            }
            if plan.swept_class() {
                committed.swept_class.insert(id);
            }
            group.push(InFlight {
                k,
                write,
                stage: 0,
                due: 0,
            });
        }
        // Tasks in flight whose next events are due, one write each.
        let (due, waiting): (Vec<_>, Vec<_>) = in_flight.drain(..).partition(|t| t.due <= g);
        in_flight = waiting;
        for mut task in due {
            let plan = Plan::of(task.k);
            let at = if plan.ends_old { OLD } else { NEW } + g as Millis;
            let Some(events) = batch(&plan, task.k, task.stage, at) else {
                continue;
            };
            task.write.events.clear();
            for event in events {
                apply(&mut task.write, event, task.k)?;
            }
            group.push(task);
        }
        let writes: Vec<TaskWrite> = group.iter().map(|t| t.write.clone()).collect();
        store
            .commit(&writes)
            .map_err(|e| format!("commit of group {g}: {e}"))?;

        committed
            .groups
            .push(writes.iter().map(|w| (w.task.id, w.task.seq)).collect());
        let mut readable = readable.lock().unwrap();
        for mut task in group {
            let id = task.write.task.id;
            committed.last.insert(id, task.write.task.clone());
            if task.stage == 0 {
                readable.push((id, committed.swept_class.contains(&id)));
            }
            if task.write.task.is_settled() {
                if !committed.swept_class.contains(&id) {
                    // The mover may have stopped already; then the task stays unmoved.
                    let _ = to_mover.send(task.write.task.clone());
                }
                continue;
            }
            task.stage += 1;
            task.due = g + 1 + rng.below(3);
            in_flight.push(task);
        }
    }
    Ok(committed)
}

fn apply(write: &mut TaskWrite, event: Event, k: u64) -> Result<(), String> {
    let task = Arc::make_mut(&mut write.task);
    machine::apply(task, &event)
        .map_err(|e| format!("task {k}: {event:?} does not apply: {e:?}"))?;
    write.events.push((task.seq, event));
    Ok(())
}

/// What the mover did: every task it asked to move, and how many `move_settled` moved.
struct Moves {
    handed: Vec<TaskId>,
    moved: usize,
    calls: usize,
}

/// Moves settled tasks as the runtime's mover does: whatever has arrived, up to a batch.
fn mover(
    store: Shared,
    inbox: mpsc::Receiver<Arc<Task>>,
    stop: Arc<AtomicBool>,
) -> Result<Moves, String> {
    let mut moves = Moves {
        handed: vec![],
        moved: 0,
        calls: 0,
    };
    loop {
        let first = match inbox.recv_timeout(Duration::from_millis(50)) {
            Ok(task) => task,
            Err(mpsc::RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut tasks = vec![first];
        while tasks.len() < MOVE_BATCH {
            match inbox.try_recv() {
                Ok(task) => tasks.push(task),
                Err(_) => break,
            }
        }
        moves.handed.extend(tasks.iter().map(|t| t.id));
        moves.moved += store
            .move_settled(&tasks)
            .map_err(|e| format!("move of {} tasks: {e}", tasks.len()))?;
        moves.calls += 1;
    }
    Ok(moves)
}

/// Sweeps with a cutoff that takes the tasks which ended "old"; returns every id it deleted.
fn sweeper(
    store: Shared,
    stop: Arc<AtomicBool>,
    end: Instant,
) -> Result<(Vec<TaskId>, usize), String> {
    let (mut swept, mut calls) = (vec![], 0);
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        swept.extend(
            store
                .sweep(CUTOFF, SWEEP_LIMIT)
                .map_err(|e| format!("sweep: {e}"))?,
        );
        calls += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok((swept, calls))
}

/// Reads committed tasks, their journals and pages of the listing; a task never goes back
/// to an earlier sequence number, and one that cannot have been swept is always there.
fn reader(
    store: Shared,
    readable: Arc<Mutex<Vec<(TaskId, bool)>>>,
    stop: Arc<AtomicBool>,
    end: Instant,
) -> Result<u64, String> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut seen: HashMap<TaskId, u64> = HashMap::new();
    let mut reads = 0u64;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        let pick = {
            let readable = readable.lock().unwrap();
            (!readable.is_empty()).then(|| readable[rng.below(readable.len() as u64) as usize])
        };
        let Some((id, may_be_swept)) = pick else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        match store.task(&id).map_err(|e| format!("read of {id}: {e}"))? {
            Some(task) => {
                let before = seen.insert(id, task.seq).unwrap_or(0);
                if task.seq < before {
                    return Err(format!("{id} went back from seq {before} to {}", task.seq));
                }
            }
            None if may_be_swept => {}
            None => {
                return Err(format!(
                    "{id} was committed and cannot have been swept, but reads as absent"
                ))
            }
        }
        let events = store
            .events(&id)
            .map_err(|e| format!("journal of {id}: {e}"))?;
        if !may_be_swept && (events.len() as u64) < seen[&id] {
            return Err(format!(
                "{id}: {} events, behind the task read before them",
                events.len()
            ));
        }
        reads += 2;
        if reads.is_multiple_of(16) {
            let status = [None, Some(TaskStatus::Succeeded), Some(TaskStatus::Running)]
                [rng.below(3) as usize];
            let page = store
                .list(&ListQuery {
                    status,
                    limit: 20,
                    ..Default::default()
                })
                .map_err(|e| format!("list: {e}"))?;
            if let Some(cursor) = page.next_cursor {
                let query = ListQuery {
                    status,
                    limit: 20,
                    cursor: Some(cursor),
                    ..Default::default()
                };
                store
                    .list(&query)
                    .map_err(|e| format!("list, second page: {e}"))?;
            }
            reads += 1;
        }
        if reads.is_multiple_of(32) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(reads)
}

/// Tells the watchdog this thread ended (returned or unwound), and stops the others.
struct Done {
    name: &'static str,
    tx: mpsc::Sender<&'static str>,
    stop: Arc<AtomicBool>,
}

impl Drop for Done {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.tx.send(self.name);
    }
}

fn spawn<T: Send + 'static>(
    name: &'static str,
    done: &mpsc::Sender<&'static str>,
    stop: &Arc<AtomicBool>,
    body: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> JoinHandle<Result<T, String>> {
    let done = Done {
        name,
        tx: done.clone(),
        stop: stop.clone(),
    };
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _done = done;
            body()
        })
        .expect("a thread")
}

/// Panics anywhere in the process, sled's own threads included, with the thread's name.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record_every_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current()
            .name()
            .unwrap_or("<unnamed>")
            .to_owned();
        PANICS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("thread {thread}: {info}"));
        default(info);
    }));
}

/// A copy: the lock must not be held across a panic, whose hook takes it.
fn panics_so_far() -> Vec<String> {
    PANICS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn joined<T>(
    name: &str,
    handle: JoinHandle<Result<T, String>>,
    failures: &mut Vec<String>,
) -> Option<T> {
    match handle.join() {
        Ok(Ok(value)) => Some(value),
        Ok(Err(error)) => {
            failures.push(format!("{name}: {error}"));
            None
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{name} panicked: {message}"));
            None
        }
    }
}

#[test]
fn moves_sweeps_and_reads_racing_group_commits_never_fail_and_lose_nothing() {
    record_every_panic();
    let dir = tempfile::tempdir().unwrap();
    let began = Instant::now();
    let store: Shared = Arc::new(KvStore::open(dir.path(), CACHE_BYTES).expect("the store opens"));

    let end = began + RUN;
    let stop = Arc::new(AtomicBool::new(false));
    let readable = Arc::new(Mutex::new(vec![]));
    let (done_tx, done_rx) = mpsc::channel();
    let (to_mover, mover_inbox) = mpsc::channel();
    let committing = {
        let (store, readable, stop2) = (store.clone(), readable.clone(), stop.clone());
        spawn("committer", &done_tx, &stop, move || {
            committer(store, to_mover, readable, stop2, end)
        })
    };
    let moving = {
        let (store, stop2) = (store.clone(), stop.clone());
        spawn("mover", &done_tx, &stop, move || {
            mover(store, mover_inbox, stop2)
        })
    };
    let sweeping = {
        let (store, stop2) = (store.clone(), stop.clone());
        spawn("sweeper", &done_tx, &stop, move || {
            sweeper(store, stop2, end)
        })
    };
    let reading = {
        let (store, readable, stop2) = (store.clone(), readable.clone(), stop.clone());
        spawn("reader", &done_tx, &stop, move || {
            reader(store, readable, stop2, end)
        })
    };
    drop(done_tx);

    // The watchdog: a store call that never returns (a flush waiting on an IO thread that
    // died) must fail the test, not hang it.
    let mut running: HashSet<&str> = ["committer", "mover", "sweeper", "reader"].into();
    let deadline = end + HANG_AFTER;
    while !running.is_empty() {
        match done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(name) => {
                running.remove(name);
            }
            Err(_) => {
                let panics = panics_so_far();
                panic!(
                    "{running:?} still running {HANG_AFTER:?} after the planned end: a store call never \
                     returned (panics so far: {panics:#?})"
                )
            }
        }
    }
    let ran = began.elapsed();

    let mut failures = vec![];
    let committed = joined("committer", committing, &mut failures);
    let moves = joined("mover", moving, &mut failures);
    let sweeps = joined("sweeper", sweeping, &mut failures);
    let reads = joined("reader", reading, &mut failures);
    let panics = panics_so_far();
    assert!(
        failures.is_empty() && panics.is_empty(),
        "failures: {failures:#?}\npanics: {panics:#?}"
    );
    let (committed, moves, (swept, sweep_calls), reads) = (
        committed.unwrap(),
        moves.unwrap(),
        sweeps.unwrap(),
        reads.unwrap(),
    );
    eprintln!(
        "{ran:?}: {} groups ({} tasks), {} moved of {} handed in {} moves, {} swept in {} sweeps, {reads} reads",
        committed.groups.len(),
        committed.last.len(),
        moves.moved,
        moves.handed.len(),
        moves.calls,
        swept.len(),
        sweep_calls,
    );
    // The work overlapped: each thread had something to do.
    assert!(
        committed.groups.len() >= 20,
        "only {} groups committed",
        committed.groups.len()
    );
    assert!(moves.moved > 0, "nothing was moved");
    assert!(!swept.is_empty(), "nothing was swept");
    assert!(reads > 0, "nothing was read");

    // What the group record says each task's last commit was.
    let mut last_seq: HashMap<TaskId, u64> = HashMap::new();
    for group in &committed.groups {
        for (id, seq) in group {
            last_seq.insert(*id, *seq);
        }
    }
    let swept: HashSet<TaskId> = swept.into_iter().collect();
    for id in &swept {
        let task = &committed.last[id];
        assert!(
            committed.swept_class.contains(id) && task.completed_at.is_some_and(|at| at < CUTOFF),
            "{id} swept: {task:?}"
        );
    }

    drop(store);
    let store = KvStore::open(dir.path(), CACHE_BYTES).expect("the store reopens");
    for (id, expected) in &committed.last {
        let read = store
            .task(id)
            .unwrap_or_else(|e| panic!("{id} after reopening: {e}"));
        if swept.contains(id) {
            assert_eq!(read, None, "{id} was swept and came back");
            assert!(
                store.events(id).unwrap().is_empty(),
                "{id} was swept, its events stayed"
            );
            continue;
        }
        let read = read.unwrap_or_else(|| panic!("{id} (seq {}) lost", last_seq[id]));
        assert_eq!(
            read.seq, last_seq[id],
            "{id}: not its last committed sequence number"
        );
        assert_eq!(&read, &**expected, "{id}: not its last committed state");
    }
    // Recovery resumes exactly the tasks that had not settled.
    let active: HashSet<TaskId> = store.active().unwrap().into_iter().map(|t| t.id).collect();
    let unsettled: HashSet<TaskId> = committed
        .last
        .values()
        .filter(|t| !t.is_settled())
        .map(|t| t.id)
        .collect();
    assert_eq!(active, unsettled, "the tasks recovery would resume");
    drop(store);

    // Where each task is: the archive and the journal opened each without the other.
    let empty = tempfile::tempdir().unwrap();
    let archive_only = KvStore::new(
        SledBackend::open(&empty.path().join("j"), 1 << 20).unwrap(),
        SledBackend::open(&dir.path().join("archive"), CACHE_BYTES).unwrap(),
    );
    let journal_only = KvStore::new(
        SledBackend::open(dir.path(), CACHE_BYTES).unwrap(),
        SledBackend::open(&empty.path().join("a"), 1 << 20).unwrap(),
    );
    let handed: HashSet<TaskId> = moves.handed.iter().copied().collect();
    let mut in_archive = 0;
    for (id, expected) in &committed.last {
        let archived = archive_only
            .task(id)
            .unwrap_or_else(|e| panic!("{id} in the archive: {e}"));
        let journaled = journal_only
            .task(id)
            .unwrap_or_else(|e| panic!("{id} in the journal: {e}"));
        if swept.contains(id) {
            assert!(
                archived.is_none() && journaled.is_none(),
                "{id} was swept, and it is still stored"
            );
        } else if handed.contains(id) {
            // A move skips a task it read torn; it stays whole in the journal.
            match (archived, journaled) {
                (Some(archived), None) => {
                    assert_eq!(&archived, &**expected, "{id}: the archive's copy");
                    in_archive += 1;
                }
                (None, Some(journaled)) => {
                    assert_eq!(&journaled, &**expected, "{id}: left in the journal")
                }
                (archived, journaled) => {
                    panic!("{id} moved: in the archive {archived:?}, in the journal {journaled:?}")
                }
            }
        } else {
            assert_eq!(archived, None, "{id} was never moved and is in the archive");
        }
    }
    assert_eq!(
        in_archive, moves.moved,
        "tasks moved, as move_settled counted them"
    );
    eprintln!("checked after reopening; {:?} in all", began.elapsed());
}
