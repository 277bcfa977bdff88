//! Reads a catalog directory from disk; the core checks what it says.

use std::collections::HashMap;
use std::path::Path;

use slipway_core::catalog::{Catalog, CatalogErrors, ResourceType, SourceFile};
use slipway_core::validate::ParamValidator;

#[derive(Debug, thiserror::Error)]
pub enum CatalogLoadError {
    #[error("catalog {dir}: {message}")]
    Read { dir: String, message: String },
    #[error("catalog {dir} has errors:\n{errors}")]
    Invalid { dir: String, errors: CatalogErrors },
}

/// The catalog with each type's validator (and each action's) compiled once, at load.
pub struct LoadedCatalog {
    pub catalog: Catalog,
    validators: HashMap<String, ParamValidator>,
    action_validators: HashMap<(String, String), ParamValidator>,
}

impl LoadedCatalog {
    pub fn validator(&self, type_name: &str) -> Option<&ParamValidator> {
        self.validators.get(type_name)
    }

    /// The validator of a request: the type's, or its action's request type's.
    pub fn request_validator(
        &self,
        type_name: &str,
        action: Option<&str>,
    ) -> Option<&ParamValidator> {
        match action {
            None => self.validator(type_name),
            Some(action) => self
                .action_validators
                .get(&(type_name.to_string(), action.to_string())),
        }
    }

    /// The type a request is checked and run as (see [`Catalog::request_type`]).
    pub fn request_type(&self, type_name: &str, action: Option<&str>) -> Option<&ResourceType> {
        self.catalog.request_type(type_name, action)
    }

    pub fn resource_type(&self, type_name: &str) -> Option<&ResourceType> {
        self.catalog.resource_type(type_name)
    }
}

/// The largest catalog file read: a type, template or dictionary is a few KB.
const MAX_CATALOG_FILE_BYTES: u64 = 1024 * 1024;

fn refused(path: &Path, why: &str) -> std::io::Error {
    std::io::Error::other(format!("{}: {why}", path.display()))
}

/// Reads every file under `dir`. Hidden entries (`.git`, an editor's swap file)
/// are passed over. A symbolic link is followed only to a file inside the
/// catalog, so no template can render the server's own files
/// (`/proc/self/environ`, a key) into a repository; a device, a socket or a file
/// over a megabyte is refused.
fn collect(root: &Path, dir: &Path, files: &mut Vec<SourceFile>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(root, &path, files)?;
            continue;
        }
        let target = if kind.is_symlink() {
            let target = std::fs::canonicalize(&path)?;
            if !target.starts_with(root) || !target.is_file() {
                return Err(refused(
                    &path,
                    "a symbolic link in the catalog must point at a file inside it",
                ));
            }
            target
        } else if kind.is_file() {
            path.clone()
        } else {
            return Err(refused(&path, "only files and folders belong in a catalog"));
        };
        if std::fs::metadata(&target)?.len() > MAX_CATALOG_FILE_BYTES {
            return Err(refused(
                &path,
                "larger than the 1 MiB a catalog file may be",
            ));
        }
        if let Ok(relative) = path.strip_prefix(root) {
            let relative: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push(SourceFile {
                path: relative.join("/"),
                content: std::fs::read_to_string(&target)?,
            });
        }
    }
    Ok(())
}

pub fn load(dir: &Path) -> Result<LoadedCatalog, CatalogLoadError> {
    let shown = dir.display().to_string();
    let mut files = Vec::new();
    std::fs::canonicalize(dir)
        .and_then(|root| collect(&root, &root, &mut files))
        .map_err(|e| CatalogLoadError::Read {
            dir: shown.clone(),
            message: e.to_string(),
        })?;
    let catalog = Catalog::from_files(&files).map_err(|errors| CatalogLoadError::Invalid {
        dir: shown.clone(),
        errors,
    })?;
    let mut validators = HashMap::new();
    let mut action_validators = HashMap::new();
    let compile = |what: String, ty: &ResourceType| {
        ParamValidator::new(ty).map_err(|message| CatalogLoadError::Read {
            dir: shown.clone(),
            message: format!("{what}: {message}"),
        })
    };
    for (name, ty) in &catalog.types {
        validators.insert(name.clone(), compile(format!("type {name}"), ty)?);
        for action in &ty.actions {
            let what = format!("type {name}, action {}", action.name);
            let validator = compile(what, &action.request_type)?;
            action_validators.insert((name.clone(), action.name.clone()), validator);
        }
    }
    Ok(LoadedCatalog {
        catalog,
        validators,
        action_validators,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(root: &Path) -> Result<Vec<SourceFile>, String> {
        let mut files = Vec::new();
        collect(root, root, &mut files).map_err(|e| e.to_string())?;
        Ok(files)
    }

    #[test]
    fn links_stay_inside_the_catalog_and_hidden_files_are_passed_over()
    -> Result<(), Box<dyn std::error::Error>> {
        let outside = tempfile::tempdir()?;
        std::fs::write(outside.path().join("environ"), "SECRET=1")?;
        let dir = tempfile::tempdir()?;
        let root = std::fs::canonicalize(dir.path())?;
        std::fs::create_dir_all(root.join("templates/x"))?;
        std::fs::write(root.join("templates/x/a.j2"), "a")?;
        std::fs::create_dir_all(root.join(".git"))?;
        std::fs::write(root.join(".git/HEAD"), "ref")?;
        std::os::unix::fs::symlink(root.join("templates/x/a.j2"), root.join("templates/x/b.j2"))?;
        let files = read(&root)?;
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["templates/x/a.j2", "templates/x/b.j2"]);

        std::os::unix::fs::symlink(
            outside.path().join("environ"),
            root.join("templates/x/leak.j2"),
        )?;
        let error = read(&root).err().unwrap_or_default();
        assert!(error.contains("must point at a file inside it"), "{error}");
        std::fs::remove_file(root.join("templates/x/leak.j2"))?;

        std::os::unix::fs::symlink(&root, root.join("templates/loop"))?;
        let error = read(&root).err().unwrap_or_default();
        assert!(error.contains("must point at a file inside it"), "{error}");
        std::fs::remove_file(root.join("templates/loop"))?;

        std::fs::write(root.join("types.yaml"), vec![b'#'; 2 * 1024 * 1024])?;
        let error = read(&root).err().unwrap_or_default();
        assert!(error.contains("larger than the 1 MiB"), "{error}");
        Ok(())
    }
}
