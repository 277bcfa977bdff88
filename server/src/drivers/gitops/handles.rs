//! Open handles on the local repository, kept between uses. Each keeps libgit2's
//! object cache, and a push needs it: to leave out what the remote already has,
//! libgit2 walks every tree of the commit the remote holds, which from a cold
//! handle means opening and inflating one file per directory of the repository,
//! a cost that grows with every asset recorded. A warm handle finds those trees
//! in memory (objects never change, so a cached one is never stale).

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use git2::Repository;

/// More handles than this are closed when given back: the workers that use one
/// at once are the group's builder, the pusher and a few readers.
const MAX_IDLE: usize = 4;

pub(super) struct Handles {
    path: PathBuf,
    idle: Mutex<Vec<Repository>>,
}

/// A handle in use by one caller; dropped, it goes back to the pool.
pub(super) struct Handle<'a> {
    pool: &'a Handles,
    repo: Option<Repository>,
}

impl Handles {
    pub(super) fn new(path: &Path) -> Handles {
        Handles {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle handle, or a new one when all are in use.
    pub(super) fn take(&self) -> Result<Handle<'_>, git2::Error> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let repo = match idle {
            Some(repo) => repo,
            None => Repository::open(&self.path)?,
        };
        Ok(Handle {
            pool: self,
            repo: Some(repo),
        })
    }

    /// Closes the idle handles: the next ones open afresh (after a repack, say).
    pub(super) fn close_idle(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

impl Deref for Handle<'_> {
    type Target = Repository;

    fn deref(&self) -> &Repository {
        // Set in `take`, emptied only by `drop`.
        self.repo
            .as_ref()
            .unwrap_or_else(|| unreachable!("a handle in use"))
    }
}

impl Drop for Handle<'_> {
    fn drop(&mut self) {
        if let (Some(repo), Ok(mut idle)) = (self.repo.take(), self.pool.idle.lock())
            && idle.len() < MAX_IDLE
        {
            idle.push(repo);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_given_back_is_taken_again_and_extras_are_closed()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        Repository::init_bare(dir.path())?;
        let handles = Handles::new(dir.path());
        let first = handles.take()?;
        let path = first.path().to_path_buf();
        drop(first);
        assert_eq!(handles.idle.lock().map(|idle| idle.len()).ok(), Some(1));
        let again = handles.take()?;
        assert_eq!(again.path(), path);
        assert_eq!(handles.idle.lock().map(|idle| idle.len()).ok(), Some(0));
        let many: Vec<_> = (0..MAX_IDLE + 2)
            .map(|_| handles.take())
            .collect::<Result<_, _>>()?;
        drop(many);
        drop(again);
        assert_eq!(
            handles.idle.lock().map(|idle| idle.len()).ok(),
            Some(MAX_IDLE)
        );
        Ok(())
    }
}
