//! A type's acceptance checks as written: each kind's fields are required,
//! refused on another kind, and checked as far as a template allows before it is
//! rendered (`catalog check` renders them with sample values for the rest).

use super::super::file::CheckFile;
use super::super::{CheckKind, CheckSpec};
use super::{FileErrors, MAX_COMMAND_SECONDS, check_program, is_setting_name};
use crate::checks::{self, BodyPattern, DEFAULT_DEADLINE_SECONDS, MAX_DEADLINE_SECONDS};

/// The name `git-file` had before there were other kinds; still read.
const OLD_GIT_FILE: &str = "gitops-file";

/// `secret_names`: the type's secret parameters and generated secrets, which a
/// `postgres` check may take its password from.
pub(super) fn load_checks(
    raw: Vec<CheckFile>,
    secret_names: &[String],
    fe: &mut FileErrors<'_>,
) -> Vec<CheckSpec> {
    raw.into_iter()
        .enumerate()
        .filter_map(|(i, check)| load_check(i, check, secret_names, fe))
        .collect()
}

fn load_check(
    i: usize,
    check: CheckFile,
    secret_names: &[String],
    fe: &mut FileErrors<'_>,
) -> Option<CheckSpec> {
    let kind = match check.kind.as_str() {
        OLD_GIT_FILE => "git-file",
        other => other,
    };
    if !CheckKind::KINDS.contains(&kind) {
        fe.push(
            format!("checks[{i}].kind"),
            format!(
                "unknown check kind {:?}; the kinds are {}",
                check.kind,
                CheckKind::KINDS.join(", ")
            ),
        );
        return None;
    }
    refuse_foreign_fields(i, kind, &check, fe);
    let description = check.description.clone();
    if let Some(description) = &description {
        fe.template(format!("checks[{i}].description"), description);
    }
    let field = |name: &str| format!("checks[{i}].{name}");
    let loaded = match kind {
        "git-file" => CheckKind::GitFile {
            path: fe.required(
                field("path"),
                check.path,
                "the file's path in the GitOps repository",
            ),
        },
        "http" => {
            let url = fe.required(field("url"), check.url, "the URL to ask");
            if let Some(url) = literal(&url)
                && let Err(message) = checks::check_http_url(url)
            {
                fe.push(field("url"), message);
            }
            let status = check.status.unwrap_or(200);
            if !(100..=599).contains(&status) {
                fe.push(field("status"), "must be an HTTP status from 100 to 599");
            }
            if let Some(text) = &check.body_contains {
                fe.template(field("body_contains"), text);
            }
            if let Some(pattern) = &check.body_matches {
                fe.template(field("body_matches"), pattern);
                if let Some(pattern) = literal(pattern)
                    && let Err(message) = BodyPattern::new(pattern)
                {
                    fe.push(field("body_matches"), message);
                }
            }
            CheckKind::Http {
                url,
                status,
                body_contains: check.body_contains,
                body_matches: check.body_matches,
                deadline_seconds: deadline(i, check.deadline_seconds, fe),
            }
        }
        "tcp" => {
            let address = fe.required(field("address"), check.address, "host:port to connect to");
            if let Some(address) = literal(&address)
                && let Err(message) = checks::parse_address(address)
            {
                fe.push(field("address"), message);
            }
            CheckKind::Tcp {
                address,
                deadline_seconds: deadline(i, check.deadline_seconds, fe),
            }
        }
        "postgres" => load_postgres(i, check, secret_names, fe),
        _ => {
            let program = check.program.unwrap_or_default();
            check_program(field("program"), "a command check", &program, fe);
            let args = check.args.unwrap_or_default();
            for (j, arg) in args.iter().enumerate() {
                fe.template(format!("checks[{i}].args[{j}]"), arg);
            }
            if let Some(seconds) = check.timeout_seconds
                && !(1..=MAX_COMMAND_SECONDS).contains(&seconds)
            {
                fe.push(
                    field("timeout_seconds"),
                    format!("must be between 1 and {MAX_COMMAND_SECONDS} (a day)"),
                );
            }
            CheckKind::Command {
                program,
                args,
                timeout_seconds: check.timeout_seconds,
            }
        }
    };
    Some(CheckSpec {
        kind: loaded,
        description,
    })
}

fn load_postgres(
    i: usize,
    check: CheckFile,
    secret_names: &[String],
    fe: &mut FileErrors<'_>,
) -> CheckKind {
    let field = |name: &str| format!("checks[{i}].{name}");
    let server = fe.required(
        field("server"),
        check.server,
        "the name of a PostgreSQL server in the server's --postgres-servers",
    );
    if !server.is_empty() && !is_setting_name(&server) {
        fe.push(
            field("server"),
            format!(
                "{server:?} is not a server name of the settings (letters, digits, '-' and '_')"
            ),
        );
    }
    let database = fe.required(
        field("database"),
        check.database,
        "the database to connect to",
    );
    let user = fe.required(field("user"), check.user, "the role to connect as");
    let password_secret = fe.required(
        field("password_secret"),
        check.password_secret,
        "the secret parameter or generated secret holding the role's password",
    );
    if !password_secret.is_empty() && !secret_names.contains(&password_secret) {
        fe.push(
            field("password_secret"),
            format!("{password_secret:?} is neither a secret parameter nor a generated secret of this type"),
        );
    }
    let query = check.query.unwrap_or_else(|| "SELECT 1".to_string());
    // Never a template: a parameter spliced into SQL would be an injection.
    if query.contains("{{") || query.contains("{%") {
        fe.push(
            field("query"),
            "is plain SQL, not a template: compare with `expect`, which may be one",
        );
    } else if query.trim().is_empty() || query.contains(';') {
        fe.push(field("query"), "must be one SQL statement, without ';'");
    }
    if let Some(expect) = &check.expect {
        fe.template(field("expect"), expect);
    }
    CheckKind::Postgres {
        server,
        database,
        user,
        password_secret,
        query,
        expect: check.expect,
        deadline_seconds: deadline(i, check.deadline_seconds, fe),
    }
}

/// The text itself when it holds no template syntax, so it can be checked now.
fn literal(source: &str) -> Option<&str> {
    (!source.contains("{{") && !source.contains("{%")).then_some(source)
}

fn deadline(i: usize, seconds: Option<u64>, fe: &mut FileErrors<'_>) -> u64 {
    let seconds = seconds.unwrap_or(DEFAULT_DEADLINE_SECONDS);
    if !(1..=MAX_DEADLINE_SECONDS).contains(&seconds) {
        fe.push(
            format!("checks[{i}].deadline_seconds"),
            format!("must be between 1 and {MAX_DEADLINE_SECONDS} (an hour)"),
        );
    }
    seconds
}

/// A field of another kind is a mistake the author should hear about.
fn refuse_foreign_fields(i: usize, kind: &str, check: &CheckFile, fe: &mut FileErrors<'_>) {
    let given: [(&str, bool, &[&str]); 16] = [
        ("path", check.path.is_some(), &["git-file"]),
        ("url", check.url.is_some(), &["http"]),
        ("status", check.status.is_some(), &["http"]),
        ("body_contains", check.body_contains.is_some(), &["http"]),
        ("body_matches", check.body_matches.is_some(), &["http"]),
        ("address", check.address.is_some(), &["tcp"]),
        (
            "deadline_seconds",
            check.deadline_seconds.is_some(),
            &["http", "tcp", "postgres"],
        ),
        ("server", check.server.is_some(), &["postgres"]),
        ("database", check.database.is_some(), &["postgres"]),
        ("user", check.user.is_some(), &["postgres"]),
        (
            "password_secret",
            check.password_secret.is_some(),
            &["postgres"],
        ),
        ("query", check.query.is_some(), &["postgres"]),
        ("expect", check.expect.is_some(), &["postgres"]),
        ("program", check.program.is_some(), &["command"]),
        ("args", check.args.is_some(), &["command"]),
        (
            "timeout_seconds",
            check.timeout_seconds.is_some(),
            &["command"],
        ),
    ];
    for (field, present, owners) in given {
        if present && !owners.contains(&kind) {
            fe.push(
                format!("checks[{i}].{field}"),
                format!(
                    "is a field of {} checks, not of {kind}",
                    owners.join(" and ")
                ),
            );
        }
    }
}
