//! Guidance from history for the request form: the portal's server function and
//! the REST API both call [`for_form`]. The rules are the core's
//! (`slipway_core::guidance`); this reads the history they need, within the team
//! boundary: a person only ever gets hints from the history of a team they may ask
//! for, exactly as submitting would allow.

use serde_json::{Value, json};
use slipway_core::catalog::{FieldKind, ResourceType};
use slipway_core::guidance::{self, Guidance};
use slipway_core::policy::{self, RequestFacts, Verb};
use slipway_core::state::RequestState;
use slipway_core::validate::FieldError;
use tracing::instrument;

use super::{Caller, ServiceError, ServiceResult};
use crate::state::AppState;
use crate::storage;

/// The hints for a new request of `type_name` for `team` (by default the caller's
/// only team). A type without an owning team has none.
#[instrument(skip_all, fields(type_name = %type_name))]
pub async fn for_form(
    state: &AppState,
    user: &Caller,
    type_name: &str,
    team: Option<&str>,
) -> ServiceResult<Guidance> {
    policy::may_request(user).map_err(ServiceError::refused)?;
    let ty = state.catalog.resource_type(type_name).ok_or_else(|| {
        ServiceError::NotFound(format!(
            "resource type {}",
            slipway_core::listing::quoted_briefly(type_name)
        ))
    })?;
    let Some(team) = team_of(ty, user, team)? else {
        return Ok(Guidance {
            type_name: ty.name.clone(),
            window_days: guidance::WINDOW_DAYS,
            ..Guidance::default()
        });
    };
    let mut conn = state.db.pool.acquire().await?;
    let history = storage::guidance::history(&mut conn, &ty.name, &team).await?;
    Ok(guidance::compute(ty, &history))
}

/// The team whose history answers: the one asked for, if the caller may ask for it
/// (the submit rule, so an admin may look at any team's), else the caller's only
/// team. `None` when the type names no owning team; a caller in several teams (or
/// none) who named none is asked to.
fn team_of(ty: &ResourceType, user: &Caller, asked: Option<&str>) -> ServiceResult<Option<String>> {
    let Some(owner) = &ty.owner_param else {
        return Ok(None);
    };
    let team = match asked.map(str::trim).filter(|t| !t.is_empty()) {
        Some(team) => team.to_string(),
        None => match user.teams.as_slice() {
            [only] => only.clone(),
            [] => return Err(team_required("name the team the request is for")),
            several => {
                return Err(team_required(&format!(
                    "you are in several teams ({}): name the one the request is for",
                    several.join(", ")
                )));
            }
        },
    };
    known_team(ty, &owner.param, &team)?;
    let params: Value = json!({ owner.param.as_str(): team });
    let facts = RequestFacts::new(ty, &params, RequestState::Draft, user.id);
    policy::may(user, Verb::Submit, &facts).map_err(|refusal| {
        ServiceError::from_refusal(refusal, &format!("guidance for team {team}"))
    })?;
    Ok(Some(team))
}

fn team_required(rule: &str) -> ServiceError {
    ServiceError::Invalid(vec![FieldError::new("team", rule)])
}

/// A team the type's owning-team field offers (its dictionary), or, for a free-text
/// field, a short printable name: anything else is a mistake worth saying, not a
/// query to run.
fn known_team(ty: &ResourceType, param: &str, team: &str) -> ServiceResult<()> {
    let field = ty.fields().into_iter().find(|f| f.name == param);
    let known = match field.map(|f| f.kind) {
        Some(FieldKind::Choice { options }) => options.iter().any(|o| o.value == team),
        _ => team.chars().count() <= 100 && !team.chars().any(char::is_control),
    };
    if known {
        Ok(())
    } else {
        Err(ServiceError::Invalid(vec![FieldError::new(
            "team",
            format!(
                "{} is not a team that {} offers",
                slipway_core::listing::quoted_briefly(team),
                ty.name
            ),
        )]))
    }
}
