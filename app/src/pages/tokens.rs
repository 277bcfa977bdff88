//! Personal API tokens: create one (its secret is shown once), see and revoke them.

use leptos::prelude::*;
use leptos_meta::Title;
use slipway_core::views::TokenScope;

use crate::api::{ListedToken, RevokeToken, TokensPageData, tokens_page};
use crate::components::{Loading, error_title, error_view, refusal_notice};

#[component]
pub fn TokensPage() -> impl IntoView {
    let revoke = ServerAction::<RevokeToken>::new();
    let data = Resource::new(move || revoke.version().get(), |_| tokens_page());
    // A refused revocation comes back as a new page: its notice is the first
    // thing after the heading, and the focus starts on it.
    let refusal = move || revoke.value().get().and_then(Result::err);
    view! {
        <Title text=move || error_title("API tokens", refusal().is_some()) />
        <h1>"API tokens"</h1>
        {move || refusal().map(|e| refusal_notice(&e, "tokens-error"))}
        <p class="muted">
            "A token lets a pipeline or a script use the "
            <a href="/api-docs">"Slipway API"</a>
            " as you, within the scopes you give it. Send it as "
            <code>"Authorization: Bearer …"</code>
            ". Only a hash is stored: the token is shown once, when it is made. "
            "You may hold 100 live tokens; those revoked or expired more than 30 days ago are no longer listed."
        </p>
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(TokensPageData { tokens }) => view! { <TokenTable tokens revoke /> }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
        <h2>"New token"</h2>
        // A plain form: the answer is a page of its own that shows the secret once,
        // so the secret never waits in the session to be shown here.
        <form method="post" action="/account/tokens/new" class="token-form">
            <div class="field">
                <label for="token-name">"What it is for"</label>
                <input id="token-name" name="name" type="text" required=true maxlength="100" placeholder="CI pipeline of payments-api" />
            </div>
            <fieldset class="field">
                <legend>"Scopes"</legend>
                {TokenScope::ALL.into_iter().map(|scope| {
                    let id = format!("scope-{}", scope.as_str());
                    let label_for = id.clone();
                    view! {
                        <label class="check" for=label_for>
                            <input id=id type="checkbox" name=format!("scope_{}", scope.as_str()) checked=scope == TokenScope::Read />
                            " " {scope.as_str()} " — " {scope_help(scope)}
                        </label>
                    }
                }).collect_view()}
            </fieldset>
            <div class="field">
                <label for="token-days">"Expires after"</label>
                <select id="token-days" name="expires_in_days">
                    <option value="7">"7 days"</option>
                    <option value="30">"30 days"</option>
                    <option value="90" selected=true>"90 days"</option>
                    <option value="366">"a year"</option>
                </select>
            </div>
            <button type="submit" class="primary">"Create token"</button>
        </form>
    }
}

fn scope_help(scope: TokenScope) -> &'static str {
    match scope {
        TokenScope::Read => "read requests, assets, the catalog (and the audit log with the role)",
        TokenScope::Request => "check, submit, revise and cancel requests",
        TokenScope::Review => "approve, reject or request changes",
        TokenScope::Admin => "manual handling and managing tokens",
    }
}

#[component]
fn TokenTable(tokens: Vec<ListedToken>, revoke: ServerAction<RevokeToken>) -> impl IntoView {
    if tokens.is_empty() {
        return view! { <p class="empty">"You have no tokens."</p> }.into_any();
    }
    view! {
        <table class="list">
            <caption class="sr-only">"Your API tokens"</caption>
            <thead><tr>
                <th scope="col">"Name"</th><th scope="col">"Token"</th><th scope="col">"Scopes"</th>
                <th scope="col">"Created"</th><th scope="col">"Expires"</th><th scope="col">"Last used"</th><th scope="col">"Status"</th>
            </tr></thead>
            <tbody>
                {tokens.into_iter().map(|ListedToken { token: t, expired }| {
                    let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
                    view! {
                        <tr>
                            <td>{t.name.clone()}</td>
                            <td><code>{format!("{}…", t.prefix)}</code></td>
                            <td>{scopes.join(", ")}</td>
                            <td>{t.created_at.clone()}</td>
                            <td>{t.expires_at.clone()}</td>
                            <td>{t.last_used_at.clone().unwrap_or_else(|| "never".into())}</td>
                            <td>{if t.revoked {
                                view! { <span class="badge">"revoked"</span> }.into_any()
                            } else if expired {
                                view! { <span class="badge">"expired"</span> }.into_any()
                            } else {
                                view! {
                                    <ActionForm action=revoke>
                                        <input type="hidden" name="id" value=t.id />
                                        <button type="submit" class="danger" aria-label=format!("Revoke {}", t.name)>"Revoke"</button>
                                    </ActionForm>
                                }.into_any()
                            }}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
