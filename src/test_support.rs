//! The shipped catalog, compiled in so tests need no file system.

use crate::catalog::{Catalog, SourceFile};

macro_rules! shipped {
    ($($path:literal),* $(,)?) => {
        vec![$(SourceFile {
            path: $path.to_string(),
            content: include_str!(concat!("../catalog/", $path)).to_string(),
        }),*]
    };
}

pub(crate) fn shipped_files() -> Vec<SourceFile> {
    shipped![
        "README.md",
        "dictionaries/teams.yaml",
        "dictionaries/environments.yaml",
        "types/k8s-namespace.yaml",
        "types/postgres-database.yaml",
        "types/shared-database.yaml",
        "templates/k8s-namespace/namespace.yaml.j2",
        "templates/k8s-namespace/resourcequota.yaml.j2",
        "templates/k8s-namespace/rolebinding.yaml.j2",
        "templates/postgres-database/cluster.yaml.j2",
        "templates/postgres-database/backup.yaml.j2",
        "templates/postgres-database/restore.yaml.j2",
        "templates/shared-database/create.sql.j2",
        "templates/shared-database/drop.sql.j2",
    ]
}

pub(crate) fn shipped_catalog() -> Catalog {
    match Catalog::from_files(&shipped_files()) {
        Ok(catalog) => catalog,
        Err(errors) => panic!("the shipped catalog does not load:\n{errors}"),
    }
}

/// Replaces one file's content (or adds the file) to build a broken catalog.
pub(crate) fn with_file(path: &str, content: &str) -> Vec<SourceFile> {
    let mut files: Vec<SourceFile> = shipped_files()
        .into_iter()
        .filter(|f| f.path != path)
        .collect();
    files.push(SourceFile {
        path: path.to_string(),
        content: content.to_string(),
    });
    files
}

pub(crate) fn shipped_text(path: &str) -> String {
    shipped_files()
        .into_iter()
        .find(|f| f.path == path)
        .map(|f| f.content)
        .unwrap_or_default()
}
