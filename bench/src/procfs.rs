//! What `/proc` tells about a process (the child engine): its memory, CPU time, threads and
//! context switches. Linux only, read-only.

use anyhow::Context;
use std::collections::HashMap;

/// Memory figures of a process, in bytes.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Memory {
    pub rss: u64,
    pub anon: u64,
    pub file: u64,
    /// Peak RSS so far (`VmHWM`).
    pub peak: u64,
}

/// `VmRSS`, `RssAnon`, `RssFile` and `VmHWM` from `/proc/PID/status`.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kib| kib * 1024)
    };
    let memory = Memory {
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
        peak: field("VmHWM:"),
    };
    anyhow::ensure!(memory.rss > 0, "no VmRSS for process {pid}");
    Ok(memory)
}

/// User plus system CPU time of every thread, in clock ticks (`/proc/PID/stat`).
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unreadable /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the man page, so utime (14) and stime (15) are at 11, 12.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// Context switches (voluntary + involuntary) of each live thread, by thread id: how often
/// the process's threads slept or were preempted, a proxy for wakeups. See
/// [`switches_between`].
pub fn context_switches(pid: u32) -> anyhow::Result<HashMap<String, u64>> {
    let mut threads = HashMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let total = status
            .lines()
            .filter_map(|line| {
                line.strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            })
            .map(|n| n.trim().parse::<u64>().unwrap_or(0))
            .sum();
        threads.insert(entry.file_name().to_string_lossy().into_owned(), total);
    }
    Ok(threads)
}

/// Context switches between two snapshots of [`context_switches`]: the growth of threads
/// alive in both, plus all of those born in between (threads that exited in between are not
/// counted).
pub fn switches_between(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> u64 {
    after
        .iter()
        .map(|(tid, &n)| n.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// Threads of the process.
pub fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_cpu_and_threads() {
        let pid = std::process::id();
        let memory = memory(pid).expect("our own /proc entry is readable");
        assert!(memory.rss > 0 && memory.peak >= memory.rss, "{memory:?}");
        assert!(cpu_ticks(pid).is_ok());
        assert!(threads(pid) >= 1);
        let switches = context_switches(pid).expect("our own threads are listed");
        assert_eq!(switches_between(&switches, &switches), 0);
    }
}
