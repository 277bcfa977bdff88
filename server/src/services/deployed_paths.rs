//! A GitOps path belongs to one asset: two assets writing the same file would
//! each overwrite the other's (a reviewer's diff shows it as a new file), and
//! retiring either would delete both. A change is checked against the files
//! other assets deployed before it is stored.

use slipway_core::catalog::ResourceType;
use slipway_core::ids::AssetId;
use slipway_core::render::ChangeSet;
use slipway_core::validate::FieldError;
use sqlx::AnyConnection;

use super::{ServiceError, ServiceResult};
use crate::storage::assets::{self, HeldPath, path_key};

/// Refuses a change that writes a file another active asset deployed, and
/// takes out of its removals the files another asset holds (a retirement or
/// an upgrade removes only what is its own). `acting_on` is the asset a day-2
/// action changes: its own files are its to write and remove. A type that
/// commits nothing to the repository (`ty`: its steps run a pipeline or a
/// command on the files) deploys no path.
pub(crate) async fn keep_to_own_paths(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    acting_on: Option<AssetId>,
    change_set: &mut ChangeSet,
) -> ServiceResult<()> {
    if !ty.commits_to_gitops() {
        return Ok(());
    }
    let paths: Vec<&str> = change_set
        .files
        .iter()
        .map(|f| f.path.as_str())
        .chain(change_set.removed.iter().map(String::as_str))
        .collect();
    if paths.is_empty() {
        return Ok(());
    }
    let held = assets::paths_held_by_others(conn, &paths, acting_on).await?;
    let held_by = |path: &str| -> Option<&HeldPath> {
        let key = path_key(path);
        held.iter().find(|h| path_key(&h.path) == key)
    };
    if let Some(holder) = change_set.files.iter().find_map(|f| held_by(&f.path)) {
        return Err(ServiceError::Invalid(vec![FieldError::new(
            "",
            written_over(holder),
        )]));
    }
    // Removals compare exact paths: on the repository `Foo.yaml` and
    // `foo.yaml` are two files, and a retirement must remove its own.
    change_set
        .removed
        .retain(|path| !held.iter().any(|h| &h.path == path));
    Ok(())
}

fn written_over(holder: &HeldPath) -> String {
    format!(
        "the change would write {}, a file of asset #{} ({} {}): two assets cannot \
         deploy one file; choose other values, or retire that asset first",
        holder.path, holder.asset_id, holder.type_name, holder.name
    )
}

/// Why an approved change must not start: a file it writes was deployed by
/// another asset since it was checked (two requests in flight for one file,
/// or one approved long after its pre-check). Checked as the execution starts,
/// before anything is written.
pub(crate) async fn written_over_since(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    acting_on: Option<AssetId>,
    change_set: &ChangeSet,
) -> ServiceResult<Option<String>> {
    if !ty.commits_to_gitops() || change_set.files.is_empty() {
        return Ok(None);
    }
    let paths: Vec<&str> = change_set.files.iter().map(|f| f.path.as_str()).collect();
    let held = assets::paths_held_by_others(conn, &paths, acting_on).await?;
    Ok(held.first().map(|holder| {
        format!(
            "the change writes {}, which asset #{} ({} {}) deployed after this request was \
             checked: two assets cannot deploy one file; nothing was written",
            holder.path, holder.asset_id, holder.type_name, holder.name
        )
    }))
}
