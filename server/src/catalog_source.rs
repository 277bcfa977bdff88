//! Reads a catalog directory from disk; the core checks what it says.

use std::collections::HashMap;
use std::path::Path;

use slipway_core::catalog::{Catalog, CatalogError, CatalogErrors, ResourceType, SourceFile};
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

/// An I/O error with the path it happened at: "permission denied" alone names
/// no file to fix.
fn at(path: &Path) -> impl FnOnce(std::io::Error) -> std::io::Error + '_ {
    move |error| {
        let what = if error.kind() == std::io::ErrorKind::InvalidData {
            "is not UTF-8 text".to_string()
        } else {
            error.to_string()
        };
        std::io::Error::new(error.kind(), format!("{}: {what}", path.display()))
    }
}

/// The folders the core's loader reads ([`Catalog::from_files`]), in path order.
/// `dictionaries/` and `types/` hold `*.yaml` files directly; `templates/` holds
/// files at any depth. Anything else (a README, a diagram) is never read.
const YAML_FOLDERS: [&str; 2] = ["dictionaries", "types"];
const TEMPLATES_FOLDER: &str = "templates";

/// Reads the files of the catalog at `root` the loader uses. Hidden entries
/// (`.git`, an editor's swap file) are passed over. A symbolic link is followed
/// only to a file inside the catalog, so no template can render the server's own
/// files (`/proc/self/environ`, a key) into a repository; a device, a socket or a
/// file over a megabyte is refused.
fn collect(root: &Path, files: &mut Vec<SourceFile>) -> std::io::Result<()> {
    for folder in ["dictionaries", TEMPLATES_FOLDER, "types"] {
        let dir = root.join(folder);
        let kind = match std::fs::symlink_metadata(&dir) {
            Ok(metadata) => metadata.file_type(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(at(&dir)(error)),
        };
        if !kind.is_dir() {
            return Err(refused(&dir, "must be a folder, not a file or a link"));
        }
        if YAML_FOLDERS.contains(&folder) {
            collect_yaml(root, &dir, files)?;
        } else {
            collect_tree(root, &dir, files)?;
        }
    }
    Ok(())
}

/// The entries of `dir` in path order, hidden ones left out.
fn visible_entries(dir: &Path) -> std::io::Result<Vec<std::fs::DirEntry>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
        .map_err(at(dir))?;
    entries.retain(|e| !e.file_name().to_string_lossy().starts_with('.'));
    entries.sort_by_key(|e| e.path());
    Ok(entries)
}

/// The `*.yaml` files directly in `dir`. A `.yml` (or `.YAML`) file would be
/// passed over by the loader without a word, its type or dictionary missing:
/// it is refused instead.
fn collect_yaml(root: &Path, dir: &Path, files: &mut Vec<SourceFile>) -> std::io::Result<()> {
    for entry in visible_entries(dir)? {
        let path = entry.path();
        if entry.file_type().map_err(at(&path))?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let lower = name.to_ascii_lowercase();
        if name.ends_with(".yaml") {
            read_file(root, &path, files)?;
        } else if let Some(stem) = lower
            .strip_suffix(".yml")
            .or_else(|| lower.strip_suffix(".yaml"))
        {
            let stem = &name[..stem.len()];
            return Err(refused(
                &path,
                &format!("the catalog reads only files ending in .yaml here: name it {stem}.yaml"),
            ));
        }
    }
    Ok(())
}

/// Every file under `dir`, at any depth.
fn collect_tree(root: &Path, dir: &Path, files: &mut Vec<SourceFile>) -> std::io::Result<()> {
    for entry in visible_entries(dir)? {
        let path = entry.path();
        if entry.file_type().map_err(at(&path))?.is_dir() {
            collect_tree(root, &path, files)?;
        } else {
            read_file(root, &path, files)?;
        }
    }
    Ok(())
}

fn read_file(root: &Path, path: &Path, files: &mut Vec<SourceFile>) -> std::io::Result<()> {
    let kind = std::fs::symlink_metadata(path)
        .map_err(at(path))?
        .file_type();
    let target = if kind.is_symlink() {
        let target = std::fs::canonicalize(path).map_err(at(path))?;
        if !target.starts_with(root) || !target.is_file() {
            return Err(refused(
                path,
                "a symbolic link in the catalog must point at a file inside it",
            ));
        }
        target
    } else if kind.is_file() {
        path.to_path_buf()
    } else {
        return Err(refused(path, "only files and folders belong in a catalog"));
    };
    if std::fs::metadata(&target).map_err(at(path))?.len() > MAX_CATALOG_FILE_BYTES {
        return Err(refused(path, "larger than the 1 MiB a catalog file may be"));
    }
    if let Ok(relative) = path.strip_prefix(root) {
        let relative: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        files.push(SourceFile {
            path: relative.join("/"),
            content: std::fs::read_to_string(&target).map_err(at(path))?,
        });
    }
    Ok(())
}

pub fn load(dir: &Path) -> Result<LoadedCatalog, CatalogLoadError> {
    let shown = dir.display().to_string();
    let mut files = Vec::new();
    std::fs::canonicalize(dir)
        .and_then(|root| collect(&root, &mut files))
        .map_err(|e| CatalogLoadError::Read {
            dir: shown.clone(),
            message: e.to_string(),
        })?;
    if let Some(message) = no_types(dir, &files) {
        return Err(CatalogLoadError::Read {
            dir: shown,
            message,
        });
    }
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

/// [`load`], then every type rendered with sample values as `slipway catalog
/// check` renders them, each problem logged as a warning naming the file and
/// field: a server starts on a catalog whose samples do not render, because a
/// required parameter's sample value may not fit its pattern (the check cannot
/// tell that from a broken template), and refusing to start would take every
/// type down for one. Returns the problems found.
pub fn load_and_render(dir: &Path) -> Result<(LoadedCatalog, Vec<CatalogError>), CatalogLoadError> {
    let loaded = load(dir)?;
    let broken = slipway_core::render::check_samples(&loaded.catalog);
    for problem in &broken {
        tracing::warn!(
            file = %problem.file,
            field = %problem.path,
            "the catalog's sample render failed: {} (see `slipway catalog check`)",
            problem.message
        );
    }
    Ok((loaded, broken))
}

/// Why the files read hold no catalog: a directory without `types/` (a
/// setting that names the wrong folder, a checkout not made yet) would
/// otherwise load as a valid catalog offering nothing.
fn no_types(dir: &Path, files: &[SourceFile]) -> Option<String> {
    if files.iter().any(|f| f.path.starts_with("types/")) {
        return None;
    }
    let what = if dir.join("types").is_dir() {
        "its types/ folder holds no resource type"
    } else {
        "it has no types/ folder"
    };
    Some(format!(
        "{what}: a catalog directory holds types/<name>.yaml (one file per resource type), \
         with dictionaries/ and templates/ beside it; is this the catalog's directory?"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(root: &Path) -> Result<Vec<SourceFile>, String> {
        let mut files = Vec::new();
        collect(root, &mut files).map_err(|e| e.to_string())?;
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

        std::fs::create_dir_all(root.join("types"))?;
        std::fs::write(root.join("types/big.yaml"), vec![b'#'; 2 * 1024 * 1024])?;
        let error = read(&root).err().unwrap_or_default();
        assert!(error.contains("larger than the 1 MiB"), "{error}");
        Ok(())
    }

    #[test]
    fn only_the_folders_the_loader_reads_are_read() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = std::fs::canonicalize(dir.path())?;
        for folder in ["docs", "types/drafts", "dictionaries", "templates/x"] {
            std::fs::create_dir_all(root.join(folder))?;
        }
        // Not UTF-8, but documentation: never read, so it cannot stop start-up.
        std::fs::write(
            root.join("docs/diagram.png"),
            [0x89, b'P', b'N', b'G', 0xff, 0xfe],
        )?;
        std::fs::write(root.join("README.md"), "# catalog")?;
        std::fs::write(root.join("types/a.yaml"), "name: a")?;
        std::fs::write(root.join("types/notes.txt"), [0xff])?;
        std::fs::write(root.join("types/drafts/b.yaml"), "name: b")?;
        std::fs::write(root.join("dictionaries/teams.yaml"), "name: teams")?;
        std::fs::write(root.join("templates/x/a.j2"), "a")?;
        let files = read(&root)?;
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "dictionaries/teams.yaml",
                "templates/x/a.j2",
                "types/a.yaml"
            ]
        );

        std::fs::write(root.join("templates/x/logo.png"), [0xff, 0xfe])?;
        let error = read(&root).err().unwrap_or_default();
        assert_eq!(
            error,
            format!(
                "{}: is not UTF-8 text",
                root.join("templates/x/logo.png").display()
            )
        );
        std::fs::remove_file(root.join("templates/x/logo.png"))?;

        for misnamed in ["types/foo.yml", "dictionaries/envs.yml", "types/Bar.YAML"] {
            std::fs::write(root.join(misnamed), "name: x")?;
            let error = read(&root).err().unwrap_or_default();
            let stem = misnamed
                .rsplit_once('/')
                .and_then(|(_, f)| f.split_once('.'));
            let stem = stem.map(|(stem, _)| stem).unwrap_or_default();
            assert_eq!(
                error,
                format!(
                    "{}: the catalog reads only files ending in .yaml here: name it {stem}.yaml",
                    root.join(misnamed).display()
                )
            );
            std::fs::remove_file(root.join(misnamed))?;
        }
        Ok(())
    }

    /// A directory that is not a catalog (a wrong setting, an empty checkout)
    /// is refused, saying what a catalog holds, rather than loaded as one that
    /// offers nothing.
    #[test]
    fn a_directory_without_types_is_no_catalog() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let error = load(dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            error,
            format!(
                "catalog {}: it has no types/ folder: a catalog directory holds \
                 types/<name>.yaml (one file per resource type), with dictionaries/ and \
                 templates/ beside it; is this the catalog's directory?",
                dir.path().display()
            )
        );
        std::fs::create_dir_all(dir.path().join("types"))?;
        std::fs::write(dir.path().join("types/README.md"), "# types")?;
        let error = load(dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("its types/ folder holds no resource type"),
            "{error}"
        );
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
        let (_, broken) = load_and_render(&shipped)?;
        assert!(broken.is_empty(), "{broken:?}");
        Ok(())
    }

    /// What `catalog check`'s sample render refuses, the server names at start.
    #[test]
    fn a_catalog_whose_samples_do_not_render_is_named() -> Result<(), Box<dyn std::error::Error>> {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
        let dir = tempfile::tempdir()?;
        copy(&shipped, dir.path())?;
        std::fs::write(
            dir.path().join("templates/k8s-namespace/namespace.yaml.j2"),
            "kind: Namespace\nmetadata: {name: {{ resource_name }}\n",
        )?;
        assert!(load(dir.path()).is_ok());
        let (_, broken) = load_and_render(dir.path())?;
        assert!(
            broken.iter().any(|e| e.file == "types/k8s-namespace.yaml"),
            "{broken:?}"
        );
        Ok(())
    }

    fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let target = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                copy(&entry.path(), &target)?;
            } else {
                std::fs::copy(entry.path(), target)?;
            }
        }
        Ok(())
    }
}
