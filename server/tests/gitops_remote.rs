//! The GitOps driver against a real remote: `git daemon` on loopback, read back
//! with the git command line as Argo CD or a person would.

#[allow(dead_code, unused_macros)]
mod common;
mod http_git;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use common::TestResult;
use common::git_server::{GitDaemon, git};
use slipway_core::render::RenderedFile;
use slipway_server::config::Secret;
use slipway_server::drivers::gitops::{
    GitOpsError, GitOpsRepo, GitOpsSettings, RemoteCredentials, RemoteSettings,
};
use slipway_server::storage::push_turns::PgPushTurns;

fn file(path: &str, content: &str) -> RenderedFile {
    RenderedFile {
        path: path.into(),
        content: content.into(),
    }
}

fn remote(url: &str) -> GitOpsSettings {
    GitOpsSettings {
        branch: "main".into(),
        remote: Some(RemoteSettings {
            url: url.into(),
            credentials: None,
        }),
    }
}

fn head_of(repo: &Path) -> TestResult<String> {
    git(repo, &["symbolic-ref", "HEAD"])
}

#[test]
fn a_push_lands_and_a_clone_checks_out_the_branch_with_the_files() -> TestResult {
    let daemon = GitDaemon::running()?;
    let url = daemon.create_repo("platform.git", "main")?;
    let local = tempfile::tempdir()?;
    let repo = GitOpsRepo::open_with(&local.path().join("gitops.git"), &remote(&url))?;
    assert_eq!(
        head_of(&local.path().join("gitops.git"))?,
        "refs/heads/main"
    );

    let files = [
        file("dev/payments/ns/web/namespace.yaml", "kind: Namespace\n"),
        file("dev/payments/ns/web/quota.yaml", "kind: ResourceQuota\n"),
    ];
    let first = repo.apply(&files, "k8s-namespace payments-web-dev")?;
    assert!(first.created);
    let log = daemon.log("platform.git", "main")?;
    assert_eq!(
        log,
        [format!("{} k8s-namespace payments-web-dev", first.commit)]
    );

    // A plain clone of the remote checks the branch out, files and all.
    let checkout = tempfile::tempdir()?;
    git(checkout.path(), &["clone", "--quiet", &url, "work"])?;
    let work = checkout.path().join("work");
    assert_eq!(
        std::fs::read_to_string(work.join("dev/payments/ns/web/quota.yaml"))?,
        "kind: ResourceQuota\n"
    );
    assert_eq!(git(&work, &["rev-parse", "HEAD"])?, first.commit);

    // The same change again (a re-run after a crash): no second commit.
    let again = repo.apply(&files, "k8s-namespace payments-web-dev")?;
    assert_eq!(
        (again.commit.as_str(), again.created),
        (first.commit.as_str(), false)
    );
    assert_eq!(daemon.log("platform.git", "main")?.len(), 1);

    // A new process with a fresh local repository finds the remote already holds it.
    let elsewhere = tempfile::tempdir()?;
    let fresh = GitOpsRepo::open_with(&elsewhere.path().join("gitops.git"), &remote(&url))?;
    let found = fresh.apply(&files, "k8s-namespace payments-web-dev")?;
    assert_eq!(
        (found.commit.as_str(), found.created),
        (first.commit.as_str(), false)
    );
    assert_eq!(
        fresh
            .read_file(&found.commit, "dev/payments/ns/web/namespace.yaml")?
            .as_deref(),
        Some("kind: Namespace\n")
    );
    Ok(())
}

/// A remote on a path, new and empty, advertises no reference at all: the
/// first push to it lands (before, git2 0.20 built a slice from the null list
/// libgit2 hands back for it, which aborted a debug build and was undefined
/// behaviour in a release one: RUSTSEC-2026-0183).
#[test]
fn the_first_push_to_an_empty_remote_on_a_path_lands() -> TestResult {
    let dir = tempfile::tempdir()?;
    let bare = dir.path().join("remote.git");
    git(
        dir.path(),
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch",
            "main",
            "remote.git",
        ],
    )?;
    let url = bare.display().to_string();
    let repo = GitOpsRepo::open_with(&dir.path().join("gitops.git"), &remote(&url))?;
    let landed = repo.apply(
        &[file(
            "dev/payments/ns/web/namespace.yaml",
            "kind: Namespace\n",
        )],
        "k8s-namespace payments-web-dev",
    )?;
    assert!(landed.created);
    assert_eq!(
        git(&bare, &["rev-parse", "refs/heads/main"])?,
        landed.commit
    );
    Ok(())
}

/// A remote that advertises a ref whose name is not UTF-8 (anyone who may push
/// there can make one) is read past, by a writer fetching after its push was
/// turned down and by a check reading the remote's head: git2's own reading of
/// the names panicked, with the repository's locks held.
#[test]
fn a_ref_name_that_is_not_utf8_on_the_remote_is_read_past() -> TestResult {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = tempfile::tempdir()?;
    let bare = dir.path().join("remote.git");
    let init = [
        "init",
        "--quiet",
        "--bare",
        "--initial-branch",
        "main",
        "remote.git",
    ];
    git(dir.path(), &init)?;
    let url = bare.display().to_string();
    let first = GitOpsRepo::open_with(&dir.path().join("one.git"), &remote(&url))?;
    let landed = first.apply(&[file("a.yaml", "a: 1\n")], "one")?;
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9");
    std::fs::write(
        bare.join("refs/heads").join(odd),
        format!("{}\n", landed.commit),
    )?;
    let second = GitOpsRepo::open_with(&dir.path().join("two.git"), &remote(&url))?;
    let later = second.apply(&[file("b.yaml", "b: 2\n")], "two")?;
    assert!(later.created);
    assert!(second.fetches() >= 1, "the second writer fetched");
    let published = first.read_published("b.yaml")?;
    assert_eq!(published.commit.as_deref(), Some(later.commit.as_str()));
    assert_eq!(published.content.as_deref(), Some("b: 2\n"));
    Ok(())
}

#[test]
fn the_local_head_names_the_configured_branch_in_new_and_old_repositories() -> TestResult {
    let dir = tempfile::tempdir()?;
    // An old repository: HEAD on master (git's default) while commits went to main.
    git(
        dir.path(),
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch",
            "master",
            "old.git",
        ],
    )?;
    let old = GitOpsRepo::open_or_init(&dir.path().join("old.git"))?;
    assert_eq!(head_of(&dir.path().join("old.git"))?, "refs/heads/main");
    old.apply(&[file("a.yaml", "a: 1\n")], "one")?;
    git(dir.path(), &["clone", "--quiet", "old.git", "old-work"])?;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("old-work/a.yaml"))?,
        "a: 1\n"
    );

    let settings = GitOpsSettings {
        branch: "deploy".into(),
        remote: None,
    };
    let new = GitOpsRepo::open_with(&dir.path().join("new.git"), &settings)?;
    assert_eq!(head_of(&dir.path().join("new.git"))?, "refs/heads/deploy");
    new.apply(&[file("b.yaml", "b: 2\n")], "two")?;
    git(dir.path(), &["clone", "--quiet", "new.git", "new-work"])?;
    assert_eq!(
        git(&dir.path().join("new-work"), &["branch", "--show-current"])?,
        "deploy"
    );
    assert!(dir.path().join("new-work/b.yaml").exists());
    Ok(())
}

/// `log` (`git log --format="%H %s"`) holds `changes` commits with distinct
/// subjects (one commit per change, none twice), among them every one `landed`.
fn assert_each_landed_once(log: &[String], changes: usize, landed: &[String]) {
    assert_eq!(log.len(), changes, "one commit per change: {log:#?}");
    let mut subjects: Vec<&str> = log
        .iter()
        .filter_map(|l| l.split_once(' '))
        .map(|(_, s)| s)
        .collect();
    subjects.sort_unstable();
    subjects.dedup();
    assert_eq!(subjects.len(), changes, "no change committed twice");
    for commit in landed {
        assert!(
            log.iter().any(|l| l.starts_with(commit.as_str())),
            "{commit} is on the branch"
        );
    }
}

#[test]
fn concurrent_writers_to_one_remote_all_land_once() -> TestResult {
    const WRITERS: usize = 4;
    const CHANGES: usize = 6;
    let daemon = GitDaemon::running()?;
    let url = daemon.create_repo("shared.git", "main")?;
    let locals = tempfile::tempdir()?;
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let repo = GitOpsRepo::open_with(
                &locals.path().join(format!("replica-{w}.git")),
                &remote(&url),
            );
            std::thread::spawn(move || -> Result<Vec<String>, String> {
                let repo = repo.map_err(|e| e.to_string())?;
                let mut commits = Vec::new();
                for c in 0..CHANGES {
                    let files = [file(&format!("w{w}/c{c}.yaml"), &format!("n: {c}\n"))];
                    let applied = repo
                        .apply(&files, &format!("writer {w} change {c}"))
                        .map_err(|e| e.to_string())?;
                    if !applied.created {
                        return Err(format!("writer {w} change {c} made no commit"));
                    }
                    commits.push(applied.commit);
                }
                Ok(commits)
            })
        })
        .collect();
    let mut landed = Vec::new();
    for handle in handles {
        let commits = handle.join().map_err(|_| "a writer panicked")??;
        landed.extend(commits);
    }
    let log = daemon.log("shared.git", "main")?;
    assert_each_landed_once(&log, WRITERS * CHANGES, &landed);
    let checkout = tempfile::tempdir()?;
    git(checkout.path(), &["clone", "--quiet", &url, "work"])?;
    for w in 0..WRITERS {
        for c in 0..CHANGES {
            let path = checkout.path().join(format!("work/w{w}/c{c}.yaml"));
            assert_eq!(std::fs::read_to_string(&path)?, format!("n: {c}\n"));
        }
    }
    Ok(())
}

/// Within one replica, a group of changes is committed while the group before it
/// is pushed, on top of it; a group whose predecessor was rebased on another
/// replica's push is built again. Many threads on each of two replicas: every
/// change lands once, as its own commit, and each returned commit is on the
/// branch.
#[test]
fn pipelined_groups_on_two_replicas_all_land_once() -> TestResult {
    let daemon = GitDaemon::running()?;
    let url = daemon.create_repo("pipelined.git", "main")?;
    let locals = tempfile::tempdir()?;
    let replicas = (0..2)
        .map(|r| GitOpsRepo::open_with(&locals.path().join(format!("r{r}.git")), &remote(&url)))
        .collect::<Result<Vec<_>, _>>()?;
    let landed = write_from_threads(&replicas, 6, 8)?;
    let log = daemon.log("pipelined.git", "main")?;
    assert_each_landed_once(&log, 2 * 6 * 8, &landed);
    assert_files_at(&url, 2, 6, 8)
}

/// Replicas on one PostgreSQL take turns at the remote: every change still lands
/// once, and no push made right after a fetch is turned down (without turns, the
/// replica whose pushes land keeps the branch moving and the others lose again
/// and again).
#[test]
fn replicas_that_take_turns_never_lose_a_race_after_a_fetch() -> TestResult {
    let Some(database) = common::postgres_admin_url()? else {
        eprintln!("skipped: {} is not set", common::POSTGRES_ENV);
        return Ok(());
    };
    let daemon = GitDaemon::running()?;
    let url = daemon.create_repo("turns.git", "main")?;
    let locals = tempfile::tempdir()?;
    let place = format!("{url} main {}", std::process::id());
    let mut replicas = Vec::new();
    for r in 0..3 {
        let turns = PgPushTurns::start(&database, &place)?;
        let repo = GitOpsRepo::open_with(&locals.path().join(format!("r{r}.git")), &remote(&url))?;
        replicas.push(repo.with_turns(Arc::new(turns)));
    }
    let landed = write_from_threads(&replicas, 4, 6)?;
    let log = daemon.log("turns.git", "main")?;
    assert_each_landed_once(&log, 3 * 4 * 6, &landed);
    let lost: u64 = replicas.iter().map(GitOpsRepo::races_lost).sum();
    assert_eq!(lost, 0, "no race lost while taking turns");
    assert_files_at(&url, 3, 4, 6)
}

/// Two writers take turns at one branch, one change each time. A writer that
/// built its change ahead on the head it last saw would find that head moved at
/// every push and build it again; once it has seen another writer push, it
/// builds at its turn, on the head it fetched, so each change is built once.
#[test]
fn a_writer_that_others_push_beside_builds_each_change_once() -> TestResult {
    let daemon = GitDaemon::running()?;
    let url = daemon.create_repo("beside.git", "main")?;
    let locals = tempfile::tempdir()?;
    let [first, second] = [0, 1]
        .map(|r| GitOpsRepo::open_with(&locals.path().join(format!("r{r}.git")), &remote(&url)));
    let (first, second) = (first?, second?);
    let rounds = 6;
    for round in 0..rounds {
        for (name, writer) in [("a", &first), ("b", &second)] {
            let path = format!("{name}/{round}.yaml");
            let applied = writer.apply(&[file(&path, &format!("n: {round}\n"))], &path)?;
            assert!(applied.created, "{path}");
        }
    }
    let log = daemon.log("beside.git", "main")?;
    assert_eq!(log.len(), 2 * rounds, "{log:?}");
    // The first change of each writer may be built twice: before it has seen the
    // other push, it builds ahead.
    for writer in [&first, &second] {
        let written = writer.commits_written();
        assert!(
            written <= rounds as u64 + 1,
            "{written} commits written for {rounds} changes"
        );
        assert!(!writer.builds_ahead());
    }
    // Alone again, and busy (groups follow each other while one is pushed), the
    // first writer fetches the other's last push and then builds ahead again:
    // its pushes land on the heads it built on, with no fetch. A group reads
    // whether to build ahead when it starts; the second may start before the
    // first has fetched, and the third before the second has, so three groups
    // at most fetch.
    let fetched = first.fetches();
    let landed = write_from_threads(std::slice::from_ref(&first), 4, 10)?;
    assert_eq!(landed.len(), 4 * 10);
    assert!(first.builds_ahead(), "a writer alone builds ahead again");
    let fetches = first.fetches() - fetched;
    assert!(fetches <= 3, "{fetches} fetches by a writer alone");
    Ok(())
}

/// `threads` threads on each replica apply `changes` changes each (and each once
/// more, which must make no commit); the commits the first applications made.
fn write_from_threads(
    replicas: &[GitOpsRepo],
    threads: usize,
    changes: usize,
) -> TestResult<Vec<String>> {
    let mut handles = Vec::new();
    for (r, repo) in replicas.iter().enumerate() {
        for t in 0..threads {
            let repo = repo.clone();
            handles.push(std::thread::spawn(
                move || -> Result<Vec<String>, String> {
                    let mut commits = Vec::new();
                    for c in 0..changes {
                        let path = format!("r{r}/t{t}/c{c}.yaml");
                        let files = [file(&path, &format!("n: {c}\n"))];
                        let applied = repo.apply(&files, &path).map_err(|e| e.to_string())?;
                        if !applied.created {
                            return Err(format!("{path} made no commit"));
                        }
                        // The same change again holds nothing new: no second commit.
                        let again = repo
                            .apply(&files, &format!("{path} again"))
                            .map_err(|e| e.to_string())?;
                        if again.created {
                            return Err(format!("{path} was committed twice"));
                        }
                        commits.push(applied.commit);
                    }
                    Ok(commits)
                },
            ));
        }
    }
    let mut landed = Vec::new();
    for handle in handles {
        landed.extend(handle.join().map_err(|_| "a writer panicked")??);
    }
    Ok(landed)
}

/// A clone of `url` holds every file `write_from_threads` wrote.
fn assert_files_at(url: &str, replicas: usize, threads: usize, changes: usize) -> TestResult {
    let checkout = tempfile::tempdir()?;
    git(checkout.path(), &["clone", "--quiet", url, "work"])?;
    for r in 0..replicas {
        for t in 0..threads {
            for c in 0..changes {
                let path = checkout.path().join(format!("work/r{r}/t{t}/c{c}.yaml"));
                assert_eq!(std::fs::read_to_string(&path)?, format!("n: {c}\n"));
            }
        }
    }
    Ok(())
}

/// A writer builds on the remote's head as it last saw it, without fetching
/// first. When another writer moved the branch meanwhile, the push is turned down
/// and the change is applied again on the new head: still one commit per change,
/// none for a change the remote already holds, and a check reads the other
/// writer's file at the remote.
#[test]
fn a_stale_copy_of_the_remote_never_commits_twice() -> TestResult {
    let daemon = GitDaemon::running()?;
    let url = daemon.create_repo("stale.git", "main")?;
    let locals = tempfile::tempdir()?;
    let a_path = locals.path().join("a.git");
    let a = GitOpsRepo::open_with(&a_path, &remote(&url))?;
    let b = GitOpsRepo::open_with(&locals.path().join("b.git"), &remote(&url))?;
    let first = a.apply(
        &[file(
            "a/one.yaml",
            "n: 1
",
        )],
        "a one",
    )?;
    assert!(
        b.apply(
            &[file(
                "b/two.yaml",
                "n: 2
"
            )],
            "b two"
        )?
        .created
    );

    // A's copy still says the branch is at A's commit; the remote holds B's file.
    let published = a.read_published("b/two.yaml")?;
    assert_eq!(
        published.content.as_deref(),
        Some(
            "n: 2
"
        )
    );
    assert_eq!(published.commit, Some(daemon.head("stale.git", "main")?));
    let absent = a.read_published("b/none.yaml")?;
    assert_eq!(absent.content, None);

    // A's copy goes stale again (as after a crash between a push and noting it):
    // re-applying B's change finds it at the remote and makes no commit.
    git(
        &a_path,
        &["update-ref", "refs/remotes/slipway/main", &first.commit],
    )?;
    let again = a.apply(
        &[file(
            "b/two.yaml",
            "n: 2
",
        )],
        "b two, re-run",
    )?;
    assert!(!again.created, "the remote already holds it");
    let third = a.apply(
        &[file(
            "a/three.yaml",
            "n: 3
",
        )],
        "a three",
    )?;
    assert!(third.created);
    let log = daemon.log("stale.git", "main")?;
    let subjects: Vec<&str> = log
        .iter()
        .filter_map(|l| l.split_once(' '))
        .map(|(_, s)| s)
        .collect();
    assert_eq!(subjects, ["a three", "b two", "a one"]);
    Ok(())
}

#[test]
fn a_remote_that_is_down_is_a_retryable_error_that_never_shows_the_password() -> TestResult {
    let mut daemon = GitDaemon::new()?;
    let url = daemon.create_repo("later.git", "main")?;
    let password = "hunter2-canary-7d1e";
    let settings = GitOpsSettings {
        branch: "main".into(),
        remote: Some(RemoteSettings {
            url: url.clone(),
            credentials: Some(RemoteCredentials {
                username: "slipway".into(),
                password: Secret::new(password.into()),
            }),
        }),
    };
    assert!(!format!("{settings:?}").contains(password), "{settings:?}");
    let local = tempfile::tempdir()?;
    let repo = GitOpsRepo::open_with(&local.path().join("gitops.git"), &settings)?;
    let files = [file("dev/a.yaml", "a: 1\n")];
    let error = repo
        .apply(&files, "one")
        .err()
        .ok_or("the remote is down")?;
    assert!(matches!(error, GitOpsError::Remote { .. }), "{error:?}");
    assert!(error.is_retryable());
    let text = format!("{error} {error:?}");
    assert!(text.contains(&url), "the error names the remote: {text}");
    assert!(!text.contains(password), "{text}");

    daemon.start()?;
    let applied = repo.apply(&files, "one")?;
    assert!(applied.created);
    assert_eq!(daemon.log("later.git", "main")?.len(), 1);
    Ok(())
}

#[test]
fn a_push_the_remote_declines_fails_once_with_the_remotes_reason() -> TestResult {
    let daemon = GitDaemon::running()?;
    let url = daemon.create_repo("guarded.git", "main")?;
    // A policy of the remote's (a hook, a protected branch): not a race with
    // another writer, so pushing again and again changes nothing.
    let hooks = daemon.repo_path("guarded.git").join("hooks");
    let tries = hooks.join("tries");
    let hook = hooks.join("pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho x >> '{}'\necho 'policy: changes to main need a ticket' >&2\nexit 1\n",
            tries.display()
        ),
    )?;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
    let local = tempfile::tempdir()?;
    let repo = GitOpsRepo::open_with(&local.path().join("gitops.git"), &remote(&url))?;
    let error = repo
        .apply(&[file("dev/a.yaml", "a: 1\n")], "one")
        .err()
        .ok_or("the hook declines every push")?;
    let text = error.to_string();
    assert!(matches!(error, GitOpsError::Remote { .. }), "{error:?}");
    assert!(text.contains("need a ticket"), "the remote's words: {text}");
    assert_eq!(std::fs::read_to_string(&tries)?.lines().count(), 1);
    // Nothing landed: the branch was never made.
    assert!(daemon.log("guarded.git", "main").is_err());
    Ok(())
}

fn with_credentials(url: &str, username: &str, password: &str) -> GitOpsSettings {
    GitOpsSettings {
        branch: "main".into(),
        remote: Some(RemoteSettings {
            url: url.into(),
            credentials: Some(RemoteCredentials {
                username: username.into(),
                password: Secret::new(password.into()),
            }),
        }),
    }
}

/// Runs a blocking apply off the runtime that serves the remote.
async fn apply_on(
    settings: GitOpsSettings,
    dir: &Path,
    files: Vec<RenderedFile>,
) -> TestResult<Result<slipway_server::drivers::gitops::Applied, GitOpsError>> {
    let path = dir.to_path_buf();
    Ok(tokio::task::spawn_blocking(move || {
        GitOpsRepo::open_with(&path, &settings).and_then(|repo| repo.apply(&files, "secured"))
    })
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_the_settings_open_an_http_remote_and_never_show() -> TestResult {
    const TOKEN: &str = "tok-3f9a-canary-token";
    const WRONG: &str = "wrong-71c2-canary-pass";
    let server = http_git::HttpGit::start("slipway", TOKEN).await?;
    let url = server.create_repo("secured.git", "main")?;
    let dir = tempfile::tempdir()?;
    let files = vec![file("prod/a.yaml", "a: 1\n")];

    let wrong = apply_on(
        with_credentials(&url, "slipway", WRONG),
        &dir.path().join("wrong.git"),
        files.clone(),
    )
    .await?;
    let error = wrong.err().ok_or("a wrong password is refused")?;
    let text = format!("{error} {error:?}");
    assert!(matches!(error, GitOpsError::Remote { .. }), "{text}");
    assert!(
        text.contains("refused the configured credentials"),
        "{text}"
    );
    assert!(!text.contains(WRONG) && !text.contains(TOKEN), "{text}");
    assert!(server.refused.load(std::sync::atomic::Ordering::SeqCst) > 0);

    let none = apply_on(remote(&url), &dir.path().join("none.git"), files.clone()).await?;
    let error = none.err().ok_or("no credentials are refused")?;
    assert!(error.to_string().contains("none are configured"), "{error}");

    let right = apply_on(
        with_credentials(&url, "slipway", TOKEN),
        &dir.path().join("right.git"),
        files.clone(),
    )
    .await??;
    assert!(right.created);
    assert_eq!(server.log("secured.git", "main")?.len(), 1);
    let again = apply_on(
        with_credentials(&url, "slipway", TOKEN),
        &dir.path().join("right.git"),
        files,
    )
    .await??;
    assert!(!again.created, "the remote already holds the files");
    assert_eq!(server.log("secured.git", "main")?.len(), 1);
    Ok(())
}

/// A remote that redirects to another host never gets the credentials sent
/// there: not by a push, a fetch, nor a look at its head (libgit2 follows an
/// off-site redirect on a connection's first request unless told not to).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_that_redirects_elsewhere_is_not_followed_with_the_credentials() -> TestResult {
    const TOKEN: &str = "tok-8d1e-canary-token";
    let elsewhere = http_git::HttpGit::start("slipway", TOKEN).await?;
    elsewhere.create_repo("taken.git", "main")?;
    let target = format!("http://localhost:{}", elsewhere.port());
    let (redirecting, _server) = http_git::redirector(target).await?;
    let url = format!("{redirecting}/taken.git");
    let dir = tempfile::tempdir()?;
    let settings = with_credentials(&url, "slipway", TOKEN);
    let applied = apply_on(
        settings.clone(),
        &dir.path().join("local.git"),
        vec![file("prod/a.yaml", "a: 1\n")],
    )
    .await?;
    let error = applied.err().ok_or("a redirected remote is refused")?;
    assert!(matches!(error, GitOpsError::Remote { .. }), "{error:?}");
    let path = dir.path().join("local.git");
    let looked = tokio::task::spawn_blocking(move || {
        GitOpsRepo::open_with(&path, &settings).and_then(|repo| repo.read_published("prod/a.yaml"))
    })
    .await?;
    assert!(looked.is_err(), "the look at the head is refused too");
    assert_eq!(
        elsewhere
            .authorized
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the other host was never sent the credentials"
    );
    assert!(
        elsewhere.log("taken.git", "main").is_err(),
        "nothing landed there"
    );
    Ok(())
}
