//! The portal over HTTP, as a browser without script meets it: real redirects for
//! signed-out visitors, sign-in with a safe `next`, the same-origin guard on server
//! functions, the sessions page, and sign-out deleting the session.
#![cfg(feature = "ssr")]

#[allow(dead_code)]
mod browser;
#[allow(dead_code, unused_macros)]
#[path = "../../server/tests/common/mod.rs"]
mod common;

use app::api::{Decide, EndSession, Login, Logout, RevokeToken};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use browser::{Browser, HOST, ORIGIN};
use common::{TestApp, TestResult};
use leptos::server_fn::ServerFn;
use slipway_server::storage::Engine;
use tower::ServiceExt;

async fn signed_in_sessions(app: &TestApp) -> TestResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL")
            .fetch_one(&app.state.db.pool)
            .await?,
    )
}

async fn app() -> TestResult<TestApp> {
    Ok(TestApp::start(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?)
}

#[tokio::test]
async fn signed_out_pages_answer_with_real_redirects() -> TestResult {
    let app = app().await?;
    let mut browser = Browser::new(&app);
    let root = browser.get("/").await?;
    assert!(root.status.is_redirection(), "{}", root.status);
    assert_eq!(root.location(), "/catalog");

    let catalog = browser.get("/catalog").await?;
    assert_eq!(catalog.status, StatusCode::SEE_OTHER);
    assert_eq!(catalog.location(), "/login?next=/catalog");
    assert!(catalog.body.is_empty());

    let filtered = browser.get("/assets?team=payments").await?;
    assert_eq!(filtered.status, StatusCode::SEE_OTHER);
    assert_eq!(filtered.location(), "/login?next=/assets%3Fteam=payments");

    // A query that does not read is no reason to skip signing in: the redirect
    // comes first, on every page of lists.
    for page in [
        "/assets?limit=x",
        "/requests?state=sleeping",
        "/reviews?created_from=2026-13-01",
        "/attention?before=0",
        "/audit?actor=%00",
    ] {
        let answer = browser.get(page).await?;
        assert_eq!(
            answer.status,
            StatusCode::SEE_OTHER,
            "{page}: {}",
            answer.body
        );
        assert!(answer.location().starts_with("/login?next="), "{page}");
    }

    let login = browser.get("/login?next=/catalog").await?;
    assert_eq!(login.status, StatusCode::OK);
    assert!(
        login.body.contains("User name"),
        "the password form is shown"
    );
    assert!(
        !login.body.contains("Sign in with"),
        "no single sign-on configured"
    );
    Ok(())
}

#[tokio::test]
async fn sign_in_goes_only_to_paths_on_this_site() -> TestResult {
    let app = app().await?;
    for (next, expected) in [
        ("/requests", "/requests"),
        ("/\\evil.example", "/catalog"),
        ("//evil.example", "/catalog"),
        ("/%5Cevil.example", "/catalog"),
        ("https://evil.example", "/catalog"),
        ("javascript:alert(1)", "/catalog"),
        ("/\tevil", "/catalog"),
    ] {
        let mut browser = Browser::new(&app);
        let answer = browser.sign_in("alice", next).await?;
        assert!(
            answer.status.is_redirection(),
            "{next:?}: {}",
            answer.status
        );
        assert_eq!(answer.location(), expected, "{next:?}");
        let cookie = answer
            .headers
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(cookie.starts_with("slipway_session="), "{cookie}");
        for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(cookie.contains(flag), "{flag} missing: {cookie}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_sign_in_posted_from_another_site_is_refused() -> TestResult {
    let app = app().await?;
    let mut browser = Browser::new(&app);
    let answer = browser
        .post_form(
            Login::PATH,
            &[("username", "alice"), ("password", "alice-demo-pw")],
            "http://evil.example",
        )
        .await?;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let trace = answer
        .headers
        .get("x-trace-id")
        .and_then(|v| v.to_str().ok())
        .ok_or("no trace id header")?;
    assert!(
        answer.body.contains(&format!("quote trace {trace}")),
        "{}",
        answer.body
    );
    assert_eq!(signed_in_sessions(&app).await?, 0);
    Ok(())
}

/// No page may be framed (a hidden frame could steer a reviewer's click onto
/// "Approve"), and no page stays in the browser's cache for the next person at a
/// shared computer.
#[tokio::test]
async fn pages_may_not_be_framed_nor_kept_in_a_cache() -> TestResult {
    let app = app().await?;
    let mut browser = Browser::new(&app);
    browser.sign_in("alice", "/catalog").await?;
    for path in ["/catalog", "/login", "/account/sessions"] {
        let page = browser.get(path).await?;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let header = |name| {
            page.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(header(header::X_FRAME_OPTIONS), "DENY", "{path}");
        assert!(
            header(header::CONTENT_SECURITY_POLICY).contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(header(header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{path}");
        assert_eq!(header(header::CACHE_CONTROL), "no-store", "{path}");
        assert_eq!(header(header::REFERRER_POLICY), "same-origin", "{path}");
        // Scripts run only with this answer's nonce, and every script of the
        // page carries it (a script without it would be blocked: the page's
        // islands would not come alive).
        let policy = header(header::CONTENT_SECURITY_POLICY);
        // A form markup injection slipped in could not post elsewhere.
        assert!(policy.contains("form-action 'self'"), "{path}: {policy}");
        // Plain http (the tests' server): no HSTS, which would lock it out.
        assert_eq!(header(header::STRICT_TRANSPORT_SECURITY), "", "{path}");
        let nonce = policy
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .ok_or(format!("{path}: no nonce in {policy}"))?
            .to_string();
        assert!(nonce.len() >= 16, "{path}: {nonce}");
        let scripts_rule = policy
            .split(';')
            .find(|rule| rule.trim().starts_with("script-src"))
            .unwrap_or_default();
        assert!(
            !scripts_rule.contains("'unsafe-inline'") && !scripts_rule.contains("'unsafe-eval'"),
            "{path}: {policy}"
        );
        let scripts = page.body.matches("<script").count();
        assert!(scripts > 0, "{path}: the hydration script");
        let with_nonce = page.body.matches(&format!("nonce=\"{nonce}\"")).count();
        assert!(
            with_nonce >= scripts,
            "{path}: {scripts} scripts, {with_nonce} with the nonce"
        );
        let again = browser.get(path).await?;
        assert!(!again.body.contains(&nonce), "{path}: a nonce is used once");
    }
    Ok(())
}

/// A refused form comes back to its page with the refusal in the URL, as
/// Leptos does it for a browser without script. The server signs the refusals
/// it sends; a link with words of someone else's in it is sent on to the same
/// page without them, before the page (or its script) can show them.
#[tokio::test]
async fn a_crafted_refusal_in_a_link_never_reaches_the_page() -> TestResult {
    let app = app().await?;
    let mut browser = Browser::new(&app);
    // A wrong password, without script: back to the page with a signed refusal.
    let refused = browser
        .post_form(
            Login::PATH,
            &[("username", "alice"), ("password", "wrong")],
            ORIGIN,
        )
        .await?;
    let back = refused.location().to_string();
    assert!(
        back.contains("__err=") && back.contains("__errsig="),
        "{back}"
    );
    let path = back.trim_start_matches(ORIGIN);
    let page = browser.get(path).await?;
    assert_eq!(page.status, StatusCode::OK, "{path}");
    assert!(
        page.body.contains("password is wrong"),
        "the real refusal shows"
    );

    // Someone else's words, unsigned or with a signature of another text.
    let crafted = "eyJGb3JiaWRkZW4iOiJZb3VyIGFjY291bnQgaXMgbG9ja2VkOiBjYWxsIDU1NS0wMTAwIn0=";
    let form = Login::PATH.replace('/', "%2F");
    let signature = back.rsplit("__errsig=").next().unwrap_or_default();
    for link in [
        format!("/login?next=%2Fassets&__path={form}&__err={crafted}"),
        format!("/login?next=%2Fassets&__path={form}&__err={crafted}&__errsig={signature}"),
    ] {
        let answer = browser.get(&link).await?;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{link}");
        assert_eq!(answer.location(), "/login?next=%2Fassets", "{link}");
        assert!(!answer.body.contains("555-0100"));
        let page = browser.get(answer.location()).await?;
        assert!(!page.body.contains("555-0100"), "{link}");
    }
    // A post the server cannot read is refused in our words: the parser's
    // message would quote the posted text, and the server would sign it.
    let phrase = "Your reviewer rights expire today, confirm at evil.example";
    let unreadable = browser
        .post_form(
            Decide::PATH,
            &[
                ("id", "1"),
                ("revision", "1"),
                ("decision", phrase),
                ("comment", ""),
            ],
            ORIGIN,
        )
        .await?;
    let back = unreadable.location().trim_start_matches(ORIGIN).to_string();
    assert!(back.contains("__errsig="), "{back}");
    let page = browser.get(&back).await?;
    assert_eq!(page.status, StatusCode::OK, "{back}");
    assert!(
        !page.body.contains("evil.example"),
        "the posted text is not shown"
    );
    assert!(!back.contains("evil.example"), "nor carried: {back}");
    Ok(())
}

#[tokio::test]
async fn people_see_their_sessions_and_end_one_elsewhere() -> TestResult {
    let app = app().await?;
    let mut laptop = Browser::new(&app);
    let mut phone = Browser::new(&app);
    let mut bob = Browser::new(&app);
    laptop.sign_in("alice", "/catalog").await?;
    phone.sign_in("alice", "/catalog").await?;
    bob.sign_in("bob", "/catalog").await?;
    assert_eq!(signed_in_sessions(&app).await?, 3);

    let page = laptop.get("/account/sessions").await?;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.body.matches("data-testid=\"session\"").count(),
        2,
        "alice's two sessions, not bob's"
    );
    assert!(page.body.contains("this browser"));
    assert!(page.body.contains("PortalTest/1.0"));
    assert!(page.body.contains("payments"));
    assert!(
        !page.body.contains(&phone.session_id()),
        "session ids, the credentials, never reach a page"
    );

    let phone_handle: String = sqlx::query_scalar("SELECT handle FROM sessions WHERE id = $1")
        .bind(slipway_server::storage::sessions::stored_key(
            &phone.session_id(),
        ))
        .fetch_one(&app.state.db.pool)
        .await?;
    assert!(page.body.contains(&phone_handle));
    // Bob cannot end alice's session.
    bob.post_form(EndSession::PATH, &[("handle", &phone_handle)], ORIGIN)
        .await?;
    assert_eq!(signed_in_sessions(&app).await?, 3);
    laptop
        .post_form(EndSession::PATH, &[("handle", &phone_handle)], ORIGIN)
        .await?;
    assert_eq!(signed_in_sessions(&app).await?, 2);
    let phone_now = phone.get("/catalog").await?;
    assert_eq!(phone_now.status, StatusCode::SEE_OTHER);
    assert_eq!(phone_now.location(), "/login?next=/catalog");
    Ok(())
}

#[tokio::test]
async fn signing_out_deletes_the_session_on_the_server() -> TestResult {
    let app = app().await?;
    let mut browser = Browser::new(&app);
    browser.sign_in("alice", "/catalog").await?;
    let stolen = browser.cookie.clone();
    assert_eq!(signed_in_sessions(&app).await?, 1);
    browser.post_form(Logout::PATH, &[], ORIGIN).await?;
    assert_eq!(signed_in_sessions(&app).await?, 0);
    let signed_out: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = 'user.sign_out'")
            .fetch_one(&app.state.db.pool)
            .await?;
    assert_eq!(signed_out, 1);
    // The old cookie, replayed, no longer opens anything.
    let mut thief = Browser::new(&app);
    thief.cookie = stolen;
    let answer = thief.get("/catalog").await?;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    Ok(())
}

/// The portal's settings from the command line, with `--public-url` set.
fn served_at(
    public_url: &str,
    dir: &std::path::Path,
) -> TestResult<slipway_server::config::Settings> {
    use clap::Parser;
    use slipway_server::config::{Cli, Command};
    let catalog = common::shipped_catalog();
    let cli = Cli::try_parse_from([
        "slipway",
        "serve",
        "--public-url",
        public_url,
        "--data-dir",
        dir.to_str().ok_or("path")?,
        "--catalog",
        catalog.to_str().ok_or("path")?,
    ])?;
    let Command::Serve(serve) = cli.command else {
        return Err("not parsed as serve".into());
    };
    Ok(serve.check()?)
}

/// An app whose cookie and sign-in settings are those `serve --public-url` gives.
async fn app_served_at(public_url: &str) -> TestResult<TestApp> {
    let dir = tempfile::tempdir()?;
    let served = served_at(public_url, dir.path())?;
    Ok(TestApp::start_configured(Engine::Sqlite, None, |settings| {
        settings.secure_cookies = served.secure_cookies;
        settings.identity = served.identity;
    })
    .await?
    .ok_or("SQLite is always available")?)
}

#[tokio::test]
async fn behind_an_https_public_url_the_session_cookie_takes_the_host_prefix() -> TestResult {
    let app = app_served_at("https://slipway.test").await?;
    let mut browser = Browser::new(&app);
    let answer = browser
        .sign_in_from("alice", "/catalog", "https://slipway.test")
        .await?;
    assert!(answer.status.is_redirection(), "{}", answer.status);
    let cookies = answer.set_cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = &cookies[0];
    assert!(cookie.starts_with("__Host-slipway_session="), "{cookie}");
    let attributes: Vec<&str> = cookie.split(';').skip(1).map(str::trim).collect();
    for wanted in ["Secure", "Path=/", "HttpOnly", "SameSite=Lax"] {
        assert!(attributes.contains(&wanted), "{wanted} missing: {cookie}");
    }
    assert!(
        !attributes
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("domain")),
        "a __Host- cookie has no Domain: {cookie}"
    );
    assert_eq!(signed_in_sessions(&app).await?, 1);
    // The browser sends it back under that name, and it opens the portal.
    let page = browser.get("/catalog").await?;
    assert_eq!(page.status, StatusCode::OK, "{}", page.location());

    // Served over plain http, the cookie keeps its plain name and is not Secure.
    let app = app_served_at("http://slipway.test").await?;
    let mut browser = Browser::new(&app);
    let answer = browser.sign_in("alice", "/catalog").await?;
    let cookies = answer.set_cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = &cookies[0];
    assert!(cookie.starts_with("slipway_session="), "{cookie}");
    assert!(!cookie.split(';').any(|a| a.trim() == "Secure"), "{cookie}");
    Ok(())
}

#[tokio::test]
async fn a_throttled_client_address_cannot_sign_in_while_another_can() -> TestResult {
    let app = app().await?;
    // The address has just had its twentieth failure: locked for a minute.
    let now = slipway_server::storage::now_millis();
    sqlx::query(
        "INSERT INTO sign_in_failures (subject, failures, last_failure_at, locked_until) \
         VALUES ('addr:198.51.100.7', 20, $1, $2)",
    )
    .bind(now)
    .bind(now + 60_000)
    .execute(&app.state.db.pool)
    .await?;
    let mut locked = Browser::new(&app);
    locked.address = Some("198.51.100.7:40000".parse()?);
    locked.sign_in("alice", "/catalog").await?;
    assert_eq!(
        signed_in_sessions(&app).await?,
        0,
        "the right password waits too"
    );
    // Refused unchecked: counted, but no audit event each (a flood of them must
    // not grow the trail); the failure that started the lock was audited.
    let audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'user.sign_in_failed'",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    assert_eq!(audited, 0);
    assert_eq!(app.state.metrics.sign_ins_throttled.get(), 1);
    let mut other = Browser::new(&app);
    other.address = Some("198.51.100.8:40000".parse()?);
    other.sign_in("alice", "/catalog").await?;
    assert_eq!(signed_in_sessions(&app).await?, 1);
    Ok(())
}

/// Submits a namespace for alice's team through the services.
async fn alices_namespace(app: &TestApp, name: &str, environment: &str) -> TestResult<i64> {
    let alice = app.user("alice").await?;
    let id = slipway_server::services::requests::submit(
        &app.state,
        &alice,
        &common::draft(
            "k8s-namespace",
            common::namespace_params(name, "payments", environment, 1),
        ),
    )
    .await?;
    Ok(id.0)
}

#[tokio::test]
async fn list_pages_link_newer_and_older_and_keep_their_filters_in_the_url() -> TestResult {
    let app = app().await?;
    let mut ids = Vec::new();
    for (name, environment) in [
        ("pa", "prod"),
        ("pb", "prod"),
        ("pc", "prod"),
        ("da", "dev"),
    ] {
        ids.push(alices_namespace(&app, name, environment).await?);
    }
    let mut browser = Browser::new(&app);
    browser.sign_in("alice", "/catalog").await?;

    // The first page: the newest two, a way to older ones, none to newer ones.
    let first = browser.get("/requests?limit=2").await?;
    assert_eq!(first.status, StatusCode::OK);
    assert!(
        first.body.contains(&format!(">#{}<", ids[3])),
        "{}",
        first.body
    );
    assert!(first.body.contains(&format!(">#{}<", ids[2])));
    assert!(!first.body.contains(&format!(">#{}<", ids[1])));
    let older = format!("href=\"?before={}&amp;limit=2\"", ids[2]);
    assert!(
        first.body.contains(&older),
        "no Older link {older}: {}",
        first.body
    );
    assert!(first.body.contains("Older →") && first.body.contains("rel=\"next\""));
    assert!(
        !first.body.contains("rel=\"prev\""),
        "the newest page links to no newer one"
    );

    // Following it: the older two, and the way back.
    let second = browser
        .get(&format!("/requests?before={}&limit=2", ids[2]))
        .await?;
    assert!(
        second.body.contains(&format!(">#{}<", ids[1]))
            && second.body.contains(&format!(">#{}<", ids[0]))
    );
    let newer = format!("href=\"?after={}&amp;limit=2\"", ids[1]);
    assert!(
        second.body.contains(&newer),
        "no Newer link {newer}: {}",
        second.body
    );
    assert!(
        !second.body.contains("rel=\"next\""),
        "the oldest page links to no older one"
    );
    let back = browser
        .get(&format!("/requests?after={}&limit=2", ids[1]))
        .await?;
    assert!(
        back.body.contains(&format!(">#{}<", ids[3]))
            && back.body.contains(&format!(">#{}<", ids[2]))
    );

    // Filters live in the URL: the view, the form's values and the links keep them.
    let dev = browser
        .get("/requests?environment=dev&type=k8s-namespace&limit=1")
        .await?;
    assert!(dev.body.contains(&format!(">#{}<", ids[3])));
    assert!(!dev.body.contains(&format!(">#{}<", ids[2])));
    assert!(
        dev.body.contains("<form method=\"get\" action=\"\""),
        "{}",
        dev.body
    );
    assert!(
        dev.body
            .contains("<label for=\"mine-environment\">Environment</label>")
    );
    assert!(dev.body.contains("value=\"dev\" selected"), "{}", dev.body);
    let prod = browser
        .get("/requests?environment=prod&state=in_review&limit=1")
        .await?;
    let older = format!(
        "href=\"?environment=prod&amp;state=in_review&amp;before={}&amp;limit=1\"",
        ids[2]
    );
    assert!(prod.body.contains(&older), "{older}: {}", prod.body);

    // An empty page says why; a bad value is named, not a failure.
    let none = browser.get("/requests?environment=staging").await?;
    assert_eq!(none.status, StatusCode::OK);
    assert!(
        none.body.contains("Nothing matches these filters."),
        "{}",
        none.body
    );
    let bad = browser.get("/requests?created_from=someday").await?;
    assert!(bad.body.contains("created_from"), "{}", bad.body);
    assert!(bad.body.contains("role=\"alert\""));
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "as the API answers it"
    );

    // The other lists take the same links and filters.
    app.run_jobs().await?;
    let assets = browser.get("/assets?q=da&environment=dev").await?;
    assert!(assets.body.contains("payments-da-dev"), "{}", assets.body);
    assert!(
        assets.body.contains("name=\"q\"") && assets.body.contains("value=\"da\""),
        "{}",
        assets.body
    );
    let nothing = browser.get("/assets?q=%22NEAR(*").await?;
    assert_eq!(nothing.status, StatusCode::OK);
    assert!(
        nothing.body.contains("Nothing matches these filters."),
        "{}",
        nothing.body
    );
    let mut bob = Browser::new(&app);
    bob.sign_in("bob", "/catalog").await?;
    let queue = bob.get("/reviews?team=payments&limit=2").await?;
    assert!(
        queue.body.contains(&format!(">#{}<", ids[2])),
        "{}",
        queue.body
    );
    assert!(
        queue.body.contains(&format!(
            "href=\"?team=payments&amp;before={}&amp;limit=2\"",
            ids[1]
        )),
        "{}",
        queue.body
    );
    let mut carol = Browser::new(&app);
    carol.sign_in("carol", "/catalog").await?;
    let attention = carol.get("/attention?state=failed").await?;
    assert_eq!(attention.status, StatusCode::OK);
    assert!(
        attention.body.contains("Nothing matches these filters."),
        "{}",
        attention.body
    );

    // The audit log pages the same way and keeps its own filters in its links.
    let today =
        &slipway_server::storage::format_millis(slipway_server::storage::now_millis())[..10];
    let audit = carol
        .get(&format!(
            "/audit?action=request.submit&created_from={today}&limit=2"
        ))
        .await?;
    assert_eq!(audit.status, StatusCode::OK);
    assert_eq!(
        audit.body.matches("<code>request.submit</code>").count(),
        2,
        "{}",
        audit.body
    );
    let older = format!("href=\"?created_from={today}&amp;action=request.submit&amp;before=");
    assert!(audit.body.contains(&older), "{older}: {}", audit.body);
    assert!(
        audit
            .body
            .contains("<label for=\"audit-from\">From</label>")
    );
    assert!(
        audit.body.contains(&format!("value=\"{today}\"")),
        "{}",
        audit.body
    );
    let yesterday = carol.get("/audit?created_to=2001-01-01").await?;
    assert!(
        yesterday.body.contains("Nothing matches these filters."),
        "{}",
        yesterday.body
    );
    let bad = carol.get("/audit?created_from=someday").await?;
    assert!(bad.body.contains("created_from") && bad.body.contains("role=\"alert\""));
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Someone the list is not for is told so first, as on the API.
    let mut alice = Browser::new(&app);
    alice.sign_in("alice", "/catalog").await?;
    for page in [
        "/audit?created_from=someday",
        "/attention?state=sleeping",
        "/reviews?limit=x&created_to=never",
    ] {
        let refused = alice.get(page).await?;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{page}: {}",
            refused.body
        );
        assert!(
            refused.body.contains("Not allowed. "),
            "{page}: {}",
            refused.body
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_signed_in_viewer_follows_a_request_live_and_the_page_shows_its_steps() -> TestResult {
    let app = app().await?;
    let alice = app.user("alice").await?;
    let id = app.namespace(&alice, "dev", "live").await?;
    let mut browser = Browser::new(&app);

    let signed_out = browser.get(&format!("/requests/{id}/events")).await?;
    assert_eq!(signed_out.status, StatusCode::UNAUTHORIZED);

    browser.sign_in("alice", "/catalog").await?;
    // The request has settled: the stream sends its whole story, then ends.
    let stream = browser.get(&format!("/requests/{id}/events")).await?;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(
        stream
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let kinds: Vec<&str> = stream
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        kinds,
        ["step", "line", "line", "step", "end"],
        "{}",
        stream.body
    );
    assert!(
        stream.body.contains("committing 3 file(s) to main"),
        "{}",
        stream.body
    );
    assert!(
        stream.body.contains(r#"data: {"state":"completed"}"#),
        "{}",
        stream.body
    );

    // A page already showing every event resumes after the last one: only the end.
    let after = stream
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .next_back()
        .ok_or("an event id")?;
    let resumed = browser
        .get(&format!("/requests/{id}/events?after={after}"))
        .await?;
    let kinds: Vec<&str> = resumed
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(kinds, ["end"], "{}", resumed.body);

    // Without script the page shows the steps and their logs as stored.
    let page = browser.get(&format!("/requests/{id}")).await?;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Execution steps"), "{}", page.body);
    assert!(
        page.body.contains("Step 1 (gitops), attempt 1: done"),
        "{}",
        page.body
    );
    // Viewing a request (which looks for a refused form's kept text) does not
    // write the session back: it changes only when its data does.
    let stored = || async {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT data, expires_at FROM sessions WHERE user_id IS NOT NULL",
        )
        .fetch_all(&app.state.db.pool)
        .await
    };
    let before = stored().await?;
    browser.get(&format!("/requests/{id}")).await?;
    assert_eq!(stored().await?, before, "a page view rewrote the session");
    Ok(())
}

/// The shipped catalog plus a type that generates a key and needs nothing outside
/// this process to complete: its change is one committed file.
async fn app_with_generated_key() -> TestResult<TestApp> {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    std::fs::create_dir_all(dir.path().join("templates/api-key"))?;
    std::fs::write(
        dir.path().join("templates/api-key/key.yaml.j2"),
        "name: {{ name }}\nsecret: {{ resource_name }}-key\n",
    )?;
    std::fs::write(
        dir.path().join("types/api-key.yaml"),
        r#"name: api-key
title: API key
description: A key for a service, made up by Slipway.
owner: platform
parameters:
  type: object
  additionalProperties: false
  required: [name]
  properties:
    name: { type: string, title: Name, pattern: "^[a-z]{2,20}$" }
naming: { template: "{{ name }}" }
review: { approvers: { role: reviewer }, auto_approve: { when: "true" } }
outputs:
  - { path: "keys/{{ name }}.yaml", template: api-key/key.yaml.j2 }
generated_secrets:
  - { name: key, title: API key, length: 40 }
"#,
    )?;
    Ok(TestApp::start_with_catalog(Engine::Sqlite, Some(dir))
        .await?
        .ok_or("SQLite is always available")?)
}

#[tokio::test]
async fn a_generated_secret_is_shown_once_to_its_requester_on_a_page_no_cache_keeps() -> TestResult
{
    use slipway_server::services::{requests, secrets};
    let app = app_with_generated_key().await?;
    let alice = app.user("alice").await?;
    let draft = common::draft("api-key", serde_json::json!({"name": "billing"}));
    let id = requests::submit(&app.state, &alice, &draft).await?;
    assert_eq!(app.run_jobs().await?, 1);
    let key = secrets::open_revision(&app.state, id, 1).await?;
    let key = key.get("key").ok_or("the key was generated")?.to_string();
    assert_eq!(key.len(), 40);
    let reveal = format!("/requests/{id}/secrets/key/reveal");

    let mut browser = Browser::new(&app);
    browser.sign_in("alice", "/catalog").await?;
    let page = browser.get(&format!("/requests/{id}")).await?;
    assert!(page.body.contains("Show the api key once"), "{}", page.body);
    assert!(page.body.contains(&format!("action=\"{reveal}\"")));
    assert!(!page.body.contains(&key));

    // A forged post from another site reveals nothing, and spends nothing.
    let forged = browser
        .post_form(&reveal, &[], "http://evil.example")
        .await?;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!forged.body.contains(&key));

    let mut bob = Browser::new(&app);
    bob.sign_in("bob", "/catalog").await?;
    let refused = bob.post_form(&reveal, &[], ORIGIN).await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("only the requester may see a generated secret")
    );
    assert!(!refused.body.contains(&key));

    let shown = browser.post_form(&reveal, &[], ORIGIN).await?;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert!(
        shown.body.contains(&format!("value=\"{key}\"")),
        "{}",
        shown.body
    );
    assert!(
        shown
            .body
            .contains("<label for=\"secret-value\">API key</label>")
    );
    assert_eq!(
        shown
            .headers
            .get(header::CACHE_CONTROL)
            .map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    let policy = shown
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(policy.contains("script-src 'none'"), "{policy}");

    let again = browser.post_form(&reveal, &[], ORIGIN).await?;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again.body.contains("was already shown to alice on"),
        "{}",
        again.body
    );
    assert!(!again.body.contains(&key));
    let after = browser.get(&format!("/requests/{id}")).await?;
    assert!(!after.body.contains("Show the api key once"));
    assert!(
        after.body.contains("it was shown to alice on"),
        "{}",
        after.body
    );

    // Signed out, the post is refused like any other.
    let mut stranger = Browser::new(&app);
    let anonymous = stranger.post_form(&reveal, &[], ORIGIN).await?;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    Ok(())
}

/// The secret of a token made from the portal is on the page that answers the form
/// and nowhere else: no session, no row, no later page.
#[tokio::test]
async fn a_new_token_is_shown_once_on_its_own_page_and_kept_nowhere() -> TestResult {
    use slipway_server::services::tokens;
    let app = app().await?;
    let mut browser = Browser::new(&app);
    browser.sign_in("alice", "/catalog").await?;
    let page = browser.get("/account/tokens").await?;
    assert!(
        page.body.contains("action=\"/account/tokens/new\""),
        "{}",
        page.body
    );
    let fields = [
        ("name", "ci of payments"),
        ("expires_in_days", "30"),
        ("scope_read", "on"),
        ("scope_request", "on"),
    ];

    let forged = browser
        .post_form("/account/tokens/new", &fields, "http://evil.example")
        .await?;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(app.count("api_tokens").await?, 0);

    for (bad, says) in [
        (vec![("name", "x"), ("expires_in_days", "30")], "scopes"),
        (
            vec![
                ("name", ""),
                ("expires_in_days", "30"),
                ("scope_read", "on"),
            ],
            "name",
        ),
        (
            vec![
                ("name", "x"),
                ("expires_in_days", "0"),
                ("scope_read", "on"),
            ],
            "expires_in_days",
        ),
        (
            vec![
                ("name", "x"),
                ("expires_in_days", "soon"),
                ("scope_read", "on"),
            ],
            "expires_in_days",
        ),
        (
            vec![
                ("name", "x"),
                ("expires_in_days", "9"),
                ("scope_root", "on"),
            ],
            "scope_root",
        ),
    ] {
        let refused = browser
            .post_form("/account/tokens/new", &bad, ORIGIN)
            .await?;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{bad:?}: {}",
            refused.body
        );
        assert!(refused.body.contains(says), "{bad:?}: {}", refused.body);
        assert!(refused.body.contains("role=\"alert\""));
    }
    // A form body past what these forms hold is refused before it is read.
    let long_name = "n".repeat(slipway_server::http::FORM_BODY_BYTES);
    let fields_too_long = [("name", long_name.as_str()), ("expires_in_days", "9")];
    let refused = browser
        .post_form("/account/tokens/new", &fields_too_long, ORIGIN)
        .await?;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.contains("could not be read (") && refused.body.contains("limit"),
        "{}",
        refused.body
    );
    assert_eq!(app.count("api_tokens").await?, 0);

    let shown = browser
        .post_form("/account/tokens/new", &fields, ORIGIN)
        .await?;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(
        shown
            .headers
            .get(header::CACHE_CONTROL)
            .map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    let start = shown
        .body
        .find("value=\"slw_")
        .ok_or("no secret on the page")?
        + 7;
    let secret: String = shown.body[start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    assert_eq!(secret.len(), 44, "{secret}");
    let caller = tokens::authenticate(&app.state, &secret, Default::default()).await?;
    assert_eq!(caller.username, "alice");
    assert_eq!(
        caller.scopes,
        Some(vec![
            slipway_core::views::TokenScope::Read,
            slipway_core::views::TokenScope::Request
        ])
    );

    let later = browser.get("/account/tokens").await?;
    assert!(later.body.contains("ci of payments"));
    assert!(!later.body.contains(&secret));
    let stored = app.dump_database().await?;
    assert!(!stored.contains(&secret), "the secret is stored somewhere");
    assert!(
        !stored.contains(&secret[4..]),
        "the secret is stored somewhere"
    );

    let mut stranger = Browser::new(&app);
    let anonymous = stranger
        .post_form("/account/tokens/new", &fields, ORIGIN)
        .await?;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.count("api_tokens").await?, 1);
    Ok(())
}

/// A chat link code from the account page is shown on its own page, kept only as a
/// hash, and links the chat account it is sent from, once.
#[tokio::test]
async fn a_chat_link_code_is_shown_once_and_links_once() -> TestResult {
    use slipway_server::services::chat;
    let app = app().await?;
    let mut browser = Browser::new(&app);
    browser.sign_in("alice", "/catalog").await?;
    let page = browser.get("/account/sessions").await?;
    assert!(
        page.body.contains("action=\"/account/chat-link/new\""),
        "{}",
        page.body
    );
    let forged = browser
        .post_form("/account/chat-link/new", &[], "http://evil.example")
        .await?;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(app.count("chat_link_codes").await?, 0);

    let shown = browser
        .post_form("/account/chat-link/new", &[], ORIGIN)
        .await?;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let start = shown
        .body
        .find("readonly value=\"")
        .ok_or("no code on the page")?
        + 16;
    let code: String = shown.body[start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    assert_eq!(code.len(), 14, "{code}");
    assert!(
        !app.dump_database().await?.contains(&code),
        "the code is stored"
    );
    let linked = chat::link(
        &app.state,
        "@alice:chat.test",
        "!room:chat.test",
        &code,
        "$e1",
    )
    .await?;
    assert_eq!(linked.username, "alice");
    assert!(
        chat::link(
            &app.state,
            "@eve:chat.test",
            "!room:chat.test",
            &code,
            "$e2"
        )
        .await
        .is_err(),
        "a code links once"
    );

    let mut stranger = Browser::new(&app);
    let anonymous = stranger
        .post_form("/account/chat-link/new", &[], ORIGIN)
        .await?;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.count("chat_link_codes").await?, 1);
    Ok(())
}

/// Without ChatOps set up, the account page offers no chat link code (nothing
/// could take it) and says why; a post made anyway makes none.
#[tokio::test]
async fn no_chat_link_code_is_offered_without_chatops() -> TestResult {
    let app = TestApp::start_configured(Engine::Sqlite, None, |settings| settings.chat = None)
        .await?
        .ok_or("SQLite is always available")?;
    let mut browser = Browser::new(&app);
    browser.sign_in("alice", "/catalog").await?;
    let page = browser.get("/account/sessions").await?;
    assert!(
        !page.body.contains("/account/chat-link/new"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("not connected to a chat"),
        "{}",
        page.body
    );
    let refused = browser
        .post_form("/account/chat-link/new", &[], ORIGIN)
        .await?;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(refused.body.contains("not set up"), "{}", refused.body);
    assert_eq!(app.count("chat_link_codes").await?, 0);
    Ok(())
}

/// The menu offers the lists the policy lets the person open: with namespaces
/// approved by the platform role, a platform engineer finds the review queue in it
/// and the request waiting there; a requester finds none of the restricted lists.
#[tokio::test]
async fn the_menu_offers_the_lists_the_policy_opens() -> TestResult {
    use slipway_core::views::Role;
    use slipway_server::services::requests;
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    let path = dir.path().join("types/k8s-namespace.yaml");
    let shipped = std::fs::read_to_string(&path)?;
    let reviewer = "approvers:\n    role: reviewer";
    assert!(shipped.contains(reviewer));
    std::fs::write(
        &path,
        shipped.replace(reviewer, "approvers:\n    role: platform"),
    )?;
    let app = TestApp::start_with_catalog(Engine::Sqlite, Some(dir))
        .await?
        .ok_or("SQLite is always available")?;
    let hash = slipway_server::services::auth::hash_password("pia-demo-pw")?;
    let mut conn = app.state.db.pool.acquire().await?;
    slipway_server::storage::users::insert(
        &mut conn,
        &slipway_server::storage::users::NewUser {
            username: "pia",
            display_name: "Pia (platform)",
            password_hash: Some(&hash),
            roles: &[Role::Platform],
            teams: &["platform".to_string()],
        },
    )
    .await?;
    drop(conn);
    let alice = app.user("alice").await?;
    let draft = common::draft(
        "k8s-namespace",
        common::namespace_params("menu", "payments", "prod", 1),
    );
    let id = requests::submit(&app.state, &alice, &draft).await?;

    let links = |body: &str| {
        ["/reviews", "/attention", "/audit", "/metrics/flow"]
            .map(|path| body.contains(&format!("href=\"{path}\"")))
    };
    for (who, want) in [
        ("pia", [true, true, true, true]),
        ("bob", [true, false, false, false]),
        ("alice", [false, false, false, false]),
        ("carol", [true, true, true, true]),
    ] {
        let mut browser = Browser::new(&app);
        browser.sign_in(who, "/catalog").await?;
        let page = browser.get("/catalog").await?;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("aria-label=\"Main\""), "{}", page.body);
        assert_eq!(links(&page.body), want, "{who}'s menu: {}", page.body);
    }
    let mut pia = Browser::new(&app);
    pia.sign_in("pia", "/reviews").await?;
    let queue = pia.get("/reviews").await?;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.body);
    assert!(queue.body.contains(&format!(">#{id}<")), "{}", queue.body);
    Ok(())
}

#[tokio::test]
async fn the_flow_metrics_page_draws_its_charts_with_tables_beside_them() -> TestResult {
    let app = app().await?;
    alices_namespace(&app, "metrics", "dev").await?;
    app.run_jobs().await?;
    let mut carol = Browser::new(&app);
    carol.sign_in("carol", "/metrics/flow").await?;
    let page = carol.get("/metrics/flow").await?;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    // Four charts, each an image with a title and a description for screen readers.
    assert_eq!(body.matches("<svg").count(), 4, "{body}");
    for id in ["flow-steps", "flow-lead", "flow-time", "flow-rates"] {
        assert!(
            body.contains(&format!(
                "aria-labelledby=\"{id}-title\" aria-describedby=\"{id}-desc\""
            )),
            "{id}: {body}"
        );
    }
    assert!(body.contains("<title id=\"flow-lead-title\">Lead time by week</title>"));
    // The same figures as tables: per step, per week, per type.
    for class in ["flow-steps", "flow-trend", "flow-types"] {
        assert!(
            body.contains(&format!("class=\"list {class}\"")),
            "{class}: {body}"
        );
    }
    assert!(body.contains("<th scope=\"row\">Executing</th>"), "{body}");
    // Wait or touch is said in each bar's label, not by its colour alone.
    assert!(body.contains(">Executing (touch)</text>"), "{body}");
    assert!(body.contains(" (wait)</text>"), "{body}");
    assert!(body.contains(">k8s-namespace</a>"), "{body}");
    // Auto-approved, so the one request shows as 100% auto-approved.
    assert!(
        body.contains("<dt>Auto-approved</dt><dd>100%</dd>"),
        "{body}"
    );
    // Completed: nothing is in the flow now, and nothing is drawn for it.
    assert!(body.contains("No request is in the flow now."), "{body}");

    // A request left in review for three days waits now, in a table and a chart,
    // before any window's figures count its time in review.
    let stuck = alices_namespace(&app, "stuck", "prod").await?;
    let entered = slipway_server::storage::now_millis() - 3 * 24 * 3_600_000;
    app.exec(&format!(
        "UPDATE requests SET updated_at = {entered} WHERE id = {stuck}"
    ))
    .await?;
    let page = carol.get("/metrics/flow?weeks=4").await?;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("Waiting now: all types"), "{body}");
    assert!(body.contains("class=\"list flow-waiting\""), "{body}");
    assert!(
        body.contains(
            "<th scope=\"row\">In review</th><td>wait</td><td>1</td><td>3.0 d</td><td>3.0 d</td>"
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "aria-labelledby=\"flow-waiting-title\" aria-describedby=\"flow-waiting-desc\""
        ),
        "{body}"
    );
    assert!(body.contains(">In review (wait): 1</text>"), "{body}");
    assert_eq!(body.matches("<svg").count(), 5, "{body}");
    assert!(body.contains("Times left in the window"), "{body}");
    // Narrowed to a type, the section shows that type's requests.
    let narrowed = carol
        .get("/metrics/flow?weeks=4&type=k8s-namespace")
        .await?;
    assert!(
        narrowed.body.contains("Waiting now: k8s-namespace")
            && narrowed
                .body
                .contains("<td>wait</td><td>1</td><td>3.0 d</td>"),
        "{}",
        narrowed.body
    );

    let narrowed = carol
        .get("/metrics/flow?weeks=4&type=k8s-namespace")
        .await?;
    assert_eq!(narrowed.status, StatusCode::OK);
    assert!(narrowed.body.contains("Trend by week: k8s-namespace"));
    // A type's creations by default, each of its actions on its own row and when
    // asked for, and every request together when asked for.
    assert!(
        narrowed
            .body
            .contains("Trend by week: k8s-namespace, creations")
            && narrowed
                .body
                .contains("Time per step: k8s-namespace, creations"),
        "{}",
        narrowed.body
    );
    assert!(
        narrowed.body.contains("<th scope=\"col\">What</th>")
            && narrowed.body.contains("<td>creations</td>"),
        "{}",
        narrowed.body
    );
    assert!(
        narrowed
            .body
            .contains("<label for=\"flow-action\">What</label>")
            && narrowed.body.contains("<option value=\"*\""),
        "{}",
        narrowed.body
    );
    let resizes = carol
        .get("/metrics/flow?weeks=4&type=k8s-namespace&action=resize")
        .await?;
    assert_eq!(resizes.status, StatusCode::OK, "{}", resizes.body);
    assert!(
        resizes
            .body
            .contains("Trend by week: k8s-namespace, resize")
            && resizes.body.contains("<option value=\"resize\" selected"),
        "{}",
        resizes.body
    );
    let every = carol.get("/metrics/flow?weeks=4&action=*").await?;
    assert_eq!(every.status, StatusCode::OK, "{}", every.body);
    assert!(
        every.body.contains("All types, every request"),
        "{}",
        every.body
    );
    for hostile in [
        "/metrics/flow?weeks=4&action=Re%20Size",
        "/metrics/flow?weeks=4&type=k8s-namespace&action=%3Cscript%3E",
        "/metrics/flow?weeks=4&action=%27%3B--",
    ] {
        let answer = carol.get(hostile).await?;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{hostile}: {}",
            answer.body
        );
        assert!(
            answer.body.contains("is not an action name")
                && answer.body.contains("aria-label=\"Window and type\"")
                && !answer.body.contains("<script>"),
            "{hostile}: {}",
            answer.body
        );
    }
    let bad = carol.get("/metrics/flow?weeks=99").await?;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    // Named as the API names it (before, "abc" read as 0: "got 0").
    let unread = carol.get("/metrics/flow?weeks=abc").await?;
    assert_eq!(
        unread.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unread.body
    );
    assert!(
        unread.body.contains("is not a whole number") && !unread.body.contains("got 0"),
        "{}",
        unread.body
    );

    let mut alice = Browser::new(&app);
    alice.sign_in("alice", "/metrics/flow").await?;
    let refused = alice.get("/metrics/flow").await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let refused_first = alice.get("/metrics/flow?weeks=abc").await?;
    assert_eq!(
        refused_first.status,
        StatusCode::FORBIDDEN,
        "{}",
        refused_first.body
    );
    assert!(!refused.body.contains("<svg"));
    assert!(
        !refused.body.contains("Window and type"),
        "no filters to the refused"
    );
    Ok(())
}

/// A GET of `path` with `cookie`, as a browser's request to the router.
fn page_request(path: &str, cookie: &str) -> TestResult<Request<Body>> {
    Ok(Request::get(path)
        .header(header::HOST, HOST)
        .header(header::ACCEPT, "text/html")
        .header(header::COOKIE, cookie)
        .body(Body::empty())?)
}

/// Clients that hang up mid-render (a closed tab, a load generator stopping) must
/// not take a runtime thread with them: Leptos's reactive graph can deadlock when
/// a page's owner tree is dropped while a suspended part still runs, so pages run
/// to their end whatever the client does. A thousand renders are abandoned at
/// spread-out moments on two threads, then every page still answers in time.
/// (The hang was caught under `bench/scale`'s load, with a stack from gdb; this
/// test has not reproduced it in-process without the guard, so it watches for the
/// symptom rather than proving the cause.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_abandoned_mid_render_leave_the_server_answering() -> TestResult {
    use std::time::Duration;
    let app = app().await?;
    let mut browser = Browser::new(&app);
    let signed_in = browser.sign_in("carol", "/requests").await?;
    assert!(signed_in.status.is_redirection(), "{}", signed_in.status);
    let cookie = browser.cookie.clone().ok_or("carol has a session")?;
    let pages = ["/requests", "/assets", "/audit", "/attention", "/catalog"];
    let mut abandoned = tokio::task::JoinSet::new();
    for i in 0..1000u64 {
        let router = browser.router.clone();
        let request = page_request(pages[i as usize % pages.len()], &cookie)?;
        // Spread the hang-ups over the whole render, from before it starts to after.
        let patience = Duration::from_micros((i * 7_919) % 20_000);
        abandoned.spawn(async move {
            let _ = tokio::time::timeout(patience, router.oneshot(request)).await;
        });
    }
    while abandoned.join_next().await.is_some() {}
    let mut answered = tokio::task::JoinSet::new();
    for i in 0..40 {
        let router = browser.router.clone();
        let request = page_request(pages[i % pages.len()], &cookie)?;
        answered.spawn(async move {
            tokio::time::timeout(Duration::from_secs(20), router.oneshot(request)).await
        });
    }
    while let Some(answer) = answered.join_next().await {
        let response = answer?.map_err(|_| "a page did not answer within 20 s")??;
        assert_eq!(response.status(), StatusCode::OK);
    }
    Ok(())
}

#[tokio::test]
async fn the_asset_page_links_its_catalog_info_and_the_link_downloads_yaml() -> TestResult {
    let app = app().await?;
    let alice = app.user("alice").await?;
    let request = app.namespace(&alice, "dev", "exported").await?;
    let asset: i64 = sqlx::query_scalar("SELECT id FROM assets WHERE request_id = $1")
        .bind(request.0)
        .fetch_one(&app.state.db.pool)
        .await?;
    let download = format!("/assets/{asset}/catalog-info.yaml");

    // Signed out, the download sends the visitor to sign in and back.
    let mut browser = Browser::new(&app);
    let signed_out = browser.get(&download).await?;
    assert!(signed_out.status.is_redirection(), "{}", signed_out.status);
    assert_eq!(
        signed_out.location(),
        format!("/login?next=%2Fassets%2F{asset}%2Fcatalog-info.yaml")
    );

    browser.sign_in("alice", "/catalog").await?;
    let page = browser.get(&format!("/assets/{asset}")).await?;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(&format!("href=\"{download}\""))
            && page.body.contains("Download catalog-info.yaml"),
        "{}",
        page.body
    );
    // The parameters read in the order the form asked for them, by their titles.
    let row = |title: &str| page.body.find(&format!("<th scope=\"row\">{title}</th>"));
    let rows = ["Name", "Team", "Environment", "CPU limit (cores)"].map(row);
    assert!(
        rows.iter().all(Option::is_some) && rows.is_sorted(),
        "{rows:?} in {}",
        page.body
    );

    let yaml = browser.get(&download).await?;
    assert_eq!(yaml.status, StatusCode::OK, "{}", yaml.body);
    let header = |name| {
        yaml.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    assert_eq!(header(header::CONTENT_TYPE), "application/yaml");
    assert_eq!(
        header(header::CONTENT_DISPOSITION),
        "attachment; filename=\"catalog-info.yaml\""
    );
    assert_eq!(
        header(header::CACHE_CONTROL),
        "no-store",
        "what a session reads stays out of a shared computer's cache"
    );
    let entity: slipway_core::backstage::Entity = serde_norway::from_str(&yaml.body)?;
    assert_eq!(entity.metadata.title, "payments-exported-dev");
    assert_eq!(entity.spec.owner, "group:payments");
    assert_eq!(entity.spec.lifecycle, "experimental");
    // Links lead back to the portal at the address the browser used.
    assert_eq!(
        entity.metadata.annotations.get("backstage.io/view-url"),
        Some(&format!("{ORIGIN}/assets/{asset}"))
    );

    let missing = browser.get("/assets/987654/catalog-info.yaml").await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // A page for an asset that does not exist says so and offers a way on.
    let gone = browser.get("/assets/987654").await?;
    assert!(
        gone.body.contains("Not found: asset")
            && gone
                .body
                .contains("<a href=\"/catalog\">Go to the catalog</a>"),
        "{}",
        gone.body
    );
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    // An id that cannot be one is as missing, with the same status.
    for path in [
        "/assets/abc",
        "/assets/1e3",
        "/assets/abc/actions/resize",
        "/requests/abc",
        "/requests/1.5",
        "/requests/99999999999999999999",
        "/requests/abc/edit",
        "/assets/abc/catalog-info.yaml",
        "/assets/1.5/catalog-info.yaml",
    ] {
        let page = browser.get(path).await?;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.body.contains("Not found"), "{path}: {}", page.body);
    }
    // A name longer than any file's is missing too, not a file system error.
    let long = format!("/pkg/{}", "x".repeat(300));
    let page = browser.get(&long).await?;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    // So are the forms' own addresses, posted to.
    for path in [
        "/requests/abc/edit/submit",
        "/assets/abc/actions/resize/submit",
        "/requests/abc/secrets/key/reveal",
    ] {
        let page = browser.post_form(path, &[], ORIGIN).await?;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            page.body.contains("page not found"),
            "{path}: {}",
            page.body
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_assets_team_opens_an_action_form_from_its_page_and_the_request_shows_its_diff()
-> TestResult {
    let app = app().await?;
    let alice = app.user("alice").await?;
    let request = app.namespace(&alice, "prod", "shelf").await?;
    let asset: i64 = sqlx::query_scalar("SELECT id FROM assets WHERE request_id = $1")
        .bind(request.0)
        .fetch_one(&app.state.db.pool)
        .await?;
    let form_path = format!("/assets/{asset}/actions/resize");

    let mut owner = Browser::new(&app);
    owner.sign_in("alice", "/catalog").await?;
    let page = owner.get(&format!("/assets/{asset}")).await?;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(&format!("href=\"{form_path}\""))
            && page.body.contains(">Decommission<"),
        "{}",
        page.body
    );
    let form = owner.get(&form_path).await?;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body.contains("Change the quota: payments-shelf-prod"),
        "{}",
        form.body
    );
    assert!(form.body.contains("CPU limit (cores)"), "{}", form.body);

    // Another team is offered nothing, and its form is refused.
    let mut stranger = Browser::new(&app);
    stranger.sign_in("bob", "/catalog").await?;
    let page = stranger.get(&format!("/assets/{asset}")).await?;
    assert!(!page.body.contains(&form_path), "{}", page.body);
    let refused = stranger.get(&form_path).await?;
    assert!(
        refused.body.contains("not a member of team payments"),
        "{}",
        refused.body
    );

    // The reviewer reads the change against what is deployed.
    let draft = slipway_core::views::ActionDraft {
        params: serde_json::json!({"cpu_limit": 3, "memory_limit_gi": 4}),
        submit_key: "portal-resize".into(),
    };
    let id = slipway_server::services::actions::submit(
        &app.state,
        &alice,
        slipway_core::ids::AssetId(asset),
        "resize",
        &draft,
    )
    .await?;
    let review = stranger.get(&format!("/requests/{id}")).await?;
    assert_eq!(review.status, StatusCode::OK);
    assert!(
        review.body.contains("Changes against what is deployed")
            && review.body.contains("resourcequota.yaml"),
        "{}",
        review.body
    );
    Ok(())
}

/// A request page another site had the reviewer's browser load (its link or
/// pop-up) is shown but not counted as read: the requester could otherwise mark
/// a revision read and hide it from the reviewer's next diff.
#[tokio::test]
async fn a_page_another_site_opened_is_not_counted_as_a_reviewers_read() -> TestResult {
    let app = app().await?;
    let id = alices_namespace(&app, "ledger", "prod").await?;
    let mut bob = Browser::new(&app);
    bob.sign_in("bob", "/").await?;
    let page = format!("/requests/{id}");
    for (site, read) in [("cross-site", 0), ("same-site", 0), ("same-origin", 1)] {
        let answer = bob
            .send(
                Request::get(&page)
                    .header(header::HOST, HOST)
                    .header(header::ACCEPT, "text/html")
                    .header("sec-fetch-site", site)
                    .body(Body::empty())?,
            )
            .await?;
        assert_eq!(answer.status, StatusCode::OK, "{site}");
        assert!(answer.body.contains("ledger"), "{site}: the page is shown");
        assert_eq!(app.count("review_views").await?, read, "{site}");
    }
    Ok(())
}

/// A request form is an island: the type it is given is written into its page.
/// What reaches a requester is what the form shows and checks, never how the
/// platform carries a request out (steps, checks, monitoring, review policy).
#[tokio::test]
async fn a_requesters_form_pages_carry_nothing_of_how_a_request_is_carried_out() -> TestResult {
    let app = app().await?;
    let alice = app.user("alice").await?;
    let request = app.namespace(&alice, "prod", "plain").await?;
    let asset: i64 = sqlx::query_scalar("SELECT id FROM assets WHERE request_id = $1")
        .bind(request.0)
        .fetch_one(&app.state.db.pool)
        .await?;
    let mut browser = Browser::new(&app);
    browser.sign_in("alice", "/catalog").await?;
    // From the shipped catalog's steps, checks, monitoring, review and limits.
    let internals = [
        "ON_ERROR_STOP",
        "secret_env",
        "postgres_server",
        "SELECT current_user",
        "pg_stat_database_numbackends",
        "kube_resourcequota",
        "cnpg_collector_up",
        "git-file",
        "resourcequota.yaml.j2",
    ];
    let action_form = format!("/assets/{asset}/actions/resize");
    for path in [
        "/requests/new/shared-database",
        "/requests/new/postgres-database",
        "/requests/new/k8s-namespace",
        action_form.as_str(),
    ] {
        let page = browser.get(path).await?;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        assert!(
            page.body.contains("<leptos-island"),
            "{path}: {}",
            page.body
        );
        // The form still gets its naming rule, which the browser checks.
        assert!(page.body.contains("pattern_description"), "{path}");
        for internal in internals {
            assert!(
                !page.body.contains(internal),
                "{path} carries {internal:?}: {}",
                page.body
            );
        }
    }
    Ok(())
}

/// A type removed from the catalog keeps its history: its figures, its place in
/// the type filter and its trend. A window or type refused keeps the filters that
/// correct it, and a type's link keeps the window.
#[tokio::test]
async fn the_flow_metrics_page_keeps_a_retired_type_and_its_filters() -> TestResult {
    let app = app().await?;
    alices_namespace(&app, "retiring", "dev").await?;
    app.run_jobs().await?;
    app.exec("UPDATE flow_steps SET type_name = 'old-queue'")
        .await?;
    let mut carol = Browser::new(&app);
    carol.sign_in("carol", "/metrics/flow").await?;
    let page = carol.get("/metrics/flow?weeks=4").await?;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("<option value=\"old-queue\""), "{body}");
    assert!(
        body.contains("href=\"?weeks=4&amp;type=old-queue\""),
        "the type's link keeps the window: {body}"
    );
    assert!(
        body.contains(
            "<div tabindex=\"0\" role=\"region\" aria-label=\"Flow by type\" class=\"table-scroll\">"
        ),
        "{body}"
    );

    let narrowed = carol.get("/metrics/flow?weeks=4&type=old-queue").await?;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.body);
    assert!(
        narrowed.body.contains("Trend by week: old-queue"),
        "{}",
        narrowed.body
    );

    for refused in [
        "/metrics/flow?weeks=99&type=old-queue",
        "/metrics/flow?weeks=4&type=Old%20Queue%21",
    ] {
        let answer = carol.get(refused).await?;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{refused}: {}",
            answer.body
        );
        assert!(
            answer.body.contains("aria-label=\"Window and type\""),
            "{refused}: the filters stay: {}",
            answer.body
        );
    }
    Ok(())
}

/// A token past its expiry reads "expired", with nothing left to revoke; a
/// revocation the server refuses comes back to the page and says why.
#[tokio::test]
async fn an_expired_token_reads_expired_and_a_refused_revocation_says_why() -> TestResult {
    use slipway_core::views::{TokenRequest, TokenScope};
    use slipway_server::services::tokens;
    let app = app().await?;
    let token = |name: &str| TokenRequest {
        name: name.to_string(),
        scopes: vec![TokenScope::Read],
        expires_in_days: Some(1),
    };
    let alice = app.user("alice").await?;
    let old = tokens::create(&app.state, &alice, &token("old ci")).await?;
    tokens::create(&app.state, &alice, &token("live ci")).await?;
    let bob = app.user("bob").await?;
    let bobs = tokens::create(&app.state, &bob, &token("bob ci")).await?;
    let an_hour_ago = slipway_server::storage::now_millis() - 3_600_000;
    app.exec(&format!(
        "UPDATE api_tokens SET expires_at = {an_hour_ago} WHERE id = {}",
        old.token.id
    ))
    .await?;

    let mut browser = Browser::new(&app);
    browser.sign_in("alice", "/catalog").await?;
    let page = browser.get("/account/tokens").await?;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("<span class=\"badge\">expired</span>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("aria-label=\"Revoke old ci\""));
    assert!(page.body.contains("aria-label=\"Revoke live ci\""));
    assert!(!page.body.contains("role=\"alert\""));

    // Another person's token is not alice's to revoke.
    let refused = browser
        .send(
            Request::post(RevokeToken::PATH)
                .header(header::HOST, HOST)
                .header(header::ORIGIN, ORIGIN)
                .header(header::REFERER, format!("{ORIGIN}/account/tokens"))
                .header(header::ACCEPT, "text/html")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(browser::encoded(&[(
                    "id",
                    &bobs.token.id.to_string(),
                )])))?,
        )
        .await?;
    let back = refused.location().trim_start_matches(ORIGIN).to_string();
    assert!(
        back.starts_with("/account/tokens?") && back.contains("__err="),
        "{back}"
    );
    let page = browser.get(&back).await?;
    assert_eq!(page.status, StatusCode::OK, "{back}");
    // Said first, where the focus starts, and in the page's title.
    let notice = page
        .body
        .split("<div")
        .find(|tag| tag.contains("id=\"tokens-error\""))
        .ok_or("the refusal's notice")?;
    assert!(
        notice.contains("role=\"alert\"") && notice.contains("autofocus"),
        "{notice}"
    );
    assert!(page.body.contains("live token"), "{}", page.body);
    assert!(
        page.body
            .contains("<title>Error: API tokens · Slipway</title>"),
        "{}",
        page.body
    );
    assert_eq!(
        sqlx::query_scalar::<_, Option<i64>>("SELECT revoked_at FROM api_tokens WHERE id = $1")
            .bind(bobs.token.id)
            .fetch_one(&app.state.db.pool)
            .await?,
        None
    );
    Ok(())
}

/// Years of browsers leave many sessions: the page lists the newest used and says
/// there are more.
#[tokio::test]
async fn the_sessions_page_lists_the_newest_and_says_more_exist() -> TestResult {
    let app = app().await?;
    let mut laptop = Browser::new(&app);
    laptop.sign_in("alice", "/catalog").await?;
    let page = laptop.get("/account/sessions").await?;
    assert!(!page.body.contains("sessions-cut"), "{}", page.body);

    let (data, expires_at, user_id, created_at): (String, i64, i64, i64) = sqlx::query_as(
        "SELECT data, expires_at, user_id, created_at FROM sessions WHERE user_id IS NOT NULL",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    let older = app::api::SESSIONS_SHOWN + 20;
    for i in 0..older {
        sqlx::query(
            "INSERT INTO sessions (id, data, expires_at, user_id, handle, created_at, \
             last_seen_at, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(format!("older-session-{i}"))
        .bind(&data)
        .bind(expires_at)
        .bind(user_id)
        .bind(format!("older-handle-{i}"))
        .bind(created_at)
        .bind(created_at - 1_000 - i64::try_from(i)?)
        .bind(format!("Old browser {i}/1.0"))
        .execute(&app.state.db.pool)
        .await?;
    }
    let page = laptop.get("/account/sessions").await?;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.body.matches("data-testid=\"session\"").count(),
        app::api::SESSIONS_SHOWN
    );
    assert!(page.body.contains("this browser"), "the newest used");
    assert!(page.body.contains("Old browser 0/1.0"));
    assert!(
        !page
            .body
            .contains(&format!("Old browser {}/1.0", older - 1))
    );
    assert!(page.body.contains("data-testid=\"sessions-cut\""));
    Ok(())
}

/// An asset many others require shows the first relations it reads and says so.
#[tokio::test]
async fn an_asset_page_says_when_it_shows_only_some_of_its_relations() -> TestResult {
    let shown = app::pages::asset::RELATIONS_SHOWN;
    assert_eq!(
        i64::try_from(shown)?,
        slipway_server::storage::assets::RELATIONS_SHOWN,
        "the page counts what the storage reads"
    );
    let app = app().await?;
    let alice = app.user("alice").await?;
    let request = app.namespace(&alice, "dev", "hub").await?;
    let asset: i64 = sqlx::query_scalar("SELECT id FROM assets WHERE request_id = $1")
        .bind(request.0)
        .fetch_one(&app.state.db.pool)
        .await?;
    let mut browser = Browser::new(&app);
    browser.sign_in("alice", "/catalog").await?;
    let path = format!("/assets/{asset}");
    let page = browser.get(&path).await?;
    assert!(!page.body.contains("relations-cut"), "{}", page.body);

    for i in 0..shown {
        app.exec(&format!(
            "INSERT INTO assets (type_name, name, params, request_id, commit_id, state, \
             created_at, updated_at) SELECT type_name, name || '-dependant-{i}', params, \
             request_id, commit_id, state, created_at, updated_at FROM assets WHERE id = {asset}"
        ))
        .await?;
        app.exec(&format!(
            "INSERT INTO asset_relations (from_asset_id, to_asset_id, kind) \
             SELECT MAX(id), {asset}, 'requires' FROM assets"
        ))
        .await?;
    }
    let page = browser.get(&path).await?;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body.matches("required by ").count(), shown);
    assert!(
        page.body.contains("data-testid=\"relations-cut\""),
        "{}",
        page.body
    );
    Ok(())
}

/// A page asked for while the database cannot answer says so, with 503: the
/// session itself cannot be read then, and that is an outage, not a fault.
#[tokio::test]
async fn a_page_during_a_database_outage_asks_to_come_back() -> TestResult {
    let app = app().await?;
    let mut browser = Browser::new(&app);
    browser.sign_in("alice", "/catalog").await?;
    app.state.db.pool.close().await;
    app.state.db.writer.close().await;
    let page = browser.get("/requests").await?;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("cannot be reached right now"),
        "{}",
        page.body
    );
    Ok(())
}
