//! What a new catalog would leave stranded in a Slipway database: types and
//! actions gone while assets or open requests are of them, and parameters a
//! type now requires with no default that recorded assets lack.
//! `slipway catalog check --against <DATABASE_URL>` says it before the catalog
//! is deployed, rather than each upgrade sweep warning per asset after.

use std::collections::BTreeMap;

use slipway_core::action::{lacked_required, with_type_defaults};
use slipway_core::catalog::ResourceType;
use slipway_core::validate::ParamValidator;
use sqlx::AnyConnection;

use crate::catalog_source::LoadedCatalog;
use crate::storage::StorageError;
use crate::storage::stranding;

/// Assets read per statement.
const BATCH: i64 = 500;
/// Assets named in a finding beside its count.
const NAMED: usize = 3;
/// How the open requests of a type or action gone from the catalog end.
const WAYS_OUT: &str = "an admin rejects those in review, the requester or an admin cancels \
    those not yet run, and the platform team closes failed ones without an asset";

/// What the database holds that `catalog` would strand, one sentence each;
/// empty when nothing is.
pub async fn stranded(
    conn: &mut AnyConnection,
    catalog: &LoadedCatalog,
) -> Result<Vec<String>, StorageError> {
    // Sorted here, not in SQL: the engines' collations order names differently.
    let mut assets = stranding::active_assets_by_type(conn).await?;
    let mut requests = stranding::open_requests_by_type(conn).await?;
    assets.sort();
    requests.sort();
    let mut found = Vec::new();
    let mut gone: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (type_name, count) in &assets {
        if catalog.resource_type(type_name).is_none() {
            gone.entry(type_name).or_default().0 += count;
        }
    }
    for (type_name, action, count) in &requests {
        match catalog.resource_type(type_name) {
            None => gone.entry(type_name).or_default().1 += count,
            Some(ty) => {
                if let Some(action) = action
                    && ty.action(action).is_none()
                {
                    found.push(format!(
                        "the action {action} of {type_name} is not in this catalog, but {count} \
                         open request(s) ask for it: they can be neither approved nor run \
                         ({WAYS_OUT})"
                    ));
                }
            }
        }
    }
    for (type_name, (assets, requests)) in gone {
        found.push(format!(
            "the type {type_name} is not in this catalog, but {assets} active asset(s) and \
             {requests} open request(s) are of it: its assets take no action any more (not \
             even a decommission) and are no longer upgraded, and its requests can be neither \
             approved nor run ({WAYS_OUT})"
        ));
    }
    for (type_name, _) in &assets {
        if let (Some(ty), Some(validator)) = (
            catalog.resource_type(type_name),
            catalog.validator(type_name),
        ) {
            found.extend(lacking(conn, ty, validator).await?);
        }
    }
    Ok(found)
}

/// The parameters `ty` now requires with no default that its active assets lack.
async fn lacking(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    validator: &ParamValidator,
) -> Result<Vec<String>, StorageError> {
    let mut by_param: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
    let mut after = 0;
    loop {
        let batch = stranding::active_assets_of(conn, &ty.name, after, BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        for asset in &batch {
            let params = with_type_defaults(ty, &asset.params);
            // A secret the asset was given is recorded as a placeholder: one
            // missing is one the type asks for since.
            for param in lacked_required(validator, &params) {
                let (count, named) = by_param.entry(param).or_default();
                *count += 1;
                if named.len() < NAMED {
                    named.push(format!("#{} {}", asset.id, asset.name));
                }
            }
        }
    }
    Ok(by_param
        .into_iter()
        .map(|(param, (count, named))| {
            let more = if count > named.len() { ", …" } else { "" };
            let fix = if ty.is_secret(&param) {
                format!("make {param} optional (a secret takes no default)")
            } else {
                format!("give {param} a default")
            };
            format!(
                "{count} active asset(s) of {} ({}{more}) have no {param}, which the type now \
                 requires with no default: their template upgrades cannot render it and their \
                 actions cannot ask for it; {fix}",
                ty.name,
                named.join(", ")
            )
        })
        .collect())
}
