//! A program outlives neither its server nor the thread that waits for it, and
//! nor does anything it started. The kernel's parent-death signal reaches the
//! direct child only: a `sh` wrapper killed with the server would leave its
//! `tofu apply` running beside the attempt of the replica that took the job over.
//! So the direct child is a small supervisor that leads the program's process
//! group, waits for the program, and ends the whole group when the server goes.
//!
//! The supervisor is the system's `/bin/sh` running [`SCRIPT`], not a fork of the
//! server: a fork that never execs keeps a copy-on-write image of the server,
//! which grows by every page the server writes for as long as the program runs.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The shell the supervisor runs in.
const SHELL: &str = "/bin/sh";

/// The supervisor, given the program and its arguments as `"$@"`. On SIGTERM it
/// ends the group only when the server is gone (its parent changed): a
/// `systemctl stop` sends SIGTERM to every process, and the program, which has
/// its own, stops as it chooses within the server's shutdown grace. It exits as
/// the program did: with its status, or by its signal when that signal ends a
/// process (a status 147 is not turned into a SIGSTOP that would leave it
/// stopped); no core file (a dump is nobody's to read).
///
/// The program runs in the background so that the trap runs at once; a `wait`
/// the trap cut short is asked again, and returns the status kept for the
/// program (`kill -0` would race its end). It is started through `env`: as a
/// file found in PATH (never a shell builtin of the same name, `echo`,
/// `printf`), with SIGINT and SIGQUIT as they should be (a shell starts its
/// background jobs ignoring them). `PWD`, which the shell exports, is none of
/// the program's.
const SCRIPT: &str = r#"ulimit -c 0
unset PWD
server=$PPID
trapped=
trap 'trapped=1; read -r _ _ _ parent _ < /proc/$$/stat; [ "$parent" = "$server" ] || kill -KILL 0' TERM
exec /usr/bin/env --default-signal=INT,QUIT -- "$@" &
program=$!
while :; do
  trapped=
  wait "$program"
  status=$?
  [ -n "$trapped" ] || break
done
trap - TERM
case $((status - 128)) in
  1|2|3|4|5|6|7|8|9|10|11|12|13|14|15|24|25|26|27|29|30|31)
    kill -s "$(kill -l "$status")" $$ ;;
esac
exit "$status"
"#;

/// The name the supervisor shows as (`$0`, and in `ps`).
const NAME: &str = "slipway-step";

/// A command that runs `program` under a supervisor; the caller adds its
/// arguments. The child the server holds (and waits for, and kills) is the
/// supervisor, which leads the process group and exits as the program did.
pub(super) fn command(program: &str) -> Command {
    let mut process = Command::new(SHELL);
    process
        .arg0(NAME)
        .arg("-c")
        .arg(SCRIPT)
        .arg(NAME)
        .arg(program);
    process.process_group(0);
    ends_with_its_server(&mut process);
    process
}

/// The supervisor is told (SIGTERM, which it traps) when the thread that started
/// it, which waits for it, goes: with the server, or alone.
fn ends_with_its_server(process: &mut Command) {
    let server = rustix::process::getpid();
    // SAFETY: between fork and exec the closure makes only two system calls,
    // both async-signal-safe, and allocates nothing.
    unsafe {
        process.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))?;
            // The server may have died before the line above: then nobody waits.
            if rustix::process::getppid() != Some(server) {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            Ok(())
        });
    }
}

/// Where `program` is found with this `PATH` (as the shell will look it up),
/// or why it cannot be run: asked before the supervisor starts, so that a
/// missing program is said as such rather than as the shell's exit status 127.
pub(super) fn locate(program: &str, path: Option<&OsStr>) -> Result<PathBuf, String> {
    if program.contains('/') {
        return runnable(Path::new(program))
            .then(|| PathBuf::from(program))
            .ok_or_else(|| "no such executable file".to_string());
    }
    let path = path.ok_or("PATH is not set, and the program is named without a path")?;
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| runnable(candidate))
        .ok_or_else(|| format!("not found in PATH ({})", path.to_string_lossy()))
}

fn runnable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
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

    fn gone_within(pid: i32, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        !alive(pid)
    }

    /// Set for the copy of this test binary that plays the server.
    const SERVER_ROLE: &str = "SLIPWAY_TEST_SUPERVISED_SERVER";

    /// Plays the server: starts a wrapper whose background child stays in the
    /// group, prints that child's pid (the wrapper does) and waits to be killed.
    #[test]
    #[ignore = "the server that what_a_program_started_ends_when_its_server_is_killed kills"]
    fn a_server_to_kill() -> Result<(), Box<dyn std::error::Error>> {
        if std::env::var_os(SERVER_ROLE).is_none() {
            return Ok(());
        }
        let mut process = command("sh");
        process.args(["-c", "sleep 60 & echo \"grandchild $!\"; wait"]);
        let _supervisor = process.spawn()?;
        std::thread::sleep(Duration::from_secs(60));
        Ok(())
    }

    /// A wrapper's background child, still in the group, ends when the server is
    /// SIGKILLed: the parent-death signal alone would reach the wrapper only.
    #[test]
    fn what_a_program_started_ends_when_its_server_is_killed()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut server = Command::new(std::env::current_exe()?)
            .args([
                "--exact",
                "drivers::command::supervisor::tests::a_server_to_kill",
            ])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env(SERVER_ROLE, "1")
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = server.stdout.take().ok_or("no stdout")?;
        let grandchild: i32 = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // The test harness may have begun the line with the test's name.
            .find_map(|line| line.split("grandchild ").nth(1)?.trim().parse().ok())
            .ok_or("the server started no program")?;
        assert!(alive(grandchild));
        server.kill()?;
        server.wait()?;
        assert!(
            gone_within(grandchild, Duration::from_secs(5)),
            "sleep {grandchild} outlived its server"
        );
        Ok(())
    }

    type Lines = std::io::Lines<std::io::BufReader<std::process::ChildStdout>>;

    /// A shell `script` under the supervisor, once it has said `ready`; the rest
    /// of its output to read.
    fn started_ready(
        script: &str,
    ) -> Result<(std::process::Child, Lines), Box<dyn std::error::Error>> {
        let mut process = command("sh");
        process.args(["-c", script]).stdout(Stdio::piped());
        let mut child = process.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        assert_eq!(lines.next().transpose()?.as_deref(), Some("ready"));
        Ok((child, lines))
    }

    /// A SIGTERM from elsewhere (a `systemctl stop` signals every process) is the
    /// program's to answer: the supervisor waits on, and the server's shutdown
    /// grace decides.
    #[test]
    fn a_sigterm_while_the_server_lives_leaves_the_program_be()
    -> Result<(), Box<dyn std::error::Error>> {
        let (mut child, lines) =
            started_ready("trap 'echo asked' TERM; echo ready; sleep 1; echo done")?;
        let supervisor = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(supervisor, rustix::process::Signal::TERM)?;
        let rest: Vec<String> = lines.collect::<Result<_, _>>()?;
        assert_eq!(rest, ["done"], "the program ran to its end");
        assert!(child.wait()?.success());
        Ok(())
    }

    /// The server sees the program's own end: its status, or its signal.
    #[test]
    fn the_supervisor_ends_as_its_program_did() -> Result<(), Box<dyn std::error::Error>> {
        let run = |script: &str| {
            let mut process = command("sh");
            process.args(["-c", script]);
            process.spawn()?.wait()
        };
        assert_eq!(run("exit 0")?.code(), Some(0));
        assert_eq!(run("exit 3")?.code(), Some(3));
        assert_eq!(run("exit 2")?.code(), Some(2));
        use rustix::process::Signal;
        for (script, signal) in [
            ("kill -TERM $$", Signal::TERM),
            ("kill -USR1 $$", Signal::USR1),
            ("kill -KILL $$", Signal::KILL),
        ] {
            assert_eq!(run(script)?.signal(), Some(signal.as_raw()), "{script}");
        }
        Ok(())
    }

    /// A status that reads as a stopping signal (147: SIGSTOP) is a status: the
    /// supervisor does not stop itself and leave the server waiting.
    #[test]
    fn a_status_like_a_stopping_signal_is_kept() -> Result<(), Box<dyn std::error::Error>> {
        for status in [147, 148, 149, 150, 128, 255] {
            let mut process = command("sh");
            process.args(["-c", &format!("exit {status}")]);
            assert_eq!(process.spawn()?.wait()?.code(), Some(status));
        }
        Ok(())
    }

    /// The program is the file found in PATH, never a shell builtin of its name,
    /// and it starts with SIGINT and SIGQUIT as a program started directly does.
    #[test]
    fn the_program_is_the_file_with_default_signals() -> Result<(), Box<dyn std::error::Error>> {
        let mut printf = command("printf");
        printf.args(["%q", "a b"]).stdout(Stdio::piped());
        let output = printf.spawn()?.wait_with_output()?;
        assert_eq!(output.stdout, b"'a b'", "coreutils' printf, not dash's");
        let mut signals = command("grep");
        signals
            .args(["SigIgn", "/proc/self/status"])
            .stdout(Stdio::piped());
        let output = signals.spawn()?.wait_with_output()?;
        let line = String::from_utf8(output.stdout)?;
        let ignored = u64::from_str_radix(line.trim().trim_start_matches("SigIgn:").trim(), 16)?;
        // Bit n - 1 for signal n: SIGINT is 2, SIGQUIT 3.
        assert_eq!(ignored & 0b110, 0, "{line}");
        Ok(())
    }

    /// A SIGTERM sent to every process of the group while the program ends of
    /// itself (on that very signal) still reports how the program ended.
    #[test]
    fn the_programs_status_survives_a_sigterm_to_the_group()
    -> Result<(), Box<dyn std::error::Error>> {
        for round in 0..40 {
            let (mut child, _lines) =
                started_ready("trap 'exit 3' TERM; echo ready; while :; do sleep 0.01; done")?;
            let group = rustix::process::Pid::from_child(&child);
            rustix::process::kill_process_group(group, rustix::process::Signal::TERM)?;
            assert_eq!(child.wait()?.code(), Some(3), "round {round}");
        }
        Ok(())
    }

    /// The program's output reaches the server, and ends when the program does.
    #[test]
    fn output_ends_with_the_program() -> Result<(), Box<dyn std::error::Error>> {
        let mut process = command("echo");
        process.arg("hello").stdout(Stdio::piped());
        let output = process.spawn()?.wait_with_output()?;
        assert_eq!(output.stdout, b"hello\n");
        assert!(output.status.success());
        Ok(())
    }

    #[test]
    fn a_program_is_located_as_the_shell_would() -> Result<(), Box<dyn std::error::Error>> {
        let path = std::env::var_os("PATH");
        assert!(locate("sh", path.as_deref()).is_ok_and(|p| p.ends_with("sh")));
        assert!(locate("/bin/sh", None).is_ok());
        let missing = locate("no-such-program-here", Some(OsStr::new("/bin:/usr/bin")));
        assert_eq!(
            missing.err().as_deref(),
            Some("not found in PATH (/bin:/usr/bin)")
        );
        let dir = tempfile::tempdir()?;
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "text")?;
        assert!(
            locate(&plain.to_string_lossy(), None).is_err(),
            "not executable"
        );
        assert!(locate("/bin", None).is_err(), "a directory");
        assert!(locate("sh", None).is_err());
        Ok(())
    }
}
