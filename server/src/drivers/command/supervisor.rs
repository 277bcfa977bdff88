//! A program outlives neither its server nor the thread that waits for it, and
//! nor does anything it started. The kernel's parent-death signal reaches the
//! direct child only: a `sh` wrapper killed with the server would leave its
//! `tofu apply` running beside the attempt of the replica that took the job over.
//! So the direct child is a small supervisor, forked off before the program's
//! `exec`: it leads the program's process group, waits for the program, and ends
//! the whole group when the server goes.
//!
//! Everything here runs between `fork` and `exec` of a multi-threaded server, so
//! it makes only async-signal-safe system calls and allocates nothing.

use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// Makes `process` start under a supervisor: the child the server holds (and
/// waits for, and kills) is the supervisor, which exits as its program did.
/// Both share the process group and everything else std sets up before the
/// pre-exec steps; those steps registered before this one run before the fork
/// (the program inherits their effect), those registered after it in the
/// program alone.
pub(super) fn supervise(process: &mut Command) {
    process.process_group(0);
    let server = rustix::process::getpid().as_raw_nonzero().get();
    // SAFETY: the closure runs in the forked child and only makes
    // async-signal-safe calls (see `start`); it allocates nothing.
    unsafe {
        process.pre_exec(move || start(server));
    }
}

/// In the forked child: forks again; the program's side returns to `exec`, the
/// supervisor's side never returns.
fn start(server: libc::pid_t) -> std::io::Result<()> {
    // SAFETY: plain system calls on values owned here.
    unsafe {
        let mut watched: libc::sigset_t = std::mem::zeroed();
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut watched);
        libc::sigaddset(&mut watched, libc::SIGCHLD);
        libc::sigaddset(&mut watched, libc::SIGTERM);
        // Blocked before the death signal is asked for and the program started,
        // so neither its signal nor the program's end can slip by unseen.
        check(libc::pthread_sigmask(
            libc::SIG_BLOCK,
            &watched,
            &mut before,
        ))?;
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM))?;
        // The server may have died before the line above: then nobody waits.
        if libc::getppid() != server {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        let supervisor = libc::getpid();
        let program = libc::fork();
        if program < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if program == 0 {
            // The program: it also dies at once should its supervisor.
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
            if libc::getppid() != supervisor {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            check(libc::pthread_sigmask(
                libc::SIG_SETMASK,
                &before,
                std::ptr::null_mut(),
            ))?;
            return Ok(());
        }
        watch(program, &watched)
    }
}

/// The supervisor's life: it lets go of every descriptor (the server reads the
/// program's output and learns that `exec` succeeded only when every copy is
/// closed), then waits for the program's end or the server's.
///
/// SAFETY: async-signal-safe system calls only; never returns.
unsafe fn watch(program: libc::pid_t, watched: &libc::sigset_t) -> ! {
    unsafe {
        close_every_descriptor();
        loop {
            let signal = libc::sigwaitinfo(watched, std::ptr::null_mut());
            if signal == libc::SIGTERM {
                // The server (or the thread that waits for the program) went:
                // the whole group goes, this supervisor with it.
                libc::kill(0, libc::SIGKILL);
                libc::_exit(137);
            }
            let mut status = 0;
            if libc::waitpid(program, &mut status, libc::WNOHANG) == program {
                end_as(status);
            }
        }
    }
}

/// Exits as the program ended: with its status, or by its signal (without the
/// core dump some signals make: that would be a copy of the server's memory).
///
/// SAFETY: async-signal-safe system calls only; never returns.
unsafe fn end_as(status: libc::c_int) -> ! {
    unsafe {
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::signal(signal, libc::SIG_DFL);
            let mut only: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut only);
            libc::sigaddset(&mut only, signal);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &only, std::ptr::null_mut());
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal);
        }
        libc::_exit(libc::WEXITSTATUS(status));
    }
}

/// SAFETY: closes descriptors this process will not use again.
unsafe fn close_every_descriptor() {
    unsafe {
        if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) != 0 {
            // Kernels before 5.9: the usual range is enough, nothing else opens here.
            for fd in 0..4096 {
                libc::close(fd);
            }
        }
    }
}

fn check(result: libc::c_int) -> std::io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead as _;
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X")
        })
    }

    /// A wrapper's background child, still in the group, ends with the thread
    /// (as it would with the server): the direct child alone would have.
    #[test]
    fn what_the_program_started_ends_when_the_thread_that_started_it_goes()
    -> Result<(), Box<dyn std::error::Error>> {
        let (mut supervisor, grandchild) = std::thread::spawn(|| {
            let mut process = Command::new("sh");
            process
                .args(["-c", "sleep 60 & echo $!; wait"])
                .stdout(Stdio::piped());
            supervise(&mut process);
            let mut child = process.spawn()?;
            let mut line = String::new();
            let stdout = child.stdout.take().ok_or("no stdout")?;
            std::io::BufReader::new(stdout).read_line(&mut line)?;
            let grandchild: i32 = line.trim().parse()?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((child, grandchild))
        })
        .join()
        .map_err(|_| "the starting thread panicked")?
        .map_err(|e| e.to_string())?;
        let status = supervisor.wait()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(grandchild) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(grandchild), "sleep {grandchild} outlived its server");
        assert_eq!(status.signal(), Some(9), "{status:?}");
        Ok(())
    }

    /// The server sees the program's own end: its status, or its signal.
    #[test]
    fn the_supervisor_ends_as_its_program_did() -> Result<(), Box<dyn std::error::Error>> {
        let run = |script: &str| {
            let mut process = Command::new("sh");
            process.args(["-c", script]);
            supervise(&mut process);
            process.spawn()?.wait()
        };
        assert_eq!(run("exit 0")?.code(), Some(0));
        assert_eq!(run("exit 3")?.code(), Some(3));
        assert_eq!(run("kill -TERM $$")?.signal(), Some(libc::SIGTERM));
        assert_eq!(run("kill -USR1 $$")?.signal(), Some(libc::SIGUSR1));
        Ok(())
    }

    /// A program that cannot start is reported as before: the server's `spawn`
    /// fails with the reason, and returns at once rather than when some
    /// supervisor exits.
    #[test]
    fn a_program_that_cannot_start_is_an_error_of_spawn() {
        let mut process = Command::new("/nonexistent/program");
        supervise(&mut process);
        let error = process.spawn().err().map(|e| e.kind());
        assert_eq!(error, Some(std::io::ErrorKind::NotFound));
    }

    /// The program's output reaches the server, and ends when the program does
    /// though the supervisor held a copy.
    #[test]
    fn output_ends_with_the_program() -> Result<(), Box<dyn std::error::Error>> {
        let mut process = Command::new("sh");
        process.args(["-c", "echo hello"]).stdout(Stdio::piped());
        supervise(&mut process);
        let output = process.spawn()?.wait_with_output()?;
        assert_eq!(output.stdout, b"hello\n");
        assert!(output.status.success());
        Ok(())
    }
}
