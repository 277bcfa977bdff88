//! What the server-rendered pages give assistive technology (WCAG 2.2 AA), as
//! a browser without script meets them: a refusal said first and focused on
//! the page it comes back to, a title and a heading on a page that failed to
//! load, text instead of tooltips, named tables and scrolling regions.
#![cfg(feature = "ssr")]

#[allow(dead_code)]
mod browser;
#[allow(dead_code, unused_macros)]
#[path = "../../server/tests/common/mod.rs"]
mod common;

use app::api::{Decide, Login};
use axum::http::StatusCode;
use browser::{Browser, ORIGIN};
use common::{TestApp, TestResult};
use leptos::server_fn::ServerFn;
use slipway_server::storage::Engine;

async fn app() -> TestResult<TestApp> {
    Ok(TestApp::start(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?)
}

/// The page's `<title>` text.
fn title(body: &str) -> &str {
    body.split("<title>")
        .nth(1)
        .and_then(|rest| rest.split("</title>").next())
        .unwrap_or_default()
}

/// The opening tag of the first element whose attributes hold `marker`.
fn tag<'a>(body: &'a str, marker: &str) -> &'a str {
    let Some(at) = body.find(marker) else {
        return "";
    };
    let start = body[..at].rfind('<').unwrap_or(0);
    let end = body[at..].find('>').map_or(body.len(), |end| at + end + 1);
    &body[start..end]
}

/// Where `marker` first is in the page, for order.
fn position(body: &str, marker: &str) -> TestResult<usize> {
    Ok(body
        .find(marker)
        .ok_or_else(|| format!("{marker} is not in the page"))?)
}

/// The submit key the page put in its form.
fn submit_key(page: &str) -> TestResult<String> {
    let marker = "name=\"__submit_key\" value=\"";
    let start = page.find(marker).ok_or("the form carries its submit key")? + marker.len();
    let length = page[start..].find('"').ok_or("the key's value ends")?;
    Ok(page[start..start + length].to_string())
}

#[tokio::test]
async fn a_refused_sign_in_is_said_first_and_takes_the_focus() -> TestResult {
    let app = app().await?;
    let mut browser = Browser::new(&app);
    let page = browser.get("/login").await?;
    assert_eq!(title(&page.body), "Sign in · Slipway");
    assert!(tag(&page.body, "id=\"username\"").contains("autofocus"));
    assert!(!page.body.contains("login-error"));

    let refused = browser
        .post_form(
            Login::PATH,
            &[("username", "alice"), ("password", "wrong")],
            ORIGIN,
        )
        .await?;
    let back = refused.location().trim_start_matches(ORIGIN).to_string();
    let page = browser.get(&back).await?;
    assert_eq!(page.status, StatusCode::OK, "{back}");
    let body = &page.body;
    assert_eq!(title(body), "Error: Sign in · Slipway");
    let notice = tag(body, "id=\"login-error\"");
    for attribute in ["role=\"alert\"", "tabindex=\"-1\"", "autofocus"] {
        assert!(notice.contains(attribute), "{attribute}: {notice}");
    }
    assert!(position(body, "id=\"login-error\"")? < position(body, "id=\"username\"")?);
    assert!(body.contains("password is wrong"), "{body}");
    for field in ["id=\"username\"", "id=\"password\""] {
        let input = tag(body, field);
        assert!(
            input.contains("aria-describedby=\"login-error\""),
            "{input}"
        );
        assert!(!input.contains("autofocus"), "{input}");
    }
    Ok(())
}

/// A refusal that names no field of the request form (here: its submit key is
/// missing) used to be said after every field with the focus nowhere; a
/// refused field is listed by its label, with a link to it.
#[tokio::test]
async fn a_request_form_sent_back_says_the_refusal_first_and_focuses_it() -> TestResult {
    let app = app().await?;
    let mut alice = Browser::signed_in(&app, "alice").await?;
    let form = alice.get("/requests/new/k8s-namespace").await?;
    assert_eq!(
        title(&form.body),
        "Request a Kubernetes namespace · Slipway"
    );
    assert!(!form.body.contains("form-refusal"));
    let refused = alice
        .post(
            "/requests/new/k8s-namespace/submit",
            &[
                ("name", "web"),
                ("team", "payments"),
                ("environment", "dev"),
                ("cpu_limit", "4"),
                ("memory_limit_gi", "8"),
                ("admins", "alice"),
            ],
        )
        .await?;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    let back = refused.location().to_string();
    let page = alice.get(&back).await?;
    assert_eq!(page.status, StatusCode::OK, "{back}");
    let body = &page.body;
    assert_eq!(
        title(body),
        "Error: Request a Kubernetes namespace · Slipway"
    );
    let notice = tag(body, "id=\"form-refusal\"");
    for attribute in ["role=\"alert\"", "tabindex=\"-1\"", "autofocus"] {
        assert!(notice.contains(attribute), "{attribute}: {notice}");
    }
    assert!(position(body, "id=\"form-refusal\"")? < position(body, "id=\"field-name\"")?);
    assert_eq!(
        body.matches(" autofocus").count(),
        1,
        "only the notice takes the focus: {body}"
    );
    // The button still works after a refusal, and looks it.
    let button = tag(body, "aria-busy=");
    assert!(button.contains("aria-disabled=\"false\""), "{button}");

    // A field the refusal names: listed by its label, linked to its box.
    let form = alice.get("/requests/new/postgres-database").await?;
    let key = submit_key(&form.body)?;
    let refused = alice
        .post(
            "/requests/new/postgres-database/submit",
            &[
                ("__submit_key", &key),
                ("name", "Bad Name"),
                ("team", "payments"),
                ("environment", "dev"),
                ("size", "small"),
                ("storage_gb", "20"),
                ("version", "16"),
                ("extensions", ""),
                ("owner_password", "correct-horse-battery-staple"),
            ],
        )
        .await?;
    let back = refused.location().to_string();
    let page = alice.get(&back).await?;
    let body = &page.body;
    assert_eq!(
        title(body),
        "Error: Request a PostgreSQL database · Slipway"
    );
    assert!(
        tag(body, "id=\"form-refusal\"").contains("autofocus"),
        "{body}"
    );
    // Refused by the pre-check: its panel says why, and the secret to type
    // again is listed by its label, with a link to its box.
    assert!(
        body.contains("To fix: name must match the pattern"),
        "{body}"
    );
    assert!(
        body.contains("<a href=\"#field-owner_password\">Owner password: must be typed again"),
        "{body}"
    );
    assert!(!tag(body, "id=\"field-name\"").contains("autofocus"));
    // A checkbox says whether it is invalid, as every other control does.
    let checkbox = tag(body, "id=\"field-high_availability\"");
    assert!(checkbox.contains("aria-invalid=\"false\""), "{checkbox}");

    // Refused by a field's rule: the field is listed by its label and linked.
    let form = alice.get("/requests/new/k8s-namespace").await?;
    let key = submit_key(&form.body)?;
    let refused = alice
        .post(
            "/requests/new/k8s-namespace/submit",
            &[
                ("__submit_key", &key),
                ("name", "web\u{1b}[31m"),
                ("team", "payments"),
                ("environment", "dev"),
                ("cpu_limit", "4"),
                ("memory_limit_gi", "8"),
                ("admins", "alice"),
            ],
        )
        .await?;
    let page = alice.get(refused.location()).await?;
    assert!(
        page.body.contains("<a href=\"#field-name\">Name: "),
        "{}",
        page.body
    );
    Ok(())
}

/// The form explains its required mark once, and its pre-check is no live
/// region (it is re-drawn after each pause in typing): a status line of its
/// own says the verdict when it changes. Guidance offers no button that would
/// do nothing before the form's script is live.
#[tokio::test]
async fn the_request_form_explains_its_marks_and_keeps_its_pre_check_quiet() -> TestResult {
    let app = app().await?;
    let mut alice = Browser::signed_in(&app, "alice").await?;
    let page = alice.get("/requests/new/k8s-namespace").await?;
    let body = &page.body;
    assert_eq!(body.matches("class=\"help required-note\"").count(), 1);
    assert!(
        position(body, "required-note")? < position(body, "id=\"field-name\"")?,
        "the note comes before the fields"
    );
    let precheck = tag(body, "class=\"precheck\"");
    assert!(
        !precheck.is_empty() && !precheck.contains("aria-live"),
        "{precheck}"
    );
    assert!(!body.contains("aria-live=\"polite\" aria-label=\"Pre-check\""));
    let status = tag(body, "data-testid=\"precheck-status\"");
    assert!(status.contains("role=\"status\""), "{status}");
    assert!(status.contains("sr-only"), "{status}");
    assert!(!body.contains("Use this value"));
    Ok(())
}

#[tokio::test]
async fn a_refused_review_that_names_no_box_is_said_first_and_takes_the_focus() -> TestResult {
    let app = app().await?;
    let alice = app.user("alice").await?;
    let id = slipway_server::services::requests::submit(
        &app.state,
        &alice,
        &common::draft(
            "k8s-namespace",
            common::namespace_params("ledger", "payments", "prod", 1),
        ),
    )
    .await?;
    let mut bob = Browser::signed_in(&app, "bob").await?;
    let page = bob.get(&format!("/requests/{id}")).await?;
    assert_eq!(title(&page.body), format!("Request #{id} · Slipway"));
    // An approval of a revision that is not the current one: refused, naming
    // neither the comment nor the note.
    let refused = bob
        .post(
            Decide::PATH,
            &[
                ("id", &id.to_string()),
                ("revision", "7"),
                ("decision", "approve"),
                ("comment", ""),
            ],
        )
        .await?;
    let back = refused.location().trim_start_matches(ORIGIN).to_string();
    assert!(back.contains("__err="), "{back}");
    let page = bob.get(&back).await?;
    assert_eq!(page.status, StatusCode::OK, "{back}");
    let body = &page.body;
    assert_eq!(title(body), format!("Error: Request #{id} · Slipway"));
    let notice = tag(body, "id=\"actions-error\"");
    for attribute in ["role=\"alert\"", "tabindex=\"-1\"", "autofocus"] {
        assert!(notice.contains(attribute), "{attribute}: {notice}");
    }
    assert!(body.contains("you reviewed revision 7"), "{body}");
    assert!(position(body, "id=\"actions-error\"")? < position(body, "id=\"review-comment\"")?);
    assert!(!tag(body, "id=\"review-comment\"").contains("autofocus"));
    Ok(())
}

#[tokio::test]
async fn pages_that_fail_to_load_still_have_a_title_and_a_heading() -> TestResult {
    let app = app().await?;
    let mut alice = Browser::signed_in(&app, "alice").await?;
    for path in [
        "/requests/999999",
        "/requests/999999/edit",
        "/assets/999999",
        "/assets/999999/actions/resize",
        "/requests/new/no-such-type",
    ] {
        let page = alice.get(path).await?;
        assert_eq!(title(&page.body), "Not found · Slipway", "{path}");
        assert!(
            page.body.contains("<h1>Not found</h1>"),
            "{path}: {}",
            page.body
        );
        assert!(page.body.contains("role=\"alert\""), "{path}");
    }
    Ok(())
}

/// What was in tooltips (a full hash, a chain position, why an entry is still
/// sealing) is text; blocks that scroll sideways take the keyboard's focus.
#[tokio::test]
async fn hashes_are_text_and_scrolling_blocks_take_the_focus() -> TestResult {
    let app = app().await?;
    let alice = app.user("alice").await?;
    let id = app.namespace(&alice, "dev", "shelf").await?;
    let mut browser = Browser::signed_in(&app, "alice").await?;
    let page = browser.get(&format!("/requests/{id}")).await?;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    let full = body
        .split("data-testid=\"change-set-hash\"")
        .nth(1)
        .and_then(|rest| rest.split('>').nth(1))
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_default();
    assert_eq!(full.len(), 64, "the full hash as text: {full:?}");
    assert!(!body.contains(&format!("title=\"{full}\"")));
    let file = tag(body, "aria-label=\"File ");
    for attribute in ["tabindex=\"0\"", "role=\"region\""] {
        assert!(
            file.starts_with("<pre") && file.contains(attribute),
            "{file}"
        );
    }
    // The header's account link is named for where it leads.
    let account = tag(body, "href=\"/account/sessions\"");
    assert!(account.contains(": your account\""), "{account}");
    assert!(!account.contains("title="), "{account}");

    let mut carol = Browser::signed_in(&app, "carol").await?;
    let audit = carol.get("/audit").await?;
    assert_eq!(audit.status, StatusCode::OK);
    let table = audit
        .body
        .split("<table class=\"list audit\"")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or_default();
    assert!(!table.is_empty(), "{}", audit.body);
    assert!(!table.contains("title="), "{table}");
    assert!(
        table.contains("in the chain: ") || table.contains("sealing…"),
        "{table}"
    );
    Ok(())
}

#[tokio::test]
async fn list_tables_are_named() -> TestResult {
    let app = app().await?;
    let alice = app.user("alice").await?;
    app.namespace(&alice, "dev", "named").await?;
    let mut browser = Browser::signed_in(&app, "alice").await?;
    let token = browser
        .post(
            "/account/tokens/new",
            &[
                ("name", "ci"),
                ("expires_in_days", "30"),
                ("scope_read", "on"),
            ],
        )
        .await?;
    // The secret shown once points at the advice beside it.
    let secret = tag(&token.body, "id=\"secret-value\"");
    assert!(
        secret.contains("aria-describedby=\"secret-advice\""),
        "{}",
        token.body
    );
    assert!(
        token
            .body
            .contains("<p class=\"notice\" id=\"secret-advice\">")
    );
    for (path, caption) in [
        ("/requests", "My requests"),
        ("/assets", "Assets"),
        ("/account/tokens", "Your API tokens"),
        ("/api-docs", "Parameters of GET /api/v1/requests/{id}"),
    ] {
        let page = browser.get(path).await?;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            page.body
                .contains(&format!("<caption class=\"sr-only\">{caption}</caption>")),
            "{path}: {}",
            page.body
        );
    }
    Ok(())
}
