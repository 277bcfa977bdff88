//! A GitOps path belongs to one asset: two assets writing the same file would
//! each overwrite the other's (a reviewer's diff shows it as a new file), and
//! retiring either would delete both. A change is checked against the files
//! other assets deployed before it is stored.

use slipway_core::action;
use slipway_core::catalog::ResourceType;
use slipway_core::ids::{AssetId, RequestId};
use slipway_core::render::ChangeSet;
use slipway_core::state::RequestState;
use slipway_core::validate::FieldError;
use sqlx::AnyConnection;

use super::{ServiceError, ServiceResult};
use crate::state::AppState;
use crate::storage::assets::{self, HeldPath, UnrecordedAsset, path_key};
use crate::storage::path_claims::{self, ClaimedPath};
use crate::storage::requests;

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

/// Claims the files an approved change writes for its request, as a run of
/// its execution starts and in that transaction, and says why it must not go
/// on (`steps_ran`: steps of it ran before, so something may be written):
/// another request in flight deploys one of them (two requests for one file
/// whose executions overlap), or another asset deployed one since the change
/// was checked (approved long after its pre-check). On refusal the caller rolls
/// back, so the request claims nothing.
pub(crate) async fn claim_files(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    (request, acting_on): (RequestId, Option<AssetId>),
    change_set: &ChangeSet,
    steps_ran: bool,
) -> ServiceResult<Option<String>> {
    if !ty.commits_to_gitops() || change_set.files.is_empty() {
        return Ok(None);
    }
    // A run resumed after a crash, or a request in flight when claims began,
    // may have run steps before this check.
    let two = match steps_ran {
        false => "two assets cannot deploy one file; nothing was written",
        true => {
            "two assets cannot deploy one file; the steps that ran before stay as they did, and nothing more is run"
        }
    };
    let paths: Vec<&str> = change_set.files.iter().map(|f| f.path.as_str()).collect();
    if let Some(claim) = path_claims::claim(conn, request, &paths).await? {
        return Ok(Some(claimed_elsewhere(&claim, two)));
    }
    let held = assets::paths_held_by_others(conn, &paths, acting_on).await?;
    Ok(held.first().map(|holder| {
        format!(
            "the change writes {}, which asset #{} ({} {}) deployed after this request was \
             checked: {two}",
            holder.path, holder.asset_id, holder.type_name, holder.name
        )
    }))
}

fn claimed_elsewhere(claim: &ClaimedPath, two: &str) -> String {
    let (path, holder) = (&claim.path, claim.request_id);
    match claim.state {
        Some(state @ (RequestState::Failed | RequestState::Manual)) => format!(
            "the change writes {path}, which request #{holder} ({}) may have deployed: {two}; \
             the platform team retries, resolves or abandons that request first",
            state.label().to_lowercase()
        ),
        Some(state) => format!(
            "the change writes {path}, which request #{holder} ({}) is deploying: {two}",
            state.label().to_lowercase()
        ),
        None => format!("the change writes {path}, which request #{holder} is deploying: {two}"),
    }
}

/// Assets recorded per batch while their paths are recovered.
const RECOVERED_PER_TRANSACTION: i64 = 200;

/// Records the deployed paths of active assets recorded before they were kept
/// (before 2026-12-15): those held no file, so a request could still write over
/// theirs. An asset's files are those of its creation's change set, carried
/// through every later request that rendered it anew (an upgrade, a resize), in
/// the order they completed, as they were recorded since. Candidates are read
/// on a reader; only the filling takes the writer. An asset whose type left the
/// catalog, or whose history cannot be read, stays as it was (logged). Run once
/// at start, beside the workers (an action completing on such an asset first
/// reads the same history); returns how many were recorded.
pub async fn recover_unrecorded(state: &AppState) -> ServiceResult<usize> {
    let mut after = AssetId(0);
    let mut recorded = 0;
    loop {
        let mut conn = state.db.pool.acquire().await?;
        let batch =
            assets::without_deployed_paths(&mut conn, after, RECOVERED_PER_TRANSACTION).await?;
        let Some(last) = batch.last() else {
            return Ok(recorded);
        };
        after = last.id;
        let mut found = Vec::with_capacity(batch.len());
        for asset in &batch {
            let Some(ty) = state.catalog.catalog.types.get(&asset.type_name) else {
                tracing::info!(asset_id = %asset.id, type_name = %asset.type_name, "an older asset of a type the catalog no longer has: its files stay unrecorded");
                continue;
            };
            match rendered_paths(&mut conn, ty, asset).await {
                Ok(Some(paths)) => found.push((asset.id, paths, ty.commits_to_gitops())),
                Ok(None) => {
                    tracing::info!(asset_id = %asset.id, "an older asset whose creation has no approved change set: its files stay unrecorded");
                }
                Err(error) => {
                    tracing::warn!(asset_id = %asset.id, %error, "could not read the files an older asset deployed");
                }
            }
        }
        drop(conn);
        let mut tx = state.db.write().await?;
        for (id, paths, holds) in &found {
            if assets::fill_deployed_paths(&mut tx, *id, paths, *holds).await? {
                recorded += 1;
            }
        }
        tx.commit().await?;
    }
}

/// The paths an asset's files were last written at: as recorded, or for an
/// asset recorded before they were kept (and not recovered yet: the recovery
/// at start runs beside the workers) from its history. `None` when neither is
/// known.
pub(crate) async fn last_written(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    asset: &crate::storage::assets::AssetRow,
) -> ServiceResult<Option<Vec<String>>> {
    if let Some(paths) = assets::deployed_paths(conn, asset.summary.id).await? {
        return Ok(Some(paths));
    }
    let unrecorded = UnrecordedAsset {
        id: asset.summary.id,
        type_name: ty.name.clone(),
        created_by: asset.summary.request_id,
    };
    rendered_paths(conn, ty, &unrecorded).await
}

/// The asset's files after its creation and each later rendering; `None`
/// when the creation's approved change set is gone.
async fn rendered_paths(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    asset: &UnrecordedAsset,
) -> ServiceResult<Option<Vec<String>>> {
    let Some(created) = requests::approved_change_set(conn, asset.created_by).await? else {
        return Ok(None);
    };
    let mut paths: Vec<String> = created.files.into_iter().map(|f| f.path).collect();
    let rendering: Vec<&str> = ty
        .actions
        .iter()
        .filter(|a| action::renders_asset(ty, a))
        .map(|a| a.name.as_str())
        .collect();
    for request in requests::renderings_on_asset(conn, asset.id, &rendering).await? {
        if let Some(change_set) = requests::approved_change_set(conn, request).await? {
            paths = action::deployed_after(&paths, &change_set);
        }
    }
    Ok(Some(paths))
}
