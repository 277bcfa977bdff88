//! The GitOps driver: a change set becomes one commit in a git repository that a
//! tool such as Argo CD or Flux reconciles. Committing content the branch already
//! holds creates no commit, which makes a re-run job harmless.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::build::TreeUpdateBuilder;
use git2::{FileMode, ObjectType, Repository, Signature};
use slipway_core::render::RenderedFile;
use slipway_core::secret::SecretValues;

/// A secret may reach a path, a file or the commit message only through a bug in a
/// template or a catalog; this is the last place to stop it.
fn refuse_secrets(
    files: &[RenderedFile],
    message: &str,
    secrets: &SecretValues,
) -> Result<(), GitOpsError> {
    for (param, value) in secrets.iter().filter(|(_, v)| !v.is_empty()) {
        let leak = files
            .iter()
            .find(|f| f.path.contains(value) || f.content.contains(value))
            .map(|f| f.path.clone())
            .or_else(|| {
                message
                    .contains(value)
                    .then(|| "the commit message".to_string())
            });
        if let Some(path) = leak {
            return Err(GitOpsError::SecretInFile {
                path,
                param: param.to_string(),
            });
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum GitOpsError {
    #[error("GitOps repository {path}: {source}")]
    Git { path: String, source: git2::Error },
    #[error("GitOps repository lock poisoned by an earlier panic")]
    Poisoned,
    #[error(
        "refusing to commit {path}: it would contain the value of the secret parameter {param}; a template must refer to a secret, never hold it"
    )]
    SecretInFile { path: String, param: String },
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
        self.apply_with_secrets(files, message, &SecretValues::new())
    }

    /// `apply` for a request with secret parameters. A repository is readable by
    /// everyone who reconciles it, so the values are used only to make sure none
    /// of them is about to be committed: the commit is refused if one would be.
    pub fn apply_with_secrets(
        &self,
        files: &[RenderedFile],
        message: &str,
        secrets: &SecretValues,
    ) -> Result<Applied, GitOpsError> {
        refuse_secrets(files, message, secrets)?;
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

    /// A file's content at the branch head, or None when the branch or the path is
    /// absent.
    pub fn read_head_file(&self, path: &str) -> Result<Option<String>, GitOpsError> {
        let head = {
            let _guard = self.lock.lock().map_err(|_| GitOpsError::Poisoned)?;
            let repo = Repository::open(&self.path).map_err(|e| self.git_error(e))?;
            match repo.refname_to_id(&self.branch_ref) {
                Ok(id) => id.to_string(),
                Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
                Err(e) => return Err(self.git_error(e)),
            }
        };
        self.read_file(&head, path)
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
    fn a_secret_handed_to_the_driver_is_never_committed() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let repo = GitOpsRepo::open_or_init(&dir.path().join("gitops.git"))?;
        let mut secrets = SecretValues::new();
        secrets.insert("owner_password", "canary-5f1c2b9e-secret");
        let leaking = [file(
            "dev/payments/db/cluster.yaml",
            "password: canary-5f1c2b9e-secret\n",
        )];
        let refused = repo.apply_with_secrets(&leaking, "leak", &secrets);
        assert_eq!(
            refused.err().map(|e| e.to_string()).as_deref(),
            Some(
                "refusing to commit dev/payments/db/cluster.yaml: it would contain the value of the secret parameter owner_password; a template must refer to a secret, never hold it"
            )
        );
        let in_message = repo.apply_with_secrets(
            &[file("dev/a.yaml", "1")],
            "by canary-5f1c2b9e-secret",
            &secrets,
        );
        assert!(matches!(in_message, Err(GitOpsError::SecretInFile { .. })));
        assert_eq!(repo.commit_count()?, 0, "nothing was committed");
        let referring = [file(
            "dev/payments/db/cluster.yaml",
            "secret:\n  name: payments-db-dev-owner-password\n",
        )];
        assert!(repo.apply_with_secrets(&referring, "ok", &secrets)?.created);
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
