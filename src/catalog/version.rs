//! A type's catalog version: a digest of what renders its assets (its file and
//! the templates its outputs use), recorded with every change set. Two catalogs
//! that would render an asset alike need not share a version (a reworded title
//! changes it); a changed version is only the cue to render again and compare.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::ResourceType;

/// Hex digits kept: 48 bits tell a type's versions apart and fit on a page.
const VERSION_LENGTH: usize = 12;

/// The version of `ty`, read from its file as written and the templates it uses.
pub(super) fn type_version(
    file_content: &str,
    ty: &ResourceType,
    templates: &BTreeMap<String, String>,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"type\0");
    hasher.update(file_content.as_bytes());
    for name in used_templates(ty) {
        let content = templates.get(name).map_or("", String::as_str);
        hasher.update(b"\0template\0");
        hasher.update(name.as_bytes());
        hasher.update(b"\0");
        hasher.update(content.as_bytes());
    }
    let mut version = hex::encode(hasher.finalize());
    version.truncate(VERSION_LENGTH);
    version
}

/// The templates the type's outputs name (templates cannot include others: the
/// engine loads each alone).
fn used_templates(ty: &ResourceType) -> BTreeSet<&str> {
    ty.outputs.iter().map(|o| o.template.as_str()).collect()
}
