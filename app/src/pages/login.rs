use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::Login;

/// A plain form: it signs in without any script, and the server sends the browser on
/// to where it was going. A refused sign-in comes back here with the error in the URL.
#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let next = use_query_map()
        .with_untracked(|q| q.get("next"))
        .unwrap_or_default();
    let error = move || {
        login
            .value()
            .get()
            .and_then(|r| r.err())
            .map(|e| e.to_string())
    };
    view! {
        <Title text="Sign in" />
        <div class="login">
            <h1>"Sign in to Slipway"</h1>
            <p class="muted">"Request platform resources, review changes, and see what exists."</p>
            <ActionForm action=login>
                <input type="hidden" name="next" value=next />
                <div class="field">
                    <label for="username">"User name"</label>
                    <input id="username" name="username" type="text" autocomplete="username" required=true autofocus=true />
                </div>
                <div class="field">
                    <label for="password">"Password"</label>
                    <input id="password" name="password" type="password" autocomplete="current-password" required=true />
                </div>
                {move || error().map(|e| view! { <p class="notice error" role="alert">{e}</p> })}
                <button type="submit" class="primary">"Sign in"</button>
            </ActionForm>
        </div>
    }
}
