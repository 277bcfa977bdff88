use crate::services::Caller;
use slipway_core::catalog::{Dictionary, ResourceType};
use slipway_core::policy;
use slipway_core::views::{Choice, FilterChoices, Menu, TypeSummary, UserView};

use super::{ServiceError, ServiceResult, type_facts};
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
            unavailable: super::requests::unavailable_here(state, ty),
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

/// Which lists the portal's menu offers this person, given the roles this catalog's
/// reviews ask for.
pub fn menu(state: &AppState, user: &UserView) -> Menu {
    policy::menu(user, type_facts(state))
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

/// What the lists' filters offer: every type, the teams of the dictionaries the
/// types' owner parameters draw from, and the environments their environment
/// parameters allow (with the titles the schemas give them).
pub fn filter_choices(state: &AppState, _user: &Caller) -> FilterChoices {
    let catalog = &state.catalog.catalog;
    let mut choices = FilterChoices::default();
    let add = |list: &mut Vec<Choice>, key: &str, title: &str| {
        if !list.iter().any(|c| c.key == key) {
            list.push(Choice {
                key: key.to_string(),
                title: title.to_string(),
            });
        }
    };
    for ty in catalog.types.values() {
        add(&mut choices.types, &ty.name, &ty.title);
        if let Some(dictionary) = ty
            .owner_param
            .as_ref()
            .and_then(|o| catalog.dictionaries.get(&o.dictionary))
        {
            for term in &dictionary.terms {
                add(&mut choices.teams, &term.key, &term.title);
            }
        }
        if let Some(field) = ty
            .environment_param
            .as_ref()
            .and_then(|p| ty.parameters.pointer(&format!("/properties/{p}")))
        {
            let keys = field.get("enum").and_then(|e| e.as_array());
            let titles = field.get("x-enum-titles").and_then(|e| e.as_array());
            for (i, key) in keys.into_iter().flatten().enumerate() {
                let Some(key) = key.as_str() else { continue };
                let title = titles
                    .and_then(|t| t.get(i))
                    .and_then(|t| t.as_str())
                    .unwrap_or(key);
                add(&mut choices.environments, key, title);
            }
        }
    }
    choices
}
