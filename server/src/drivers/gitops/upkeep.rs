//! Upkeep of the local repository. libgit2 writes every object as a loose file
//! (nine for a namespace's commit) and never packs them: after a year of
//! requests the repository would hold about a million files, each read a file
//! open, and on some filesystems each new one slower to create. Once there are
//! many, git's own geometric repack rolls the loose objects and the small packs
//! into a pack, leaving the large packs as they are: its work grows with what
//! is new, not with the history. (`gc --auto` walks the whole history to tell
//! reachable objects apart: measured on a year of namespaces, 900,000 objects,
//! it held every write for 49 s to pack 14,000 loose objects and for 146 s to
//! roll 52 packs into one; the geometric repack took 0.9 s and 0.03 s.)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{GitOpsError, GitOpsRepo};

/// What one upkeep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    /// Loose objects before and after.
    pub loose_before: u64,
    pub loose_after: u64,
    pub took: Duration,
}

/// git's own default: a repository with more loose objects than this is packed.
pub const LOOSE_OBJECTS_LIMIT: u64 = 6_700;
/// git's own default: more packs than this are rolled up.
const PACKS_LIMIT: usize = 50;
/// Each pack after a repack holds at least this many times the objects of the
/// next smaller one, so a repository keeps a few packs, however old.
const GEOMETRIC_FACTOR: u32 = 2;
/// The longest a pack may take while every write waits.
const GC_TIME_LIMIT: Duration = Duration::from_secs(15 * 60);

impl GitOpsRepo {
    /// Packs the repository's loose objects once there are more than `limit`
    /// (or rolls up its small packs once there are many) with git's geometric
    /// repack. It holds the locks of building and publishing while it runs, so
    /// no group is written beside it; readers go on (an object moves into a pack
    /// before its loose file goes, and libgit2 looks again in the packs when a
    /// file is gone). `None` when nothing was to be done.
    pub fn pack_loose_objects(&self, limit: u64) -> Result<Option<Packed>, GitOpsError> {
        let loose_before = self.loose_objects()?;
        // Every fetch from a remote leaves a pack of its own: many packs slow
        // reads as many files do.
        if loose_before <= limit && self.packs()? <= PACKS_LIMIT {
            return Ok(None);
        }
        let _building = super::taken_over(&self.build, |built| *built = None);
        let _publishing = super::taken_over(&self.publish, |_| {});
        let started = Instant::now();
        // Loose objects go into the roll-up whether or not a branch reaches
        // them (no walk of the history); `-d` then removes the loose files and
        // the packs rolled up.
        let mut git = Command::new("git")
            .arg("-C")
            .arg(&self.path)
            .args(["repack", "-d", "-l", "-q"])
            .arg(format!("--geometric={GEOMETRIC_FACTOR}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.upkeep_error(format!("could not start git: {e}")))?;
        let status = loop {
            match git.try_wait() {
                Ok(Some(status)) => break status,
                // Every write waits while it runs: a git that hangs must not stop
                // them for good.
                Ok(None) if started.elapsed() > GC_TIME_LIMIT => {
                    let _ = git.kill();
                    let _ = git.wait();
                    return Err(self.upkeep_error(format!(
                        "git repack did not finish within {} s and was stopped",
                        GC_TIME_LIMIT.as_secs()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(self.upkeep_error(format!("could not wait for git: {e}"))),
            }
        };
        if !status.success() {
            let mut said = String::new();
            if let Some(mut stderr) = git.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut said);
            }
            let said = said.lines().last().unwrap_or("no message");
            return Err(self.upkeep_error(format!("git repack failed ({status}): {said}")));
        }
        // Handles opened before the repack would look in the packs they knew.
        self.handles.close_idle();
        Ok(Some(Packed {
            loose_before,
            loose_after: self.loose_objects()?,
            took: started.elapsed(),
        }))
    }

    /// The loose objects of the repository, counted file by file (256 small
    /// directories; git's own estimate samples one of them).
    pub fn loose_objects(&self) -> Result<u64, GitOpsError> {
        let objects = self.path.join("objects");
        let mut count = 0;
        for fan in 0..=255_u8 {
            let dir = objects.join(format!("{fan:02x}"));
            match std::fs::read_dir(&dir) {
                Ok(entries) => count += entries.count() as u64,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(self.upkeep_error(format!("could not read {}: {e}", dir.display())));
                }
            }
        }
        Ok(count)
    }

    /// The packs of the repository.
    fn packs(&self) -> Result<usize, GitOpsError> {
        let dir = self.path.join("objects").join("pack");
        match std::fs::read_dir(&dir) {
            Ok(entries) => Ok(entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
                .count()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(self.upkeep_error(format!("could not read {}: {e}", dir.display()))),
        }
    }

    fn upkeep_error(&self, message: String) -> GitOpsError {
        self.git_error(git2::Error::from_str(&message))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::file;
    use super::*;

    #[test]
    fn many_loose_objects_are_packed_and_everything_still_reads()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let repo = GitOpsRepo::open_or_init(&dir.path().join("repo.git"))?;
        let mut commits = Vec::new();
        // About 5,000 loose objects.
        for n in 0..1000 {
            let applied = repo.apply(
                &[file(
                    &format!("apps/a{n}/manifest.yaml"),
                    &format!("n: {n}\n"),
                )],
                &format!("add a{n}"),
            )?;
            commits.push((n, applied.commit));
        }
        assert_eq!(repo.pack_loose_objects(100_000)?, None, "under the limit");
        let before = repo.loose_objects()?;
        assert!(before > 4_000, "{before} loose objects written");
        let packed = repo
            .pack_loose_objects(300)?
            .ok_or("over the limit, the repository is packed")?;
        assert_eq!(packed.loose_before, before);
        assert!(
            packed.loose_after < before / 10,
            "{} loose objects left of {before}",
            packed.loose_after
        );
        for (n, commit) in [&commits[0], &commits[500], &commits[999]] {
            let read = repo.read_file(commit, &format!("apps/a{n}/manifest.yaml"))?;
            assert_eq!(read.as_deref(), Some(format!("n: {n}\n").as_str()));
        }
        let next = repo.apply(&[file("apps/after/manifest.yaml", "x\n")], "after")?;
        assert_eq!(
            repo.read_head_file("apps/a7/manifest.yaml")?.as_deref(),
            Some("n: 7\n"),
            "the packed history is still the base of new commits ({})",
            next.commit
        );
        assert_eq!(repo.commit_count()?, 1001);
        Ok(())
    }

    /// Packs as many fetches leave them: each commit's new objects in a pack of
    /// its own.
    fn pack_each_commit(
        repo: &GitOpsRepo,
        commits: &[(usize, String)],
    ) -> Result<(), Box<dyn std::error::Error>> {
        let mut before = String::new();
        for (_, commit) in commits {
            let range = match before.is_empty() {
                true => commit.clone(),
                false => format!("{commit} ^{before}"),
            };
            let script = format!(
                "git rev-list --objects {range} | git pack-objects -q objects/pack/pack >/dev/null && git prune-packed"
            );
            let status = Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(&repo.path)
                .status()?;
            assert!(status.success(), "packing {commit}");
            before = commit.clone();
        }
        Ok(())
    }

    #[test]
    fn many_small_packs_are_rolled_up_and_everything_still_reads()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let repo = GitOpsRepo::open_or_init(&dir.path().join("repo.git"))?;
        let mut commits = Vec::new();
        for n in 0..60 {
            let path = format!("apps/p{n}/manifest.yaml");
            let applied = repo.apply(&[file(&path, &format!("p: {n}\n"))], &format!("add p{n}"))?;
            commits.push((n, applied.commit));
        }
        pack_each_commit(&repo, &commits)?;
        // A few loose objects no commit reaches stay (a tree built and then
        // not used); under the limit they do not count.
        assert!(repo.loose_objects()? < 100, "{}", repo.loose_objects()?);
        assert_eq!(repo.packs()?, 60);
        let packed = repo
            .pack_loose_objects(LOOSE_OBJECTS_LIMIT)?
            .ok_or("more than 50 packs are rolled up")?;
        assert_eq!(
            packed.loose_after, 0,
            "the roll-up takes the loose ones too"
        );
        let packs = repo.packs()?;
        assert!(packs <= 6, "{packs} packs left of 60");
        for (n, commit) in [&commits[0], &commits[30], &commits[59]] {
            let read = repo.read_file(commit, &format!("apps/p{n}/manifest.yaml"))?;
            assert_eq!(read.as_deref(), Some(format!("p: {n}\n").as_str()));
        }
        assert_eq!(
            repo.pack_loose_objects(LOOSE_OBJECTS_LIMIT)?,
            None,
            "nothing left to do"
        );
        repo.apply(&[file("apps/after/manifest.yaml", "x\n")], "after")?;
        assert_eq!(repo.commit_count()?, 61);
        Ok(())
    }
}
