use slipway_core::ids::UserId;
use slipway_core::views::{Role, UserView};
use sqlx::{AnyConnection, Row};

use super::{StorageError, now_millis};

pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub password_hash: Option<&'a str>,
    pub roles: &'a [Role],
    pub teams: &'a [String],
}

pub struct StoredUser {
    pub view: UserView,
    pub password_hash: Option<String>,
    /// Disabled by an administrator: it may not sign in or act at all.
    pub disabled: bool,
    /// How many times its password was set (see [`credential_version`]).
    pub credential_version: i64,
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<StoredUser, StorageError> {
    let roles: String = row.try_get("roles")?;
    let teams: String = row.try_get("teams")?;
    Ok(StoredUser {
        view: UserView {
            id: UserId(row.try_get("id")?),
            username: row.try_get("username")?,
            display_name: row.try_get("display_name")?,
            roles: roles.split(',').filter_map(Role::parse).collect(),
            teams: teams
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
        },
        password_hash: row.try_get("password_hash")?,
        disabled: row.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
        credential_version: row.try_get("credential_version")?,
    })
}

const USER_COLUMNS: &str =
    "id, username, display_name, password_hash, roles, teams, disabled_at, credential_version";

/// Whether an account may act now.
pub enum Standing {
    Acting(UserView),
    /// An administrator disabled it.
    Disabled,
    /// Its roles come from an identity provider that has not confirmed them
    /// (by a sign-in there) since the given time.
    Unconfirmed,
    /// A local account (password sign-in) while local accounts are turned off.
    LocalTurnedOff,
    Missing,
}

/// The account as it may act now: not disabled, a local account only while
/// `local_accounts` are on, and (for an account from an identity provider)
/// confirmed by a sign-in there at `confirmed_after` or later.
pub async fn standing(
    conn: &mut AnyConnection,
    id: UserId,
    (confirmed_after, local_accounts): (i64, bool),
) -> Result<Standing, StorageError> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, external_issuer, COALESCE(confirmed_at, created_at) AS confirmed \
         FROM users WHERE id = $1"
    ))
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Standing::Missing);
    };
    let user = user_from_row(&row)?;
    let external: Option<String> = row.try_get("external_issuer")?;
    let confirmed: i64 = row.try_get("confirmed")?;
    Ok(if user.disabled {
        Standing::Disabled
    } else if external.is_none() && !local_accounts {
        Standing::LocalTurnedOff
    } else if external.is_some() && confirmed < confirmed_after {
        Standing::Unconfirmed
    } else {
        Standing::Acting(user.view)
    })
}

/// Disables (`true`) or enables an account; its id, none when no such account.
pub async fn set_disabled(
    conn: &mut AnyConnection,
    username: &str,
    disabled: bool,
) -> Result<Option<UserId>, StorageError> {
    let id: Option<i64> =
        sqlx::query_scalar("UPDATE users SET disabled_at = $2 WHERE username = $1 RETURNING id")
            .bind(username)
            .bind(disabled.then(now_millis))
            .fetch_optional(&mut *conn)
            .await?;
    Ok(id.map(UserId))
}

/// What setting a password found.
pub enum PasswordChange {
    Changed(UserId),
    /// The account comes from an identity provider: nothing was changed.
    SingleSignOnOnly,
    Missing,
}

/// Replaces a local account's password hash.
pub async fn set_password(
    conn: &mut AnyConnection,
    username: &str,
    password_hash: &str,
) -> Result<PasswordChange, StorageError> {
    let found: Option<(i64, Option<String>)> =
        sqlx::query_as("SELECT id, external_issuer FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((id, external_issuer)) = found else {
        return Ok(PasswordChange::Missing);
    };
    if external_issuer.is_some() {
        return Ok(PasswordChange::SingleSignOnOnly);
    }
    // A new version: a sign-in that checked the old password cannot start a
    // session that outlives this change (see [`credential_version`]).
    sqlx::query(
        "UPDATE users SET password_hash = $2, credential_version = credential_version + 1 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(password_hash)
    .execute(&mut *conn)
    .await?;
    Ok(PasswordChange::Changed(UserId(id)))
}

/// How many times the account's password was set, none when there is no such
/// account: a session keeps the version its sign-in checked the password
/// against, and signs in no one once the account's version moved on.
pub async fn credential_version(
    conn: &mut AnyConnection,
    id: UserId,
) -> Result<Option<i64>, StorageError> {
    Ok(
        sqlx::query_scalar("SELECT credential_version FROM users WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Holds the account's row to the end of the transaction (PostgreSQL; SQLite has
/// one writer at a time anyway) and answers whether it may act: not disabled.
/// Whatever is made for the account in the same transaction is then either
/// seen by a concurrent disabling (which updates this row first, then ends what
/// acts as the account) or refused after it.
pub async fn lock_enabled(
    conn: &mut AnyConnection,
    engine: super::Engine,
    id: UserId,
) -> Result<bool, StorageError> {
    let lock = match engine {
        super::Engine::Postgres => " FOR UPDATE",
        super::Engine::Sqlite => "",
    };
    let found: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT id FROM users WHERE id = $1 AND disabled_at IS NULL{lock}"
    ))
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

pub async fn insert(conn: &mut AnyConnection, user: &NewUser<'_>) -> Result<UserId, StorageError> {
    let roles: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO users (username, display_name, password_hash, roles, teams, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(user.username)
    .bind(user.display_name)
    .bind(user.password_hash)
    .bind(roles.join(","))
    .bind(user.teams.join(","))
    .bind(now_millis())
    .fetch_one(&mut *conn)
    .await?;
    Ok(UserId(id))
}

pub async fn by_username(
    conn: &mut AnyConnection,
    username: &str,
) -> Result<Option<StoredUser>, StorageError> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
    ))
    .bind(username)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(user_from_row).transpose()
}

pub async fn by_id(conn: &mut AnyConnection, id: UserId) -> Result<Option<UserView>, StorageError> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.as_ref().map(user_from_row).transpose()?.map(|u| u.view))
}

pub async fn count(conn: &mut AnyConnection) -> Result<i64, StorageError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *conn)
        .await?)
}

/// The account an external identity signed in with before, if any.
pub async fn by_external(
    conn: &mut AnyConnection,
    issuer: &str,
    subject: &str,
) -> Result<Option<UserView>, StorageError> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE external_issuer = $1 AND external_subject = $2"
    ))
    .bind(issuer)
    .bind(subject)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(user_from_row).transpose()?.map(|u| u.view))
}

pub async fn username_taken(
    conn: &mut AnyConnection,
    username: &str,
) -> Result<bool, StorageError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n > 0)
}

/// An account for an external identity; it has no password.
pub async fn insert_external(
    conn: &mut AnyConnection,
    user: &NewUser<'_>,
    issuer: &str,
    subject: &str,
) -> Result<UserId, StorageError> {
    let roles: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO users (username, display_name, password_hash, roles, teams, created_at, \
         external_issuer, external_subject, confirmed_at) \
         VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, $5) RETURNING id",
    )
    .bind(user.username)
    .bind(user.display_name)
    .bind(roles.join(","))
    .bind(user.teams.join(","))
    .bind(now_millis())
    .bind(issuer)
    .bind(subject)
    .fetch_one(&mut *conn)
    .await?;
    Ok(UserId(id))
}

/// Replaces what the identity provider decides (name shown, roles and teams),
/// confirmed now.
pub async fn update_from_provider(
    conn: &mut AnyConnection,
    id: UserId,
    display_name: &str,
    roles: &[Role],
    teams: &[String],
) -> Result<(), StorageError> {
    let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    sqlx::query(
        "UPDATE users SET display_name = $2, roles = $3, teams = $4, confirmed_at = $5 WHERE id = $1",
    )
    .bind(id.0)
    .bind(display_name)
    .bind(roles.join(","))
    .bind(teams.join(","))
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
