//! What every list page shares: its query read from the URL (so a link reproduces
//! the view), the filter form (a plain GET form, labelled, usable from the
//! keyboard and without script), and "Newer" / "Older" links.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use slipway_core::listing::{Cursor, ListQuery, Param, SizeRule};
use slipway_core::state::RequestState;
use slipway_core::views::{Choice, FilterChoices};

use crate::api::list_filter_choices;
use crate::error::AppError;

/// The query parameters a list page reads from its URL; any other is ignored.
pub const PAGE_PARAMS: &[Param] = &[
    Param::Type,
    Param::Team,
    Param::Environment,
    Param::State,
    Param::CreatedFrom,
    Param::CreatedTo,
    Param::Text("q"),
    Param::Before,
    Param::After,
    Param::Limit,
];

/// Which filters a page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterSet {
    /// The states a person may choose from; empty: no state filter.
    pub states: &'static [RequestState],
    /// A search box (assets).
    pub search: bool,
}

/// The page's query, from its URL: a bad value becomes an error to show, an
/// unknown parameter is ignored, a page size out of range is read as the nearest.
pub fn url_query(
    filters: FilterSet,
) -> impl Fn() -> Result<ListQuery, AppError> + Clone + Send + Sync + 'static {
    let accepted: Vec<Param> = PAGE_PARAMS
        .iter()
        .copied()
        .filter(|p| match p {
            Param::State => !filters.states.is_empty(),
            Param::Text(_) => filters.search,
            _ => true,
        })
        .collect();
    url_query_of(accepted)
}

/// The query of a page that reads exactly the `accepted` parameters.
pub fn url_query_of(
    accepted: Vec<Param>,
) -> impl Fn() -> Result<ListQuery, AppError> + Clone + Send + Sync + 'static {
    let map = use_query_map();
    move || {
        map.with(|map| {
            let pairs = map.into_iter().filter_map(|(key, value)| {
                let key: &str = key;
                accepted
                    .iter()
                    .any(|p| p.name() == key)
                    .then_some((key, value))
            });
            ListQuery::parse(pairs, &accepted, SizeRule::Clamp).map_err(AppError::Invalid)
        })
    }
}

/// Loads a list for the query read from the URL. A query that does not read is
/// named (answered 422, as the API answers it) only to someone the list is
/// for: the list's own gate is asked first, by loading its first page, so a
/// signed-out visitor is sent to sign in and someone the list is not for is
/// told so (403), as on the API, before anything about their query.
pub async fn load_list<T, F>(
    query: Result<ListQuery, AppError>,
    load: impl FnOnce(ListQuery) -> F,
) -> Result<T, AppError>
where
    F: Future<Output = Result<T, AppError>>,
{
    match query {
        Ok(query) => load(query).await,
        Err(refusal) => {
            load(ListQuery::default()).await?;
            Err(crate::components::unreadable_query(refusal))
        }
    }
}

/// The filter form: a GET to this page, so the filters land in the URL.
#[component]
pub fn ListFilters(
    /// Prefix of the controls' ids, unique on the page.
    id: &'static str,
    filters: FilterSet,
    /// The query the page shows (its values fill the controls).
    query: ListQuery,
) -> impl IntoView {
    let choices = Resource::new(|| (), |_| list_filter_choices());
    let f = query.filter.clone();
    let field_id = move |name: &str| format!("{id}-{name}");
    let states = filters.states;
    let state_now = f.state;
    let search = filters.search.then(|| {
        let value = f.text.clone().unwrap_or_default();
        view! {
            <div class="field">
                <label for=field_id("q")>"Search"</label>
                <input id=field_id("q") type="search" name="q" value=value aria-describedby=field_id("q-help") />
                <span class="help" id=field_id("q-help")>"Words that begin the name, team or a searchable parameter"</span>
            </div>
        }
    });
    let from = f.created_from.map(|d| d.to_string()).unwrap_or_default();
    let to = f.created_to.map(|d| d.to_string()).unwrap_or_default();
    let (type_now, team_now, env_now) = (
        f.type_name.clone().unwrap_or_default(),
        f.team.clone().unwrap_or_default(),
        f.environment.clone().unwrap_or_default(),
    );
    view! {
        <form method="get" action="" class="filters" role="search" aria-label="Filters">
            {search}
            <Suspense fallback=|| ()>
                {move || {
                    let (type_now, team_now, env_now) = (type_now.clone(), team_now.clone(), env_now.clone());
                    Suspend::new(async move {
                        let choices = choices.await.unwrap_or_default();
                        let FilterChoices { types, teams, environments } = choices;
                        view! {
                            <ChoiceSelect id=field_id("type") name="type" label="Type" any="All types" choices=types selected=type_now />
                            <ChoiceSelect id=field_id("team") name="team" label="Team" any="All teams" choices=teams selected=team_now />
                            <ChoiceSelect id=field_id("environment") name="environment" label="Environment" any="All environments" choices=environments selected=env_now />
                        }
                    })
                }}
            </Suspense>
            {(!states.is_empty()).then(|| view! {
                <div class="field">
                    <label for=field_id("state")>"State"</label>
                    <select id=field_id("state") name="state">
                        <option value="">"Any state"</option>
                        {states.iter().map(|s| view! {
                            <option value=s.as_str() selected={state_now == Some(*s)}>{s.label()}</option>
                        }).collect_view()}
                    </select>
                </div>
            })}
            <div class="field">
                <label for=field_id("from")>"Created from"</label>
                <input id=field_id("from") type="date" name="created_from" value=from />
            </div>
            <div class="field">
                <label for=field_id("to")>"Created to"</label>
                <input id=field_id("to") type="date" name="created_to" value=to />
            </div>
            <button type="submit">"Filter"</button>
            {(!query.filter.is_empty()).then(|| view! { <a class="clear" href="?">"Clear filters"</a> })}
        </form>
    }
}

#[component]
fn ChoiceSelect(
    id: String,
    name: &'static str,
    label: &'static str,
    any: &'static str,
    choices: Vec<Choice>,
    selected: String,
) -> impl IntoView {
    // A value from a link that the catalog no longer offers still shows.
    let unknown = (!selected.is_empty() && !choices.iter().any(|c| c.key == selected))
        .then(|| selected.clone());
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <select id=id name=name>
                <option value="">{any}</option>
                {choices.into_iter().map(|c| {
                    let is = c.key == selected;
                    view! { <option value=c.key.clone() selected=is>{c.title.clone()}</option> }
                }).collect_view()}
                {unknown.map(|u| view! { <option value=u.clone() selected=true>{u.clone()}</option> })}
            </select>
        </div>
    }
}

/// "Newer" and "Older" links for a page, keeping its filters.
#[component]
pub fn Pager(
    query: ListQuery,
    newer: Option<i64>,
    older: Option<i64>,
    /// What the rows are called, e.g. "requests".
    what: &'static str,
) -> impl IntoView {
    if newer.is_none() && older.is_none() {
        return ().into_any();
    }
    let link = move |cursor: Cursor| format!("?{}", query.href("q", cursor));
    view! {
        <nav class="pager" aria-label=format!("Pages of {what}")>
            {match newer {
                Some(id) => view! { <a rel="prev" href=link(Cursor::After(id))>"← Newer"</a> }.into_any(),
                None => view! { <span class="muted" aria-disabled="true">"← Newer"</span> }.into_any(),
            }}
            {match older {
                Some(id) => view! { <a rel="next" href=link(Cursor::Before(id))>"Older →"</a> }.into_any(),
                None => view! { <span class="muted" aria-disabled="true">"Older →"</span> }.into_any(),
            }}
        </nav>
    }
    .into_any()
}

/// What an empty page says: nothing at all, nothing matching the filters, or
/// nothing on this side of the cursor.
pub fn empty_text(query: &ListQuery, nothing: &'static str) -> String {
    if query.page.cursor != Cursor::Newest {
        "No more entries this way.".to_string()
    } else if !query.filter.is_empty() {
        "Nothing matches these filters.".to_string()
    } else {
        nothing.to_string()
    }
}
