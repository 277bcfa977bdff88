use crate::services::Caller;
use slipway_core::catalog::{Dictionary, ExecutionLimits, ResourceType, ReviewPolicy, TypeAction};
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
    let ty = state.catalog.resource_type(name).ok_or_else(|| {
        ServiceError::NotFound(format!(
            "resource type {}",
            slipway_core::listing::quoted_briefly(name)
        ))
    })?;
    Ok(match policy::requestable_teams(user) {
        Some(teams) => ty.for_teams(teams),
        None => ty.clone(),
    })
}

/// The type as this person's form (and the API's type detail) shows it: see
/// [`form_view`]. The one way a type leaves the server for a requester.
pub fn form_type(state: &AppState, user: &Caller, name: &str) -> ServiceResult<ResourceType> {
    resource_type(state, user, name).map(form_view)
}

/// A type with only what a form shows and the browser's checks read: the fields
/// (the parameters' schema), the naming rule, the owner and environment
/// parameters, the generated secrets a prefilled link may not set, and each
/// action's own form. Nothing of how the platform carries a request out: no
/// steps (programs, pipeline URLs and headers), checks (URLs, servers, queries),
/// monitoring, outputs, quota, requirements, hints, review policy or limits. A
/// form is an island, so whatever the type holds is written into its page.
///
/// Every field is named: a field added to the type stays out until it is
/// decided here that a form needs it.
pub fn form_view(ty: ResourceType) -> ResourceType {
    let ResourceType {
        name,
        title,
        description,
        owner,
        owner_param,
        environment_param,
        search: _,
        parameters,
        naming,
        quota: _,
        requires: _,
        review: _,
        risk_hints: _,
        outputs: _,
        execute: _,
        limits: _,
        generated_secrets,
        checks: _,
        monitoring: _,
        removes: _,
        actions,
        version,
    } = ty;
    ResourceType {
        name,
        title,
        description,
        owner,
        owner_param,
        environment_param,
        search: Vec::new(),
        parameters,
        naming,
        quota: Vec::new(),
        requires: Vec::new(),
        review: ReviewPolicy {
            approver_role: String::new(),
            required: 0,
            auto_approve_when: None,
        },
        risk_hints: Vec::new(),
        outputs: Vec::new(),
        execute: Vec::new(),
        limits: ExecutionLimits::default(),
        generated_secrets,
        checks: Vec::new(),
        monitoring: Vec::new(),
        removes: Vec::new(),
        actions: actions.into_iter().map(action_form_view).collect(),
        version,
    }
}

/// An action as a form of its type shows it: its name, words and own parameters.
fn action_form_view(action: TypeAction) -> TypeAction {
    let TypeAction {
        name,
        title,
        description,
        retires,
        parameters,
        request_type,
        rules: _,
        unique_by: _,
        refers_to: _,
    } = action;
    TypeAction {
        name,
        title,
        description,
        retires,
        parameters,
        request_type: form_view(request_type),
        rules: Vec::new(),
        unique_by: Vec::new(),
        refers_to: None,
    }
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
