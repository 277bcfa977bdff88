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
    })
}

const USER_COLUMNS: &str = "id, username, display_name, password_hash, roles, teams";

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
         external_issuer, external_subject) \
         VALUES ($1, $2, NULL, $3, $4, $5, $6, $7) RETURNING id",
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

/// Replaces what the identity provider decides: name shown, roles and teams.
pub async fn update_from_provider(
    conn: &mut AnyConnection,
    id: UserId,
    display_name: &str,
    roles: &[Role],
    teams: &[String],
) -> Result<(), StorageError> {
    let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    sqlx::query("UPDATE users SET display_name = $2, roles = $3, teams = $4 WHERE id = $1")
        .bind(id.0)
        .bind(display_name)
        .bind(roles.join(","))
        .bind(teams.join(","))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
