//! ChatOps against a real homeserver: Synapse from PyPI, started by
//! `scripts/synapse` on loopback with SQLite, users registered through its
//! shared-secret admin API. People talk to the bot as Matrix users; the bot calls
//! the same services as the portal.
//!
//! Without Synapse installed the tests pass as skipped, except under `CI=true`.

#[allow(dead_code)]
#[macro_use]
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use slipway_server::chat;
use slipway_server::chat::formatted::Sent;
use slipway_server::config::{ChatSettings, Secret};
use slipway_server::services::{ServiceError, chat as chat_service};
use slipway_server::storage::Engine;
use tempfile::TempDir;
use tokio::sync::watch;

use common::{TestApp, TestResult};

fn script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/synapse"))
}

/// Runs `scripts/synapse` (blocking; from async code through [`script_async`]).
fn run_script(args: &[&str]) -> Result<String, String> {
    run_script_with(args, &[])
}

fn run_script_with(args: &[&str], env: &[(String, String)]) -> Result<String, String> {
    let output = Command::new(script())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|e| format!("scripts/synapse: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "scripts/synapse {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

async fn script_async(args: &[&str]) -> TestResult<String> {
    script_async_with(args, &[]).await
}

async fn script_async_with(args: &[&str], env: &[(&str, &str)]) -> TestResult<String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let answer = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_script_with(&args, &env)
    })
    .await?;
    Ok(answer?)
}

/// Whether Synapse is installed; under `CI=true` it must be.
fn synapse_installed() -> TestResult<bool> {
    if run_script(&["python"]).is_ok() {
        return Ok(true);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return Err("CI=true but Synapse is not installed: run scripts/setup".into());
    }
    eprintln!("SKIPPED: Synapse is not installed (scripts/synapse install)");
    Ok(false)
}

/// One homeserver in its own directory, stopped when dropped.
struct Synapse {
    dir: TempDir,
    url: String,
}

impl Synapse {
    /// Starts a homeserver; `env` tunes `scripts/synapse start` (its rate limits).
    async fn start(env: &[(&str, &str)]) -> TestResult<Synapse> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().display().to_string();
        let url = script_async_with(&["start", &path], env).await?;
        Ok(Synapse { dir, url })
    }

    fn path(&self) -> String {
        self.dir.path().display().to_string()
    }

    async fn stop(&self) -> TestResult {
        script_async(&["stop", &self.path()]).await?;
        Ok(())
    }

    /// Starts it again on the same port, database and keys.
    async fn start_again(&self) -> TestResult {
        script_async(&["start", &self.path()]).await?;
        Ok(())
    }

    async fn register(&self, name: &str) -> TestResult<Person> {
        let answer = script_async(&["register", &self.path(), name, "chat-test-pw"]).await?;
        let answer: Value = serde_json::from_str(&answer)?;
        let text = |key: &str| {
            answer
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("registration answer lacks {key}: {answer}"))
        };
        Ok(Person {
            user_id: text("user_id")?,
            token: text("access_token")?,
            base: self.url.clone(),
            http: reqwest::Client::new(),
        })
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        let _ = run_script(&["stop", &self.path()]);
    }
}

/// A Matrix user the test speaks as.
struct Person {
    user_id: String,
    token: String,
    base: String,
    http: reqwest::Client,
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl Person {
    /// Calls the homeserver, waiting out its rate limit as a patient client would.
    async fn call(&self, request: reqwest::RequestBuilder) -> TestResult<Value> {
        for _ in 0..30 {
            let attempt = request
                .try_clone()
                .ok_or("a request body that cannot be sent twice")?;
            let response = attempt.bearer_auth(&self.token).send().await?;
            let status = response.status();
            let body: Value = response.json().await?;
            if status.as_u16() == 429 {
                let wait = body
                    .get("retry_after_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(500);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                continue;
            }
            if !status.is_success() {
                return Err(format!("{} got {status}: {body}", self.user_id).into());
            }
            return Ok(body);
        }
        Err(format!("{} was rate limited 30 times in a row", self.user_id).into())
    }

    fn url(&self, path: &str) -> String {
        format!("{}/_matrix/client/v3{path}", self.base)
    }

    async fn create_room(&self, invite: &[&str]) -> TestResult<String> {
        self.create_room_with("private_chat", invite).await
    }

    /// A room anyone on the homeserver may join, like a team's review room.
    async fn create_public_room(&self, invite: &[&str]) -> TestResult<String> {
        self.create_room_with("public_chat", invite).await
    }

    async fn create_room_with(&self, preset: &str, invite: &[&str]) -> TestResult<String> {
        let body = self
            .call(
                self.http
                    .post(self.url("/createRoom"))
                    .json(&json!({ "preset": preset, "invite": invite })),
            )
            .await?;
        Ok(body
            .get("room_id")
            .and_then(Value::as_str)
            .ok_or("no room id")?
            .to_string())
    }

    async fn join(&self, room: &str) -> TestResult {
        self.call(
            self.http
                .post(self.url(&format!("/join/{}", encode(room))))
                .json(&json!({})),
        )
        .await?;
        Ok(())
    }

    async fn invite(&self, room: &str, user: &str) -> TestResult {
        self.call(
            self.http
                .post(self.url(&format!("/rooms/{}/invite", encode(room))))
                .json(&json!({ "user_id": user })),
        )
        .await?;
        Ok(())
    }

    /// Sets a state event of `room` (empty state key), as its creator may.
    async fn set_state(&self, room: &str, kind: &str, content: Value) -> TestResult {
        let path = format!("/rooms/{}/state/{kind}/", encode(room));
        self.call(self.http.put(self.url(&path)).json(&content))
            .await?;
        Ok(())
    }

    async fn say(&self, room: &str, text: &str) -> TestResult<String> {
        let txn = uuid::Uuid::new_v4().simple().to_string();
        let body = self
            .call(
                self.http
                    .put(self.url(&format!(
                        "/rooms/{}/send/m.room.message/{txn}",
                        encode(room)
                    )))
                    .json(&json!({ "msgtype": "m.text", "body": text })),
            )
            .await?;
        Ok(body
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// Sends an end-to-end encrypted message as a client would (the bot never
    /// holds the keys to read it).
    async fn say_encrypted(&self, room: &str) -> TestResult {
        let txn = uuid::Uuid::new_v4().simple().to_string();
        self.call(
            self.http
                .put(self.url(&format!(
                    "/rooms/{}/send/m.room.encrypted/{txn}",
                    encode(room)
                )))
                .json(
                    &json!({ "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn…",
                               "device_id": "TEST", "sender_key": "k", "session_id": "s" }),
                ),
        )
        .await?;
        Ok(())
    }

    /// The room's text messages sent by `sender`, oldest first (the newest 200).
    async fn messages_from(&self, room: &str, sender: &str) -> TestResult<Vec<String>> {
        let body = self
            .call(
                self.http
                    .get(self.url(&format!("/rooms/{}/messages", encode(room))))
                    .query(&[("dir", "b"), ("limit", "200")]),
            )
            .await?;
        let mut found: Vec<String> = body
            .get("chunk")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|e| e.get("type").and_then(Value::as_str) == Some("m.room.message"))
            .filter(|e| e.get("sender").and_then(Value::as_str) == Some(sender))
            .filter_map(|e| e.pointer("/content/body").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        found.reverse();
        Ok(found)
    }
}

const WAIT: Duration = Duration::from_secs(60);

/// A conversation: the bot's user id, to tell its messages from others'.
struct Bot {
    user_id: String,
}

impl Bot {
    /// Waits for a message of the bot in `room`, after the first `seen` ones,
    /// that contains `wanted`; answers it and how many the bot has sent there.
    async fn expect(
        &self,
        person: &Person,
        room: &str,
        seen: usize,
        wanted: &str,
    ) -> TestResult<(String, usize)> {
        let deadline = Instant::now() + WAIT;
        loop {
            let messages = person.messages_from(room, &self.user_id).await?;
            if let Some(found) = messages.iter().skip(seen).find(|m| m.contains(wanted)) {
                return Ok((found.clone(), messages.len()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no bot message containing {wanted:?} in {room}; the bot said: {messages:#?}"
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Says `text` and waits for the bot's answer containing `wanted`.
    async fn ask(
        &self,
        person: &Person,
        room: &str,
        text: &str,
        wanted: &str,
    ) -> TestResult<String> {
        let seen = person.messages_from(room, &self.user_id).await?.len();
        person.say(room, text).await?;
        Ok(self.expect(person, room, seen, wanted).await?.0)
    }
}

/// A running Slipway chat adapter, stopped when dropped or on `stop`.
struct Adapter {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Adapter {
    fn start(state: &slipway_server::AppState, settings: &ChatSettings) -> Adapter {
        let (stop, stopped) = watch::channel(false);
        let task = chat::spawn(state.clone(), settings.clone(), stopped);
        Adapter {
            stop,
            task: Some(task),
        }
    }

    async fn stop(mut self) -> TestResult {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task).await??;
        }
        Ok(())
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Everything a chat test needs: Slipway, Synapse, the bot, and people in rooms.
struct World {
    app: TestApp,
    synapse: Synapse,
    settings: ChatSettings,
    bot: Bot,
    review_room: String,
    platform_room: String,
    /// The review rooms of the teams payments and platform.
    team_rooms: [String; 2],
}

impl World {
    async fn start(engine: Engine) -> TestResult<Option<(World, Adapter)>> {
        World::start_with(engine, &[]).await
    }

    async fn start_with(
        engine: Engine,
        synapse_env: &[(&str, &str)],
    ) -> TestResult<Option<(World, Adapter)>> {
        if !synapse_installed()? {
            return Ok(None);
        }
        let Some(app) = TestApp::start(engine).await? else {
            return Ok(None);
        };
        let synapse = Synapse::start(synapse_env).await?;
        let bot = synapse.register("slipway").await?;
        let rooms_admin = synapse.register("rooms").await?;
        let review_room = rooms_admin.create_public_room(&[&bot.user_id]).await?;
        let platform_room = rooms_admin.create_public_room(&[&bot.user_id]).await?;
        let team_rooms = [
            rooms_admin.create_public_room(&[&bot.user_id]).await?,
            rooms_admin.create_public_room(&[&bot.user_id]).await?,
        ];
        let mut settings = ChatSettings::new(synapse.url.clone(), Secret::new(bot.token.clone()));
        settings.review_room = Some(review_room.clone());
        settings.platform_room = Some(platform_room.clone());
        settings.team_review_rooms = [("payments", &team_rooms[0]), ("platform", &team_rooms[1])]
            .into_iter()
            .map(|(team, room)| (team.to_string(), room.clone()))
            .collect();
        settings.sync_wait = Duration::from_secs(5);
        settings.notify_every = Duration::from_millis(200);
        settings.max_backoff = Duration::from_secs(1);
        let world = World {
            app,
            synapse,
            settings,
            bot: Bot {
                user_id: bot.user_id,
            },
            review_room,
            platform_room,
            team_rooms,
        };
        let adapter = world.start_adapter().await?;
        Ok(Some((world, adapter)))
    }

    /// Starts an adapter and waits until it has caught up once (its first sync
    /// only catches up, so a message before it would be history).
    async fn start_adapter(&self) -> TestResult<Adapter> {
        let before = self.sync_token().await?;
        let adapter = Adapter::start(&self.app.state, &self.settings);
        let deadline = Instant::now() + WAIT;
        while self.sync_token().await? == before || self.sync_token().await?.is_none() {
            if Instant::now() > deadline {
                return Err("the chat adapter did not sync".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(adapter)
    }

    async fn sync_token(&self) -> TestResult<Option<String>> {
        let mut conn = self.app.state.db.pool.acquire().await?;
        Ok(slipway_server::storage::chat::cursor(&mut conn, "sync_token").await?)
    }

    /// A Matrix user in a direct room with the bot, linked to the Slipway user
    /// `slipway_user` through a code from the service the account page uses.
    async fn linked_person(
        &self,
        matrix_name: &str,
        slipway_user: &str,
    ) -> TestResult<(Person, String)> {
        let person = self.synapse.register(matrix_name).await?;
        let room = person.create_room(&[&self.bot.user_id]).await?;
        let caller = self.app.user(slipway_user).await?;
        let code = chat_service::issue_link_code(&self.app.state, &caller).await?;
        self.bot
            .ask(
                &person,
                &room,
                &format!("link {}", code.code),
                &format!("you are {slipway_user}"),
            )
            .await?;
        Ok((person, room))
    }

    async fn request_id_in(&self, text: &str) -> TestResult<RequestId> {
        let digits: String = text
            .split("Request #")
            .nth(1)
            .ok_or_else(|| format!("no request id in {text:?}"))?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Ok(RequestId(digits.parse()?))
    }

    /// Chat audit events, with the channel and the chat user recorded.
    async fn chat_events(&self, action: &str) -> TestResult<Vec<(String, String)>> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT channel, channel_user FROM audit_events WHERE action = $1 ORDER BY seq",
        )
        .bind(action)
        .fetch_all(&self.app.state.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(channel, addr)| (channel, addr.unwrap_or_default()))
            .collect())
    }
}

const PROD_NAMESPACE: &str =
    "request k8s-namespace name=web team=payments environment=prod cpu_limit=2";

async fn linking_requesting_and_refusals(engine: Engine) -> TestResult {
    let Some((world, adapter)) = World::start(engine).await? else {
        return Ok(());
    };
    let bot = &world.bot;
    // An unlinked person gets help and the way to link, nothing else.
    let stranger = world.synapse.register("stranger").await?;
    let room = stranger.create_room(&[&bot.user_id]).await?;
    bot.ask(&stranger, &room, "help", "link <code>").await?;
    bot.ask(&stranger, &room, "mine", "I do not know you yet")
        .await?;
    // Told once in a while, not at every command (each answer costs the bot's
    // sending budget, which everyone's answers and notices share).
    stranger.say(&room, PROD_NAMESPACE).await?;
    bot.ask(
        &stranger,
        &room,
        "link WRONG-CODE-1234",
        "unknown, expired or already used",
    )
    .await?;
    assert_eq!(world.app.count("requests").await?, 0);

    // Garbage and oversized messages get help, never a crash.
    bot.ask(&stranger, &room, "\u{0}\u{202e}🦀 ~~~", "Slipway commands")
        .await?;
    bot.ask(&stranger, &room, &"x".repeat(5000), "longer than")
        .await?;
    bot.ask(
        &stranger,
        &room,
        "request k8s-namespace name=\"open",
        "quote is not closed",
    )
    .await?;

    // Linking: a one-time code from the account page, used once.
    let alice_matrix = world.synapse.register("alice").await?;
    let alice_room = alice_matrix.create_room(&[&bot.user_id]).await?;
    let alice = world.app.user("alice").await?;
    let code = chat_service::issue_link_code(&world.app.state, &alice).await?;
    bot.ask(
        &alice_matrix,
        &alice_room,
        &format!("link {}", code.code),
        "you are alice",
    )
    .await?;
    bot.ask(
        &stranger,
        &room,
        &format!("link {}", code.code),
        "already used",
    )
    .await?;
    assert_eq!(
        world.chat_events("chat.linked").await?,
        vec![("chat".to_string(), alice_matrix.user_id.clone())]
    );

    bot.ask(&alice_matrix, &alice_room, "types", "k8s-namespace")
        .await?;
    bot.ask(
        &alice_matrix,
        &alice_room,
        "show k8s-namespace",
        "cpu_limit (CPU limit (cores)): integer, from 1, up to 64",
    )
    .await?;
    // A request that fails its pre-check: the field, its title and the rule, like the form.
    let refused = bot
        .ask(
            &alice_matrix,
            &alice_room,
            "request k8s-namespace name=Bad_Name team=payments environment=prod cpu_limit=99",
            "The pre-check did not pass",
        )
        .await?;
    assert!(refused.contains("name (Name)"), "{refused}");
    assert!(
        refused.contains("cpu_limit (CPU limit (cores))"),
        "{refused}"
    );
    // The human fallback: the portal's form, filled with what was sent.
    assert!(
        refused.contains(
            "/requests/new/k8s-namespace?name=Bad_Name&team=payments&environment=prod&cpu_limit=99"
        ),
        "{refused}"
    );
    assert_eq!(world.app.count("requests").await?, 0);
    // Fixed, it is submitted and waits for review.
    let submitted = bot
        .ask(
            &alice_matrix,
            &alice_room,
            PROD_NAMESPACE,
            "Pre-check passed",
        )
        .await?;
    let id = world.request_id_in(&submitted).await?;
    assert!(
        submitted.contains(&format!("/requests/{id}")),
        "{submitted}"
    );
    assert_eq!(world.app.request_state(id).await?, RequestState::InReview);
    bot.ask(
        &alice_matrix,
        &alice_room,
        &format!("status #{id}"),
        "In review",
    )
    .await?;
    bot.ask(
        &alice_matrix,
        &alice_room,
        "mine",
        &format!("#{id} k8s-namespace payments-web-prod"),
    )
    .await?;
    // Alice may not approve (she is no reviewer), from chat as anywhere.
    bot.ask(
        &alice_matrix,
        &alice_room,
        &format!("approve #{id}"),
        "Refused",
    )
    .await?;
    assert_eq!(world.app.request_state(id).await?, RequestState::InReview);
    // A secret is typed into the portal, never into chat; none is echoed back.
    bot.ask(
        &alice_matrix,
        &alice_room,
        "show postgres-database",
        "secret: set it in the portal",
    )
    .await?;
    let secret = bot
        .ask(
            &alice_matrix,
            &alice_room,
            "request postgres-database name=orders owner_password=hunter2hunter2",
            "is secret",
        )
        .await?;
    assert!(!secret.contains("hunter2"), "{secret}");
    let submits = world.chat_events("request.submit").await?;
    assert_eq!(
        submits,
        vec![("chat".to_string(), alice_matrix.user_id.clone())]
    );
    adapter.stop().await?;
    Ok(())
}

async fn review_round_from_chat(engine: Engine) -> TestResult {
    let Some((world, adapter)) = World::start(engine).await? else {
        return Ok(());
    };
    let bot = &world.bot;
    let (alice, alice_room) = world.linked_person("alice", "alice").await?;
    let (bob, bob_room) = world.linked_person("bob", "bob").await?;
    bob.join(&world.review_room).await?;
    let review = world.review_room.as_str();

    let submitted = bot
        .ask(&alice, &alice_room, PROD_NAMESPACE, "Pre-check passed")
        .await?;
    let id = world.request_id_in(&submitted).await?;
    // The review room is told: parameters, pre-check, the link to the diff.
    let (notice, seen) = bot
        .expect(&bob, review, 0, &format!("Request #{id} waits for review"))
        .await?;
    for part in [
        "cpu_limit: 2",
        "Pre-check: passed",
        "risk: Production namespace",
        &format!("/requests/{id}"),
        &format!("!approve #{id}"),
    ] {
        assert!(notice.contains(part), "{part:?} missing in {notice}");
    }
    // In the review room reviewers talk among themselves: a sentence that starts
    // with a command word is not one. Only what is addressed to the bot is run
    // (had the sentence been run, the request would be back with alice already
    // and the command below refused).
    bob.say(review, &format!("changes #{id} look fine to me, approving"))
        .await?;
    // Changes requested from chat; the requester hears it in her room.
    bot.ask(
        &bob,
        review,
        &format!("!changes #{id} use 4 cores"),
        "sent back for changes",
    )
    .await?;
    assert_eq!(
        world.app.request_state(id).await?,
        RequestState::ChangesRequested
    );
    bot.expect(&alice, &alice_room, 0, "asks for changes to request")
        .await?;
    // She revises in the portal; the room is told about revision 2, bound to it.
    let alice_portal = world.app.user("alice").await?;
    let params = json!({"name": "web", "team": "payments", "environment": "prod",
                        "cpu_limit": 4, "memory_limit_gi": 8});
    slipway_server::services::requests::resubmit(&world.app.state, &alice_portal, id, &params)
        .await?;
    bot.expect(&bob, review, seen, "(revision 2)").await?;
    // A mention addresses the bot as a leading `!` does.
    let approved = bot
        .ask(&bob, review, &format!("slipway: approve #{id}"), "approved")
        .await?;
    assert!(approved.contains("revision 2"), "{approved}");
    assert_eq!(world.app.request_state(id).await?, RequestState::Approved);
    world.app.run_jobs().await?;
    assert_eq!(world.app.request_state(id).await?, RequestState::Completed);
    bot.expect(&alice, &alice_room, 0, "is completed").await?;
    // Every decision from chat is audited on the chat channel with the chat user.
    let decisions = [
        world.chat_events("request.request_changes").await?,
        world.chat_events("request.approve").await?,
    ];
    for events in decisions {
        assert_eq!(events, vec![("chat".to_string(), bob.user_id.clone())]);
    }
    let comments: Vec<String> =
        sqlx::query_scalar("SELECT comment FROM decisions WHERE request_id = $1")
            .bind(id.0)
            .fetch_all(&world.app.state.db.pool)
            .await?;
    assert!(
        comments.iter().all(|c| !c.contains("look fine")),
        "{comments:?}"
    );

    // Nobody approves their own request, from chat as anywhere.
    let own = bot
        .ask(
            &bob,
            review,
            "!request k8s-namespace name=ops team=platform environment=prod",
            "Pre-check passed",
        )
        .await?;
    let own_id = world.request_id_in(&own).await?;
    bot.expect(
        &bob,
        review,
        0,
        &format!("Request #{own_id} waits for review"),
    )
    .await?;
    bot.ask(&bob, review, &format!("!approve #{own_id}"), "Refused")
        .await?;
    assert_eq!(
        world.app.request_state(own_id).await?,
        RequestState::InReview
    );
    // The same name again, with a rule broken: the review room hears the rule,
    // not which request holds the name; bob's direct chat hears both.
    let again = "request k8s-namespace name=ops team=platform environment=prod memory_limit_gi=999";
    let aloud = bot
        .ask(
            &bob,
            review,
            &format!("!{again}"),
            "The pre-check did not pass",
        )
        .await?;
    assert!(
        aloud.contains("memory_limit_gi (Memory limit (GiB))"),
        "{aloud}"
    );
    assert!(aloud.contains("in a direct chat"), "{aloud}");
    assert!(!aloud.contains("taken by"), "{aloud}");
    assert!(!aloud.contains(&format!("#{own_id}")), "{aloud}");
    let direct = bot
        .ask(&bob, &bob_room, again, "The pre-check did not pass")
        .await?;
    assert!(
        direct.contains(&format!("already taken by request #{own_id}")),
        "{direct}"
    );
    assert!(
        direct.contains("memory_limit_gi (Memory limit (GiB))"),
        "{direct}"
    );

    // Each team's review room hears its team's requests and those of the types
    // the team offers (platform offers namespaces), never another team's.
    let [payments_room, platform_team_room] = &world.team_rooms;
    alice.join(payments_room).await?;
    bob.join(platform_team_room).await?;
    for (who, room, request) in [
        (&alice, payments_room, id),
        (&bob, platform_team_room, id),
        (&bob, platform_team_room, own_id),
    ] {
        let text = format!("Request #{request} waits for review");
        bot.expect(who, room, 0, &text).await?;
    }
    let heard = alice.messages_from(payments_room, &bot.user_id).await?;
    let others = format!("Request #{own_id} ");
    assert!(
        heard.iter().all(|m| !m.contains(&others)),
        "the payments room heard the platform team's request: {heard:#?}"
    );
    adapter.stop().await
}

/// The homeserver restarts mid-conversation, then Slipway does: the bot resumes
/// from its stored sync token and answers every message exactly once.
async fn restarts_mid_conversation(engine: Engine) -> TestResult {
    let Some((world, adapter)) = World::start(engine).await? else {
        return Ok(());
    };
    let bot = &world.bot;
    let (alice, room) = world.linked_person("alice", "alice").await?;
    let submitted = bot
        .ask(&alice, &room, PROD_NAMESPACE, "Pre-check passed")
        .await?;
    let id = world.request_id_in(&submitted).await?;

    world.synapse.stop().await?;
    // The bot meets a closed port for a while, and backs off.
    tokio::time::sleep(Duration::from_secs(2)).await;
    world.synapse.start_again().await?;
    bot.ask(&alice, &room, &format!("status #{id}"), "In review")
        .await?;

    // Slipway restarts: a new process state and adapter on the same database; a
    // message sent while it was down is answered once it is back.
    adapter.stop().await?;
    let seen = alice.messages_from(&room, &bot.user_id).await?.len();
    alice.say(&room, "mine").await?;
    let restarted = world.app.restart().await?;
    let adapter = Adapter::start(&restarted, &world.settings);
    bot.expect(&alice, &room, seen, &format!("#{id} k8s-namespace"))
        .await?;
    bot.ask(&alice, &room, "status #999", "not found").await?;

    // Give a duplicate the time to show, then count: one answer per message.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = alice.messages_from(&room, &alice.user_id).await?.len();
    let answered = alice.messages_from(&room, &bot.user_id).await?.len();
    assert_eq!(
        (asked, answered),
        (5, 5),
        "link, request, status, mine, status"
    );
    assert_eq!(world.app.count("requests").await?, 1);
    adapter.stop().await
}

/// More messages came while Slipway was down than one sync page holds (100): the
/// bot reads the room's gap back and answers a command from before the page, once.
async fn a_long_absence_is_read_back_in_full(engine: Engine) -> TestResult {
    let Some((world, adapter)) = World::start(engine).await? else {
        return Ok(());
    };
    let bot = &world.bot;
    let (alice, room) = world.linked_person("alice", "alice").await?;
    adapter.stop().await?;
    let seen = alice.messages_from(&room, &bot.user_id).await?.len();
    alice.say(&room, "status #999").await?;
    // The bot's own account buries the command (the bot never answers itself).
    let bot_account = Person {
        user_id: bot.user_id.clone(),
        token: world.settings.token.expose().to_string(),
        base: world.synapse.url.clone(),
        http: reqwest::Client::new(),
    };
    for n in 0..120 {
        bot_account.say(&room, &format!("filler {n}")).await?;
    }
    let adapter = Adapter::start(&world.app.state, &world.settings);
    bot.expect(&alice, &room, seen, "not found").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answers = alice.messages_from(&room, &bot.user_id).await?;
    let found = answers.iter().filter(|a| a.contains("not found")).count();
    assert_eq!(found, 1, "one answer to the buried command");
    adapter.stop().await
}

/// An invitation the bot heard just before Slipway stopped, and had not joined
/// yet, is joined after the restart: a later sync does not bring it again.
async fn an_invitation_heard_before_a_stop_is_joined_after_it(engine: Engine) -> TestResult {
    let Some((world, adapter)) = World::start(engine).await? else {
        return Ok(());
    };
    let bot = &world.bot;
    let (alice, _) = world.linked_person("alice", "alice").await?;
    adapter.stop().await?;
    let room = alice.create_room(&[&bot.user_id]).await?;
    // The bot's stored sync token moves past the invitation, as it does when
    // the sync that brought it was recorded and the join had not happened.
    let bot_account = Person {
        user_id: bot.user_id.clone(),
        token: world.settings.token.expose().to_string(),
        base: world.synapse.url.clone(),
        http: reqwest::Client::new(),
    };
    let state = &world.app.state;
    let since: String = sqlx::query_scalar("SELECT value FROM chat_cursors WHERE name = $1")
        .bind("sync_token")
        .fetch_one(&state.db.pool)
        .await?;
    let synced = bot_account
        .call(
            bot_account
                .http
                .get(bot_account.url("/sync"))
                .query(&[("since", since.as_str()), ("timeout", "0")]),
        )
        .await?;
    assert!(
        synced.pointer(&format!("/rooms/invite/{room}")).is_some(),
        "the sync that moves the token past brings the invitation: {synced}"
    );
    let next = synced
        .get("next_batch")
        .and_then(Value::as_str)
        .ok_or("a next batch")?;
    let mut tx = state.db.write().await?;
    slipway_server::storage::chat::set_cursor(&mut tx, "sync_token", next).await?;
    tx.commit().await?;

    let adapter = Adapter::start(state, &world.settings);
    let path = format!("/rooms/{}/joined_members", encode(&room));
    let deadline = Instant::now() + WAIT;
    loop {
        let members = alice.call(alice.http.get(alice.url(&path))).await?;
        if members
            .pointer("/joined")
            .and_then(|j| j.get(&bot.user_id))
            .is_some()
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the bot never joined {room}: {members}").into());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    bot.ask(&alice, &room, "status #999", "not found").await?;
    adapter.stop().await
}

#[tokio::test]
async fn an_invitation_heard_before_a_stop_is_joined_after_it_sqlite() -> TestResult {
    an_invitation_heard_before_a_stop_is_joined_after_it(Engine::Sqlite).await
}

/// Every replica may be given the chat settings: one holds the bot's lock and
/// runs it, the other stands by, and takes over when the first stops.
async fn one_bot_among_replicas(engine: Engine) -> TestResult {
    let Some((world, first)) = World::start(engine).await? else {
        return Ok(());
    };
    let bot = &world.bot;
    let (alice, room) = world.linked_person("alice", "alice").await?;
    let replica = world.app.restart().await?;
    let second = Adapter::start(&replica, &world.settings);
    for n in 1..=3 {
        bot.ask(&alice, &room, &format!("status #{}", 900 + n), "not found")
            .await?;
    }
    let holders = || async {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 7105005 \
             AND granted AND database = (SELECT oid FROM pg_database \
             WHERE datname = current_database())",
        )
        .fetch_one(&world.app.state.db.pool)
        .await?;
        TestResult::<i64>::Ok(held)
    };
    assert_eq!(holders().await?, 1, "one bot runs, the other stands by");
    first.stop().await?;
    bot.ask(&alice, &room, "status #999", "not found").await?;
    assert_eq!(holders().await?, 1, "the standby took the lock over");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = alice.messages_from(&room, &alice.user_id).await?.len();
    let answered = alice.messages_from(&room, &bot.user_id).await?.len();
    assert_eq!(
        (asked, answered),
        (5, 5),
        "link and four questions, once each"
    );
    second.stop().await
}

/// A homeserver that rate-limits hard: the bot waits out each 429 for as long as it
/// is told and every message still gets its one answer.
async fn rate_limits_slow_the_bot_but_lose_nothing(engine: Engine) -> TestResult {
    let limits = [
        ("SLIPWAY_SYNAPSE_MESSAGES_PER_SECOND", "1"),
        ("SLIPWAY_SYNAPSE_MESSAGE_BURST", "2"),
    ];
    let Some((world, adapter)) = World::start_with(engine, &limits).await? else {
        return Ok(());
    };
    let bot = &world.bot;
    let person = world.synapse.register("chatty").await?;
    let room = person.create_room(&[&bot.user_id]).await?;
    let alice = world.app.user("alice").await?;
    let code = chat_service::issue_link_code(&world.app.state, &alice).await?;
    bot.ask(
        &person,
        &room,
        &format!("link {}", code.code),
        "you are alice",
    )
    .await?;
    for n in 0..6 {
        person.say(&room, &format!("status #{}", n + 1)).await?;
    }
    let deadline = Instant::now() + WAIT;
    while person.messages_from(&room, &bot.user_id).await?.len() < 7 {
        if Instant::now() > deadline {
            return Err("the bot lost answers under the rate limit".into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answers = person.messages_from(&room, &bot.user_id).await?;
    assert_eq!(
        answers.len(),
        7,
        "the link, then one answer per command: {answers:#?}"
    );
    assert!(answers.iter().all(|a| !a.contains("I do not know you yet")));
    adapter.stop().await
}

/// In a room of several people the bot answers only commands addressed to it
/// (`!status`, or a mention) and links no one (the linked room hears reviewers'
/// comments); a link code said there is used up all the same. A direct chat gets
/// the rest. An encrypted message, which the bot cannot read, is answered once.
async fn group_rooms_hear_only_commands(engine: Engine) -> TestResult {
    let Some((world, adapter)) = World::start(engine).await? else {
        return Ok(());
    };
    let bot = &world.bot;
    let erin = world.synapse.register("erin").await?;
    let frank = world.synapse.register("frank").await?;
    let team = erin.create_room(&[&bot.user_id, &frank.user_id]).await?;
    frank.join(&team).await?;
    bot.ask(&erin, &team, "!status #1", "I do not know you yet")
        .await?;
    erin.say(&team, "good morning, everyone").await?;
    erin.say(&team, "status #1 is what frank asked about")
        .await?;
    let caller = world.app.user("alice").await?;
    let code = chat_service::issue_link_code(&world.app.state, &caller).await?;
    bot.ask(
        &erin,
        &team,
        &format!("link {}", code.code),
        "it is used up",
    )
    .await?;
    let mention = format!("{}: help", bot.user_id);
    bot.ask(&erin, &team, &mention, "Slipway commands").await?;
    let said = erin.messages_from(&team, &bot.user_id).await?;
    assert_eq!(said.len(), 3, "chatter is not answered: {said:#?}");
    let spoken = chat_service::issue_link_code(&world.app.state, &caller).await?;
    bot.ask(
        &erin,
        &team,
        &format!("!link {}", spoken.code),
        "it is used up",
    )
    .await?;
    // Frank read the code in the shared room: it links no one, him or erin.
    let franks = frank.create_room(&[&bot.user_id]).await?;
    bot.ask(
        &frank,
        &franks,
        &format!("link {}", code.code),
        "unknown, expired or already used",
    )
    .await?;
    let direct = erin.create_room(&[&bot.user_id]).await?;
    bot.ask(
        &erin,
        &direct,
        &format!("link {}", code.code),
        "unknown, expired or already used",
    )
    .await?;
    // A new code, sent in a direct chat, links her.
    let code = chat_service::issue_link_code(&world.app.state, &caller).await?;
    bot.ask(
        &erin,
        &direct,
        &format!("link {}", code.code),
        "you are alice",
    )
    .await?;
    erin.say_encrypted(&direct).await?;
    erin.say_encrypted(&direct).await?;
    bot.ask(&erin, &direct, "mine", "requests").await?;
    let said = erin.messages_from(&direct, &bot.user_id).await?;
    let told = said
        .iter()
        .filter(|m| m.contains("cannot read encrypted"))
        .count();
    assert_eq!(told, 1, "{said:#?}");
    adapter.stop().await
}

#[tokio::test]
async fn group_rooms_hear_only_commands_sqlite() -> TestResult {
    group_rooms_hear_only_commands(Engine::Sqlite).await
}

/// Spoils the approved change set, as `flows.rs` does, so its run fails.
async fn tamper_with_change_set(app: &TestApp, id: RequestId) -> TestResult {
    let mut conn = app.state.db.pool.acquire().await?;
    let mut revision = slipway_server::storage::requests::revisions(&mut conn, id)
        .await?
        .remove(0);
    drop(conn);
    revision.change_set.files[0]
        .content
        .push_str("# slipped in after the review\n");
    sqlx::query(
        "UPDATE request_revisions SET change_set = $1 WHERE request_id = $2 AND revision = 1",
    )
    .bind(serde_json::to_string(&revision.change_set)?)
    .bind(id.0)
    .execute(&app.state.db.pool)
    .await?;
    Ok(())
}

/// A failed run: the requester is told, the platform room is told, and an admin
/// retries and then takes it over from there.
async fn failures_reach_the_platform_room(engine: Engine) -> TestResult {
    let Some((world, adapter)) = World::start(engine).await? else {
        return Ok(());
    };
    let bot = &world.bot;
    let (alice, alice_room) = world.linked_person("alice", "alice").await?;
    let (carol, _) = world.linked_person("carol", "carol").await?;
    carol.join(&world.platform_room).await?;
    let platform = world.platform_room.as_str();
    let submitted = bot
        .ask(&alice, &alice_room, PROD_NAMESPACE, "Pre-check passed")
        .await?;
    let id = world.request_id_in(&submitted).await?;
    let bob = world.app.user("bob").await?;
    slipway_server::services::reviews::decide(
        &world.app.state,
        &bob,
        id,
        1,
        slipway_core::views::ReviewDecision::Approve,
        "",
    )
    .await?;
    tamper_with_change_set(&world.app, id).await?;
    world.app.run_jobs().await?;
    assert_eq!(world.app.request_state(id).await?, RequestState::Failed);
    let (notice, seen) = bot
        .expect(&carol, platform, 0, &format!("!retry #{id} or !take #{id}"))
        .await?;
    assert!(notice.contains("hash"), "the failure says why: {notice}");
    bot.expect(&alice, &alice_room, 0, "the platform team is told")
        .await?;
    // The requester may not retry; an admin may, from the platform room.
    bot.ask(&alice, &alice_room, &format!("retry #{id}"), "Refused")
        .await?;
    bot.ask(
        &carol,
        platform,
        &format!("!retry #{id}"),
        "queued to run again",
    )
    .await?;
    world.app.run_jobs().await?;
    assert_eq!(world.app.request_state(id).await?, RequestState::Failed);
    bot.expect(
        &carol,
        platform,
        seen,
        &format!("!retry #{id} or !take #{id}"),
    )
    .await?;
    bot.ask(&carol, platform, &format!("!take #{id}"), "by hand")
        .await?;
    assert_eq!(world.app.request_state(id).await?, RequestState::Manual);
    assert_eq!(
        world.chat_events("request.take_over").await?,
        vec![("chat".to_string(), carol.user_id.clone())]
    );
    adapter.stop().await
}

/// Bob rejects request `id` with a comment naming the ledger team; then carol's
/// request is approved at once (dev). The notifier tells in order, so once
/// carol hears hers, the rejection was handled.
async fn rejected_before_carols_request(
    world: &World,
    id: RequestId,
    (carol, carol_room): (&Person, &str),
) -> TestResult {
    let state = &world.app.state;
    let bob = world.app.user("bob").await?;
    slipway_server::services::reviews::decide(
        state,
        &bob,
        id,
        1,
        slipway_core::views::ReviewDecision::Reject,
        "the ledger team owns this name",
    )
    .await?;
    let carol_portal = world.app.user("carol").await?;
    let dev = common::namespace_params("tools", "platform", "dev", 1);
    slipway_server::services::requests::submit(
        state,
        &carol_portal,
        &common::draft("k8s-namespace", dev),
    )
    .await?;
    world
        .bot
        .expect(carol, carol_room, 0, "is approved")
        .await?;
    Ok(())
}

/// Someone is invited to a requester's linked room after she linked it as her
/// direct chat: what the bot would tell her there (a reviewer's comment, the
/// resource's name) is held back, while other people's notices go on. Held back
/// from the invitation on, not from the join: once in, the invited person reads
/// the room's history.
async fn a_linked_room_others_joined_hears_no_more_notices(engine: Engine) -> TestResult {
    let Some((world, adapter)) = World::start(engine).await? else {
        return Ok(());
    };
    let bot = &world.bot;
    let (alice, alice_room) = world.linked_person("alice", "alice").await?;
    let (carol, carol_room) = world.linked_person("carol", "carol").await?;
    let mallory = world.synapse.register("mallory").await?;
    alice.invite(&alice_room, &mallory.user_id).await?;
    let state = &world.app.state;
    let alice_portal = world.app.user("alice").await?;
    let prod = common::namespace_params("web", "payments", "prod", 2);
    let id = slipway_server::services::requests::submit(
        state,
        &alice_portal,
        &common::draft("k8s-namespace", prod),
    )
    .await?;
    rejected_before_carols_request(&world, id, (&carol, &carol_room)).await?;
    mallory.join(&alice_room).await?;
    let heard = mallory.messages_from(&alice_room, &bot.user_id).await?;
    assert!(
        heard.iter().all(|m| !m.contains("ledger team")),
        "a notice went to a room others had joined: {heard:#?}"
    );
    adapter.stop().await
}

/// A requester whose identity provider has not confirmed her account lately (she
/// left the company) may no longer ask for anything in chat, and hears nothing
/// more of her requests there either: not the reviewer's comment on the one she
/// left open.
async fn a_lapsed_account_hears_no_more_notices(engine: Engine) -> TestResult {
    let Some((world, adapter)) = World::start(engine).await? else {
        return Ok(());
    };
    let bot = &world.bot;
    let (alice, alice_room) = world.linked_person("alice", "alice").await?;
    let (carol, carol_room) = world.linked_person("carol", "carol").await?;
    let state = &world.app.state;
    let alice_portal = world.app.user("alice").await?;
    let prod = common::namespace_params("web", "payments", "prod", 2);
    let id = slipway_server::services::requests::submit(
        state,
        &alice_portal,
        &common::draft("k8s-namespace", prod),
    )
    .await?;
    sqlx::query(
        "UPDATE users SET external_issuer = 'https://idp.example', \
         external_subject = 'alice-subject', confirmed_at = 0 WHERE username = 'alice'",
    )
    .execute(&state.db.pool)
    .await?;
    rejected_before_carols_request(&world, id, (&carol, &carol_room)).await?;
    let heard = alice.messages_from(&alice_room, &bot.user_id).await?;
    assert!(
        heard.iter().all(|m| !m.contains("ledger team")),
        "a lapsed account heard a reviewer's comment: {heard:#?}"
    );
    adapter.stop().await
}

/// Alice opens the history of her linked direct chat to anyone: from then on
/// the bot answers there as where others read, saying why, links no one there
/// (using the code up), and holds back her notices, telling her once why.
async fn a_linked_room_opened_to_the_world_hears_nothing_private(engine: Engine) -> TestResult {
    let Some((world, adapter)) = World::start(engine).await? else {
        return Ok(());
    };
    let bot = &world.bot;
    let (alice, alice_room) = world.linked_person("alice", "alice").await?;
    let (carol, carol_room) = world.linked_person("carol", "carol").await?;
    let submitted = bot
        .ask(&alice, &alice_room, PROD_NAMESPACE, "Pre-check passed")
        .await?;
    let id = world.request_id_in(&submitted).await?;
    let readable = json!({ "history_visibility": "world_readable" });
    alice
        .set_state(&alice_room, "m.room.history_visibility", readable)
        .await?;
    let why = "This room is not private: anyone may read this room's history";
    let mine = bot.ask(&alice, &alice_room, "mine", why).await?;
    assert!(!mine.contains("payments-web-prod"), "{mine}");
    let caller = world.app.user("alice").await?;
    let code = chat_service::issue_link_code(&world.app.state, &caller).await?;
    let link = format!("link {}", code.code);
    let used_up = bot.ask(&alice, &alice_room, &link, "it is used up").await?;
    // Told once why: the next answer there is the answer alone.
    assert!(
        !used_up.contains(why) && !used_up.contains(&code.code),
        "{used_up}"
    );
    rejected_before_carols_request(&world, id, (&carol, &carol_room)).await?;
    let heard = alice.messages_from(&alice_room, &bot.user_id).await?;
    assert!(
        heard.iter().all(|m| !m.contains("ledger team")),
        "a notice went to a room anyone may read: {heard:#?}"
    );
    let told = heard
        .iter()
        .filter(|m| m.contains("I hold it back here"))
        .count();
    assert_eq!(told, 1, "{heard:#?}");
    adapter.stop().await
}

#[tokio::test]
async fn a_linked_room_opened_to_the_world_hears_nothing_private_sqlite() -> TestResult {
    a_linked_room_opened_to_the_world_hears_nothing_private(Engine::Sqlite).await
}

#[tokio::test]
async fn a_lapsed_account_hears_no_more_notices_sqlite() -> TestResult {
    a_lapsed_account_hears_no_more_notices(Engine::Sqlite).await
}

#[tokio::test]
async fn a_linked_room_others_joined_hears_no_more_notices_sqlite() -> TestResult {
    a_linked_room_others_joined_hears_no_more_notices(Engine::Sqlite).await
}

#[tokio::test]
async fn linking_requesting_and_refusals_sqlite() -> TestResult {
    linking_requesting_and_refusals(Engine::Sqlite).await
}

#[tokio::test]
async fn linking_requesting_and_refusals_postgres() -> TestResult {
    linking_requesting_and_refusals(Engine::Postgres).await
}

#[tokio::test]
async fn review_round_from_chat_sqlite() -> TestResult {
    review_round_from_chat(Engine::Sqlite).await
}

#[tokio::test]
async fn review_round_from_chat_postgres() -> TestResult {
    review_round_from_chat(Engine::Postgres).await
}

#[tokio::test]
async fn restarts_mid_conversation_sqlite() -> TestResult {
    restarts_mid_conversation(Engine::Sqlite).await
}

#[tokio::test]
async fn failures_reach_the_platform_room_sqlite() -> TestResult {
    failures_reach_the_platform_room(Engine::Sqlite).await
}

#[tokio::test]
async fn rate_limits_slow_the_bot_but_lose_nothing_sqlite() -> TestResult {
    rate_limits_slow_the_bot_but_lose_nothing(Engine::Sqlite).await
}

#[tokio::test]
async fn a_long_absence_is_read_back_in_full_sqlite() -> TestResult {
    a_long_absence_is_read_back_in_full(Engine::Sqlite).await
}

#[tokio::test]
async fn one_bot_among_replicas_postgres() -> TestResult {
    one_bot_among_replicas(Engine::Postgres).await
}

#[tokio::test]
async fn restarts_mid_conversation_postgres() -> TestResult {
    restarts_mid_conversation(Engine::Postgres).await
}

/// The answer layer without a homeserver: an approval typed in chat is bound to
/// the revision and change set the room it was typed in was shown, so a
/// revision that arrived since (and was not yet shown there) is a conflict, not
/// a blind approval, and a room shown nothing binds nothing.
async fn approval_is_bound_to_what_the_review_room_was_shown(app: &TestApp) -> TestResult {
    use slipway_server::chat::answer::{Asker, Audience, answer};
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let code = chat_service::issue_link_code(state, &bob).await?;
    chat_service::link(
        state,
        "@bob:chat.test",
        "!dm:chat.test",
        &code.code,
        "$link",
    )
    .await?;
    let params = json!({"name": "web", "team": "payments", "environment": "prod",
                        "cpu_limit": 2, "memory_limit_gi": 8});
    let id = slipway_server::services::requests::submit(
        state,
        &alice,
        &common::draft("k8s-namespace", params.clone()),
    )
    .await?;
    let shown = app.request(id).await?;
    let mut conn = state.db.pool.acquire().await?;
    let revision_one = slipway_server::storage::requests::revisions(&mut conn, id)
        .await?
        .remove(0);
    slipway_server::storage::chat::set_review_notice(
        &mut conn,
        (id, "!reviews:chat.test"),
        shown.current_revision,
        &revision_one.change_set_hash,
    )
    .await?;
    drop(conn);
    slipway_server::services::reviews::decide(
        state,
        &bob,
        id,
        1,
        slipway_core::views::ReviewDecision::RequestChanges,
        "more memory",
    )
    .await?;
    let mut revised = params;
    revised["memory_limit_gi"] = json!(16);
    slipway_server::services::requests::resubmit(state, &alice, id, &revised).await?;

    let asker = Asker {
        chat_user: "@bob:chat.test",
        room_id: "!reviews:chat.test",
        event_id: "$approve",
        audience: Audience::Shared,
    };
    let refused = answer(state, &asker, &format!("approve #{id}")).await;
    assert!(
        refused.contains("revision 2") && refused.contains("revision 1"),
        "{refused}"
    );
    assert_eq!(app.request_state(id).await?, RequestState::InReview);
    // Once the room is shown revision 2, the same words approve it.
    let mut conn = state.db.pool.acquire().await?;
    let revision_two = slipway_server::storage::requests::revisions(&mut conn, id)
        .await?
        .remove(1);
    slipway_server::storage::chat::set_review_notice(
        &mut conn,
        (id, "!reviews:chat.test"),
        2,
        &revision_two.change_set_hash,
    )
    .await?;
    drop(conn);
    // What the review room was shown binds nothing typed elsewhere: in his
    // direct chat, which was shown no notice, bob is asked to name the revision.
    let elsewhere = Asker {
        room_id: "!dm:chat.test",
        event_id: "$approve-in-dm",
        audience: Audience::Direct,
        ..asker
    };
    let prompt = answer(state, &elsewhere, &format!("approve #{id}")).await;
    assert!(prompt.contains(&format!("approve #{id} r2")), "{prompt}");
    assert_eq!(app.request_state(id).await?, RequestState::InReview);
    let approved = answer(state, &asker, &format!("approve #{id}")).await;
    assert!(approved.contains("approved (revision 2"), "{approved}");
    assert_eq!(app.request_state(id).await?, RequestState::Approved);
    Ok(())
}

on_both_engines!(approval_is_bound_to_what_the_review_room_was_shown);

/// Where no review notice was shown (no review room, or a request in review
/// before the bot started), `approve #12` approves nothing: the bot names the
/// current revision and the approval must name it back.
async fn an_approval_without_a_notice_names_its_revision(app: &TestApp) -> TestResult {
    use slipway_server::chat::answer::{Asker, Audience, answer};
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    for (user, chat_user, room, event) in [
        (&alice, "@alice:chat.test", "!a:chat.test", "$link-a"),
        (&bob, "@bob:chat.test", "!b:chat.test", "$link-b"),
    ] {
        let code = chat_service::issue_link_code(state, user).await?;
        chat_service::link(state, chat_user, room, &code.code, event).await?;
    }
    let params = json!({"name": "web", "team": "payments", "environment": "prod",
                        "cpu_limit": 2, "memory_limit_gi": 8});
    let id = slipway_server::services::requests::submit(
        state,
        &alice,
        &common::draft("k8s-namespace", params.clone()),
    )
    .await?;
    slipway_server::services::reviews::decide(
        state,
        &bob,
        id,
        1,
        slipway_core::views::ReviewDecision::RequestChanges,
        "more memory",
    )
    .await?;
    let mut revised = params;
    revised["memory_limit_gi"] = json!(16);
    slipway_server::services::requests::resubmit(state, &alice, id, &revised).await?;
    let bob_asks = |event_id: &'static str| Asker {
        chat_user: "@bob:chat.test",
        room_id: "!b:chat.test",
        event_id,
        audience: Audience::Direct,
    };
    let prompt = answer(state, &bob_asks("$1"), &format!("approve #{id}")).await;
    assert!(
        prompt.contains("is at revision 2") && prompt.contains(&format!("approve #{id} r2")),
        "{prompt}"
    );
    assert_eq!(app.request_state(id).await?, RequestState::InReview);
    let stale = answer(state, &bob_asks("$2"), &format!("approve #{id} r1")).await;
    assert!(stale.contains("at revision 2, not 1"), "{stale}");
    assert_eq!(app.request_state(id).await?, RequestState::InReview);
    // The requester is refused before she is shown how to approve.
    let alice_asks = Asker {
        chat_user: "@alice:chat.test",
        room_id: "!a:chat.test",
        event_id: "$3",
        audience: Audience::Direct,
    };
    let own = answer(state, &alice_asks, &format!("approve #{id}")).await;
    assert!(own.contains("Refused") && !own.contains(" r2"), "{own}");
    let approved = answer(state, &bob_asks("$4"), &format!("approve #{id} r2")).await;
    assert!(approved.contains("approved (revision 2"), "{approved}");
    assert_eq!(app.request_state(id).await?, RequestState::Approved);
    Ok(())
}

on_both_engines!(an_approval_without_a_notice_names_its_revision);

/// Unlinking (from the account page) makes the chat account a stranger at once,
/// and is audited; there is nothing to unlink twice.
async fn an_unlinked_chat_account_acts_as_no_one(app: &TestApp) -> TestResult {
    use slipway_server::chat::answer::{Asker, Audience, answer};
    let state = &app.state;
    let bob = app.user("bob").await?;
    // A new code replaces the one before: asked for again and again, one is kept.
    let replaced = chat_service::issue_link_code(state, &bob).await?;
    chat_service::issue_link_code(state, &bob).await?;
    assert_eq!(app.count("chat_link_codes").await?, 1);
    // Asked for at the same instant, still one.
    let many: Vec<_> = (0..8)
        .map(|_| chat_service::issue_link_code(state, &bob))
        .collect();
    for issued in futures_util::future::join_all(many).await {
        issued?;
    }
    assert_eq!(app.count("chat_link_codes").await?, 1);
    let code = chat_service::issue_link_code(state, &bob).await?;
    // Without ChatOps set up there is nothing to link to: no code is made.
    let mut chat_off = state.clone();
    let mut settings = (*state.settings).clone();
    settings.chat = None;
    chat_off.settings = std::sync::Arc::new(settings);
    let refused = chat_service::issue_link_code(&chat_off, &bob).await;
    assert!(
        matches!(&refused, Err(ServiceError::Conflict(m)) if m.contains("not set up")),
        "{refused:?}"
    );
    assert_eq!(app.count("chat_link_codes").await?, 1);
    let stale = chat_service::link(
        state,
        "@bob:chat.test",
        "!b:chat.test",
        &replaced.code,
        "$r",
    )
    .await;
    assert!(stale.is_err(), "a replaced code still linked");
    chat_service::link(state, "@bob:chat.test", "!b:chat.test", &code.code, "$l").await?;
    assert_eq!(
        chat_service::linked_account(state, &bob).await?.as_deref(),
        Some("@bob:chat.test")
    );
    let asks = |event_id: &'static str| Asker {
        chat_user: "@bob:chat.test",
        room_id: "!b:chat.test",
        event_id,
        audience: Audience::Direct,
    };
    assert!(
        answer(state, &asks("$1"), "mine")
            .await
            .contains("no requests yet")
    );
    // A code given out before the unlink links nothing after it.
    let spare = chat_service::issue_link_code(state, &bob).await?;
    chat_service::unlink(state, &bob).await?;
    assert_eq!(chat_service::linked_account(state, &bob).await?, None);
    assert!(
        answer(state, &asks("$2"), "mine")
            .await
            .contains("I do not know you yet")
    );
    let late = chat_service::link(state, "@bob:chat.test", "!b:chat.test", &spare.code, "$s").await;
    assert!(late.is_err(), "a code from before the unlink still linked");
    // Nor one given out before the account was disabled, during or after.
    let before = chat_service::issue_link_code(state, &bob).await?;
    slipway_server::services::auth::set_disabled(state, "bob", true).await?;
    let during =
        chat_service::link(state, "@x:chat.test", "!x:chat.test", &before.code, "$d").await;
    assert!(during.is_err(), "a disabled account was linked");
    slipway_server::services::auth::set_disabled(state, "bob", false).await?;
    let after = chat_service::link(state, "@x:chat.test", "!x:chat.test", &before.code, "$e").await;
    assert!(after.is_err(), "a code from before the disabling linked");
    let bob = app.user("bob").await?;
    assert_eq!(chat_service::linked_account(state, &bob).await?, None);
    assert!(matches!(
        chat_service::unlink(state, &bob).await,
        Err(slipway_server::services::ServiceError::NotFound(_))
    ));
    let unlinked: Vec<String> = sqlx::query_scalar(
        "SELECT detail FROM audit_events WHERE action = 'chat.unlinked' ORDER BY seq",
    )
    .fetch_all(&state.db.pool)
    .await?;
    assert_eq!(unlinked, ["@bob:chat.test"]);
    Ok(())
}

on_both_engines!(an_unlinked_chat_account_acts_as_no_one);

/// What the asker may read is not for everyone in a shared room (a review room
/// holds people of other teams): there `status` and `mine` point to a direct
/// chat and show nothing of the request.
async fn a_shared_room_hears_nobody_s_requests(app: &TestApp) -> TestResult {
    use slipway_server::chat::answer::{Asker, Audience, answer};
    let state = &app.state;
    let alice = app.user("alice").await?;
    let code = chat_service::issue_link_code(state, &alice).await?;
    chat_service::link(state, "@alice:chat.test", "!a:chat.test", &code.code, "$l").await?;
    let params = json!({"name": "ledger-secret-name", "team": "payments", "environment": "dev",
                        "cpu_limit": 2, "memory_limit_gi": 8});
    let id = slipway_server::services::requests::submit(
        state,
        &alice,
        &common::draft("k8s-namespace", params),
    )
    .await?;
    let asks = |room_id: &'static str, event_id: &'static str, audience| Asker {
        chat_user: "@alice:chat.test",
        room_id,
        event_id,
        audience,
    };
    let direct = answer(
        state,
        &asks("!a:chat.test", "$1", Audience::Direct),
        &format!("status #{id}"),
    )
    .await;
    assert!(direct.contains("ledger-secret-name"), "{direct}");
    for (event, words) in [("$2", format!("status #{id}")), ("$3", "mine".to_string())] {
        let shared = answer(
            state,
            &asks("!team:chat.test", event, Audience::Shared),
            &words,
        )
        .await;
        assert!(shared.contains("direct chat"), "{words}: {shared}");
        assert!(!shared.contains("ledger-secret-name"), "{words}: {shared}");
        assert!(!shared.contains("alice"), "{words}: {shared}");
    }
    Ok(())
}

on_both_engines!(a_shared_room_hears_nobody_s_requests);

/// A room whose members the homeserver could not list just now may be a direct
/// chat or a shared room: the bot neither links there nor uses the code up, so a
/// hiccup of the homeserver does not cost the person their code.
async fn a_link_code_survives_a_room_that_could_not_be_checked(app: &TestApp) -> TestResult {
    use slipway_server::chat::answer::{Asker, Audience, answer, reply};
    use slipway_server::chat::command::Reading;
    let state = &app.state;
    let alice = app.user("alice").await?;
    let code = chat_service::issue_link_code(state, &alice).await?;
    let asks = |event_id: &'static str, audience| Asker {
        chat_user: "@alice:chat.test",
        room_id: "!new:chat.test",
        event_id,
        audience,
    };
    let link = format!("link {}", code.code);
    let addressed = answer(state, &asks("$1", Audience::Unknown), &link).await;
    assert!(addressed.contains("your code is still good"), "{addressed}");
    let aloud = reply(
        state,
        &asks("$2", Audience::Unknown),
        Reading::CodeSaidAloud(code.code.clone()),
    )
    .await;
    assert!(
        aloud
            .as_deref()
            .is_some_and(|a| a.contains("your code is still good")),
        "{aloud:?}"
    );
    assert_eq!(chat_service::linked_account(state, &alice).await?, None);
    // Once the room is known to be a direct chat, the same code links.
    let linked = answer(state, &asks("$3", Audience::Direct), &link).await;
    assert!(linked.contains("you are alice"), "{linked}");
    // Where others read, a code said aloud is used up; a sentence that merely
    // starts with "link" gets no answer.
    let spoken = chat_service::issue_link_code(state, &alice).await?;
    let used_up = reply(
        state,
        &asks("$4", Audience::Shared),
        Reading::CodeSaidAloud(spoken.code.clone()),
    )
    .await;
    assert!(
        used_up
            .as_deref()
            .is_some_and(|a| a.contains("it is used up")),
        "{used_up:?}"
    );
    let sentence = Reading::CodeSaidAloud("to the wiki, please".into());
    assert_eq!(
        reply(state, &asks("$5", Audience::Shared), sentence).await,
        None
    );
    let sentence = Reading::CodeSaidAloud("to the wiki, please".into());
    assert_eq!(
        reply(state, &asks("$6", Audience::Unknown), sentence).await,
        None
    );
    let late = chat_service::link(
        state,
        "@alice:chat.test",
        "!dm:chat.test",
        &spoken.code,
        "$7",
    )
    .await;
    assert!(late.is_err(), "a code said where others read still linked");
    Ok(())
}

on_both_engines!(a_link_code_survives_a_room_that_could_not_be_checked);

/// A failed pre-check where others read (a team's room, a review room) names
/// only the rules the values sent break: a team's quota figures, which request
/// holds a name and the asker's teams are for a direct chat, which still hears
/// it all. A refusal of a step on a request that tells about it (the asker's
/// standing to it, where it stands) is held back there the same way.
async fn a_shared_room_hears_no_one_s_quota_names_or_standing(app: &TestApp) -> TestResult {
    use slipway_server::chat::answer::{
        Asker, Audience, PRECHECK_HELD_BACK, REFUSAL_HELD_BACK, answer,
    };
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    for (user, chat_user) in [
        (&alice, "@alice:chat.test"),
        (&bob, "@bob:chat.test"),
        (&app.user("carol").await?, "@carol:chat.test"),
    ] {
        let code = chat_service::issue_link_code(state, user).await?;
        chat_service::link(state, chat_user, "!dm:chat.test", &code.code, "$l").await?;
    }
    // Payments holds 124 of its 128 cores: 64 in review, 60 approved in dev.
    let mut ids = Vec::new();
    for (user, name, team, environment, cpu) in [
        (&alice, "ledger", "payments", "prod", 64),
        (&alice, "batch", "payments", "dev", 60),
        (&bob, "ops", "platform", "prod", 2),
    ] {
        let params = common::namespace_params(name, team, environment, cpu);
        let draft = common::draft("k8s-namespace", params);
        ids.push(slipway_server::services::requests::submit(state, user, &draft).await?);
    }
    let [ledger, batch, platform] = ids[..] else {
        return Err("three requests".into());
    };
    assert_eq!(app.request_state(batch).await?, RequestState::Approved);
    let mut events = 0;
    let mut says = |who: &str, audience, words: &str| {
        events += 1;
        let chat_user = format!("@{who}:chat.test");
        let event_id = format!("$said-{events}");
        let words = words.to_string();
        async move {
            let asker = Asker {
                chat_user: &chat_user,
                room_id: "!room:chat.test",
                event_id: &event_id,
                audience,
            };
            answer(state, &asker, &words).await
        }
    };

    let request = "request k8s-namespace name=ledger team=payments environment=prod \
                   cpu_limit=64 memory_limit_gi=999";
    let form = "/requests/new/k8s-namespace?name=ledger&team=payments&environment=prod\
                &cpu_limit=64&memory_limit_gi=999";
    let direct = says("alice", Audience::Direct, request).await;
    for part in [
        "memory_limit_gi (Memory limit (GiB))",
        "(124 used + 64 requested > 128 ",
        &format!("already taken by request #{ledger}"),
        form,
    ] {
        assert!(direct.contains(part), "{part:?} missing in {direct}");
    }
    for audience in [Audience::Shared, Audience::Unknown] {
        let shared = says("alice", audience, request).await;
        for part in [
            "memory_limit_gi (Memory limit (GiB))",
            PRECHECK_HELD_BACK,
            form,
        ] {
            assert!(shared.contains(part), "{part:?} missing in {shared}");
        }
        let named = shared.replace(PRECHECK_HELD_BACK, "");
        for private in ["quota", "124", "used", "taken", &format!("#{ledger}")] {
            assert!(!named.contains(private), "{private:?} said aloud: {shared}");
        }
    }
    // Another team's name: the team rule names her teams; only she reads it.
    let theirs = "request k8s-namespace name=ops team=platform environment=prod";
    let direct = says("alice", Audience::Direct, theirs).await;
    assert!(
        direct.contains("alice is not a member of team platform"),
        "{direct}"
    );
    let shared = says("alice", Audience::Shared, theirs).await;
    assert_eq!(
        shared,
        format!(
            "The pre-check did not pass.\n{PRECHECK_HELD_BACK}\nOr finish it in the portal, \
             filled with what you sent: \
             /requests/new/k8s-namespace?name=ops&team=platform&environment=prod"
        )
    );
    assert_eq!(app.count("requests").await?, 3);

    // A step refused for the asker's standing, or for where the request stands.
    slipway_server::services::reviews::decide(
        state,
        &bob,
        ledger,
        1,
        slipway_core::views::ReviewDecision::Approve,
        "",
    )
    .await?;
    for (who, id, words, private) in [
        ("alice", ledger, "approve", "needs the reviewer role"),
        (
            "bob",
            ledger,
            "approve",
            "cannot approve a request that is approved",
        ),
        (
            "bob",
            ledger,
            "reject",
            "cannot reject a request that is approved",
        ),
        (
            "carol",
            batch,
            "retry",
            "cannot retry a request that is approved",
        ),
        (
            "carol",
            ledger,
            "take",
            "cannot take over a request that is approved",
        ),
    ] {
        let words = match words {
            "approve" if who == "bob" => format!("approve #{id} r1"),
            "reject" => format!("reject #{id} too big"),
            _ => format!("{words} #{id}"),
        };
        let direct = says(who, Audience::Direct, &words).await;
        assert!(direct.contains(private), "{words}: {direct}");
        let shared = says(who, Audience::Shared, &words).await;
        let held_back = format!("{REFUSAL_HELD_BACK} /requests/{id}");
        assert_eq!(shared, held_back, "{words}");
    }
    // A request she may not see answers as a missing one, as anywhere.
    let shared = says("alice", Audience::Shared, &format!("approve #{platform}")).await;
    assert!(
        shared.contains(&format!("request #{platform} not found")),
        "{shared}"
    );
    assert_eq!(app.request_state(ledger).await?, RequestState::Approved);
    Ok(())
}

on_both_engines!(a_shared_room_hears_no_one_s_quota_names_or_standing);

/// A homeserver that knows only what answering a sync batch needs: the members
/// of the rooms it is given (any other room's cannot be read, as when a
/// homeserver is overloaded), and sending, which it records. The bot is handed
/// batches directly, in the order a real sync may bring them.
struct FakeHomeserver {
    url: String,
    /// Each message sent: its room, its transaction id and its content.
    sent: std::sync::Arc<std::sync::Mutex<Vec<(String, String, Value)>>>,
    /// State events of the rooms it knows, by room and type: a room without
    /// one has the spec's defaults (invite-only, history shared with members).
    state: RoomStates,
}

type RoomStates =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(String, String), Value>>>;

impl FakeHomeserver {
    async fn start(members: &[(&str, &[&str])]) -> TestResult<FakeHomeserver> {
        use axum::extract::Path;
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        use std::sync::{Arc, Mutex};

        let members: Arc<std::collections::HashMap<String, Vec<String>>> = Arc::new(
            members
                .iter()
                .map(|(room, who)| {
                    (
                        room.to_string(),
                        who.iter().map(|w| w.to_string()).collect(),
                    )
                })
                .collect(),
        );
        let sent: Arc<Mutex<Vec<(String, String, Value)>>> = Arc::default();
        let recorded = sent.clone();
        let state: RoomStates = Arc::default();
        let (known, states) = (members.clone(), state.clone());
        let router = axum::Router::new()
            .route(
                "/_matrix/client/v3/rooms/{room}/state/{kind}/",
                axum::routing::get(
                    move |Path((room, kind)): Path<(String, String)>| async move {
                        if !known.contains_key(&room) {
                            let overloaded =
                                json!({ "errcode": "M_UNKNOWN", "error": "overloaded" });
                            return (StatusCode::BAD_GATEWAY, axum::Json(overloaded))
                                .into_response();
                        }
                        let content = states
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .get(&(room, kind))
                            .cloned();
                        match content {
                            Some(content) => axum::Json(content).into_response(),
                            None => {
                                let missing =
                                    json!({ "errcode": "M_NOT_FOUND", "error": "no such state" });
                                (StatusCode::NOT_FOUND, axum::Json(missing)).into_response()
                            }
                        }
                    },
                ),
            )
            .route(
                "/_matrix/client/v3/rooms/{room}/members",
                axum::routing::get(move |Path(room): Path<String>| async move {
                    match members.get(&room) {
                        Some(who) => {
                            let chunk: Vec<Value> = who
                                .iter()
                                .map(|w| {
                                    json!({ "type": "m.room.member", "state_key": w,
                                                 "content": { "membership": "join" } })
                                })
                                .collect();
                            axum::Json(json!({ "chunk": chunk })).into_response()
                        }
                        None => (
                            StatusCode::BAD_GATEWAY,
                            axum::Json(json!({ "errcode": "M_UNKNOWN", "error": "overloaded" })),
                        )
                            .into_response(),
                    }
                }),
            )
            .route(
                "/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}",
                axum::routing::put(
                    move |Path((room, txn)): Path<(String, String)>,
                          axum::Json(content): axum::Json<Value>| async move {
                        recorded
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push((room, txn, content));
                        axum::Json(json!({ "event_id": "$sent" }))
                    },
                ),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(FakeHomeserver {
            url: format!("http://{addr}"),
            sent,
            state,
        })
    }

    /// Sets a state event of `room` (its content), as its members may.
    fn set_state(&self, room: &str, kind: &str, content: Value) {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((room.to_string(), kind.to_string()), content);
    }

    fn client(&self) -> TestResult<chat::matrix::MatrixClient> {
        Ok(chat::matrix::MatrixClient::new(
            &self.url,
            Secret::new("bot-token".into()),
        )?)
    }

    /// The texts sent to `room`; every message sent must mention no one.
    fn said_in(&self, room: &str) -> TestResult<Vec<String>> {
        let sent = self
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut said = Vec::new();
        for (to, _, content) in sent.iter().filter(|(to, _, _)| to == room) {
            if content.get("m.mentions") != Some(&json!({})) {
                return Err(format!("a message to {to} may mention people: {content}").into());
            }
            let body = content
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or_default();
            said.push(body.to_string());
        }
        Ok(said)
    }

    /// The transaction ids of the messages sent to `room`, in order: a
    /// homeserver takes a second message with one of them for a repeat of the
    /// first, and drops it.
    fn txns_in(&self, room: &str) -> Vec<String> {
        let sent = self
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sent.iter()
            .filter(|(to, _, _)| to == room)
            .map(|(_, txn, _)| txn.clone())
            .collect()
    }
}

fn said(room: &str, event_id: &str, sender: &str, body: &str) -> chat::matrix::RoomMessage {
    chat::matrix::RoomMessage {
        room_id: room.into(),
        event_id: event_id.into(),
        sender: sender.into(),
        body: body.into(),
        shown: None,
        encrypted: false,
        sent_at: 0,
    }
}

/// A sync batch of `messages`.
fn batch_of(messages: Vec<chat::matrix::RoomMessage>) -> chat::matrix::SyncBatch {
    chat::matrix::SyncBatch {
        next_batch: "s1".into(),
        messages,
        ..chat::matrix::SyncBatch::default()
    }
}

/// Chat audit events of one action: the channel, the chat user and the target.
async fn chat_audit(app: &TestApp, action: &str) -> TestResult<Vec<(String, String, String)>> {
    let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT channel, channel_user, target_id FROM audit_events WHERE action = $1 ORDER BY seq",
    )
    .bind(action)
    .fetch_all(&app.state.db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(channel, chat_user, target)| (channel, chat_user.unwrap_or_default(), target))
        .collect())
}

/// A sync brings rooms in the order of their ids. A link code alice read out in
/// a shared room is used up before any command of the batch runs: mallory, who
/// sent it from a direct chat whose id sorts first, links to nobody, and alice
/// is told her code is gone.
async fn a_code_said_aloud_is_used_up_before_a_direct_chat_links_with_it(
    app: &TestApp,
) -> TestResult {
    let state = &app.state;
    let alice = app.user("alice").await?;
    let code = chat_service::issue_link_code(state, &alice).await?.code;
    let homeserver =
        FakeHomeserver::start(&[("!a:hs", &["@mallory:hs", "@slipway:hs"][..])]).await?;
    let rooms = chat::Rooms {
        review: Some("!z:hs".into()),
        ..chat::Rooms::default()
    };
    let batch = chat::matrix::SyncBatch {
        next_batch: "s1".into(),
        messages: vec![
            said("!a:hs", "$mallory", "@mallory:hs", &format!("link {code}")),
            said("!z:hs", "$alice", "@alice:hs", &format!("link {code}")),
        ],
        ..chat::matrix::SyncBatch::default()
    };
    chat::hear_batch(state, &homeserver.client()?, "@slipway:hs", &rooms, &batch).await?;

    assert_eq!(chat_service::linked_account(state, &alice).await?, None);
    let mut conn = state.db.pool.acquire().await?;
    let mallory =
        slipway_server::storage::chat::link_of_chat_user(&mut conn, "@mallory:hs").await?;
    drop(conn);
    assert!(
        mallory.is_none(),
        "mallory linked with a code read out in a shared room"
    );
    let late = chat_service::link(state, "@alice:hs", "!dm:hs", &code, "$late").await;
    assert!(late.is_err(), "the code said aloud still links");
    let told_alice = homeserver.said_in("!z:hs")?;
    assert!(
        told_alice.len() == 1 && told_alice[0].contains("it is used up"),
        "{told_alice:?}"
    );
    let told_mallory = homeserver.said_in("!a:hs")?;
    assert!(
        told_mallory.len() == 1 && told_mallory[0].contains("already used"),
        "{told_mallory:?}"
    );
    let alice_id = alice.id.to_string();
    assert_eq!(
        chat_audit(app, "chat.link_code_burned").await?,
        [("chat".to_string(), "@alice:hs".to_string(), alice_id)]
    );
    // Mallory's attempt in the batch, and alice's own late one above.
    let refused: Vec<String> = chat_audit(app, "chat.link_refused")
        .await?
        .into_iter()
        .map(|(channel, chat_user, _)| format!("{channel} {chat_user}"))
        .collect();
    assert_eq!(refused, ["chat @mallory:hs", "chat @alice:hs"]);
    Ok(())
}

on_both_engines!(a_code_said_aloud_is_used_up_before_a_direct_chat_links_with_it);

/// Words that would be a command in a direct chat, in a room whose members the
/// homeserver could not list: the bot cannot tell a direct chat from a shared
/// room, and says so rather than pass over a command in silence. Chatter there
/// still gets no answer.
async fn a_command_in_a_room_that_could_not_be_checked_is_answered(app: &TestApp) -> TestResult {
    let homeserver = FakeHomeserver::start(&[]).await?;
    let batch = chat::matrix::SyncBatch {
        next_batch: "s1".into(),
        messages: vec![
            said("!dm:hs", "$1", "@bob:hs", "mine"),
            said("!dm:hs", "$2", "@bob:hs", "thanks, that was quick"),
        ],
        ..chat::matrix::SyncBatch::default()
    };
    let rooms = chat::Rooms::default();
    let client = homeserver.client()?;
    chat::hear_batch(&app.state, &client, "@slipway:hs", &rooms, &batch).await?;
    let told = homeserver.said_in("!dm:hs")?;
    assert!(
        told.len() == 1 && told[0].contains("could not check who else is in this room"),
        "{told:?}"
    );
    // Heard once: the same batch read again (after a restart) is not answered twice.
    chat::hear_batch(&app.state, &client, "@slipway:hs", &rooms, &batch).await?;
    assert_eq!(homeserver.said_in("!dm:hs")?.len(), 1);
    Ok(())
}

on_both_engines!(a_command_in_a_room_that_could_not_be_checked_is_answered);

/// The notifier's position in the audit log moves forward only, compared as a
/// number: a notifier whose term ended cannot take it back and have rooms told
/// again.
async fn the_notified_position_only_moves_forward(app: &TestApp) -> TestResult {
    use slipway_server::storage::chat::{advance_cursor, cursor};
    let mut tx = app.state.db.write().await?;
    for position in [10, 5, 9] {
        advance_cursor(&mut tx, "audit_position", position).await?;
    }
    assert_eq!(
        cursor(&mut tx, "audit_position").await?.as_deref(),
        Some("10")
    );
    // "100" sorts before "11" as text.
    for position in [11, 100, 99] {
        advance_cursor(&mut tx, "audit_position", position).await?;
    }
    assert_eq!(
        cursor(&mut tx, "audit_position").await?.as_deref(),
        Some("100")
    );
    // A damaged value (which the notifier reads as "start at the end") does not
    // make every later write fail, as a CAST of it did on PostgreSQL.
    slipway_server::storage::chat::set_cursor(&mut tx, "audit_position", "not-a-number").await?;
    advance_cursor(&mut tx, "audit_position", 123_456_789_012).await?;
    assert_eq!(
        cursor(&mut tx, "audit_position").await?.as_deref(),
        Some("123456789012")
    );
    tx.commit().await?;
    Ok(())
}

on_both_engines!(the_notified_position_only_moves_forward);

/// A code used up where others read it, and a link refused, leave an audit
/// event on the chat channel with the chat account that sent them.
async fn codes_used_up_and_links_refused_are_audited(app: &TestApp) -> TestResult {
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let code = chat_service::issue_link_code(state, &alice).await?.code;
    let said = chat_service::burn_code(state, &code, "@alice:chat.test", "$said").await?;
    assert!(said, "a good code said aloud is used up");
    let again = chat_service::burn_code(state, &code, "@eve:chat.test", "$again").await?;
    assert!(!again, "a code is used up once");
    assert_eq!(
        chat_audit(app, "chat.link_code_burned").await?,
        [(
            "chat".to_string(),
            "@alice:chat.test".to_string(),
            alice.id.to_string()
        )]
    );
    let guessed = chat_service::link(state, "@eve:chat.test", "!e:chat.test", &code, "$e").await;
    assert!(guessed.is_err());
    // An account that may not act now, its code still out (disabling through the
    // service withdraws its codes; this stands for any standing that refuses).
    let bob_code = chat_service::issue_link_code(state, &bob).await?.code;
    let switch_off = |disabled: bool| async move {
        let mut tx = state.db.write().await?;
        slipway_server::storage::users::set_disabled(&mut tx, "bob", disabled).await?;
        tx.commit().await?;
        TestResult::Ok(())
    };
    switch_off(true).await?;
    let disabled =
        chat_service::link(state, "@bob:chat.test", "!b:chat.test", &bob_code, "$b").await;
    assert!(disabled.is_err(), "a disabled account was linked");
    switch_off(false).await?;
    let linked =
        chat_service::link(state, "@bob:chat.test", "!b:chat.test", &bob_code, "$b2").await;
    assert!(
        linked.is_ok(),
        "a refused attempt used the code up: {linked:?}"
    );
    let refused = chat_audit(app, "chat.link_refused").await?;
    assert_eq!(
        refused,
        [
            (
                "chat".to_string(),
                "@eve:chat.test".to_string(),
                String::new()
            ),
            (
                "chat".to_string(),
                "@bob:chat.test".to_string(),
                bob.id.to_string()
            )
        ]
    );
    let traces: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT trace_id FROM audit_events WHERE action = 'chat.link_refused' ORDER BY seq",
    )
    .fetch_all(&state.db.pool)
    .await?;
    assert_eq!(traces, [Some("$e".to_string()), Some("$b".to_string())]);
    Ok(())
}

on_both_engines!(codes_used_up_and_links_refused_are_audited);

/// Links the chat account `chat_user` to the Slipway user `name`, with `room`
/// as their direct chat, as a `link` there does.
async fn linked(app: &TestApp, name: &str, chat_user: &str, room: &str) -> TestResult {
    let caller = app.user(name).await?;
    let code = chat_service::issue_link_code(&app.state, &caller)
        .await?
        .code;
    chat_service::link(&app.state, chat_user, room, &code, &format!("$link-{name}")).await?;
    Ok(())
}

/// Alice's production namespace, waiting for review.
async fn alices_request(app: &TestApp) -> TestResult<RequestId> {
    let alice = app.user("alice").await?;
    let prod = common::namespace_params("web", "payments", "prod", 2);
    let draft = common::draft("k8s-namespace", prod);
    Ok(slipway_server::services::requests::submit(&app.state, &alice, &draft).await?)
}

/// A room of two whose history anyone may read, or that anyone may join, is
/// no direct chat: whoever peeks or joins later reads what the bot says. There
/// the bot says nothing that is the asker's alone, links no one (and uses the
/// code up), and says why; the asker's direct chat hears it all.
async fn a_room_of_two_open_to_others_hears_nothing_private(app: &TestApp) -> TestResult {
    let state = &app.state;
    let homeserver = FakeHomeserver::start(&[
        ("!peek:hs", &["@alice:hs", "@slipway:hs"][..]),
        ("!public:hs", &["@bob:hs", "@slipway:hs"][..]),
        ("!dm:hs", &["@alice:hs", "@slipway:hs"][..]),
    ])
    .await?;
    let world_readable = json!({ "history_visibility": "world_readable" });
    homeserver.set_state("!peek:hs", "m.room.history_visibility", world_readable);
    let public = json!({ "join_rule": "public" });
    homeserver.set_state("!public:hs", "m.room.join_rules", public);
    linked(app, "alice", "@alice:hs", "!dm:hs").await?;
    let id = alices_request(app).await?;
    let bob = app.user("bob").await?;
    let bob_code = chat_service::issue_link_code(state, &bob).await?.code;
    let batch = batch_of(vec![
        said("!peek:hs", "$mine", "@alice:hs", "mine"),
        said("!peek:hs", "$status", "@alice:hs", &format!("status #{id}")),
        said(
            "!public:hs",
            "$link",
            "@bob:hs",
            &format!("link {bob_code}"),
        ),
        said("!dm:hs", "$mine-dm", "@alice:hs", "mine"),
    ]);
    let (client, rooms) = (homeserver.client()?, chat::Rooms::default());
    chat::hear_batch(state, &client, "@slipway:hs", &rooms, &batch).await?;

    let told_alice = homeserver.said_in("!peek:hs")?;
    assert_eq!(told_alice.len(), 2, "{told_alice:?}");
    // Why the room is not private is said once, before the first answer.
    let why = "This room is not private: anyone may read this room's history without joining.";
    assert!(told_alice[0].starts_with(why), "{told_alice:?}");
    assert!(!told_alice[1].contains("not private"), "{told_alice:?}");
    for told in &told_alice {
        assert!(told.contains("in a direct chat, just you and me"), "{told}");
        assert!(
            !told.contains("In review") && !told.contains("payments-web"),
            "{told}"
        );
    }
    let told_bob = homeserver.said_in("!public:hs")?;
    assert_eq!(told_bob.len(), 1, "{told_bob:?}");
    assert!(
        told_bob[0].contains("people may join this room without an invitation")
            && told_bob[0].contains("it is used up")
            && !told_bob[0].contains(&bob_code),
        "{told_bob:?}"
    );
    assert_eq!(chat_service::linked_account(state, &bob).await?, None);
    let late = chat_service::link(state, "@bob:hs", "!bob-dm:hs", &bob_code, "$late").await;
    assert!(late.is_err(), "a code said in an open room still links");
    // Her direct chat hears it all, and no note.
    let told_dm = homeserver.said_in("!dm:hs")?;
    assert!(
        told_dm.len() == 1 && told_dm[0].starts_with(&format!("Your latest requests:\n- #{id}")),
        "{told_dm:?}"
    );
    Ok(())
}

on_both_engines!(a_room_of_two_open_to_others_hears_nothing_private);

/// Alice's linked room is opened to the public: what the bot would tell her
/// (a reviewer's comment) is held back, and she is told once why, with
/// nothing of it; carol's private room hears her news. Private again (the sync
/// tells of the change), it hears her notices again.
async fn a_linked_room_opened_to_others_hears_why_not_what(app: &TestApp) -> TestResult {
    use slipway_core::views::ReviewDecision;
    let state = &app.state;
    let homeserver = FakeHomeserver::start(&[
        ("!alice:hs", &["@alice:hs", "@slipway:hs"][..]),
        ("!carol:hs", &["@carol:hs", "@slipway:hs"][..]),
    ])
    .await?;
    linked(app, "alice", "@alice:hs", "!alice:hs").await?;
    linked(app, "carol", "@carol:hs", "!carol:hs").await?;
    let (client, rooms) = (homeserver.client()?, chat::Rooms::default());
    let mut notices = chat::notify::LinkedRooms::new("@slipway:hs");
    // The first call starts at the end of the log.
    chat::notify::notify_pending(state, &client, &rooms, &mut notices).await?;
    let public = json!({ "join_rule": "public" });
    homeserver.set_state("!alice:hs", "m.room.join_rules", public);
    let id = alices_request(app).await?;
    let bob = app.user("bob").await?;
    let comment = "the ledger team owns this name";
    slipway_server::services::reviews::decide(state, &bob, id, 1, ReviewDecision::Reject, comment)
        .await?;
    let (alice, carol) = (app.user("alice").await?, app.user("carol").await?);
    let dev = |name| {
        common::draft(
            "k8s-namespace",
            common::namespace_params(name, "payments", "dev", 1),
        )
    };
    slipway_server::services::requests::submit(state, &alice, &dev("api")).await?;
    let tools = common::namespace_params("tools", "platform", "dev", 1);
    slipway_server::services::requests::submit(
        state,
        &carol,
        &common::draft("k8s-namespace", tools),
    )
    .await?;
    while chat::notify::notify_pending(state, &client, &rooms, &mut notices).await? > 0 {}

    let told_alice = homeserver.said_in("!alice:hs")?;
    assert_eq!(told_alice.len(), 1, "told once: {told_alice:?}");
    assert!(
        told_alice[0].contains("people may join this room without an invitation")
            && !told_alice[0].contains("ledger")
            && !told_alice[0].contains(&format!("#{id}")),
        "{told_alice:?}"
    );
    let told_carol = homeserver.said_in("!carol:hs")?;
    assert!(
        told_carol.iter().any(|t| t.contains("is approved")),
        "{told_carol:?}"
    );

    homeserver.set_state(
        "!alice:hs",
        "m.room.join_rules",
        json!({ "join_rule": "invite" }),
    );
    notices.news().changed(&["!alice:hs".to_string()]);
    slipway_server::services::requests::submit(state, &alice, &dev("batch")).await?;
    while chat::notify::notify_pending(state, &client, &rooms, &mut notices).await? > 0 {}
    let told_alice = homeserver.said_in("!alice:hs")?;
    assert!(
        told_alice.len() == 2 && told_alice[1].contains("is approved"),
        "{told_alice:?}"
    );
    Ok(())
}

on_both_engines!(a_linked_room_opened_to_others_hears_why_not_what);

/// A link code pasted where others read, bare or inside a sentence, in the
/// body or in what the message's HTML shows, is used up, and its sender is
/// told so without the code; chatter with no live code gets no answer and
/// writes nothing. In a direct chat a bare code is the sender's own business.
async fn a_code_pasted_anywhere_where_others_read_is_used_up(app: &TestApp) -> TestResult {
    let state = &app.state;
    let homeserver = FakeHomeserver::start(&[
        (
            "!team:hs",
            &["@alice:hs", "@bob:hs", "@carol:hs", "@slipway:hs"][..],
        ),
        ("!dm:hs", &["@bob:hs", "@slipway:hs"][..]),
    ])
    .await?;
    let code_of = |name: &'static str| async move {
        let caller = app.user(name).await?;
        TestResult::<String>::Ok(chat_service::issue_link_code(state, &caller).await?.code)
    };
    let (alice_code, carol_code) = (code_of("alice").await?, code_of("carol").await?);
    let mut in_html = said(
        "!team:hs",
        "$html",
        "@carol:hs",
        "my code is in the formatting",
    );
    let html = format!(
        "my code is in the <code>{}</code>",
        carol_code.to_lowercase()
    );
    in_html.shown = Some(chat::formatted::visible_text(&html, Sent::Alone));
    let batch = batch_of(vec![
        said(
            "!team:hs",
            "$pasted",
            "@alice:hs",
            &format!("oops, that was {alice_code}, sorry"),
        ),
        said(
            "!team:hs",
            "$chatter",
            "@bob:hs",
            "unmanageable deploys again",
        ),
        in_html,
    ]);
    let (client, rooms) = (homeserver.client()?, chat::Rooms::default());
    chat::hear_batch(state, &client, "@slipway:hs", &rooms, &batch).await?;
    let told = homeserver.said_in("!team:hs")?;
    assert_eq!(told.len(), 2, "{told:?}");
    for (told, code) in told.iter().zip([&alice_code, &carol_code]) {
        let bare = code.replace('-', "");
        assert!(told.contains("it is used up"), "{told}");
        assert!(
            !told.contains(code.as_str()) && !told.contains(&bare),
            "{told}"
        );
    }
    assert_eq!(app.count("chat_events").await?, 2, "chatter is not claimed");
    assert_eq!(chat_audit(app, "chat.link_code_burned").await?.len(), 2);
    for (code, room) in [(&alice_code, "!a:hs"), (&carol_code, "!c:hs")] {
        let late = chat_service::link(state, "@x:hs", room, code, "$late").await;
        assert!(late.is_err(), "a code pasted in a shared room still links");
    }
    // Bob's bare code in his direct chat is not used up: it links him there.
    let bob_code = code_of("bob").await?;
    let batch = batch_of(vec![
        said("!dm:hs", "$bare", "@bob:hs", &bob_code),
        said("!dm:hs", "$link", "@bob:hs", &format!("link {bob_code}")),
    ]);
    chat::hear_batch(state, &client, "@slipway:hs", &rooms, &batch).await?;
    let told_bob = homeserver.said_in("!dm:hs")?;
    assert!(
        told_bob.last().is_some_and(|t| t.contains("you are bob")),
        "{told_bob:?}"
    );
    Ok(())
}

on_both_engines!(a_code_pasted_anywhere_where_others_read_is_used_up);

/// A message whose HTML shows harmless words over a body that approves (one
/// forwarded by a reviewer) is not run, and the reviewer is told why; the same
/// command whose HTML shows what it says is.
async fn a_message_whose_html_shows_other_words_is_not_run(app: &TestApp) -> TestResult {
    let state = &app.state;
    let homeserver = FakeHomeserver::start(&[]).await?;
    linked(app, "bob", "@bob:hs", "!bob:hs").await?;
    let id = alices_request(app).await?;
    let approve = format!("!approve #{id} r1");
    let html = |shown: &str| Some(chat::formatted::visible_text(shown, Sent::Alone));
    let mut forwarded = said("!reviews:hs", "$forwarded", "@bob:hs", &approve);
    forwarded.shown = html("<p>nice work, <em>thanks</em>!</p>");
    let rooms = chat::Rooms {
        review: Some("!reviews:hs".into()),
        ..chat::Rooms::default()
    };
    let client = homeserver.client()?;
    chat::hear_batch(
        state,
        &client,
        "@slipway:hs",
        &rooms,
        &batch_of(vec![forwarded]),
    )
    .await?;
    let told = homeserver.said_in("!reviews:hs")?;
    assert!(
        told.len() == 1 && told[0].contains("formatted text and its plain text differ"),
        "{told:?}"
    );
    assert_eq!(app.request_state(id).await?, RequestState::InReview);
    // Raw text a client hides: `</style>` does not end a `<script>`, and
    // Element shows only "nice work" under a body that rejects.
    let reject = format!("!reject #{id} nice work");
    let mut hidden = said("!reviews:hs", "$hidden", "@bob:hs", &reject);
    hidden.shown = html(&format!("<script></style>!reject #{id} </script>nice work"));
    chat::hear_batch(
        state,
        &client,
        "@slipway:hs",
        &rooms,
        &batch_of(vec![hidden]),
    )
    .await?;
    let told = homeserver.said_in("!reviews:hs")?;
    assert!(
        told.len() == 2 && told[1].contains("formatted text and its plain text differ"),
        "{told:?}"
    );
    assert_eq!(app.request_state(id).await?, RequestState::InReview);
    let mut typed = said("!reviews:hs", "$typed", "@bob:hs", &approve);
    typed.shown = html(&format!("<p><strong>!approve</strong> #{id} r1</p>"));
    chat::hear_batch(
        state,
        &client,
        "@slipway:hs",
        &rooms,
        &batch_of(vec![typed]),
    )
    .await?;
    assert_eq!(app.request_state(id).await?, RequestState::Approved);
    Ok(())
}

on_both_engines!(a_message_whose_html_shows_other_words_is_not_run);

/// Someone floods the bot past its pace: the commands over it are not run,
/// and cost no write transaction each (they are claimed in one statement with
/// the batch), so a flood of an unlinked account costs one transaction per
/// command it may run, one for the batch, and two answers. Read again, the
/// flood runs and says nothing more.
async fn a_flood_past_the_pace_is_claimed_with_its_batch(app: &TestApp) -> TestResult {
    let homeserver = FakeHomeserver::start(&[("!dm:hs", &["@eve:hs", "@slipway:hs"][..])]).await?;
    let flood: Vec<_> = (0..50)
        .map(|n| said("!dm:hs", &format!("${n}"), "@eve:hs", "mine"))
        .collect();
    let (client, rooms) = (homeserver.client()?, chat::Rooms::default());
    let flood = batch_of(flood);
    chat::hear_batch(&app.state, &client, "@slipway:hs", &rooms, &flood).await?;
    // One person may run 20 commands a minute; the other 30 are claimed unrun.
    assert_eq!(app.count("chat_events").await?, 50);
    let told = homeserver.said_in("!dm:hs")?;
    assert!(
        told.len() == 2
            && told[0].contains("I do not know you yet")
            && told[1].contains("Slow down"),
        "{told:?}"
    );
    chat::hear_batch(&app.state, &client, "@slipway:hs", &rooms, &flood).await?;
    assert_eq!(homeserver.said_in("!dm:hs")?.len(), 2, "a flood read again");
    Ok(())
}

on_both_engines!(a_flood_past_the_pace_is_claimed_with_its_batch);

/// Bob sends more commands in a minute than the pace allows: the one over it
/// is told to slow down, the rest passed over. The batch read again (after a
/// failure, or by the replica that takes over, whose pace starts afresh) runs
/// none of them: they were claimed. And the "slow down" is a message of its
/// own, not one the answer's transaction id would make the homeserver drop.
async fn a_command_held_back_by_the_pace_never_runs_later(app: &TestApp) -> TestResult {
    let homeserver = FakeHomeserver::start(&[("!bob:hs", &["@bob:hs", "@slipway:hs"][..])]).await?;
    linked(app, "bob", "@bob:hs", "!bob:hs").await?;
    let claimed_before = app.count("chat_events").await?;
    let commands: Vec<_> = (0..22)
        .map(|n| said("!bob:hs", &format!("$mine-{n}"), "@bob:hs", "mine"))
        .collect();
    let held_back = batch_of(commands[20..].to_vec());
    let (client, rooms) = (homeserver.client()?, chat::Rooms::default());
    let all = batch_of(commands);
    chat::hear_batch(&app.state, &client, "@slipway:hs", &rooms, &all).await?;
    let told = homeserver.said_in("!bob:hs")?;
    assert_eq!(told.len(), 21, "{told:?}");
    assert!(
        told[..20]
            .iter()
            .all(|t| t.contains("You have no requests yet"))
    );
    assert!(told[20].contains("Slow down"), "{told:?}");
    assert_eq!(app.count("chat_events").await?, claimed_before + 22);
    for again in [&all, &held_back] {
        chat::hear_batch(&app.state, &client, "@slipway:hs", &rooms, again).await?;
    }
    assert_eq!(
        homeserver.said_in("!bob:hs")?.len(),
        21,
        "a held-back command ran"
    );
    let txns = homeserver.txns_in("!bob:hs");
    let distinct: std::collections::HashSet<&String> = txns.iter().collect();
    assert_eq!(distinct.len(), txns.len(), "{txns:?}");
    assert!(txns[20].starts_with("slipway-slow-down-"), "{txns:?}");
    Ok(())
}

on_both_engines!(a_command_held_back_by_the_pace_never_runs_later);

/// A shared room's chatter has code-shaped words ("we need the new db" reads
/// as WENEEDTHENEW): they are looked up with a read, and without a live code
/// among them nothing is written. Here every write to the codes waits for a
/// transaction the test holds, and the lookup returns all the same; a live
/// code is still used up.
async fn chatter_with_code_shaped_words_writes_nothing(app: &TestApp) -> TestResult {
    let state = &app.state;
    let alice = app.user("alice").await?;
    let code = chat_service::issue_link_code(state, &alice).await?.code;
    let chatter = chat_service::codes_in("we need the new db before the release");
    assert!(!chatter.is_empty(), "the chatter has code-shaped words");
    let mut holding = state.db.write().await?;
    if state.db.engine == Engine::Postgres {
        // Reads go on; an UPDATE of the table waits.
        sqlx::query("LOCK TABLE chat_link_codes IN EXCLUSIVE MODE")
            .execute(&mut *holding)
            .await?;
    }
    let burn = chat_service::burn_codes(state, &chatter, "@bob:hs", "$chatter");
    let burned = tokio::time::timeout(Duration::from_secs(5), burn).await;
    holding.rollback().await?;
    assert!(
        matches!(burned, Ok(Ok(false))),
        "chatter waited for a write: {burned:?}"
    );
    let said = chat_service::codes_in(&format!("oops: {code}"));
    let used_up = chat_service::burn_codes(state, &said, "@alice:hs", "$oops").await?;
    assert!(used_up, "a live code said aloud is used up");
    Ok(())
}

on_both_engines!(chatter_with_code_shaped_words_writes_nothing);

/// The servers allowed to command are the bot's own and those listed: linked
/// accounts of any other (linked before the list left their server out) are
/// counted at start, for one warning.
async fn links_of_servers_not_allowed_are_counted(app: &TestApp) -> TestResult {
    linked(app, "alice", "@alice:hs", "!a:hs").await?;
    linked(app, "bob", "@bob:partner.example", "!b:hs").await?;
    linked(app, "carol", "@carol:old.example:8448", "!c:hs").await?;
    let count = |allowed: &'static [&'static str]| async move {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        TestResult::<usize>::Ok(
            chat::links_of_servers_not_allowed(&app.state, "@slipway:hs", &allowed).await?,
        )
    };
    assert_eq!(count(&[]).await?, 2);
    assert_eq!(
        count(&["partner.example"]).await?,
        1,
        "the bot's own is allowed"
    );
    assert_eq!(count(&["partner.example", "old.example:8448"]).await?, 0);
    Ok(())
}

on_both_engines!(links_of_servers_not_allowed_are_counted);

/// One process at a time holds the bot's lock, on either engine (SQLite: a
/// lock file beside the database, which a second process, one serving pages
/// only among them, waits for); the other takes it once the first lets go.
/// On PostgreSQL the lock's session has server-side TCP keepalives, so a dead
/// host's session, and the lock with it, ends within seconds.
async fn one_bot_lock_among_processes(app: &TestApp) -> TestResult {
    let replica = app.restart().await?;
    let (stop, mut stopped) = watch::channel(false);
    let mut first = chat::take_bot_lock(&app.state, &mut stopped)
        .await
        .ok_or("the first process took no lock")?;
    let mut standing_by = stop.subscribe();
    let second = tokio::spawn(async move {
        chat::take_bot_lock(&replica, &mut standing_by)
            .await
            .is_some()
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!second.is_finished(), "a second process took the lock");
    if let Some(session) = first.session() {
        for (name, value) in [
            ("tcp_keepalives_idle", "10"),
            ("tcp_keepalives_interval", "5"),
            ("tcp_keepalives_count", "3"),
        ] {
            let set: String = sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *session)
                .await?;
            assert_eq!(set, value, "{name}");
        }
        let version: String = sqlx::query_scalar("SELECT current_setting('server_version_num')")
            .fetch_one(&mut *session)
            .await?;
        if version.parse::<i64>()? >= 140_000 {
            let check: String = sqlx::query_scalar(
                "SELECT setting FROM pg_settings WHERE name = 'client_connection_check_interval'",
            )
            .fetch_one(&mut *session)
            .await?;
            assert_eq!(check, "5000");
        }
    }
    drop(first);
    let took = tokio::time::timeout(Duration::from_secs(10), second).await??;
    assert!(took, "the standby did not take the lock let go");
    drop(stop);
    Ok(())
}

on_both_engines!(one_bot_lock_among_processes);

/// An account of a homeserver not allowed to command (by default any but the
/// bot's own) is told so once, and nothing it sends is run or written down; a
/// link code it reads out where others read is used up all the same.
async fn another_homeserver_s_account_commands_nothing(app: &TestApp) -> TestResult {
    let homeserver = FakeHomeserver::start(&[
        ("!dm:hs", &["@eve:evil.example", "@slipway:hs"][..]),
        (
            "!team:hs",
            &["@eve:evil.example", "@bob:hs", "@slipway:hs"][..],
        ),
    ])
    .await?;
    let alice = app.user("alice").await?;
    let code = chat_service::issue_link_code(&app.state, &alice)
        .await?
        .code;
    let eve = "@eve:evil.example";
    let batch = batch_of(vec![
        said("!dm:hs", "$1", eve, "mine"),
        said("!dm:hs", "$2", eve, &format!("link {code}")),
        said("!team:hs", "$3", eve, &format!("alice's code is {code}")),
    ]);
    let (client, rooms) = (homeserver.client()?, chat::Rooms::default());
    chat::hear_batch(&app.state, &client, "@slipway:hs", &rooms, &batch).await?;
    let told = homeserver.said_in("!dm:hs")?;
    assert!(
        told.len() == 1 && told[0].contains("only from accounts on hs,"),
        "{told:?}"
    );
    let mut conn = app.state.db.pool.acquire().await?;
    let linked = slipway_server::storage::chat::link_of_chat_user(&mut conn, eve).await?;
    drop(conn);
    assert!(linked.is_none(), "an account of another homeserver linked");
    assert_eq!(chat_audit(app, "chat.link_code_burned").await?.len(), 1);
    let told_team = homeserver.said_in("!team:hs")?;
    assert!(
        told_team.len() == 1 && told_team[0].contains("it is used up"),
        "{told_team:?}"
    );
    assert_eq!(app.count("chat_events").await?, 1, "only the code's answer");
    Ok(())
}

on_both_engines!(another_homeserver_s_account_commands_nothing);
