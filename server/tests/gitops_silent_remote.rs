//! A GitOps remote that accepts connections and never answers (a half-open
//! connection after a partition). In a test binary of its own: the limits on
//! waiting are libgit2's process-wide settings, set before any other libgit2 call.

#[allow(dead_code, unused_macros)]
mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::TestResult;
use common::git_server::GitDaemon;
use slipway_core::render::RenderedFile;
use slipway_server::drivers::gitops::{self, GitOpsRepo, GitOpsSettings, RemoteSettings};

#[test]
fn a_remote_that_stops_answering_fails_the_push_in_time_and_frees_the_repository() -> TestResult {
    // SAFETY: the only test of this binary, before its first libgit2 call.
    unsafe { gitops::limit_network_waits(Duration::from_secs(2), Duration::from_secs(2))? };
    let silent = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("git://{}/platform.git", silent.local_addr()?);
    // Accepted, and then left to wait.
    let held = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for stream in silent.incoming().take(8).flatten() {
            kept.push(stream);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let local = tempfile::tempdir()?;
    let settings = GitOpsSettings {
        branch: "main".into(),
        remote: Some(RemoteSettings {
            url: url.clone(),
            credentials: None,
        }),
    };
    let repo = GitOpsRepo::open_with(&local.path().join("gitops.git"), &settings)?;
    let files = [RenderedFile {
        path: "dev/a.yaml".into(),
        content: "a: 1\n".into(),
    }];
    for attempt in 1..=2 {
        let started = Instant::now();
        let error = repo
            .apply(&files, "one")
            .err()
            .ok_or("a silent remote cannot take a push")?;
        let took = started.elapsed();
        assert!(error.is_retryable(), "{error:?}");
        assert!(
            took < Duration::from_secs(20),
            "attempt {attempt} waited {took:?} for a silent remote"
        );
    }
    drop(held);

    // The same repository pushes as soon as a remote answers again.
    let daemon = GitDaemon::running()?;
    let live = daemon.create_repo("platform.git", "main")?;
    let elsewhere = GitOpsSettings {
        branch: "main".into(),
        remote: Some(RemoteSettings {
            url: live,
            credentials: None,
        }),
    };
    let repo = GitOpsRepo::open_with(&local.path().join("gitops.git"), &elsewhere)?;
    assert!(repo.apply(&files, "one")?.created);
    assert_eq!(daemon.log("platform.git", "main")?.len(), 1);
    Ok(())
}
