//! A real git remote on loopback for the GitOps driver's tests, served by git's own
//! `git daemon` with receive-pack turned on, as a self-hosted git server would be.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::TestResult;

/// Runs git with `args` in `dir` and returns its standard output; fails with its
/// standard error when git does.
pub fn git(dir: &Path, args: &[&str]) -> TestResult<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// A free port on loopback (free when asked; the daemon binds it right after).
pub fn free_port() -> TestResult<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub struct GitDaemon {
    base: TempDir,
    port: u16,
    child: Option<Child>,
}

impl GitDaemon {
    /// A daemon's place and port, not yet serving (a remote that is down).
    pub fn new() -> TestResult<GitDaemon> {
        Ok(GitDaemon {
            base: tempfile::tempdir()?,
            port: free_port()?,
            child: None,
        })
    }

    /// A daemon already serving.
    pub fn running() -> TestResult<GitDaemon> {
        let mut daemon = GitDaemon::new()?;
        daemon.start()?;
        Ok(daemon)
    }

    pub fn base(&self) -> &Path {
        self.base.path()
    }

    /// A bare repository under the daemon whose HEAD names `branch`, as a hosted
    /// repository's default branch does; returns its git:// URL.
    pub fn create_repo(&self, name: &str, branch: &str) -> TestResult<String> {
        git(
            self.base.path(),
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch",
                branch,
                name,
            ],
        )?;
        Ok(self.url(name))
    }

    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }

    pub fn repo_path(&self, name: &str) -> PathBuf {
        self.base.path().join(name)
    }

    /// Starts serving and waits until the port answers.
    pub fn start(&mut self) -> TestResult {
        if self.child.is_some() {
            return Ok(());
        }
        // `git daemon` would run git-daemon as a child of its own and leave it
        // behind when killed; run the program itself so that stop() stops it.
        let exec_path = git(self.base.path(), &["--exec-path"])?;
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .arg("--enable=receive-pack")
            .arg("--export-all")
            .arg("--reuseaddr")
            .arg("--informative-errors")
            .arg(format!("--base-path={}", self.base.path().display()))
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={}", self.port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("git daemon did not listen on port {}", self.port).into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops serving (the remote is down).
    pub fn stop(&mut self) -> TestResult {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Commits on `branch` of the bare repository `name`, newest first.
    pub fn log(&self, name: &str, branch: &str) -> TestResult<Vec<String>> {
        let out = git(&self.repo_path(name), &["log", "--format=%H %s", branch])?;
        Ok(out.lines().map(str::to_string).collect())
    }

    /// The commit `branch` of the bare repository `name` points at.
    pub fn head(&self, name: &str, branch: &str) -> TestResult<String> {
        git(&self.repo_path(name), &["rev-parse", branch])
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
