//! The audit chain at volume, on SQLite and PostgreSQL: writers only insert, the
//! sealer chains committed events in order and the database allows no other change;
//! verification streams the chain, and signed checkpoints — in the database and in
//! the GitOps repository — catch a truncated tail, refuse forgeries and let a daily
//! run start where the last one ended. And a token's use is in the log once an hour.

#[macro_use]
#[allow(dead_code, unused_macros)]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{TestApp, TestResult};
use slipway_core::listing::{Cursor, Day, ListFilter, ListQuery, PageRequest};
use slipway_core::views::{AuditFilter, TokenRequest, TokenScope};
use slipway_server::audit_chain::{
    self, AuditError, CheckpointSigner, CheckpointVerifier, VerifyOptions,
};
use slipway_server::secrets::SecretKey;
use slipway_server::services::{CallMeta, audit, tokens};
use slipway_server::storage::audit::{ChainStatus, Checkpoint, NewEvent, Origin};
use slipway_server::storage::{self, Engine};

on_both_engines!(
    writers_insert_and_the_sealer_chains,
    only_sealing_may_update_and_nothing_deletes,
    concurrent_writers_and_sealers_make_one_chain,
    the_server_seals_moments_after_a_write,
    an_edited_row_is_caught,
    a_deleted_middle_row_is_caught,
    batches_join_at_their_edges,
    a_truncated_tail_is_caught,
    a_chain_cut_and_grown_again_is_never_signed_over,
    a_forged_checkpoint_is_refused,
    verify_from_a_checkpoint_reads_only_what_follows,
    an_event_left_unsealed_is_caught,
    an_event_inserted_in_the_past_or_sealed_is_caught,
    list_filters_and_pages,
    portal_pages_go_both_ways_and_filter_by_day,
    every_token_call_is_audited,
    an_export_stops_once_its_token_or_role_is_gone,
    acts_of_rules_keep_the_door_address_and_trace_of_the_call,
    events_appended_together_keep_their_order_and_every_field,
);

/// Appends `n` events, each in its own transaction, as a service would.
async fn append(app: &TestApp, n: usize, action: &str) -> TestResult {
    let origin = Origin {
        channel: "system".into(),
        ..Origin::default()
    };
    for i in 0..n {
        let mut tx = app.state.db.write().await?;
        storage::audit::append(
            &mut tx,
            app.engine,
            &NewEvent {
                origin: &origin,
                actor_id: None,
                actor: "tester",
                action,
                target_kind: "test",
                target_id: i.to_string(),
                before: None,
                after: Some(format!("value {i}")),
                detail: String::new(),
            },
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

fn verifier(app: &TestApp) -> TestResult<CheckpointVerifier> {
    Ok(app
        .state
        .audit_signer
        .as_ref()
        .ok_or("demo mode has a key")?
        .verifier())
}

/// `audit verify` as the command runs it: seal, read the GitOps checkpoint, verify.
async fn verify(app: &TestApp, from_checkpoint: bool) -> TestResult<audit_chain::Verified> {
    let verifier = verifier(app)?;
    Ok(audit_chain::verify(
        &app.state.db,
        Some(&app.state.gitops),
        Some(&verifier),
        VerifyOptions {
            from_checkpoint,
            seal: true,
        },
    )
    .await?)
}

async fn status(app: &TestApp) -> TestResult<ChainStatus> {
    Ok(verify(app, false).await?.report.status)
}

async fn checkpoint(app: &TestApp) -> TestResult<Checkpoint> {
    let signer = app.state.audit_signer.as_ref().ok_or("no signer")?;
    Ok(
        audit_chain::checkpoint(&app.state.db, &app.state.gitops, signer)
            .await?
            .ok_or("the log is not empty")?,
    )
}

/// Removes the append-only guard, as someone with full access to the database can.
async fn drop_guards(app: &TestApp) -> TestResult {
    let statements: &[&str] = match app.engine {
        Engine::Sqlite => &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
            "DROP TRIGGER audit_checkpoints_no_update",
            "DROP TRIGGER audit_checkpoints_no_delete",
        ],
        Engine::Postgres => &[
            "DROP TRIGGER audit_events_no_update ON audit_events",
            "DROP TRIGGER audit_checkpoints_no_update ON audit_checkpoints",
        ],
    };
    for sql in statements {
        app.exec(sql).await?;
    }
    Ok(())
}

async fn seq_at(app: &TestApp, position: i64) -> TestResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT seq FROM audit_events WHERE position = $1")
            .bind(position)
            .fetch_one(&app.state.db.pool)
            .await?,
    )
}

async fn writers_insert_and_the_sealer_chains(app: &TestApp) -> TestResult {
    audit_chain::seal_pending(&app.state.db).await?;
    let before = app.count("audit_events").await?;
    append(app, 5, "test.written").await?;
    let carol = app.user("carol").await?;
    let filter = AuditFilter {
        action: Some("test.written".into()),
        ..AuditFilter::default()
    };
    let page = audit::list(&app.state, &carol, &filter, storage::Window::first(50)).await?;
    assert_eq!(page.items.len(), 5);
    assert!(
        page.items
            .iter()
            .all(|e| e.hash.is_none() && e.position.is_none()),
        "written events wait for their seal: {:?}",
        page.items
    );
    let json = serde_json::to_value(&page.items[0])?;
    assert_eq!(
        json["hash"],
        serde_json::Value::Null,
        "the API shows hash: null"
    );

    let sealed = audit_chain::seal_pending(&app.state.db).await?;
    assert!(sealed >= 5, "the five and carol's sign-in: {sealed}");
    let page = audit::list(&app.state, &carol, &filter, storage::Window::first(50)).await?;
    let mut positions: Vec<i64> = page.items.iter().filter_map(|e| e.position).collect();
    positions.sort_unstable();
    assert_eq!(positions.len(), 5);
    assert!(
        positions.windows(2).all(|w| w[1] == w[0] + 1),
        "{positions:?}"
    );
    assert!(
        page.items
            .iter()
            .all(|e| e.hash.as_ref().is_some_and(|h| h.len() == 64))
    );
    assert_eq!(audit_chain::seal_pending(&app.state.db).await?, 0);
    let events = app.count("audit_events").await?;
    assert_eq!(events, before + sealed as i64);
    assert_eq!(status(app).await?, ChainStatus::Intact { events });
    Ok(())
}

async fn only_sealing_may_update_and_nothing_deletes(app: &TestApp) -> TestResult {
    append(app, 3, "test.guarded").await?;
    // Seals them and stores a checkpoint.
    checkpoint(app).await?;
    append(app, 1, "test.pending").await?;
    let sealed = seq_at(app, 1).await?;
    let pending: i64 =
        sqlx::query_scalar("SELECT seq FROM audit_events WHERE action = 'test.pending'")
            .fetch_one(&app.state.db.pool)
            .await?;
    let refused = [
        // a sealed event: nothing may change, its seal included
        format!("UPDATE audit_events SET detail = 'x' WHERE seq = {sealed}"),
        format!(
            "UPDATE audit_events SET position = NULL, prev_hash = NULL, hash = NULL WHERE seq = {sealed}"
        ),
        format!("UPDATE audit_events SET hash = 'x' WHERE seq = {sealed}"),
        format!("UPDATE audit_events SET position = 999 WHERE seq = {sealed}"),
        format!("DELETE FROM audit_events WHERE seq = {sealed}"),
        // an unsealed one: only the whole seal, and nothing else with it
        format!("UPDATE audit_events SET detail = 'x' WHERE seq = {pending}"),
        format!("UPDATE audit_events SET position = 999 WHERE seq = {pending}"),
        format!(
            "UPDATE audit_events SET position = 999, prev_hash = 'a', hash = 'b', detail = 'x' WHERE seq = {pending}"
        ),
        format!(
            "UPDATE audit_events SET position = 999, prev_hash = 'a', hash = 'b', at = 1 WHERE seq = {pending}"
        ),
        // every column, the later ones too
        format!(
            "UPDATE audit_events SET position = 999, prev_hash = 'a', hash = 'b', channel_user = '@mallory:x' WHERE seq = {pending}"
        ),
        format!(
            "UPDATE audit_events SET position = 999, prev_hash = 'a', hash = 'b', token_id = 42 WHERE seq = {pending}"
        ),
        format!("DELETE FROM audit_events WHERE seq = {pending}"),
        "DELETE FROM audit_events".to_string(),
        "UPDATE audit_checkpoints SET hash = 'x'".to_string(),
    ];
    for sql in &refused {
        let outcome = app.exec(sql).await;
        assert!(outcome.is_err(), "must be refused: {sql}");
    }
    assert!(app.exec("DELETE FROM audit_checkpoints").await.is_err());
    if app.engine == Engine::Postgres {
        // TRUNCATE fires no row trigger: it has guards of its own.
        for table in ["audit_events", "audit_checkpoints"] {
            let outcome = app.exec(&format!("TRUNCATE {table}")).await;
            assert!(outcome.is_err(), "TRUNCATE {table} must be refused");
        }
    }
    // The sealer's own update goes through, once.
    assert_eq!(audit_chain::seal_pending(&app.state.db).await?, 1);
    let events = app.count("audit_events").await?;
    assert_eq!(status(app).await?, ChainStatus::Intact { events });
    Ok(())
}

async fn concurrent_writers_and_sealers_make_one_chain(app: &TestApp) -> TestResult {
    let before = app.count("audit_events").await?;
    let writers = 6;
    let each = 20;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let db = app.state.db.clone();
        tasks.push(tokio::spawn(async move {
            let origin = Origin {
                channel: "system".into(),
                ..Origin::default()
            };
            for i in 0..each {
                let mut tx = db.write().await?;
                storage::audit::append(
                    &mut tx,
                    db.engine,
                    &NewEvent {
                        origin: &origin,
                        actor_id: None,
                        actor: &format!("writer{w}"),
                        action: "test.concurrent",
                        target_kind: "test",
                        target_id: i.to_string(),
                        before: None,
                        after: None,
                        detail: String::new(),
                    },
                )
                .await?;
                tx.commit().await?;
            }
            Ok::<(), storage::StorageError>(())
        }));
    }
    for _ in 0..3 {
        let db = app.state.db.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                audit_chain::seal_pending(&db).await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    audit_chain::seal_pending(&app.state.db).await?;
    let events = app.count("audit_events").await?;
    assert_eq!(events, before + writers * each);
    let (max, count): (i64, i64) =
        sqlx::query_as("SELECT MAX(position), COUNT(position) FROM audit_events")
            .fetch_one(&app.state.db.pool)
            .await?;
    assert_eq!(
        (max, count),
        (events, events),
        "one place per event, no gaps"
    );
    assert_eq!(status(app).await?, ChainStatus::Intact { events });
    Ok(())
}

async fn the_server_seals_moments_after_a_write(app: &TestApp) -> TestResult {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = audit_chain::spawn(app.state.clone(), stopped);
    append(app, 3, "test.nudged").await?;
    app.state.audit_pending.notify_one();
    let mut waited = 0;
    loop {
        let mut conn = app.state.db.pool.acquire().await?;
        if !storage::audit::has_unsealed(&mut conn).await? {
            break;
        }
        waited += 1;
        assert!(waited < 100, "not sealed within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true)?;
    task.await?;
    Ok(())
}

async fn an_edited_row_is_caught(app: &TestApp) -> TestResult {
    append(app, 10, "test.edit").await?;
    audit_chain::seal_pending(&app.state.db).await?;
    drop_guards(app).await?;
    let seq = seq_at(app, 4).await?;
    app.exec(&format!(
        "UPDATE audit_events SET after_value = 'forged' WHERE seq = {seq}"
    ))
    .await?;
    match status(app).await? {
        ChainStatus::Broken {
            position,
            seq: found,
            reason,
        } => {
            assert_eq!((position, found), (4, Some(seq)));
            assert!(reason.contains("edited"), "{reason}");
        }
        intact => panic!("an edited row must break the chain, got {intact:?}"),
    }
    Ok(())
}

async fn a_deleted_middle_row_is_caught(app: &TestApp) -> TestResult {
    append(app, 10, "test.delete").await?;
    audit_chain::seal_pending(&app.state.db).await?;
    drop_guards(app).await?;
    let seq = seq_at(app, 5).await?;
    app.exec(&format!("DELETE FROM audit_events WHERE seq = {seq}"))
        .await?;
    match status(app).await? {
        ChainStatus::Broken {
            position, reason, ..
        } => {
            assert_eq!(position, 5);
            assert!(reason.contains("removed"), "{reason}");
        }
        intact => panic!("a deleted row must break the chain, got {intact:?}"),
    }
    Ok(())
}

/// A long chain is read in batches (on SQLite); a break on either side of a
/// batch's edge, or a batch that does not join the one before, is found all the
/// same, and small batches read what one large batch reads.
async fn batches_join_at_their_edges(app: &TestApp) -> TestResult {
    append(app, 40, "test.batches").await?;
    audit_chain::seal_pending(&app.state.db).await?;
    let in_batches = storage::audit::VerifyFrom {
        events_per_batch: 4,
        ..storage::audit::VerifyFrom::default()
    };
    let read = |from: storage::audit::VerifyFrom<'static>| {
        let db = app.state.db.clone();
        async move { storage::audit::verify(&db, &from).await }
    };
    let whole = read(in_batches.clone()).await?;
    let ChainStatus::Intact { events } = whole.status.clone() else {
        return Err(format!("a whole chain verifies: {whole:?}").into());
    };
    assert!(events >= 40, "{events}");
    assert_eq!(whole.head.as_ref().map(|h| h.position), Some(events));
    let one_batch = read(storage::audit::VerifyFrom::default()).await?;
    assert_eq!(one_batch, whole, "small batches and one batch agree");
    drop_guards(app).await?;
    // Wherever the edges fall, an edit on either side of one is found: edit every
    // place, newest first, so each edit is the first break.
    for position in (1..=events).rev() {
        let seq = seq_at(app, position).await?;
        app.exec(&format!(
            "UPDATE audit_events SET detail = 'forged' WHERE seq = {seq}"
        ))
        .await?;
        match read(in_batches.clone()).await?.status {
            ChainStatus::Broken {
                position: found,
                seq: found_seq,
                reason,
            } => {
                assert_eq!((found, found_seq), (position, Some(seq)), "{reason}");
                assert!(reason.contains("edited"), "{reason}");
            }
            intact => panic!("an edit at {position} must break the chain, got {intact:?}"),
        }
    }
    Ok(())
}

async fn a_truncated_tail_is_caught(app: &TestApp) -> TestResult {
    append(app, 10, "test.tail").await?;
    let signed = checkpoint(app).await?;
    assert_eq!(
        audit_chain::read_external(&app.state.gitops)?.as_ref(),
        Some(&signed),
        "committed to the GitOps repository"
    );
    let verified = verify(app, false).await?;
    assert_eq!(
        verified.report.status,
        ChainStatus::Intact {
            events: signed.position
        }
    );
    assert_eq!(
        verified.reached.map(|(c, _)| c.position),
        Some(signed.position)
    );

    // Someone with full access removes the three newest events, and the stored
    // checkpoints with them: from genesis to its new end the chain is whole.
    drop_guards(app).await?;
    let keep = signed.position - 3;
    app.exec(&format!("DELETE FROM audit_events WHERE position > {keep}"))
        .await?;
    app.exec("DELETE FROM audit_checkpoints").await?;
    assert_eq!(
        storage::audit::verify_chain(&app.state.db).await?,
        ChainStatus::Intact { events: keep },
        "without the checkpoint, the chain looks whole"
    );
    match status(app).await? {
        ChainStatus::Broken {
            position, reason, ..
        } => {
            assert_eq!(position, keep + 1);
            assert!(reason.contains("truncated tail"), "{reason}");
        }
        intact => panic!("a truncated tail must be caught, got {intact:?}"),
    }
    // The service (the portal's and the API's verify) says the same.
    let carol = app.user("carol").await?;
    assert!(matches!(
        audit::verify(&app.state, &carol).await?,
        ChainStatus::Broken { .. }
    ));
    Ok(())
}

/// Someone with full access cuts the chain behind its checkpoint and lets it grow
/// past that place again: from genesis to its new end the chain is whole, but it
/// no longer passes through what was signed. The server never signs over it, and
/// a checkpoint signed over it anyway (as the server once did) does not hide it.
async fn a_chain_cut_and_grown_again_is_never_signed_over(app: &TestApp) -> TestResult {
    append(app, 10, "test.signed").await?;
    let signed = checkpoint(app).await?;
    drop_guards(app).await?;
    let keep = signed.position - 6;
    app.exec(&format!("DELETE FROM audit_events WHERE position > {keep}"))
        .await?;
    append(app, 20, "test.regrown").await?;
    audit_chain::seal_pending(&app.state.db).await?;
    assert!(
        matches!(
            storage::audit::verify_chain(&app.state.db).await?,
            ChainStatus::Intact { .. }
        ),
        "from genesis the regrown chain is whole"
    );
    let signer = app.state.audit_signer.as_ref().ok_or("no signer")?;
    let refused = audit_chain::checkpoint(&app.state.db, &app.state.gitops, signer).await;
    match refused {
        Err(AuditError::Broken { position, .. }) => assert_eq!(position, signed.position),
        other => panic!("the server must not sign over a cut chain: {other:?}"),
    }
    assert_eq!(
        storage::audit::latest_checkpoint(&mut *app.state.db.pool.acquire().await?)
            .await?
            .map(|c| c.position),
        Some(signed.position),
        "no newer checkpoint stored"
    );
    // The stored checkpoints gone too: the one in the GitOps repository holds.
    app.exec("DELETE FROM audit_checkpoints").await?;
    let refused = audit_chain::checkpoint(&app.state.db, &app.state.gitops, signer).await;
    assert!(
        matches!(refused, Err(AuditError::Broken { .. })),
        "{refused:?}"
    );
    // A checkpoint signed over the new head anyway, in the database and in the
    // repository: verify still finds the place the old one vouched for.
    let mut conn = app.state.db.pool.acquire().await?;
    let head = storage::audit::head(&mut conn)
        .await?
        .ok_or("the chain is not empty")?;
    let over = signer.sign(&head, storage::now_millis());
    app.exec("DELETE FROM audit_checkpoints").await?;
    storage::audit::insert_checkpoint(&mut conn, &signed).await?;
    storage::audit::insert_checkpoint(&mut conn, &over).await?;
    drop(conn);
    audit_chain::write_external(&app.state.gitops, &over)?;
    for from_checkpoint in [false, true] {
        match verify(app, from_checkpoint).await?.report.status {
            ChainStatus::Broken { position, .. } => assert_eq!(position, signed.position),
            intact => panic!("a chain rewritten behind its checkpoint must be caught: {intact:?}"),
        }
    }
    Ok(())
}

async fn a_forged_checkpoint_is_refused(app: &TestApp) -> TestResult {
    append(app, 4, "test.forged").await?;
    let signed = checkpoint(app).await?;
    // Signed with another key, further along than the chain…
    let stranger = CheckpointSigner::new(&SecretKey::generate());
    let forged = stranger.sign(
        &storage::audit::ChainPoint {
            position: signed.position + 100,
            hash: signed.hash.clone(),
        },
        signed.at,
    );
    audit_chain::write_external(&app.state.gitops, &forged)?;
    let refused = verify(app, false).await.err().map(|e| e.to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("not signed by this server's key")),
        "{refused:?}"
    );
    // …or our signature over another place.
    let moved = Checkpoint {
        position: signed.position + 1,
        ..signed.clone()
    };
    audit_chain::write_external(&app.state.gitops, &moved)?;
    let verifier = verifier(app)?;
    let outcome = audit_chain::verify(
        &app.state.db,
        Some(&app.state.gitops),
        Some(&verifier),
        VerifyOptions {
            from_checkpoint: true,
            seal: true,
        },
    )
    .await;
    assert!(
        matches!(outcome, Err(AuditError::Forged { .. })),
        "{outcome:?}"
    );
    // The genuine one, back in place, is accepted.
    audit_chain::write_external(&app.state.gitops, &signed)?;
    assert!(matches!(
        verify(app, true).await?.report.status,
        ChainStatus::Intact { .. }
    ));
    // Without a key to check it, a checkpoint is neither trusted nor ignored.
    let unchecked = audit_chain::verify(
        &app.state.db,
        Some(&app.state.gitops),
        None,
        VerifyOptions::default(),
    )
    .await;
    assert!(matches!(unchecked, Err(AuditError::NoKey)), "{unchecked:?}");
    Ok(())
}

async fn verify_from_a_checkpoint_reads_only_what_follows(app: &TestApp) -> TestResult {
    append(app, 20, "test.before").await?;
    let signed = checkpoint(app).await?;
    append(app, 7, "test.after").await?;
    let verified = verify(app, true).await?;
    assert_eq!(
        verified.started_from.as_ref().map(|c| c.position),
        Some(signed.position)
    );
    assert_eq!(verified.report.status, ChainStatus::Intact { events: 7 });
    assert_eq!(
        verified.report.head.as_ref().map(|h| h.position),
        Some(signed.position + 7)
    );
    // Whatever lies before is not read again…
    drop_guards(app).await?;
    let early = seq_at(app, 2).await?;
    app.exec(&format!(
        "UPDATE audit_events SET detail = 'x' WHERE seq = {early}"
    ))
    .await?;
    assert_eq!(
        verify(app, true).await?.report.status,
        ChainStatus::Intact { events: 7 }
    );
    // …but the checkpoint's own event must still hold the hash it signed.
    let at = seq_at(app, signed.position).await?;
    app.exec(&format!(
        "UPDATE audit_events SET hash = 'x' WHERE seq = {at}"
    ))
    .await?;
    match verify(app, true).await?.report.status {
        ChainStatus::Broken { position, .. } => assert_eq!(position, signed.position),
        intact => panic!("a rewritten checkpoint event must be caught, got {intact:?}"),
    }
    Ok(())
}

async fn an_event_left_unsealed_is_caught(app: &TestApp) -> TestResult {
    append(app, 3, "test.sealed").await?;
    audit_chain::seal_pending(&app.state.db).await?;
    // An event written an hour before the newest sealed one and still unsealed: a
    // read-only verification (no sealing) names it.
    app.exec(
        "INSERT INTO audit_events (at, actor, action, target_kind, target_id, detail) \
         VALUES (1000, 'ghost', 'test.withheld', 'test', '1', '')",
    )
    .await?;
    let verifier = verifier(app)?;
    let verified = audit_chain::verify(
        &app.state.db,
        Some(&app.state.gitops),
        Some(&verifier),
        VerifyOptions {
            from_checkpoint: false,
            seal: false,
        },
    )
    .await?;
    match verified.report.status {
        ChainStatus::Broken { seq, reason, .. } => {
            assert!(seq.is_some());
            assert!(reason.contains("not sealed"), "{reason}");
        }
        intact => panic!("an old unsealed event must be caught, got {intact:?}"),
    }
    Ok(())
}

/// Whoever may insert rows (the server's own database user) cannot slip an event
/// into the past of every timeline: one dated long before the event sealed ahead
/// of it breaks the chain once sealed, and one inserted already sealed is refused.
async fn an_event_inserted_in_the_past_or_sealed_is_caught(app: &TestApp) -> TestResult {
    append(app, 3, "test.sealed").await?;
    let presealed = app
        .exec(
            "INSERT INTO audit_events (at, actor, action, target_kind, target_id, detail, \
             position, prev_hash, hash) VALUES (1000, 'ghost', 'test.forged', 'test', '1', '', \
             9999, 'a', 'b')",
        )
        .await;
    assert!(presealed.is_err(), "a row inserted sealed was taken");
    app.exec(
        "INSERT INTO audit_events (at, actor, action, target_kind, target_id, detail) \
         VALUES (1000, 'bob', 'request.approve', 'request', '1', 'backdated')",
    )
    .await?;
    match status(app).await? {
        ChainStatus::Broken { seq, reason, .. } => {
            assert!(seq.is_some());
            assert!(reason.contains("an earlier time"), "{reason}");
        }
        intact => panic!("a backdated event must be caught, got {intact:?}"),
    }
    Ok(())
}

async fn list_filters_and_pages(app: &TestApp) -> TestResult {
    append(app, 12, "test.listed").await?;
    audit_chain::seal_pending(&app.state.db).await?;
    let carol = app.user("carol").await?;
    let mut seen = Vec::new();
    let mut window = storage::Window::first(5);
    loop {
        let filter = AuditFilter {
            actor: Some("tester".into()),
            action: Some("test.listed".into()),
            target: Some("test".into()),
            ..AuditFilter::default()
        };
        let page = audit::list(&app.state, &carol, &filter, window).await?;
        seen.extend(page.items.iter().map(|e| e.seq));
        match page.next_before {
            Some(before) => window.before = Some(before),
            None => break,
        }
    }
    assert_eq!(seen.len(), 12);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );
    let one = AuditFilter {
        target: Some("test:3".into()),
        ..AuditFilter::default()
    };
    let page = audit::list(&app.state, &carol, &one, storage::Window::first(5)).await?;
    assert_eq!(page.items.len(), 1);
    Ok(())
}

/// The portal's pages: "Older" then "Newer" walk the same rows, filters and days
/// narrow them, and each filter reads an index.
async fn portal_pages_go_both_ways_and_filter_by_day(app: &TestApp) -> TestResult {
    append(app, 7, "test.paged").await?;
    append(app, 2, "test.other").await?;
    let carol = app.user("carol").await?;
    let today = Day::parse(&storage::format_millis(storage::now_millis())[..10])?;
    let yesterday = Day::parse(&storage::format_millis(storage::now_millis() - 86_400_000)[..10])?;
    let filter = ListFilter {
        action: Some("test.paged".into()),
        created_from: Some(today),
        ..ListFilter::default()
    };
    let query = |cursor| ListQuery {
        filter: filter.clone(),
        page: PageRequest { cursor, size: 3 },
    };
    let mut pages = Vec::new();
    let mut cursor = Cursor::Newest;
    loop {
        let page = audit::page(&app.state, &carol, &query(cursor)).await?;
        pages.push(page.items.iter().map(|e| e.seq).collect::<Vec<_>>());
        match page.older {
            Some(older) => cursor = Cursor::Before(older),
            None => break,
        }
    }
    let seen: Vec<i64> = pages.concat();
    assert_eq!(seen.len(), 7, "{pages:?}");
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
    // Back from the oldest page: the page before it, exactly.
    let last = pages
        .last()
        .and_then(|p| p.last())
        .copied()
        .ok_or("no rows")?;
    let back = audit::page(&app.state, &carol, &query(Cursor::After(last))).await?;
    let ids: Vec<i64> = back.items.iter().map(|e| e.seq).collect();
    assert_eq!(ids, seen[seen.len() - 4..seen.len() - 1], "{pages:?}");
    assert_eq!(back.older, Some(ids[ids.len() - 1]));
    let before_today = ListQuery {
        filter: ListFilter {
            created_from: None,
            created_to: Some(yesterday),
            ..filter.clone()
        },
        page: PageRequest::first(50),
    };
    let none = audit::page(&app.state, &carol, &before_today).await?;
    assert!(none.items.is_empty() && none.older.is_none() && none.newer.is_none());
    let alice = app.user("alice").await?;
    assert!(
        audit::page(&app.state, &alice, &query(Cursor::Newest))
            .await
            .is_err()
    );
    let mut conn = app.state.db.pool.acquire().await?;
    for (filter, index) in [
        (
            ListFilter {
                actor: Some("x".into()),
                ..ListFilter::default()
            },
            "audit_actor",
        ),
        (
            ListFilter {
                action: Some("x".into()),
                ..ListFilter::default()
            },
            "audit_action",
        ),
        (
            ListFilter {
                target: Some("request:1".into()),
                ..ListFilter::default()
            },
            "audit_target",
        ),
        (
            ListFilter {
                target: Some("token".into()),
                ..ListFilter::default()
            },
            "audit_target_kind",
        ),
        (
            ListFilter {
                actor: Some("x".into()),
                action: Some("y".into()),
                ..ListFilter::default()
            },
            "audit_actor_action",
        ),
        (
            ListFilter {
                actor: Some("x".into()),
                target: Some("token".into()),
                ..ListFilter::default()
            },
            "audit_actor_kind",
        ),
        (
            ListFilter {
                target: Some("token".into()),
                action: Some("y".into()),
                ..ListFilter::default()
            },
            "audit_kind_action",
        ),
    ] {
        let plan =
            storage::audit::page_plan(&mut conn, app.engine, &filter, PageRequest::first(50))
                .await?;
        assert!(plan.contains(index), "{filter:?}: {plan}");
    }
    // Days are a range of seq, walked in order alone or within a filter's index
    // (before, the days were read whole by their index on `at` and sorted).
    let days = |f: ListFilter| ListFilter {
        created_from: Some(yesterday),
        created_to: Some(yesterday),
        ..f
    };
    for (filter, index) in [
        (days(ListFilter::default()), ""),
        (
            days(ListFilter {
                actor: Some("x".into()),
                ..ListFilter::default()
            }),
            "audit_actor",
        ),
    ] {
        let plan =
            storage::audit::page_plan(&mut conn, app.engine, &filter, PageRequest::first(50))
                .await?;
        assert!(plan.contains(index), "{filter:?}: {plan}");
        let sorts = plan.contains("TEMP B-TREE") || plan.contains("Sort");
        let scans = plan.lines().any(|l| l.starts_with("SCAN audit_events"));
        assert!(
            !sorts && !scans && !plan.contains("Seq Scan"),
            "{filter:?}: {plan}"
        );
    }
    Ok(())
}

/// A long export asks again before each batch whether its caller still
/// stands: revoking the token it came with, or taking the audit log's role
/// away, cuts it off at the next batch (before, it streamed the whole log).
async fn an_export_stops_once_its_token_or_role_is_gone(app: &TestApp) -> TestResult {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use futures_util::StreamExt as _;
    use tower::ServiceExt as _;
    // More than two batches of 500.
    let origin = Origin {
        channel: "system".into(),
        ..Origin::default()
    };
    let mut tx = app.state.db.write().await?;
    for i in 0..1200 {
        storage::audit::append(
            &mut tx,
            app.engine,
            &NewEvent {
                origin: &origin,
                actor_id: None,
                actor: "tester",
                action: "test.exported",
                target_kind: "test",
                target_id: i.to_string(),
                before: None,
                after: None,
                detail: String::new(),
            },
        )
        .await?;
    }
    tx.commit().await?;
    let carol = app.user("carol").await?;
    let all = app.count("audit_events").await?;
    for cut_off in ["revoked", "role taken away"] {
        let made = tokens::create(
            &app.state,
            &carol,
            &TokenRequest {
                name: format!("export {cut_off}"),
                scopes: vec![TokenScope::Read],
                expires_in_days: Some(1),
            },
        )
        .await?;
        let router = slipway_server::cli::router(&app.state, axum::Router::new());
        let request = Request::get("/api/v1/audit/export")
            .header(header::HOST, "slipway.test")
            .header(header::AUTHORIZATION, format!("Bearer {}", made.secret))
            .body(Body::empty())?;
        let response = router.oneshot(request).await?;
        assert_eq!(response.status(), StatusCode::OK, "{cut_off}");
        let mut body = response.into_body().into_data_stream();
        let lines = |bytes: &[u8]| bytes.iter().filter(|b| **b == b'\n').count();
        let first = body.next().await.ok_or("no first batch")??;
        assert_eq!(lines(&first), 500, "{cut_off}");
        match cut_off {
            "revoked" => tokens::revoke(&app.state, &carol, made.token.id).await?,
            _ => {
                app.exec("UPDATE users SET roles = 'requester' WHERE username = 'carol'")
                    .await?;
            }
        }
        let (mut more, mut stopped) = (0, false);
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => more += lines(&bytes),
                Err(_) => {
                    stopped = true;
                    break;
                }
            }
        }
        assert!(stopped, "{cut_off}: the export ran to its end");
        assert_eq!(more, 0, "{cut_off}: {more} more of {all} events sent");
    }
    Ok(())
}

/// actor, detail, channel, trace id, token id of a `token.used` event.
type UseRow = (String, String, Option<String>, Option<String>, Option<i64>);

async fn every_token_call_is_audited(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    let made = tokens::create(
        &app.state,
        &alice,
        &TokenRequest {
            name: "ci".into(),
            scopes: vec![TokenScope::Read],
            expires_in_days: Some(1),
        },
    )
    .await?;
    let token = made.token.id;
    let router = slipway_server::cli::router(&app.state, axum::Router::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    let http = reqwest::Client::new();
    for path in ["/api/v1/me", "/api/v1/requests", "/api/v1/me"] {
        let status = http
            .get(format!("http://{addr}{path}"))
            .bearer_auth(&made.secret)
            .send()
            .await?
            .status();
        assert_eq!(status, reqwest::StatusCode::OK, "{path}");
    }
    let used = |app: &TestApp| {
        let pool = app.state.db.pool.clone();
        async move {
            let rows: Vec<UseRow> = sqlx::query_as(
                "SELECT actor, detail, channel, trace_id, token_id FROM audit_events \
                     WHERE action = 'token.used' AND target_id = $1 ORDER BY seq",
            )
            .bind(token.to_string())
            .fetch_all(&pool)
            .await?;
            Ok::<_, sqlx::Error>(rows)
        }
    };
    let rows = used(app).await?;
    let calls: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        calls,
        ["GET /api/v1/me", "GET /api/v1/requests", "GET /api/v1/me"],
        "one event per call: {rows:?}"
    );
    for (actor, _, channel, trace_id, token_id) in &rows {
        assert_eq!(actor, "alice");
        assert_eq!(channel.as_deref(), Some("api"));
        assert!(trace_id.is_some());
        assert_eq!(*token_id, Some(token));
    }
    // A refused call is a use too; an overlong path is cut.
    let long = format!("/api/v1/requests/{}", "x".repeat(5000));
    let status = http
        .get(format!("http://{addr}{long}"))
        .bearer_auth(&made.secret)
        .send()
        .await?
        .status();
    assert!(status.is_client_error(), "{status}");
    let rows = used(app).await?;
    assert_eq!(rows.len(), 4);
    assert!(rows[3].1.ends_with("… (cut)"), "{}", rows[3].1);
    assert!(rows[3].1.chars().count() < 320);

    // With the batching writer running, uses arrive within moments, in order.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writer = slipway_server::services::token_uses::spawn_writer(app.state.clone(), stopped);
    for _ in 0..300 {
        let _ = tokens::authenticate_call(
            &app.state,
            &made.secret,
            CallMeta::default(),
            "GET /api/v1/assets",
        )
        .await?;
    }
    let _ = stop.send(true);
    writer.await?;
    let rows = used(app).await?;
    assert_eq!(rows.len(), 304, "none lost at shutdown");
    Ok(())
}

/// A database at the schema before sealing, holding a chain written the old way
/// (each writer computing its hash), migrated: every old event takes its place in
/// seq order and the chain still verifies.
async fn existing_chains_verify_after_the_migration(url: &str, engine: Engine) -> TestResult {
    use sha2::{Digest, Sha256};
    use sqlx::migrate::Migrator;
    let source = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .join(match engine {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        });
    let before = tempfile::tempdir()?;
    for entry in std::fs::read_dir(&source)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.as_str() < "20261126" {
            std::fs::copy(entry.path(), before.path().join(&name))?;
        }
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await?;
    Migrator::new(before.path()).await?.run(&pool).await?;
    let mut prev = "genesis".to_string();
    for i in 0..25i64 {
        let at = 1_780_000_000_000 + i;
        // The first events predate the channel columns, so they hash without them.
        let content = if i < 10 {
            serde_json::json!({"at": at, "actor": "alice", "action": "request.submit",
                "target_kind": "request", "target_id": i.to_string(), "before": null,
                "after": "submitted", "detail": ""})
        } else {
            serde_json::json!({"at": at, "actor": "bob", "action": "request.approve",
                "target_kind": "request", "target_id": i.to_string(), "before": "in_review",
                "after": "approved", "detail": "ok", "channel": "portal",
                "client_addr": "127.0.0.1", "trace_id": format!("t{i}")})
        };
        let mut hasher = Sha256::new();
        hasher.update(prev.as_bytes());
        hasher.update(b"\n");
        hasher.update(content.to_string().as_bytes());
        let hash = hex::encode(hasher.finalize());
        sqlx::query(
            "INSERT INTO audit_events (at, actor, action, target_kind, target_id, before_value, \
             after_value, detail, prev_hash, hash, channel, client_addr, trace_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(at)
        .bind(content["actor"].as_str())
        .bind(content["action"].as_str())
        .bind("request")
        .bind(i.to_string())
        .bind(content["before"].as_str())
        .bind(content["after"].as_str())
        .bind(content["detail"].as_str())
        .bind(&prev)
        .bind(&hash)
        .bind(content.get("channel").and_then(|v| v.as_str()))
        .bind(content.get("client_addr").and_then(|v| v.as_str()))
        .bind(content.get("trace_id").and_then(|v| v.as_str()))
        .execute(&pool)
        .await?;
        prev = hash;
    }
    pool.close().await;

    let db = storage::Db::connect(url).await?;
    let mut conn = db.pool.acquire().await?;
    assert_eq!(
        storage::audit::verify_chain(&db).await?,
        ChainStatus::Intact { events: 25 }
    );
    let head = storage::audit::head(&mut conn).await?.ok_or("no head")?;
    assert_eq!((head.position, head.hash.as_str()), (25, prev.as_str()));
    drop(conn);
    // New events chain on from the old head.
    let mut tx = db.write().await?;
    storage::audit::append(
        &mut tx,
        engine,
        &NewEvent {
            origin: &Origin::default(),
            actor_id: None,
            actor: "carol",
            action: "test.after_migration",
            target_kind: "test",
            target_id: "1".into(),
            before: None,
            after: None,
            detail: String::new(),
        },
    )
    .await?;
    tx.commit().await?;
    assert_eq!(audit_chain::seal_pending(&db).await?, 1);
    assert_eq!(
        storage::audit::verify_chain(&db).await?,
        ChainStatus::Intact { events: 26 }
    );
    db.pool.close().await;
    Ok(())
}

#[tokio::test]
async fn existing_chains_verify_after_the_migration_sqlite() -> TestResult {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    existing_chains_verify_after_the_migration(&url, Engine::Sqlite).await
}

#[tokio::test]
async fn existing_chains_verify_after_the_migration_postgres() -> TestResult {
    use sqlx::Connection;
    // Under CI=true a missing PostgreSQL is a failure, not a skip.
    let Some(admin) = common::postgres_admin_url()? else {
        eprintln!(
            "note: {} is not set; skipping the PostgreSQL run",
            common::POSTGRES_ENV
        );
        return Ok(());
    };
    sqlx::any::install_default_drivers();
    let name = format!("slipway_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::AnyConnection::connect(&admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let outcome =
        existing_chains_verify_after_the_migration(&format!("{base}/{name}"), Engine::Postgres)
            .await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    outcome
}

/// channel, client address, trace id of an event.
type OriginRow = (Option<String>, Option<String>, Option<String>);

async fn origin_of(app: &TestApp, action: &str) -> TestResult<Vec<OriginRow>> {
    Ok(sqlx::query_as(
        "SELECT channel, client_addr, trace_id FROM audit_events WHERE action = $1 ORDER BY seq",
    )
    .bind(action)
    .fetch_all(&app.state.db.pool)
    .await?)
}

/// A refused sign-in and a policy's decision within someone's call are written by
/// a rule, not a person, but keep the call's channel, client address and trace id.
async fn acts_of_rules_keep_the_door_address_and_trace_of_the_call(app: &TestApp) -> TestResult {
    use slipway_server::services::{Channel, auth, requests};
    let meta = CallMeta {
        trace_id: Some("trace-of-a-guess".into()),
        client_addr: Some("203.0.113.7".into()),
        channel_user: None,
    };
    let refused = auth::login(&app.state, "alice", "wrong", Channel::Portal, &meta).await;
    assert!(refused.is_err());
    let refused = auth::login(&app.state, "nobody", "wrong", Channel::Api, &meta).await;
    assert!(refused.is_err());
    assert_eq!(
        origin_of(app, "user.sign_in_failed").await?,
        [
            (
                Some("portal".into()),
                Some("203.0.113.7".into()),
                Some("trace-of-a-guess".into())
            ),
            (
                Some("api".into()),
                Some("203.0.113.7".into()),
                Some("trace-of-a-guess".into())
            ),
        ]
    );

    let mut alice = app.user("alice").await?;
    alice.channel = Channel::Api;
    alice.meta = CallMeta {
        trace_id: Some("trace-of-a-submit".into()),
        client_addr: Some("198.51.100.2".into()),
        channel_user: None,
    };
    let params = common::namespace_params("audited", "payments", "dev", 1);
    requests::submit(&app.state, &alice, &common::draft("k8s-namespace", params)).await?;
    let actors: Vec<String> = sqlx::query_scalar(
        "SELECT actor FROM audit_events WHERE action = 'request.auto_approve' ORDER BY seq",
    )
    .fetch_all(&app.state.db.pool)
    .await?;
    assert_eq!(actors, ["policy:k8s-namespace.auto_approve"]);
    assert_eq!(
        origin_of(app, "request.auto_approve").await?,
        [(
            Some("api".into()),
            Some("198.51.100.2".into()),
            Some("trace-of-a-submit".into())
        )]
    );
    Ok(())
}

/// Sealing a backlog stays linear: each event of a chunk finds its row by key.
/// Driven from the index of unsealed events instead, SQLite re-read the chunk for
/// every pending event, and a burst of API calls held the write lock for
/// hundreds of milliseconds.
#[tokio::test]
async fn sealing_finds_each_event_by_its_key_on_sqlite() -> TestResult {
    let Some(app) = TestApp::start(Engine::Sqlite).await? else {
        return Ok(());
    };
    append(&app, 300, "test.backlog").await?;
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!(
        "EXPLAIN QUERY PLAN {}",
        storage::audit::seal_statement(Engine::Sqlite)
    ))
    .bind("[]")
    .fetch_all(&app.state.db.pool)
    .await?;
    let steps: Vec<&str> = plan.iter().map(|(_, _, _, step)| step.as_str()).collect();
    assert!(
        steps
            .iter()
            .any(|s| s.contains("audit_events USING INTEGER PRIMARY KEY")),
        "{steps:?}"
    );
    assert!(
        !steps.iter().any(|s| s.starts_with("SCAN audit_events")),
        "{steps:?}"
    );
    assert!(audit_chain::seal_pending(&app.state.db).await? >= 300);
    let events = app.count("audit_events").await?;
    assert_eq!(status(&app).await?, ChainStatus::Intact { events });
    Ok(())
}

/// A batch appended in one statement (token uses) reads back field for field, in
/// order, and chains like events appended one by one.
async fn events_appended_together_keep_their_order_and_every_field(app: &TestApp) -> TestResult {
    let from_api = Origin {
        channel: "api".into(),
        client_addr: Some("192.0.2.7".into()),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        token_id: Some(42),
        channel_user: Some("@ops-bot:chat.example".into()),
    };
    let quiet = Origin {
        channel: "system".into(),
        ..Origin::default()
    };
    let hostile = "GET /api/v1/requests?q=' OR 1=1 -- \"\\ ünïcødé";
    let events: Vec<NewEvent<'_>> = (0..3)
        .map(|i| NewEvent {
            origin: if i == 1 { &quiet } else { &from_api },
            actor_id: None,
            actor: "tester",
            action: "test.batched",
            target_kind: "token",
            target_id: format!("t{i}"),
            before: None,
            after: (i == 2).then(|| "after".to_string()),
            detail: format!("{hostile} #{i}"),
        })
        .collect();
    let mut tx = app.state.db.write().await?;
    let written = storage::audit::append_many(&mut tx, app.engine, &events).await?;
    tx.commit().await?;
    assert_eq!(written, 3);
    let carol = app.user("carol").await?;
    let filter = AuditFilter {
        action: Some("test.batched".into()),
        ..AuditFilter::default()
    };
    let page = audit::list(&app.state, &carol, &filter, storage::Window::first(10)).await?;
    let mut items = page.items;
    items.reverse();
    let targets: Vec<&str> = items.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets.len(), 3, "{items:?}");
    assert!(
        targets[0].ends_with("t0") && targets[2].ends_with("t2"),
        "{targets:?}"
    );
    assert!(items.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(items[0].detail, format!("{hostile} #0"));
    assert_eq!(items[0].client_addr.as_deref(), Some("192.0.2.7"));
    assert_eq!(items[0].channel.as_deref(), Some("api"));
    assert_eq!(
        items[0].channel_user.as_deref(),
        Some("@ops-bot:chat.example")
    );
    assert_eq!(items[1].client_addr, None);
    assert_eq!(items[1].channel_user, None);
    assert_eq!(items[1].trace_id, None);
    assert_eq!(items[2].after.as_deref(), Some("after"));
    assert_eq!(items[2].before, None);
    let token_ids: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT token_id FROM audit_events WHERE action = 'test.batched' ORDER BY seq",
    )
    .fetch_all(&app.state.db.pool)
    .await?;
    assert_eq!(token_ids, vec![Some(42), None, Some(42)]);
    let mut tx = app.state.db.write().await?;
    assert_eq!(
        storage::audit::append_many(&mut tx, app.engine, &[]).await?,
        0
    );
    tx.rollback().await?;
    audit_chain::seal_pending(&app.state.db).await?;
    let events = app.count("audit_events").await?;
    assert_eq!(status(app).await?, ChainStatus::Intact { events });
    Ok(())
}

/// A long-lived asset's history answers with its newest events only, oldest
/// first; the audit log, filtered by the asset, pages through the rest.
#[tokio::test]
async fn an_assets_history_answers_with_its_newest_events() -> TestResult {
    let Some(app) = TestApp::start(Engine::Sqlite).await? else {
        return Ok(());
    };
    let alice = app.user("alice").await?;
    let request = app.namespace(&alice, "dev", "busy").await?;
    let asset = {
        let mut conn = app.state.db.pool.acquire().await?;
        storage::assets::by_request(&mut conn, request)
            .await?
            .ok_or("an asset")?
    };
    let origin = Origin {
        channel: "system".into(),
        ..Origin::default()
    };
    let limit = slipway_server::services::assets::ASSET_HISTORY_LIMIT as usize;
    let details: Vec<String> = (0..limit + 10).map(|i| format!("event {i}")).collect();
    let events: Vec<NewEvent<'_>> = details
        .iter()
        .map(|detail| NewEvent {
            origin: &origin,
            actor_id: None,
            actor: "tester",
            action: "asset.checked",
            target_kind: "asset",
            target_id: asset.summary.id.to_string(),
            before: None,
            after: None,
            detail: detail.clone(),
        })
        .collect();
    let mut tx = app.state.db.write().await?;
    storage::audit::append_many(&mut tx, app.engine, &events).await?;
    tx.commit().await?;
    let history =
        slipway_server::services::assets::history(&app.state, &alice, asset.summary.id).await?;
    assert_eq!(history.len(), limit);
    assert_eq!(
        history.last().map(|e| e.detail.as_str()),
        Some(format!("event {}", limit + 9).as_str()),
        "the newest last"
    );
    Ok(())
}
