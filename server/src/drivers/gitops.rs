//! The GitOps driver: a change set becomes one commit in a git repository that a
//! tool such as Argo CD or Flux reconciles. Committing content the branch already
//! holds creates no commit, which makes a re-run job harmless.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::build::TreeUpdateBuilder;
use git2::{FileMode, ObjectType, Repository, Signature};
use slipway_core::render::RenderedFile;

#[derive(Debug, thiserror::Error)]
pub enum GitOpsError {
    #[error("GitOps repository {path}: {source}")]
    Git { path: String, source: git2::Error },
    #[error("GitOps repository lock poisoned by an earlier panic")]
    Poisoned,
}

/// Where the commit landed and whether this call made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub commit: String,
    pub created: bool,
}

#[derive(Clone)]
pub struct GitOpsRepo {
    path: PathBuf,
    branch_ref: String,
    // git2 repositories are not Sync; one writer per process at a time.
    lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for GitOpsRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitOpsRepo")
            .field("path", &self.path)
            .finish()
    }
}

impl GitOpsRepo {
    /// Opens the repository, creating a bare one when the path does not exist yet.
    pub fn open_or_init(path: &Path) -> Result<GitOpsRepo, GitOpsError> {
        let git = |source| GitOpsError::Git {
            path: path.display().to_string(),
            source,
        };
        if path.exists() {
            Repository::open(path).map_err(git)?;
        } else {
            Repository::init_bare(path).map_err(git)?;
        }
        Ok(GitOpsRepo {
            path: path.to_path_buf(),
            branch_ref: "refs/heads/main".to_string(),
            lock: Arc::new(Mutex::new(())),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn git_error(&self, source: git2::Error) -> GitOpsError {
        GitOpsError::Git {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Writes the files on top of the branch head and commits, unless the tree
    /// would not change.
    pub fn apply(&self, files: &[RenderedFile], message: &str) -> Result<Applied, GitOpsError> {
        let _guard = self.lock.lock().map_err(|_| GitOpsError::Poisoned)?;
        let repo = Repository::open(&self.path).map_err(|e| self.git_error(e))?;
        self.apply_in(&repo, files, message)
            .map_err(|e| self.git_error(e))
    }

    fn apply_in(
        &self,
        repo: &Repository,
        files: &[RenderedFile],
        message: &str,
    ) -> Result<Applied, git2::Error> {
        let head = match repo.refname_to_id(&self.branch_ref) {
            Ok(id) => Some(repo.find_commit(id)?),
            Err(e) if e.code() == git2::ErrorCode::NotFound => None,
            Err(e) => return Err(e),
        };
        let baseline = match &head {
            Some(commit) => commit.tree()?,
            None => {
                let empty = repo.treebuilder(None)?.write()?;
                repo.find_tree(empty)?
            }
        };
        let mut update = TreeUpdateBuilder::new();
        for file in files {
            let blob = repo.blob(file.content.as_bytes())?;
            update.upsert(file.path.as_str(), blob, FileMode::Blob);
        }
        let tree_id = update.create_updated(repo, &baseline)?;
        if let Some(commit) = &head
            && commit.tree_id() == tree_id
        {
            return Ok(Applied {
                commit: commit.id().to_string(),
                created: false,
            });
        }
        let tree = repo.find_tree(tree_id)?;
        let signature = Signature::now("Slipway", "slipway@localhost")?;
        let parents: Vec<&git2::Commit<'_>> = head.iter().collect();
        let commit = repo.commit(
            Some(&self.branch_ref),
            &signature,
            &signature,
            message,
            &tree,
            &parents,
        )?;
        Ok(Applied {
            commit: commit.to_string(),
            created: true,
        })
    }

    /// A file's content at a commit, or None when the path is absent there.
    pub fn read_file(&self, commit: &str, path: &str) -> Result<Option<String>, GitOpsError> {
        let _guard = self.lock.lock().map_err(|_| GitOpsError::Poisoned)?;
        let repo = Repository::open(&self.path).map_err(|e| self.git_error(e))?;
        let read = || -> Result<Option<String>, git2::Error> {
            let oid = git2::Oid::from_str(commit)?;
            let tree = repo.find_commit(oid)?.tree()?;
            let entry = match tree.get_path(Path::new(path)) {
                Ok(entry) => entry,
                Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            if entry.kind() != Some(ObjectType::Blob) {
                return Ok(None);
            }
            let blob = repo.find_blob(entry.id())?;
            Ok(Some(String::from_utf8_lossy(blob.content()).into_owned()))
        };
        read().map_err(|e| self.git_error(e))
    }

    /// How many commits the branch holds (for tests and the health page).
    pub fn commit_count(&self) -> Result<usize, GitOpsError> {
        let _guard = self.lock.lock().map_err(|_| GitOpsError::Poisoned)?;
        let repo = Repository::open(&self.path).map_err(|e| self.git_error(e))?;
        let count = || -> Result<usize, git2::Error> {
            let head = match repo.refname_to_id(&self.branch_ref) {
                Ok(id) => id,
                Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(0),
                Err(e) => return Err(e),
            };
            let mut walk = repo.revwalk()?;
            walk.push(head)?;
            Ok(walk.count())
        };
        count().map_err(|e| self.git_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &str) -> RenderedFile {
        RenderedFile {
            path: path.into(),
            content: content.into(),
        }
    }

    #[test]
    fn applying_the_same_files_twice_commits_once() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let repo = GitOpsRepo::open_or_init(&dir.path().join("gitops.git"))?;
        let files = [
            file("dev/payments/a/x.yaml", "a: 1\n"),
            file("dev/payments/a/y.yaml", "b: 2\n"),
        ];
        let first = repo.apply(&files, "first")?;
        assert!(first.created);
        let second = repo.apply(&files, "again")?;
        assert_eq!(
            second,
            Applied {
                commit: first.commit.clone(),
                created: false
            }
        );
        assert_eq!(repo.commit_count()?, 1);
        assert_eq!(
            repo.read_file(&first.commit, "dev/payments/a/y.yaml")?
                .as_deref(),
            Some("b: 2\n")
        );
        assert_eq!(
            repo.read_file(&first.commit, "dev/payments/a/z.yaml")?,
            None
        );
        Ok(())
    }

    #[test]
    fn a_later_change_keeps_earlier_files() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let repo = GitOpsRepo::open_or_init(&dir.path().join("gitops.git"))?;
        repo.apply(&[file("dev/a.yaml", "1")], "one")?;
        let second = repo.apply(&[file("prod/b.yaml", "2")], "two")?;
        assert!(second.created);
        assert_eq!(
            repo.read_file(&second.commit, "dev/a.yaml")?.as_deref(),
            Some("1")
        );
        assert_eq!(repo.commit_count()?, 2);
        Ok(())
    }
}
