//! The thread that runs every journal group commit.
//!
//! A commit is the engine's one serial step: every start, and every step that changes a
//! task, waits for one, and the next group cannot commit before this one ends. On tokio's
//! blocking pool the woken thread then waited for a CPU behind the HTTP workers: 136-218 µs
//! of a ~650 µs commit cycle on a busy 2-core machine. One long-lived thread instead, which
//! asks the scheduler (Linux 6.12+, EEVDF) for a short time slice: a thread with a shorter
//! slice has an earlier deadline, so it tends to run as soon as it wakes, yet keeps the
//! same fair share of CPU (unlike a raised priority, which needs privileges and can starve
//! a thread the commit waits on). Older kernels ignore the request. Measured in
//! docs/benchmarks-history.md, "The commit thread": +4-6% starts/s in process, even against
//! a separate process.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// The slice asked for: the shortest the kernel accepts (0.1 ms; the default was 1.4 ms on
/// the 2-core benchmark machine).
const SLICE_NS: u64 = 100_000;

type Job = Box<dyn FnOnce() + Send>;

/// Runs jobs one at a time, in order, on the commit thread; it ends when this is dropped.
pub(crate) struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    pub fn start() -> std::io::Result<Committer> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("stepwise-commit".into())
            .spawn(move || {
                ask_for_short_slice();
                while let Ok(job) = queue.recv() {
                    // A panicking job drops its reply sender, so its caller sees the commit fail;
                    // the thread goes on with the next one.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                }
            })?;
        Ok(Committer { jobs })
    }

    /// Runs `job` on the commit thread; the receiver gets its result, or an error if the
    /// job panicked or the thread is gone.
    pub fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> oneshot::Receiver<T> {
        let (reply, answer) = oneshot::channel();
        // If the thread is gone, the job (and `reply`) is dropped and `answer` says so.
        let _ = self.jobs.send(Box::new(move || {
            let _ = reply.send(job());
        }));
        answer
    }
}

/// `struct sched_attr` (include/uapi/linux/sched/types.h), its first version.
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

#[cfg(target_os = "linux")]
fn ask_for_short_slice() {
    // SCHED_OTHER at the thread's own niceness (the process may run under `nice`), so only
    // the slice changes.
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        nice: current_nice(),
        runtime: SLICE_NS,
        ..SchedAttr::default()
    };
    // SAFETY: sched_setattr(pid 0 = this thread, a valid `sched_attr` whose `size` says how
    // much of it the kernel may read, flags 0); it writes nothing.
    let done = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if done != 0 {
        let error = std::io::Error::last_os_error();
        tracing::debug!(%error, "The journal commit thread keeps the default time slice.");
    }
}

/// This thread's niceness (on Linux, `PRIO_PROCESS` with id 0 is the calling thread).
#[cfg(target_os = "linux")]
fn current_nice() -> i32 {
    // SAFETY: errno is this thread's; clearing it tells a niceness of -1 from an error, as
    // getpriority(2) prescribes. getpriority reads its two integer arguments only.
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
        if nice == -1 && *libc::__errno_location() != 0 {
            0
        } else {
            nice
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn ask_for_short_slice() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_in_order_and_survives_a_panicking_one() {
        let committer = Committer::start().unwrap();
        let first = committer.run(|| std::thread::current().name().map(str::to_owned));
        let failing = committer.run(|| -> u32 { panic!("a commit bug") });
        let after = committer.run(|| 7);
        assert_eq!(first.await.unwrap().as_deref(), Some("stepwise-commit"));
        assert!(
            failing.await.is_err(),
            "the caller of a panicking job sees it fail"
        );
        assert_eq!(after.await.unwrap(), 7, "the thread goes on after a panic");
    }
}
