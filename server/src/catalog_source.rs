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

fn collect(root: &Path, dir: &Path, files: &mut Vec<SourceFile>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            let relative: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push(SourceFile {
                path: relative.join("/"),
                content: std::fs::read_to_string(&path)?,
            });
        }
    }
    Ok(())
}

pub fn load(dir: &Path) -> Result<LoadedCatalog, CatalogLoadError> {
    let shown = dir.display().to_string();
    let mut files = Vec::new();
    collect(dir, dir, &mut files).map_err(|e| CatalogLoadError::Read {
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
