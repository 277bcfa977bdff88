use crate::services::Caller;
use slipway_core::catalog::{Dictionary, ResourceType};
use slipway_core::policy;
use slipway_core::views::TypeSummary;

use super::{ServiceError, ServiceResult};
use crate::state::AppState;

pub fn list_types(state: &AppState, _user: &Caller) -> Vec<TypeSummary> {
    state
        .catalog
        .catalog
        .types
        .values()
        .map(|ty| TypeSummary {
            name: ty.name.clone(),
            title: ty.title.clone(),
            description: ty.description.clone(),
            owner: ty.owner.clone(),
            auto_approve_when: ty.review.auto_approve_when.clone(),
        })
        .collect()
}

/// The type as this person's form shows it: the owning-team field offers only the
/// teams they may ask for.
pub fn resource_type(state: &AppState, user: &Caller, name: &str) -> ServiceResult<ResourceType> {
    let ty = state
        .catalog
        .resource_type(name)
        .ok_or_else(|| ServiceError::NotFound(format!("resource type {name:?}")))?;
    Ok(match policy::requestable_teams(user) {
        Some(teams) => ty.for_teams(teams),
        None => ty.clone(),
    })
}

pub fn dictionaries(state: &AppState, _user: &Caller) -> Vec<Dictionary> {
    state
        .catalog
        .catalog
        .dictionaries
        .values()
        .cloned()
        .collect()
}
