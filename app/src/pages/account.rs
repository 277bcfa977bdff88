use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{
    ChatLinkView, EndSession, SESSIONS_SHOWN, SessionsPageData, UnlinkChat, my_chat_link,
    my_sessions,
};
use crate::components::{Loading, error_title, error_view, refusal_notice};

/// Said where the link code would be offered, on a server without ChatOps.
const CHAT_OFF_WORDS: &str =
    "This server is not connected to a chat: there is no chat bot to link an account to yet.";

/// Who you are here (roles and teams, as the sign-in gave them) and every browser
/// signed in as you, each of which you can sign out from here.
#[component]
pub fn SessionsPage() -> impl IntoView {
    let end = ServerAction::<EndSession>::new();
    let unlink = ServerAction::<UnlinkChat>::new();
    let sessions = Resource::new(move || end.version().get(), |_| my_sessions());
    // A refused form comes back as a new page: its notice is the first thing
    // after the heading, the focus starts on it, and the title says "Error".
    let refusal = move || end.value().get().and_then(Result::err);
    let refused = move || refusal().is_some() || unlink.value().with(|v| matches!(v, Some(Err(_))));
    view! {
        <Title text=move || error_title("Your sessions", refused()) />
        <h1>"Your sessions"</h1>
        {move || refusal().map(|e| refusal_notice(&e, "sessions-error"))}
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match sessions.await {
                    Ok(SessionsPageData { user, sessions, more }) => {
                        let roles: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
                        let teams = if user.teams.is_empty() { "none".to_string() } else { user.teams.join(", ") };
                        view! {
                            <dl class="facts" data-testid="who">
                                <dt>"User name"</dt><dd data-testid="username">{user.username.clone()}</dd>
                                <dt>"Roles"</dt><dd data-testid="roles">{roles.join(", ")}</dd>
                                <dt>"Teams"</dt><dd data-testid="teams">{teams}</dd>
                            </dl>
                            <table class="table">
                                <caption class="muted">"Browsers signed in as you. Ending a session signs that browser out at its next request."</caption>
                                <thead><tr><th scope="col">"Browser"</th><th scope="col">"Signed in"</th><th scope="col">"Last used"</th><th scope="col"><span class="sr-only">"Action"</span></th></tr></thead>
                                <tbody>
                                    {sessions.into_iter().map(|s| {
                                        let browser = if s.user_agent.is_empty() { "unknown".to_string() } else { s.user_agent.clone() };
                                        // Every row's button says the same; its name (which starts with what it
                                        // shows, as speech input needs) says which browser it ends.
                                        let end_label = format!("End session: {browser}, last used {}", s.last_seen);
                                        view! {
                                        <tr data-testid="session">
                                            <td>{browser}</td>
                                            <td>{s.created.clone()}</td>
                                            <td>{s.last_seen.clone()}</td>
                                            <td>{if s.current {
                                                view! { <span class="badge">"this browser"</span> }.into_any()
                                            } else {
                                                view! {
                                                    <ActionForm action=end>
                                                        <input type="hidden" name="handle" value=s.handle.clone() />
                                                        <button type="submit" class="link" aria-label=end_label>"End session"</button>
                                                    </ActionForm>
                                                }.into_any()
                                            }}</td>
                                        </tr>
                                    }}).collect_view()}
                                </tbody>
                            </table>
                            {more.then(|| view! {
                                <p class="muted" data-testid="sessions-cut">
                                    {format!("Only the {SESSIONS_SHOWN} sessions used most recently are listed: more browsers are signed in as you.")}
                                </p>
                            })}
                        }.into_any()
                    }
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
        <h2>"Chat"</h2>
        <p class="muted">
            "Where Slipway is connected to the team's chat, its bot takes requests, reviews "
            "and status questions there, as you. Link your chat account once with a code "
            "that works for 15 minutes; it is shown on the next page only."
        </p>
        <ChatLink unlink />
    }
}

/// The chat account that acts as you, and the way to stop it.
#[component]
fn ChatLink(unlink: ServerAction<UnlinkChat>) -> impl IntoView {
    let link = Resource::new(move || unlink.version().get(), |_| my_chat_link());
    let refusal = move || unlink.value().get().and_then(Result::err);
    view! {
        {move || refusal().map(|e| refusal_notice(&e, "chat-link-error"))}
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match link.await {
                    Ok(ChatLinkView { chat_on, account }) => view! {
                        {match account {
                            Some(account) => view! {
                                <ActionForm action=unlink attr:class="chat-unlink-form">
                                    <p data-testid="chat-linked">"Linked to " <code>{account}</code> ": its messages to the bot act as you."</p>
                                    <button type="submit" class="danger" data-testid="chat-unlink">"Unlink this chat account"</button>
                                </ActionForm>
                            }.into_any(),
                            None => view! { <p class="muted" data-testid="chat-linked">"No chat account is linked."</p> }.into_any(),
                        }}
                        {if chat_on {
                            // A plain form: the code is shown on a page of its own, never kept to show again.
                            view! {
                                <form method="post" action="/account/chat-link/new" class="chat-link-form">
                                    <button type="submit" data-testid="chat-link">"Get a chat link code"</button>
                                </form>
                            }.into_any()
                        } else {
                            view! { <p class="muted" data-testid="chat-off">{CHAT_OFF_WORDS}</p> }.into_any()
                        }}
                    }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}
