//! Processes a command run leaves behind. The program runs in a process group
//! of its own, killed when it ends; but a process it started may leave the group
//! (`setsid`, `ssh -f`, a daemon that forks twice) and would run on after the
//! step, beside the next attempt, holding whatever it held. Each run marks its
//! program's environment with a token of its own, which every process it starts
//! inherits; when the run ends, every process still carrying the token is ended.
//! (A process that clears its environment, `env -i`, is not found.)

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rand::Rng as _;
use slipway_core::execution::STEP_RUN_ENV;

/// The mark of one command run.
pub(super) struct RunMark(String);

/// How many times the processes are looked for again: one that forked while
/// the others were ended is found by the next look.
const LOOKS: usize = 10;

impl RunMark {
    pub(super) fn new() -> RunMark {
        RunMark(format!("{:032x}", rand::rng().random::<u128>()))
    }

    /// The value of [`STEP_RUN_ENV`] for this run.
    pub(super) fn value(&self) -> &str {
        &self.0
    }

    /// Ends (SIGKILL) every process that still carries this run's mark; returns
    /// how many were found.
    pub(super) fn end_escaped(&self) -> usize {
        let entry = format!("{STEP_RUN_ENV}={}", self.0);
        let mut ended = HashSet::new();
        for _ in 0..LOOKS {
            let found: Vec<Marked> = marked_processes(entry.as_bytes())
                .into_iter()
                .filter(|marked| !ended.contains(&marked.pid))
                .collect();
            if found.is_empty() {
                break;
            }
            for marked in found {
                marked.kill();
                ended.insert(marked.pid);
            }
        }
        wait_until_dead(&ended);
        ended.len()
    }
}

/// How long the ended processes are waited for: a kill is delivered at once, but
/// a process leaves (and lets go of the output it held) a moment later.
const DEATH_WAIT: Duration = Duration::from_secs(2);

fn wait_until_dead(pids: &HashSet<i32>) {
    let deadline = Instant::now() + DEATH_WAIT;
    while pids.iter().any(|pid| alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether the process still runs: not gone, and not a zombie waiting for its
/// parent to collect it.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses and may
        // hold any character.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// A process found carrying the mark, held by a pidfd opened before its
/// environment was read: the signal reaches that process, never one that was
/// given its id after it ended.
struct Marked {
    pid: i32,
    handle: Option<OwnedFd>,
}

impl Marked {
    fn kill(&self) {
        use rustix::process::{Pid, Signal, kill_process, pidfd_send_signal};
        // Gone already (ESRCH) is as good as ended.
        let _ = match (&self.handle, Pid::from_raw(self.pid)) {
            (Some(handle), _) => pidfd_send_signal(handle, Signal::KILL),
            // A kernel without pidfds (before 5.3): by its id, read a moment ago.
            (None, Some(pid)) => kill_process(pid, Signal::KILL),
            (None, None) => Ok(()),
        };
    }
}

/// The processes whose environment holds `entry` (those of other users, and
/// those gone while being read, are passed over; without `/proc`, none).
fn marked_processes(entry: &[u8]) -> Vec<Marked> {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc.flatten()
        .filter_map(|dir| dir.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| carries(*pid, entry))
        .filter_map(|pid| {
            // Held first, then read again: the mark is then known to be on the
            // process the handle holds.
            let handle = rustix::process::Pid::from_raw(pid).and_then(|p| {
                rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
            });
            carries(pid, entry).then_some(Marked { pid, handle })
        })
        .collect()
}

/// Whether the running process `pid` has `entry` in its environment.
fn carries(pid: i32, entry: &[u8]) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|environ| environ.split(|b| *b == 0).any(|var| var == entry))
        && alive(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn every_process_carrying_the_mark_is_ended_and_no_other()
    -> Result<(), Box<dyn std::error::Error>> {
        let mark = RunMark::new();
        let other = RunMark::new();
        let start = |mark: &RunMark| {
            // The shell leaves a sleeper in a session of its own and exits.
            Command::new("sh")
                .args(["-c", "setsid sleep 60 & setsid sleep 60 & exit 0"])
                .env(STEP_RUN_ENV, mark.value())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        };
        start(&mark)?;
        start(&other)?;
        let entry = |mark: &RunMark| format!("{STEP_RUN_ENV}={}", mark.value());
        // `setsid` may still be starting its sleeper.
        for _ in 0..100 {
            if marked_processes(entry(&mark).as_bytes()).len() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(mark.end_escaped(), 2, "both sleepers of the run");
        assert_eq!(other.end_escaped(), 2, "the other run's were left alone");
        assert_eq!(mark.end_escaped(), 0, "nothing is left");
        Ok(())
    }
}
