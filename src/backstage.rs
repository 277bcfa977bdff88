//! Assets as Backstage catalog entities (`catalog-info.yaml`), so a Backstage
//! instance can list what Slipway made beside the services that use it.
//!
//! Each asset becomes one `Resource` entity in Backstage's default namespace:
//!
//! * `metadata.name` is `<type>.<name>` when both parts already obey Backstage's
//!   name rule (letters and digits, single `-` or `_` between them, at most 63
//!   characters in all). Otherwise the parts are cleaned and shortened and the
//!   asset's number is appended: `<type>.<name>.<id>`. A clean name holds exactly
//!   one `.`, a cleaned one exactly two, and the database keeps `(type, name)` and
//!   the id unique, so no two assets ever share an entity name.
//! * `spec.lifecycle` follows the environment: `production` for `prod`,
//!   `production` or `live`; `experimental` for `dev`, `development`, `sandbox`
//!   or `test`; any other environment under its own key (`staging`); `production`
//!   for an asset without an environment. An asset that is no longer active is
//!   `deprecated` (the feed leaves such assets out; a single download says so).
//! * `spec.owner` is `group:<team>`, the team that owns the asset, else the team
//!   offering its type, else `group:unknown`.
//! * `spec.dependsOn` names the assets it was recorded as requiring.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::ResourceType;
use crate::ids::AssetId;
use crate::views::{AssetSummary, RelationView};

pub const API_VERSION: &str = "backstage.io/v1alpha1";
pub const KIND: &str = "Resource";
/// Backstage's limit for names and tags.
pub const MAX_NAME: usize = 63;
/// The state of an asset that exists and serves.
pub const ACTIVE: &str = "active";
/// The relation kind an asset's requirements are recorded under.
pub const REQUIRES: &str = "requires";
/// Annotation keys, under Slipway's own prefix.
pub const ASSET_ID: &str = "slipway.dev/asset-id";
pub const REQUEST_ID: &str = "slipway.dev/request-id";
pub const TYPE: &str = "slipway.dev/type";
pub const COMMIT: &str = "slipway.dev/commit";
pub const VIEW_URL: &str = "backstage.io/view-url";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = BackstageEntity))]
#[serde(rename_all = "camelCase")]
pub struct Entity {
    pub api_version: String,
    pub kind: String,
    pub metadata: EntityMetadata,
    pub spec: EntitySpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntityMetadata {
    pub name: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Sorted by key, so the same asset always exports the same bytes.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<EntityLink>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntityLink {
    pub url: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EntitySpec {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub owner: String,
    pub lifecycle: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

/// What Slipway knows of one asset, as the export needs it.
#[derive(Debug, Clone, Copy)]
pub struct ExportedAsset<'a> {
    pub asset: &'a AssetSummary,
    pub commit_id: &'a str,
    /// The owning team recorded with the asset.
    pub team: Option<&'a str>,
    pub environment: Option<&'a str>,
    /// Its type's catalog entry; `None` once the type left the catalog.
    pub resource_type: Option<&'a ResourceType>,
    /// Its relations; only those of kind [`REQUIRES`] become dependencies.
    pub relations: &'a [RelationView],
}

#[derive(Debug, thiserror::Error)]
#[error("the Backstage entity could not be written as YAML: {0}")]
pub struct ExportError(String);

/// The entity of one asset; links point into Slipway at `slipway_url`
/// (`scheme://host[:port]`, a trailing `/` is ignored).
pub fn entity(exported: &ExportedAsset<'_>, slipway_url: &str) -> Entity {
    let asset = exported.asset;
    let base = slipway_url.trim_end_matches('/');
    let asset_url = format!("{base}/assets/{}", asset.id);
    let request_url = format!("{base}/requests/{}", asset.request_id);
    let annotations = BTreeMap::from([
        (ASSET_ID.to_string(), asset.id.to_string()),
        (REQUEST_ID.to_string(), asset.request_id.to_string()),
        (TYPE.to_string(), asset.type_name.clone()),
        (COMMIT.to_string(), exported.commit_id.to_string()),
        (VIEW_URL.to_string(), asset_url.clone()),
    ]);
    let links = vec![
        EntityLink {
            url: asset_url,
            title: format!("Asset #{} in Slipway", asset.id),
            icon: Some("dashboard".into()),
        },
        EntityLink {
            url: request_url,
            title: format!("Request #{} in Slipway", asset.request_id),
            icon: None,
        },
    ];
    Entity {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: EntityMetadata {
            name: entity_name(asset.id, &asset.type_name, &asset.name),
            title: asset.name.clone(),
            description: Some(description(exported)),
            annotations,
            tags: tags(&asset.type_name, exported.environment),
            links,
        },
        spec: spec(exported),
    }
}

fn spec(exported: &ExportedAsset<'_>) -> EntitySpec {
    let owner = exported
        .team
        .or(exported.resource_type.map(|t| t.owner.as_str()))
        .map(|team| shorten(&plain_words(team), MAX_NAME).to_string())
        .filter(|team| !team.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let depends_on = exported
        .relations
        .iter()
        // A retired asset is not in the feed: a dependency on it would name
        // nothing Backstage knows.
        .filter(|r| r.kind == REQUIRES && r.state != crate::action::RETIRED)
        .map(|r| {
            format!(
                "resource:{}",
                entity_name(r.asset_id, &r.type_name, &r.asset_name)
            )
        })
        .collect();
    EntitySpec {
        resource_type: exported.asset.type_name.clone(),
        owner: format!("group:{owner}"),
        lifecycle: lifecycle(&exported.asset.state, exported.environment),
        depends_on,
        system: None,
    }
}

fn description(exported: &ExportedAsset<'_>) -> String {
    let asset = exported.asset;
    let what = exported
        .resource_type
        .map_or(asset.type_name.as_str(), |t| t.title.as_str());
    let place = match (exported.team, exported.environment) {
        (Some(team), Some(env)) => format!(" of {team} in {env}"),
        (Some(team), None) => format!(" of {team}"),
        (None, Some(env)) => format!(" in {env}"),
        (None, None) => String::new(),
    };
    format!(
        "{what}{place}, made by Slipway request #{}.",
        asset.request_id
    )
}

/// The lifecycle Backstage shows (see the module's rule).
pub fn lifecycle(state: &str, environment: Option<&str>) -> String {
    if state != ACTIVE {
        return "deprecated".into();
    }
    let Some(environment) = environment else {
        return "production".into();
    };
    match environment.to_ascii_lowercase().as_str() {
        "prod" | "production" | "live" => "production".into(),
        "dev" | "development" | "sandbox" | "test" => "experimental".into(),
        _ => Some(tag(environment))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "production".into()),
    }
}

/// The asset's entity name (see the module's rule): unique per asset, valid in
/// Backstage whatever the asset is called.
pub fn entity_name(id: AssetId, type_name: &str, name: &str) -> String {
    let plain = format!("{type_name}.{name}");
    if is_plain_word(type_name) && is_plain_word(name) && plain.len() <= MAX_NAME {
        return plain;
    }
    // Ids are never negative; `unsigned_abs` keeps a `-` out of the name regardless.
    let suffix = format!(".{}", id.0.unsigned_abs());
    // Room for both parts and the `.` between them.
    let budget = MAX_NAME.saturating_sub(suffix.len() + 1);
    let ty = Some(plain_words(type_name))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "asset".into());
    let nm = Some(plain_words(name))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unnamed".into());
    let name_keep = nm
        .len()
        .min(budget.saturating_sub(ty.len()).max(budget / 2));
    let type_keep = ty.len().min(budget - name_keep);
    format!(
        "{}.{}{suffix}",
        shorten(&ty, type_keep),
        shorten(&nm, name_keep)
    )
}

/// Letters and digits with single `-` or `_` between them: Backstage's name rule
/// without the length, and without `.`, which [`entity_name`] keeps for itself.
fn is_plain_word(text: &str) -> bool {
    let bytes = text.as_bytes();
    let separator = |b: &u8| *b == b'-' || *b == b'_';
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || separator(b))
        && !bytes
            .windows(2)
            .any(|w| separator(&w[0]) && separator(&w[1]))
}

/// `text` made a plain word: ASCII letters and digits kept, `_` kept, anything else
/// a `-`, runs of separators made one, none at either end. May be empty.
fn plain_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '-'
        };
        let after_separator = out.ends_with(['-', '_']);
        if c.is_ascii_alphanumeric() || !(after_separator || out.is_empty()) {
            out.push(c);
        }
    }
    out.trim_end_matches(['-', '_']).to_string()
}

/// The first `keep` bytes of a plain word (ASCII only), with no separator left at
/// its end.
fn shorten(word: &str, keep: usize) -> &str {
    word.get(..keep.min(word.len()))
        .unwrap_or(word)
        .trim_end_matches(['-', '_'])
}

/// A Backstage tag: lowercase letters and digits with single `-` between them.
fn tag(text: &str) -> String {
    let word = plain_words(&text.to_ascii_lowercase()).replace('_', "-");
    shorten(&word, MAX_NAME).to_string()
}

fn tags(type_name: &str, environment: Option<&str>) -> Vec<String> {
    let mut tags = vec![tag(type_name)];
    tags.extend(environment.map(tag));
    tags.retain(|t| !t.is_empty());
    tags.dedup();
    tags
}

/// One entity as a YAML document (`catalog-info.yaml`).
pub fn to_yaml(entity: &Entity) -> Result<String, ExportError> {
    serde_norway::to_string(entity).map_err(|e| ExportError(e.to_string()))
}

/// One entity as a document of a multi-document stream: `---` and the document.
pub fn feed_document(entity: &Entity) -> Result<String, ExportError> {
    Ok(format!("---\n{}", to_yaml(entity)?))
}

#[cfg(test)]
mod tests;
