//! The request form as a browser without script meets it: the page renders the
//! form filled in and live, it posts to a plain handler, which makes the request
//! once (whatever the number of posts) and leads to it, or sends the browser back
//! to the form with its values, the refusal on the fields it names, and never a
//! secret in the URL. A post no form could send is refused and nothing stored.
#![cfg(feature = "ssr")]

#[allow(dead_code)]
mod browser;
#[allow(dead_code, unused_macros)]
#[path = "../../server/tests/common/mod.rs"]
mod common;

use app::error::AppError;
use axum::http::StatusCode;
use browser::{Browser, ORIGIN, encoded};
use common::{TestApp, TestResult};
use leptos::server_fn::error::ServerFnUrlError;
use slipway_core::ids::RequestId;
use slipway_core::views::ReviewDecision;
use slipway_server::services::{requests, reviews};
use slipway_server::storage::Engine;

const NEW_NAMESPACE: &str = "/requests/new/k8s-namespace";

async fn app() -> TestResult<TestApp> {
    Ok(TestApp::start(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?)
}

/// The submit key the page put in its form.
fn submit_key(page: &str) -> TestResult<String> {
    let marker = "name=\"__submit_key\" value=\"";
    let start = page.find(marker).ok_or("the form carries its submit key")? + marker.len();
    let length = page[start..].find('"').ok_or("the key's value ends")?;
    Ok(page[start..start + length].to_string())
}

/// `%xx` and `+` decoded, as a browser reads a query.
fn decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = text
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (other, _) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_pairs(location: &str) -> Vec<(String, String)> {
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decoded(k), decoded(v))
        })
        .collect()
}

/// The parameters of a request's newest revision.
async fn latest_params(app: &TestApp, id: RequestId) -> TestResult<serde_json::Value> {
    let alice = app.user("alice").await?;
    let detail = slipway_server::services::detail::request_detail(
        &app.state,
        &alice,
        id,
        slipway_server::services::detail::ReviewerRead::DoesNotCount,
    )
    .await?;
    Ok(detail
        .revisions
        .last()
        .map(|r| r.params.clone())
        .unwrap_or_default())
}

/// The refusal a redirect carries, read as the page reads it.
fn refusal_in(location: &str) -> TestResult<AppError> {
    let pairs = query_pairs(location);
    let error = pairs
        .iter()
        .find(|(k, _)| k == "__err")
        .ok_or_else(|| format!("no refusal in {location}"))?;
    assert!(
        pairs.iter().any(|(k, _)| k == "__errsig"),
        "the server signs its refusal: {location}"
    );
    Ok(ServerFnUrlError::<AppError>::decode_err(&error.1))
}

fn field_errors(error: &AppError) -> Vec<(String, String)> {
    let errors = match error {
        AppError::Invalid(errors) => errors.clone(),
        AppError::PrecheckFailed(report) => report.field_errors.clone(),
        _ => Vec::new(),
    };
    errors.into_iter().map(|e| (e.field, e.message)).collect()
}

fn names(error: &AppError, field: &str) -> bool {
    field_errors(error).iter().any(|(f, _)| f == field)
}

async fn requests_made(app: &TestApp) -> TestResult<i64> {
    app.count("requests").await
}

fn namespace_form<'a>(name: &'a str, key: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("__submit_key", key),
        ("name", name),
        ("team", "payments"),
        ("environment", "dev"),
        ("cpu_limit", "4"),
        ("memory_limit_gi", "8"),
        ("admins", "alice\r\nbob"),
    ]
}

#[tokio::test]
async fn the_form_posts_without_script_and_a_second_post_makes_no_second_request() -> TestResult {
    let app = app().await?;
    let mut alice = Browser::signed_in(&app, "alice").await?;
    let page = alice.get(NEW_NAMESPACE).await?;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("method=\"post\" action=\"/requests/new/k8s-namespace/submit\""),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("<fieldset class=\"plain\" disabled"),
        "the fields are usable before (and without) the script"
    );
    // The first values are in the controls, not only in the island's state.
    assert!(page.body.contains("id=\"field-cpu_limit\""));
    assert!(
        page.body.contains("value=\"4\""),
        "the default CPU limit shows"
    );
    let key = submit_key(&page.body)?;

    let form = namespace_form("web", &key);
    let made = alice
        .post(&format!("{NEW_NAMESPACE}/submit"), &form)
        .await?;
    assert_eq!(made.status, StatusCode::SEE_OTHER);
    let target = made.location().to_string();
    assert!(target.starts_with("/requests/"), "{target}");
    assert_eq!(requests_made(&app).await?, 1);

    // Pressed twice (or the answer lost and the form sent again): the same request.
    let again = alice
        .post(&format!("{NEW_NAMESPACE}/submit"), &form)
        .await?;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(again.location(), target);
    assert_eq!(requests_made(&app).await?, 1);

    let shown = alice.get(&target).await?;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.body.contains("payments-web-dev"), "{}", shown.body);
    let id: i64 = target.trim_start_matches("/requests/").parse()?;
    let params = latest_params(&app, RequestId(id)).await?;
    assert_eq!(params["cpu_limit"], 4, "{params}");
    assert_eq!(params["admins"], serde_json::json!(["alice", "bob"]));
    Ok(())
}

#[tokio::test]
async fn a_refused_post_comes_back_with_its_values_and_the_field_marked_but_no_secret() -> TestResult
{
    let app = app().await?;
    let mut alice = Browser::signed_in(&app, "alice").await?;
    let password = "correct-horse-battery-staple";
    let page = alice.get("/requests/new/postgres-database").await?;
    let key = submit_key(&page.body)?;
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
                ("owner_password", password),
            ],
        )
        .await?;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    let back = refused.location().to_string();
    assert!(
        back.starts_with("/requests/new/postgres-database?"),
        "{back}"
    );
    assert!(
        !back.contains(password),
        "a secret never goes in a URL: {back}"
    );
    let pairs = query_pairs(&back);
    let carried = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(carried("name"), Some("Bad Name"));
    assert_eq!(carried("high_availability"), Some("false"), "unticked");
    assert_eq!(carried("owner_password"), None);
    assert_eq!(carried("__reenter"), Some("owner_password"));
    let error = refusal_in(&back)?;
    assert!(names(&error, "name"), "{error:?}");
    assert_eq!(requests_made(&app).await?, 0);

    // The page fills the form again and marks the fields, without script.
    let page = alice.get(&back).await?;
    assert_eq!(page.status, StatusCode::OK, "{back}");
    let name_input = page
        .body
        .split("<input")
        .find(|tag| tag.contains("id=\"field-name\""))
        .ok_or("the name field")?;
    assert!(name_input.contains("value=\"Bad Name\""), "{name_input}");
    assert!(name_input.contains("aria-invalid=\"true\""), "{name_input}");
    // The focus starts on the refusal's notice, said before the fields.
    assert!(!name_input.contains("autofocus"), "{name_input}");
    let notice = page
        .body
        .split("<div")
        .find(|tag| tag.contains("id=\"form-refusal\""))
        .ok_or("the refusal's notice")?;
    assert!(notice.contains("autofocus"), "{notice}");
    let name_error = page
        .body
        .split("<p id=\"field-name-error\"")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_default();
    assert!(
        name_error.contains("must match the pattern"),
        "the name's error is said beside it: {name_error}"
    );
    assert!(page.body.contains("must be typed again"));
    assert!(
        page.body.contains("fields need fixing: Name,"),
        "the status line names fields by their labels"
    );
    assert!(!page.body.contains(password));
    Ok(())
}

#[tokio::test]
async fn a_post_no_form_could_send_is_refused_and_nothing_is_stored() -> TestResult {
    let app = app().await?;
    let mut alice = Browser::signed_in(&app, "alice").await?;
    let key = submit_key(&alice.get(NEW_NAMESPACE).await?.body)?;
    let path = format!("{NEW_NAMESPACE}/submit");
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut form: Vec<(String, String)> = namespace_form("web", &key)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (name, value) in extra {
            form.retain(|(k, _)| k != name);
            form.push((name.to_string(), value.to_string()));
        }
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        encoded(&pairs)
    };
    let huge = {
        let mut body = with(&[]);
        body.extend_from_slice(b"&admins=");
        body.extend(std::iter::repeat_n(b'a', 1 << 20));
        body
    };
    let no_key: Vec<u8> = encoded(&namespace_form("web", "")[1..]);
    let mut twice = with(&[]);
    twice.extend_from_slice(b"&name=other");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a field the form does not have",
            with(&[("colour", "red")]),
            "colour",
        ),
        ("a 1 MB value", huge, "form"),
        (
            "text that is not UTF-8",
            {
                let mut body = with(&[]);
                body.extend_from_slice(b"&admins=%FF%FE");
                body
            },
            "form",
        ),
        ("a null byte", with(&[("name", "web\0x")]), "name"),
        ("an escape", with(&[("name", "web\u{1b}[31m")]), "name"),
        (
            "a line break in a one-line box",
            with(&[("name", "web\r\nx")]),
            "name",
        ),
        ("no submit key", no_key, "submit_key"),
        ("a field twice", twice, "name"),
    ];
    for (case, body, field) in cases {
        let answer = alice.post_raw(&path, body, ORIGIN).await?;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{case}");
        let back = answer.location();
        assert!(
            back.starts_with(&format!("{NEW_NAMESPACE}?")),
            "{case}: {back}"
        );
        let error = refusal_in(back)?;
        assert!(names(&error, field), "{case}: {error:?}");
        let page = alice.get(back).await?;
        assert_eq!(page.status, StatusCode::OK, "{case}: {back}");
        assert_eq!(requests_made(&app).await?, 0, "{case}");
    }
    // Words of the poster's are never named back on our page.
    let phrase = "Call 555-0100 to keep your account";
    let answer = alice
        .post_raw(&path, with(&[(phrase, "x")]), ORIGIN)
        .await?;
    let error = refusal_in(answer.location())?;
    assert!(!format!("{error:?}").contains("555-0100"), "{error:?}");

    // From another site, or signed out: refused before anything is read.
    let forged = alice
        .post_raw(&path, with(&[]), "http://evil.example")
        .await?;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let mut stranger = Browser::new(&app);
    let signed_out = stranger.post_raw(&path, with(&[]), ORIGIN).await?;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        signed_out.location(),
        "/login?next=%2Frequests%2Fnew%2Fk8s-namespace"
    );
    assert_eq!(requests_made(&app).await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_revision_posts_without_script_too() -> TestResult {
    let app = app().await?;
    let alice_caller = app.user("alice").await?;
    let bob = app.user("bob").await?;
    let id = requests::submit(
        &app.state,
        &alice_caller,
        &common::draft(
            "k8s-namespace",
            common::namespace_params("api", "payments", "prod", 2),
        ),
    )
    .await?;
    reviews::decide(
        &app.state,
        &bob,
        id,
        1,
        ReviewDecision::RequestChanges,
        "less CPU, please",
    )
    .await?;
    let mut alice = Browser::signed_in(&app, "alice").await?;
    let page = alice.get(&format!("/requests/{id}/edit")).await?;
    assert_eq!(page.status, StatusCode::OK);
    let action = format!("/requests/{id}/edit/submit");
    assert!(page.body.contains(&format!("action=\"{action}\"")));
    assert!(
        page.body.contains("value=\"api\""),
        "the last revision fills the form"
    );
    assert!(
        page.body.contains("name=\"__revision\" value=\"1\""),
        "the form names the revision it was opened on"
    );
    let mut form = namespace_form("api", "");
    form.remove(0);
    // A revise form that does not say which revision it revises is refused.
    let unknown = alice.post(&action, &form).await?;
    assert!(names(&refusal_in(unknown.location())?, "revision"));
    form.push(("__revision", "1"));
    form.retain(|(k, _)| *k != "environment");
    form.push(("environment", "prod"));
    // Too much CPU: the schema refuses, and the page comes back with it marked.
    form.retain(|(k, _)| *k != "cpu_limit");
    let mut too_much = form.clone();
    too_much.push(("cpu_limit", "999"));
    let refused = alice.post(&action, &too_much).await?;
    let back = refused.location().to_string();
    assert!(back.starts_with(&format!("/requests/{id}/edit?")), "{back}");
    assert!(names(&refusal_in(&back)?, "cpu_limit"));
    let again = alice.get(&back).await?;
    assert!(
        again.body.contains("value=\"999\""),
        "the posted value is back"
    );
    assert_eq!(app.request(id).await?.current_revision, 1);

    form.push(("cpu_limit", "1"));
    let revised = alice.post(&action, &form).await?;
    assert_eq!(revised.status, StatusCode::SEE_OTHER);
    assert_eq!(revised.location(), format!("/requests/{id}"));
    assert_eq!(app.request(id).await?.current_revision, 2);
    assert_eq!(latest_params(&app, id).await?["cpu_limit"], 1);

    // Posted twice (a double click, a reload's "resend"): the second finds the
    // first's revision and lands on the request, not on a refusal.
    let twice = alice.post(&action, &form).await?;
    assert_eq!(twice.location(), format!("/requests/{id}"));
    assert_eq!(app.request(id).await?.current_revision, 2);

    // A form left open on revision 1 while revision 2 was made and sent back
    // again: refused, naming both, rather than overwriting revision 2.
    reviews::decide(
        &app.state,
        &bob,
        id,
        2,
        ReviewDecision::RequestChanges,
        "a little more",
    )
    .await?;
    form.retain(|(k, _)| *k != "cpu_limit");
    form.push(("cpu_limit", "3"));
    let stale = alice.post(&action, &form).await?;
    let error = format!("{:?}", refusal_in(stale.location())?);
    assert!(
        error.contains("revision 2") && error.contains("revision 1"),
        "{error}"
    );
    assert_eq!(app.request(id).await?.current_revision, 2);
    Ok(())
}
