//! The lists — My requests, the review queue, needing attention and assets — page
//! both ways on keyset cursors, filter by type, team, environment, state and time,
//! cap their page size, show only what the policy lets the reader see, search
//! assets on a real text index whatever is typed, and read each page from an
//! index: on SQLite and (with `SLIPWAY_TEST_POSTGRES_URL`) on PostgreSQL.

#[macro_use]
#[allow(dead_code, unused_macros)]
mod common;

use common::{TestApp, TestResult, draft, namespace_params, postgres_params};
use serde_json::json;
use slipway_core::ids::RequestId;
use slipway_core::listing::{Cursor, Day, ListFilter, ListPage, MAX_PAGE_SIZE, PageRequest};
use slipway_core::state::RequestState;
use slipway_core::views::{ReviewDecision, Role};
use slipway_server::services::{Caller, ServiceError, assets, requests, reviews};
use slipway_server::storage::requests::{NewRequest, RequestList};
use slipway_server::storage::{self, Engine};

on_both_engines!(@one pages_go_both_ways_and_stay_put_across_an_insert, super::start_without_quota);
on_both_engines!(@one every_filter_narrows_each_list, super::start_without_quota);
on_both_engines!(@one a_page_holds_at_most_the_cap, super::start_without_quota);
on_both_engines!(@one nobody_sees_another_teams_request_in_any_list, super::start_without_quota);
on_both_engines!(@one asset_search_finds_words_and_survives_any_input, super::start_without_quota);
on_both_engines!(@one the_search_index_is_rebuilt_at_start, super::start_without_quota);
on_both_engines!(@one a_search_pages_alike_whether_its_words_are_common_or_rare, super::start_without_quota);
on_both_engines!(@one every_list_reads_from_an_index, super::start_without_quota);

/// The shipped catalog without the namespace quota: these tests need more requests
/// in one team and environment than it allows.
async fn start_without_quota(engine: Engine) -> TestResult<Option<TestApp>> {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    let path = dir.path().join("types/k8s-namespace.yaml");
    let shipped = std::fs::read_to_string(&path)?;
    let start = shipped.find("\nquota:").ok_or("no quota block")?;
    let end = shipped[start + 1..]
        .find("\nreview:")
        .ok_or("no review block")?
        + start
        + 1;
    std::fs::write(&path, format!("{}{}", &shipped[..start], &shipped[end..]))?;
    TestApp::start_with_catalog(engine, Some(dir)).await
}

fn page(cursor: Cursor, size: u32) -> PageRequest {
    PageRequest { cursor, size }
}

fn ids<T>(page: &ListPage<T>, id: impl Fn(&T) -> i64) -> Vec<i64> {
    page.items.iter().map(id).collect()
}

/// A namespace request of `who` for `team` in `environment`: approved at once in
/// dev (left unexecuted), in review elsewhere.
async fn namespace(
    app: &TestApp,
    who: &Caller,
    name: &str,
    team: &str,
    environment: &str,
) -> TestResult<RequestId> {
    Ok(requests::submit(
        &app.state,
        who,
        &draft(
            "k8s-namespace",
            namespace_params(name, team, environment, 1),
        ),
    )
    .await?)
}

/// A person with these roles in one team, signed in.
async fn person(app: &TestApp, name: &str, roles: &[Role], team: &str) -> TestResult<Caller> {
    let hash = slipway_server::services::auth::hash_password(&format!("{name}-demo-pw"))?;
    let teams = [team.to_string()];
    let mut conn = app.state.db.pool.acquire().await?;
    storage::users::insert(
        &mut conn,
        &storage::users::NewUser {
            username: name,
            display_name: name,
            password_hash: Some(&hash),
            roles,
            teams: &teams,
        },
    )
    .await?;
    drop(conn);
    app.user(name).await
}

fn mine_ids(page: &ListPage<slipway_core::views::RequestSummary>) -> Vec<i64> {
    ids(page, |r| r.id.0)
}

async fn pages_go_both_ways_and_stay_put_across_an_insert(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            namespace(app, &alice, &format!("p{i}"), "payments", "prod")
                .await?
                .0,
        );
    }
    let none = ListFilter::default();
    let mine = |cursor, size| requests::mine(&app.state, &alice, &none, page(cursor, size));

    let first = mine(Cursor::Newest, 3).await?;
    assert_eq!(mine_ids(&first), [made[6], made[5], made[4]]);
    assert_eq!((first.newer, first.older), (None, Some(made[4])));

    // A request arrives between two pages: the next page does not shift.
    let late = namespace(app, &alice, "late", "payments", "prod").await?.0;
    let second = mine(Cursor::Before(made[4]), 3).await?;
    assert_eq!(mine_ids(&second), [made[3], made[2], made[1]]);
    assert_eq!((second.newer, second.older), (Some(made[3]), Some(made[1])));
    let last = mine(Cursor::Before(made[1]), 3).await?;
    assert_eq!(mine_ids(&last), [made[0]]);
    assert_eq!((last.newer, last.older), (Some(made[0]), None));

    // Backwards: the page before the second is the first again, and then the newcomer.
    let back = mine(Cursor::After(made[3]), 3).await?;
    assert_eq!(mine_ids(&back), [made[6], made[5], made[4]]);
    assert_eq!((back.newer, back.older), (Some(made[6]), Some(made[4])));
    let newest = mine(Cursor::After(made[6]), 3).await?;
    assert_eq!(mine_ids(&newest), [late]);
    assert_eq!((newest.newer, newest.older), (None, Some(late)));
    // Past either end: empty, with the way back.
    let beyond = mine(Cursor::After(late), 3).await?;
    assert!(beyond.items.is_empty());
    assert_eq!((beyond.newer, beyond.older), (None, Some(late + 1)));
    let below = mine(Cursor::Before(made[0]), 3).await?;
    assert!(below.items.is_empty());
    assert_eq!((below.newer, below.older), (Some(made[0] - 1), None));

    // Forwards through everything, a page at a time, sees each request once.
    let mut seen = Vec::new();
    let mut cursor = Cursor::Newest;
    loop {
        let p = mine(cursor, 2).await?;
        seen.extend(mine_ids(&p));
        match p.older {
            Some(id) => cursor = Cursor::Before(id),
            None => break,
        }
        assert!(seen.len() < 20, "paging does not end");
    }
    let mut all = made.clone();
    all.push(late);
    all.reverse();
    assert_eq!(seen, all);
    Ok(())
}

/// Moves a request's creation back to the first millisecond of `day`.
async fn created_on(app: &TestApp, id: RequestId, day: &str) -> TestResult {
    let at = Day::parse(day)?.start_millis();
    let mut conn = app.state.db.pool.acquire().await?;
    storage::requests::backdate(&mut conn, id, at, at).await?;
    Ok(())
}

async fn every_filter_narrows_each_list(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    let bob = app.user("bob").await?;
    let carol = app.user("carol").await?;
    let dev = namespace(app, &alice, "one", "payments", "dev").await?;
    let prod = namespace(app, &alice, "two", "payments", "prod").await?;
    let staging = namespace(app, &alice, "three", "payments", "staging").await?;
    // A database needs its namespace; bob (dba) reviews it.
    app.namespace(&alice, "dev", "apps").await?;
    let database = requests::submit(
        &app.state,
        &alice,
        &draft("postgres-database", postgres_params("ledger", "dev", 20)),
    )
    .await?;
    created_on(app, dev, "2026-01-05").await?;
    created_on(app, prod, "2026-02-10").await?;
    created_on(app, staging, "2026-02-11").await?;

    let first = PageRequest::first(50);
    let mine = |filter: ListFilter| {
        let alice = alice.clone();
        async move { requests::mine(&app.state, &alice, &filter, first).await }
    };
    let by_type = mine(ListFilter {
        type_name: Some("postgres-database".into()),
        ..ListFilter::default()
    })
    .await?;
    assert_eq!(mine_ids(&by_type), [database.0]);
    let by_env = mine(ListFilter {
        environment: Some("staging".into()),
        ..ListFilter::default()
    })
    .await?;
    assert_eq!(mine_ids(&by_env), [staging.0]);
    let by_team = mine(ListFilter {
        team: Some("search".into()),
        ..ListFilter::default()
    })
    .await?;
    assert!(by_team.items.is_empty());
    assert_eq!(
        mine(ListFilter {
            team: Some("payments".into()),
            ..ListFilter::default()
        })
        .await?
        .items
        .len(),
        5
    );
    let by_state = mine(ListFilter {
        state: Some(RequestState::InReview),
        ..ListFilter::default()
    })
    .await?;
    assert_eq!(mine_ids(&by_state), [database.0, staging.0, prod.0]);
    let february = mine(ListFilter {
        created_from: Some(Day::parse("2026-02-01")?),
        created_to: Some(Day::parse("2026-02-10")?),
        ..ListFilter::default()
    })
    .await?;
    assert_eq!(
        mine_ids(&february),
        [prod.0],
        "created_to takes the whole day"
    );
    let since = mine(ListFilter {
        created_from: Some(Day::parse("2026-02-11")?),
        ..ListFilter::default()
    })
    .await?;
    assert!(mine_ids(&since).contains(&staging.0) && !mine_ids(&since).contains(&prod.0));

    // The review queue: the same filters on what waits for bob.
    let queue = |filter: ListFilter| {
        let bob = bob.clone();
        async move { reviews::queue(&app.state, &bob, &filter, first).await }
    };
    assert_eq!(
        mine_ids(&queue(ListFilter::default()).await?),
        [database.0, staging.0, prod.0]
    );
    assert_eq!(
        mine_ids(
            &queue(ListFilter {
                type_name: Some("k8s-namespace".into()),
                environment: Some("prod".into()),
                ..ListFilter::default()
            })
            .await?
        ),
        [prod.0]
    );
    assert_eq!(
        mine_ids(
            &queue(ListFilter {
                created_to: Some(Day::parse("2026-02-10")?),
                ..ListFilter::default()
            })
            .await?
        ),
        [prod.0]
    );

    // Needing attention: failed and manual only, by state.
    app.exec(&format!(
        "UPDATE requests SET state = 'failed' WHERE id = {}",
        prod.0
    ))
    .await?;
    app.exec(&format!(
        "UPDATE requests SET state = 'manual' WHERE id = {}",
        staging.0
    ))
    .await?;
    let attention = |filter: ListFilter| {
        let carol = carol.clone();
        async move { requests::needing_attention(&app.state, &carol, &filter, first).await }
    };
    assert_eq!(
        mine_ids(&attention(ListFilter::default()).await?),
        [staging.0, prod.0]
    );
    assert_eq!(
        mine_ids(
            &attention(ListFilter {
                state: Some(RequestState::Failed),
                ..ListFilter::default()
            })
            .await?
        ),
        [prod.0]
    );
    assert!(matches!(
        attention(ListFilter {
            state: Some(RequestState::Draft),
            ..ListFilter::default()
        })
        .await,
        Err(ServiceError::Invalid(errors)) if errors[0].field == "state"
    ));
    assert_eq!(
        mine_ids(
            &attention(ListFilter {
                environment: Some("prod".into()),
                ..ListFilter::default()
            })
            .await?
        ),
        [prod.0]
    );

    // Assets: two namespaces in dev made assets.
    app.run_jobs().await?;
    let asset_list = |filter: ListFilter| {
        let alice = alice.clone();
        async move { assets::list(&app.state, &alice, &filter, first).await }
    };
    let all = asset_list(ListFilter::default()).await?;
    assert_eq!(all.items.len(), 2, "{all:?}");
    let by_type = asset_list(ListFilter {
        type_name: Some("k8s-namespace".into()),
        team: Some("payments".into()),
        environment: Some("dev".into()),
        ..ListFilter::default()
    })
    .await?;
    assert_eq!(by_type.items.len(), 2);
    for narrow in [
        ListFilter {
            environment: Some("prod".into()),
            ..ListFilter::default()
        },
        ListFilter {
            team: Some("search".into()),
            ..ListFilter::default()
        },
        ListFilter {
            type_name: Some("postgres-database".into()),
            ..ListFilter::default()
        },
        ListFilter {
            created_to: Some(Day::parse("2020-01-01")?),
            ..ListFilter::default()
        },
    ] {
        assert!(
            asset_list(narrow.clone()).await?.items.is_empty(),
            "{narrow:?}"
        );
    }
    Ok(())
}

async fn a_page_holds_at_most_the_cap(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    let over = i64::from(MAX_PAGE_SIZE) + 20;
    let mut conn = app.state.db.pool.acquire().await?;
    for i in 0..over {
        let id = storage::requests::insert(
            &mut conn,
            &NewRequest {
                type_name: "k8s-namespace",
                resource_name: &format!("bulk-{i}"),
                requester_id: alice.id,
                state: RequestState::InReview,
                submit_key: &format!("bulk-{i}"),
                action: None,
            },
        )
        .await?;
        sqlx::query("UPDATE requests SET params = $1, team = 'payments', environment = 'prod' WHERE id = $2")
            .bind(namespace_params(&format!("bulk{i}"), "payments", "prod", 1).to_string())
            .bind(id.0)
            .execute(&mut *conn)
            .await?;
    }
    drop(conn);
    let asked = PageRequest::first(5000);
    let mine = requests::mine(&app.state, &alice, &ListFilter::default(), asked).await?;
    assert_eq!(mine.items.len(), MAX_PAGE_SIZE as usize);
    assert!(mine.older.is_some());
    let rest = requests::mine(
        &app.state,
        &alice,
        &ListFilter::default(),
        page(Cursor::Before(mine.older.ok_or("older")?), 5000),
    )
    .await?;
    assert_eq!(rest.items.len(), 20);
    assert_eq!(rest.older, None);
    let bob = app.user("bob").await?;
    let queue = reviews::queue(&app.state, &bob, &ListFilter::default(), asked).await?;
    assert_eq!(queue.items.len(), MAX_PAGE_SIZE as usize);
    let none = requests::mine(
        &app.state,
        &alice,
        &ListFilter::default(),
        page(Cursor::Newest, 0),
    )
    .await?;
    assert_eq!(none.items.len(), 1, "a size under 1 reads one row");
    Ok(())
}

async fn nobody_sees_another_teams_request_in_any_list(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    let bob = app.user("bob").await?;
    let dave = person(app, "dave", &[Role::Requester], "search").await?;
    let rita = person(app, "rita", &[Role::Requester, Role::Reviewer], "payments").await?;
    let alices = namespace(app, &alice, "mine", "payments", "prod").await?;
    let daves = namespace(app, &dave, "theirs", "search", "prod").await?;
    let ritas = namespace(app, &rita, "hers", "payments", "prod").await?;
    let bobs = namespace(app, &bob, "platforms", "platform", "prod").await?;
    let first = PageRequest::first(50);
    let none = ListFilter::default();

    // My requests: one's own only.
    assert_eq!(
        mine_ids(&requests::mine(&app.state, &alice, &none, first).await?),
        [alices.0]
    );
    assert_eq!(
        mine_ids(&requests::mine(&app.state, &dave, &none, first).await?),
        [daves.0]
    );
    // The list of everything one may see: one's team's, never another team's.
    let seen = mine_ids(&requests::list(&app.state, &alice, &none, first).await?);
    assert_eq!(seen, [ritas.0, alices.0]);
    let seen = mine_ids(&requests::list(&app.state, &dave, &none, first).await?);
    assert_eq!(seen, [daves.0]);
    // Even asked by team, another team's requests stay out of sight.
    let asked = ListFilter {
        team: Some("search".into()),
        ..ListFilter::default()
    };
    assert!(
        requests::list(&app.state, &alice, &asked, first)
            .await?
            .items
            .is_empty()
    );

    // Review queues: bob (platform offers namespaces) reviews every team's but his own;
    // rita reviews her team's, not her own, not another team's.
    let queue = mine_ids(&reviews::queue(&app.state, &bob, &none, first).await?);
    assert_eq!(queue, [ritas.0, daves.0, alices.0]);
    let queue = mine_ids(&reviews::queue(&app.state, &rita, &none, first).await?);
    assert_eq!(queue, [alices.0]);
    for (who, request) in [(&bob, bobs), (&rita, daves)] {
        let row = app.request(request).await?;
        let facts = slipway_core::policy::RequestFacts::new(
            app.state
                .catalog
                .resource_type("k8s-namespace")
                .ok_or("type")?,
            &row.params,
            row.state,
            row.requester_id,
        );
        assert!(
            slipway_core::policy::may(who, slipway_core::policy::Verb::Approve, &facts).is_err()
        );
    }
    assert!(matches!(
        reviews::queue(&app.state, &alice, &none, first).await,
        Err(ServiceError::Forbidden(_))
    ));
    assert!(matches!(
        requests::needing_attention(&app.state, &alice, &none, first).await,
        Err(ServiceError::Forbidden(_))
    ));
    Ok(())
}

async fn search(app: &TestApp, who: &Caller, text: &str) -> TestResult<Vec<String>> {
    let filter = ListFilter {
        text: Some(text.to_string()),
        ..ListFilter::default()
    };
    let found = assets::list(&app.state, who, &filter, PageRequest::first(50)).await?;
    Ok(found.items.into_iter().map(|a| a.name).collect())
}

/// Two namespaces and a database (with a secret password) recorded as assets.
async fn three_assets(app: &TestApp, alice: &Caller) -> TestResult {
    let with_admins = |name: &str, admins: serde_json::Value| {
        let mut params = namespace_params(name, "payments", "dev", 1);
        params["admins"] = admins;
        draft("k8s-namespace", params)
    };
    requests::submit(
        &app.state,
        alice,
        &with_admins("orders", json!(["alice", "zora.k"])),
    )
    .await?;
    requests::submit(&app.state, alice, &with_admins("billing", json!(["bob"]))).await?;
    app.run_jobs().await?;
    let mut db = postgres_params("ledger", "dev", 20);
    db["owner_password"] = json!("hunter2-canary-pw");
    db["extensions"] = json!(["postgis"]);
    let id = requests::submit(&app.state, alice, &draft("postgres-database", db)).await?;
    let bob = app.user("bob").await?;
    reviews::decide(&app.state, &bob, id, 1, ReviewDecision::Approve, "ok").await?;
    app.run_jobs().await?;
    assert_eq!(app.count("assets").await?, 3);
    Ok(())
}

async fn asset_search_finds_words_and_survives_any_input(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    three_assets(app, &alice).await?;
    assert_eq!(
        search(app, &alice, "orders").await?,
        ["payments-orders-dev"]
    );
    assert_eq!(
        search(app, &alice, "ORD").await?,
        ["payments-orders-dev"],
        "a prefix, any case"
    );
    assert_eq!(
        search(app, &alice, "payments orders").await?,
        ["payments-orders-dev"]
    );
    assert_eq!(
        search(app, &alice, "zora").await?,
        ["payments-orders-dev"],
        "a searchable parameter"
    );
    assert_eq!(
        search(app, &alice, "postgis").await?,
        ["payments-ledger-dev"]
    );
    assert_eq!(search(app, &alice, "payments").await?.len(), 3, "the team");
    assert!(
        search(app, &alice, "orders billing").await?.is_empty(),
        "every word must match"
    );
    assert!(
        search(app, &alice, "hunter2").await?.is_empty(),
        "a secret is never indexed"
    );
    let stored: Vec<String> = sqlx::query_scalar("SELECT search_text FROM assets ORDER BY id")
        .fetch_all(&app.state.db.pool)
        .await?;
    assert!(stored.iter().all(|t| !t.contains("hunter2")), "{stored:?}");
    // Search narrows with the other filters.
    let filter = ListFilter {
        text: Some("payments".into()),
        type_name: Some("k8s-namespace".into()),
        ..ListFilter::default()
    };
    let found = assets::list(&app.state, &alice, &filter, PageRequest::first(1)).await?;
    assert_eq!(found.items.len(), 1);
    let next = assets::list(
        &app.state,
        &alice,
        &filter,
        page(Cursor::Before(found.older.ok_or("older")?), 1),
    )
    .await?;
    assert_eq!(next.items.len(), 1);
    assert_ne!(next.items[0].id, found.items[0].id);

    let long = "a".repeat(5000);
    let many = "orders ".repeat(800);
    let hostile = [
        "\"",
        "\"orders",
        "'",
        "o'rders",
        "*",
        "orders*",
        "NEAR(orders billing)",
        "orders NEAR billing",
        "orders OR billing",
        "NOT orders",
        "orders AND",
        "-orders",
        "^orders",
        "name:orders",
        ":",
        "orders:*",
        "&|!()",
        "orders & !billing | (x)",
        "<->",
        "\\",
        "\\'",
        "%_",
        "{}[]",
        "\u{0}",
        "\u{202e}orders",
        "日本語",
        "🦀🦀",
        "ß",
        long.as_str(),
        many.as_str(),
    ];
    for text in hostile {
        let shown: String = text.chars().take(30).collect();
        let found = search(app, &alice, text)
            .await
            .map_err(|e| format!("{shown:?}: {e}"))?;
        assert!(found.len() <= 3, "{shown:?}: {found:?}");
    }
    assert_eq!(
        search(app, &alice, "\"orders").await?,
        ["payments-orders-dev"]
    );
    assert_eq!(
        search(app, &alice, "name:orders").await?,
        Vec::<String>::new(),
        "two words: name and orders"
    );
    assert_eq!(search(app, &alice, &many).await?, ["payments-orders-dev"]);
    // A text with no word in it searches for nothing, whatever separates its
    // nothing: control characters, punctuation and symbols alike.
    let all = search(app, &alice, "").await?;
    assert_eq!(all.len(), 3, "{all:?}");
    for text in ["*", "\u{0}", "\u{1}\u{2}", "{}[]", "🦀🦀", "\u{202e}"] {
        assert_eq!(search(app, &alice, text).await?, all, "{text:?}");
    }
    Ok(())
}

async fn the_search_index_is_rebuilt_at_start(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    three_assets(app, &alice).await?;
    // Rows without words (say, written by a tool), and a type whose `search` list
    // changed since its assets were indexed, are indexed again at the next start.
    app.exec("UPDATE assets SET search_text = NULL WHERE type_name = 'k8s-namespace'")
        .await?;
    app.exec("UPDATE assets SET search_text = 'stale' WHERE type_name = 'postgres-database'")
        .await?;
    app.exec(
        "UPDATE search_settings SET params = '[\"size\"]' WHERE type_name = 'postgres-database'",
    )
    .await?;
    if app.engine == Engine::Sqlite {
        app.exec("DELETE FROM assets_fts").await?;
    }
    assert!(search(app, &alice, "orders").await?.is_empty());
    let restarted = app.restart().await?;
    drop(restarted);
    assert_eq!(
        search(app, &alice, "orders").await?,
        ["payments-orders-dev"]
    );
    assert_eq!(
        search(app, &alice, "postgis").await?,
        ["payments-ledger-dev"]
    );
    let stale: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM assets WHERE search_text = 'stale' OR search_text IS NULL",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    assert_eq!(stale, 0);
    // A second start with nothing changed indexes nothing.
    let settings: Vec<String> =
        sqlx::query_scalar("SELECT params FROM search_settings ORDER BY type_name")
            .fetch_all(&app.state.db.pool)
            .await?;
    assert_eq!(
        settings,
        [
            "[\"admins\"]",
            "[\"size\",\"version\",\"extensions\"]",
            "[]"
        ]
    );
    assert_eq!(
        storage::search::sync(&app.state.db, &app.state.catalog.catalog).await?,
        0
    );
    Ok(())
}

/// The plan of each list's query, with the filters people use, reads from an
/// index (and, unless it filters by time, needs no sort).
/// PostgreSQL reads a search's page from the rows nearest the cursor when they
/// hold it, and from the text index when they do not
/// (`storage::LIST_WINDOW`): a word on every third asset, one on the oldest
/// ten only, and one nowhere page alike, both ways, on both engines.
async fn a_search_pages_alike_whether_its_words_are_common_or_rare(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    let request = namespace(app, &alice, "window", "payments", "dev").await?;
    let total = storage::LIST_WINDOW + 500;
    let mut tx = app.state.db.write().await?;
    let mut made: Vec<(i64, &str)> = Vec::new();
    for n in 0..total {
        let word = match n {
            _ if n < 10 => "rare",
            _ if n % 3 == 0 => "common",
            _ => "plain",
        };
        let name = format!("{word}-{n:05}");
        let params = json!({ "name": name });
        let asset = storage::assets::NewAsset {
            type_name: "k8s-namespace",
            name: &name,
            params: &params,
            team: Some("payments"),
            environment: Some("dev"),
            request_id: request,
            commit_id: "0000000",
            catalog_version: "",
            search_text: None,
        };
        let id = storage::assets::insert(&mut tx, &asset).await?;
        storage::search::index_asset(&mut tx, app.engine, id, &format!("{word} payments")).await?;
        made.push((id.0, word));
    }
    tx.commit().await?;
    for (word, wanted) in [("common", "common"), ("rare", "rare"), ("nowhere", "-")] {
        let mut expected: Vec<i64> = made
            .iter()
            .filter(|(_, w)| *w == wanted)
            .map(|(id, _)| *id)
            .collect();
        expected.reverse();
        let filter = ListFilter {
            text: Some(format!("payments {word}")),
            ..ListFilter::default()
        };
        let (mut seen, mut cursor) = (Vec::new(), Cursor::Newest);
        loop {
            let found = assets::list(&app.state, &alice, &filter, page(cursor, 50)).await?;
            seen.extend(ids(&found, |a| a.id.0));
            match found.older {
                Some(older) => cursor = Cursor::Before(older),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{word}: every match once, newest first");
        if let Some(&last) = expected.last() {
            // And back from the oldest: the page before it ends where it should.
            let back =
                assets::list(&app.state, &alice, &filter, page(Cursor::After(last), 50)).await?;
            let back_ids = ids(&back, |a| a.id.0);
            let n = expected.len();
            let want: Vec<i64> = expected[n.saturating_sub(51)..n - 1].to_vec();
            assert_eq!(back_ids, want, "{word}: the page after the oldest");
            assert_eq!(back.newer.is_some(), n > 51, "{word}: newer ones behind it");
        }
    }
    Ok(())
}

async fn every_list_reads_from_an_index(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    let bob = app.user("bob").await?;
    let mut conn = app.state.db.pool.acquire().await?;
    if app.engine == Engine::Postgres {
        // Empty tables are read faster without an index; ask what the plan would be
        // when reading the table is not an option.
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await?;
    }
    let filter = |f: fn(&mut ListFilter)| {
        let mut filter = ListFilter::default();
        f(&mut filter);
        filter
    };
    let queue_reach = Some(vec![
        storage::requests::Reach::Types(vec!["k8s-namespace".into()]),
        storage::requests::Reach::TeamsOfTypes(
            vec!["platform".into()],
            vec!["postgres-database".into()],
        ),
    ]);
    let attention = [RequestState::Failed, RequestState::Manual];
    // (list, its SQL narrowing, the index it should use)
    let request_lists: Vec<(&str, RequestList<'_>, &str)> = vec![
        (
            "my requests",
            RequestList {
                requester: Some(alice.id),
                ..RequestList::default()
            },
            "requests_requester_id",
        ),
        (
            "my requests by state",
            RequestList {
                requester: Some(alice.id),
                filter: filter(|f| f.state = Some(RequestState::InReview)),
                ..RequestList::default()
            },
            "requests_",
        ),
        (
            "my requests by type",
            RequestList {
                requester: Some(alice.id),
                filter: filter(|f| f.type_name = Some("k8s-namespace".into())),
                ..RequestList::default()
            },
            "requests_",
        ),
        (
            "review queue",
            RequestList {
                not_requester: Some(bob.id),
                states: &[RequestState::InReview],
                reach: queue_reach.clone(),
                ..RequestList::default()
            },
            "requests_",
        ),
        (
            "review queue by team",
            RequestList {
                not_requester: Some(bob.id),
                states: &[RequestState::InReview],
                reach: queue_reach,
                filter: filter(|f| f.team = Some("payments".into())),
                ..RequestList::default()
            },
            "requests_",
        ),
        (
            "what a team member may see: each reach from its own index",
            RequestList {
                reach: Some(vec![
                    storage::requests::Reach::Requester(alice.id),
                    storage::requests::Reach::Teams(vec!["payments".into()]),
                ]),
                ..RequestList::default()
            },
            "requests_team_id",
        ),
        (
            "needing attention",
            RequestList {
                states: &[RequestState::Failed],
                ..RequestList::default()
            },
            "requests_state_id",
        ),
        (
            "needing attention, manual",
            RequestList {
                states: &[RequestState::Manual],
                ..RequestList::default()
            },
            "requests_state_id",
        ),
        (
            "needing attention by environment",
            RequestList {
                states: &attention,
                filter: filter(|f| f.environment = Some("prod".into())),
                ..RequestList::default()
            },
            "requests_",
        ),
        (
            "a team's requests of one type",
            RequestList {
                filter: filter(|f| {
                    f.team = Some("payments".into());
                    f.type_name = Some("k8s-namespace".into());
                }),
                ..RequestList::default()
            },
            "requests_team_type_id",
        ),
        (
            "needing attention by time",
            RequestList {
                states: &attention,
                filter: filter(|f| {
                    f.created_from = Day::parse("2026-01-01").ok();
                    f.created_to = Day::parse("2026-01-31").ok();
                }),
                ..RequestList::default()
            },
            "requests_",
        ),
    ];
    let newest = PageRequest::first(50);
    for (name, list, index) in &request_lists {
        for cursor in [Cursor::Newest, Cursor::Before(1000), Cursor::After(10)] {
            let plan =
                storage::requests::list_plan(&mut conn, app.engine, list, page(cursor, 50)).await?;
            // A time range is a range of ids too: no list sorts.
            check_plan(app.engine, name, &plan, index, false)?;
        }
    }
    let asset_lists: Vec<(&str, ListFilter, &str)> = vec![
        (
            "assets by type",
            filter(|f| f.type_name = Some("k8s-namespace".into())),
            "assets_type_id",
        ),
        (
            "assets by team",
            filter(|f| f.team = Some("payments".into())),
            "assets_team_id",
        ),
        (
            "assets by environment",
            filter(|f| f.environment = Some("dev".into())),
            "assets_environment_id",
        ),
        (
            "a team's assets in one environment",
            filter(|f| {
                f.team = Some("payments".into());
                f.environment = Some("dev".into());
            }),
            "assets_team_environment_id",
        ),
        (
            "assets by time",
            filter(|f| {
                f.created_from = Day::parse("2026-01-01").ok();
                f.created_to = Day::parse("2026-01-31").ok();
            }),
            "assets_created",
        ),
        (
            "assets searched",
            filter(|f| f.text = Some("orders".into())),
            match app.engine {
                Engine::Sqlite => "assets_fts",
                Engine::Postgres => "assets_search",
            },
        ),
    ];
    for (name, f, index) in &asset_lists {
        let plan = storage::assets::list_plan(&mut conn, app.engine, f, newest).await?;
        // A text match reads its index, then orders what it found; a time
        // range is a range of ids.
        let sorts = f.text.is_some();
        check_plan(app.engine, name, &plan, index, sorts)?;
    }
    // Everything, newest first: the primary key, in order.
    let plan =
        storage::assets::list_plan(&mut conn, app.engine, &ListFilter::default(), newest).await?;
    assert!(
        !plan.contains("TEMP B-TREE") && !plan.contains("Seq Scan") && !plan.contains("Sort"),
        "all assets:\n{plan}"
    );
    Ok(())
}

fn check_plan(engine: Engine, name: &str, plan: &str, index: &str, may_sort: bool) -> TestResult {
    assert!(
        plan.contains(index),
        "{name}: not read from {index}:\n{plan}"
    );
    match engine {
        Engine::Sqlite => {
            for line in plan.lines() {
                let scans_table = line.starts_with("SCAN ")
                    && !line.contains("INDEX")
                    && !line.contains("VIRTUAL TABLE");
                assert!(!scans_table, "{name}: reads a whole table:\n{plan}");
            }
            if !may_sort {
                assert!(
                    !plan.contains("TEMP B-TREE FOR ORDER BY"),
                    "{name}: sorts:\n{plan}"
                );
            }
        }
        Engine::Postgres => {
            assert!(
                !plan.contains("Seq Scan"),
                "{name}: reads a whole table:\n{plan}"
            );
            if !may_sort {
                assert!(!plan.contains("Sort"), "{name}: sorts:\n{plan}");
            }
        }
    }
    Ok(())
}
