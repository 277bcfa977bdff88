use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::{Login, sign_in_options};
use crate::components::{Loading, error_notice, error_title, refusal_notice};

/// The messages a failed single sign-on comes back with; the URL carries only the
/// code, so a link cannot put its own words on this page.
fn sign_on_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "provider_unavailable" => {
            "The sign-in provider cannot be reached right now. Try again in a minute; if it persists, tell the platform team."
        }
        "provider_refused" => "The sign-in provider did not sign you in. Try again.",
        "sign_in_expired" => {
            "That sign-in had expired or was started in another browser. Start again."
        }
        "account_disabled" => {
            "The sign-in provider knows you, but this Slipway account is disabled. Ask the platform team."
        }
        "too_many" => {
            "Too many sign-ins from this address failed lately. Wait a few minutes and try again."
        }
        "sign_in_failed" => {
            "Single sign-on did not succeed: the provider's answer could not be verified. Try again; if it persists, tell the platform team."
        }
        _ => return None,
    })
}

/// Query-string escaping for the `next` value handed on to single sign-on.
fn encode_query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A plain form: it signs in without any script, and the server sends the browser on
/// to where it was going. A refused sign-in comes back here with the error in the URL.
#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let options = Resource::new(|| (), |_| sign_in_options());
    let (next, sign_on_error) = use_query_map().with_untracked(|q| {
        (
            q.get("next").unwrap_or_default(),
            q.get("error")
                .and_then(|code| sign_on_message(&code))
                .map(str::to_string),
        )
    });
    // A refused sign-in comes back as a new page: the refusal is said first and
    // takes the focus (a screen reader reads it on arrival), the fields point at
    // it, and the page's title starts with "Error".
    let error = login.value().get_untracked().and_then(Result::err);
    let refused = error.is_some() || sign_on_error.is_some();
    let described_by = error.is_some().then_some("login-error");
    let sso_href = if next.is_empty() {
        "/auth/oidc/start".to_string()
    } else {
        format!("/auth/oidc/start?next={}", encode_query_value(&next))
    };
    view! {
        <Title text=error_title("Sign in", refused) />
        <div class="login">
            <h1>"Sign in to Slipway"</h1>
            <p class="muted">"Request platform resources, review changes, and see what exists."</p>
            {sign_on_error.map(|e| {
                // A refused sign-in's own notice takes the focus when there is one.
                let focus = error.is_none();
                view! { <p class="notice error" role="alert" id="sign-on-error" tabindex="-1" autofocus=focus>{e}</p> }
            })}
            <Suspense fallback=|| view! { <Loading /> }>
                {move || {
                    let next = next.clone();
                    let sso_href = sso_href.clone();
                    let error = error.clone();
                    Suspend::new(async move {
                        match options.await {
                            Ok(options) => view! {
                                {options.provider.map(|name| view! {
                                    <p><a class="button primary" href=sso_href.clone()>{format!("Sign in with {name}")}</a></p>
                                })}
                                {options.local_accounts.then(|| view! {
                                    <ActionForm action=login>
                                        {error.as_ref().map(|e| refusal_notice(e, "login-error"))}
                                        <input type="hidden" name="next" value=next.clone() />
                                        <div class="field">
                                            <label for="username">"User name"</label>
                                            <input id="username" name="username" type="text" autocomplete="username" required=true
                                                autofocus=!refused aria-describedby=described_by />
                                        </div>
                                        <div class="field">
                                            <label for="password">"Password"</label>
                                            <input id="password" name="password" type="password" autocomplete="current-password" required=true
                                                aria-describedby=described_by />
                                        </div>
                                        <button type="submit" class="primary">"Sign in"</button>
                                    </ActionForm>
                                })}
                            }
                            .into_any(),
                            Err(e) => error_notice(&e),
                        }
                    })
                }}
            </Suspense>
        </div>
    }
}
