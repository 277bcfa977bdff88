//! PostgreSQL servers that resource types create databases on, named in the
//! settings (`--postgres-servers shared=postgres://admin:…@db.internal:5432/postgres`).
//! A type names a server; where it is and the admin's credentials stay in the
//! settings, out of the catalog, the logs and every page.

use std::collections::BTreeMap;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::config::Secret;

pub const SETTING: &str = "--postgres-servers (SLIPWAY_POSTGRES_SERVERS)";

/// One server: the admin connection that `command` steps get as libpq variables,
/// and the address that `postgres` checks connect to as the new role.
#[derive(Clone)]
pub struct PostgresServer {
    pub host: String,
    pub port: u16,
    pub user: String,
    password: Option<Secret>,
    pub database: String,
    /// Parsed once, so a check's connection keeps the URL's TLS and other options.
    options: PgConnectOptions,
    /// The URL's TLS and connection options as libpq's variables, so a `psql` a
    /// command step runs connects as strictly as a check (`sslmode=verify-full`
    /// stays verify-full, not libpq's default `prefer`).
    libpq_options: Vec<(String, String)>,
}

/// URL options that libpq also reads from the environment, and their variables.
const LIBPQ_OPTIONS: [(&str, &str); 7] = [
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("sslcrl", "PGSSLCRL"),
    ("options", "PGOPTIONS"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
];

impl std::fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

impl PostgresServer {
    /// Reads `postgres://user[:password]@host[:port][/database]`. Errors never repeat
    /// the text, which may hold a password.
    pub fn parse(text: &str) -> Result<PostgresServer, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| {
            format!("is not a URL ({e}); write postgres://user:password@host:port/database")
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err("must start with postgres:// or postgresql://".into());
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("names no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| "holds a user name or password that is not UTF-8".to_string())
        };
        let user = decode(url.username())?;
        if user.is_empty() {
            return Err("names no user: write postgres://user:password@host/…".into());
        }
        let password = url.password().map(decode).transpose()?.map(Secret::new);
        let database = url.path().trim_start_matches('/');
        let database = if database.is_empty() {
            "postgres".to_string()
        } else {
            decode(database)?
        };
        let options = PgConnectOptions::from_str(text.trim())
            .map_err(|_| "is not a connection URL that PostgreSQL clients accept".to_string())?;
        // libpq and sqlx read more in the query (`host`, `user`, `password`, …),
        // which would point a check and a command at different servers.
        if let Some((key, _)) = url
            .query_pairs()
            .find(|(key, _)| !LIBPQ_OPTIONS.iter().any(|(name, _)| name == key))
        {
            let taken: Vec<&str> = LIBPQ_OPTIONS.iter().map(|(name, _)| *name).collect();
            return Err(format!(
                "has the option {:?}, which is not taken here: give the host, port, user, \
                 password and database in the URL itself; the options taken are {}",
                key.chars().take(40).collect::<String>(),
                taken.join(", ")
            ));
        }
        let libpq_options = url
            .query_pairs()
            .filter_map(|(key, value)| {
                let (_, variable) = LIBPQ_OPTIONS.iter().find(|(name, _)| *name == key)?;
                Some((variable.to_string(), value.into_owned()))
            })
            .collect();
        Ok(PostgresServer {
            port: url.port().unwrap_or(5432),
            host,
            user,
            password,
            database,
            options,
            libpq_options,
        })
    }

    /// The admin password, for the environment of a command (blanked in its output).
    pub fn password(&self) -> Option<&str> {
        self.password.as_ref().map(Secret::expose)
    }

    /// The admin connection as libpq reads it from the environment; the password
    /// is left to [`Self::password`], which goes in as a secret.
    pub fn libpq_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("PGHOST".into(), self.host.clone()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), self.user.clone()),
            ("PGDATABASE".into(), self.database.clone()),
        ];
        env.extend(self.libpq_options.iter().cloned());
        env
    }

    /// The admin connection itself (its password from the URL, else `fallback`),
    /// for what Slipway does on the server on its own behalf.
    pub fn admin(&self, fallback: Option<&str>) -> PgConnectOptions {
        let options = self.options.clone().application_name("slipway");
        match (self.password(), fallback) {
            (None, Some(password)) => options.password(password),
            _ => options,
        }
    }

    /// A connection to `database` on this server as `user`, keeping the URL's options.
    pub fn connect_as(&self, user: &str, password: &str, database: &str) -> PgConnectOptions {
        self.options
            .clone()
            .username(user)
            .password(password)
            .database(database)
            .application_name("slipway-check")
    }
}

/// The servers by name, from `name=URL` pairs.
pub fn parse_servers(pairs: &[String]) -> Result<BTreeMap<String, PostgresServer>, String> {
    let mut servers = BTreeMap::new();
    for pair in pairs.iter().filter(|p| !p.trim().is_empty()) {
        let Some((name, url)) = pair.split_once('=') else {
            return Err("give each server as name=postgres://…, separated by commas".into());
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "{name:?} is not a server name (letters, digits, '-' and '_')"
            ));
        }
        let server = PostgresServer::parse(url).map_err(|m| format!("the server {name:?} {m}"))?;
        if servers.insert(name.to_string(), server).is_some() {
            return Err(format!("the server {name:?} is given twice"));
        }
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_gives_the_libpq_variables_and_keeps_its_password_apart() {
        let servers =
            parse_servers(&["shared=postgres://admin:p%40ss@db.internal:6543/ops".into()])
                .expect("parses");
        let server = &servers["shared"];
        assert_eq!(server.password(), Some("p@ss"));
        let env = server.libpq_env();
        assert!(env.contains(&("PGHOST".into(), "db.internal".into())));
        assert!(env.contains(&("PGPORT".into(), "6543".into())));
        assert!(env.contains(&("PGUSER".into(), "admin".into())));
        assert!(env.contains(&("PGDATABASE".into(), "ops".into())));
        assert!(!format!("{server:?}").contains("p@ss"));
    }

    #[test]
    fn defaults_fill_the_port_and_database() {
        let servers =
            parse_servers(&["local=postgresql://postgres@127.0.0.1".into()]).expect("parses");
        let server = &servers["local"];
        assert_eq!((server.port, server.database.as_str()), (5432, "postgres"));
        assert_eq!(server.password(), None);
    }

    #[test]
    fn bad_settings_are_refused_without_repeating_a_password() {
        for (given, expected) in [
            ("shared", "name=postgres://"),
            ("=postgres://a@h", "is not a server name"),
            ("a b=postgres://a@h", "is not a server name"),
            ("x=mysql://root:hunter22@h", "must start with postgres://"),
            ("x=postgres://:hunter22@h/db", "names no user"),
            ("x=not a url hunter22", "is not a URL"),
            // Where a check and a psql would go apart: libpq reads only the
            // variables, sqlx also the query.
            ("x=postgres://a@h/db?host=b", "has the option \"host\""),
            (
                "x=postgres://a@h/db?password=hunter22",
                "has the option \"password\"",
            ),
            (
                "x=postgres://a@h/db?sslmode=require&user=b",
                "has the option \"user\"",
            ),
        ] {
            let error = parse_servers(&[given.to_string()]).expect_err(given);
            assert!(error.contains(expected), "{given}: {error}");
            assert!(!error.contains("hunter22"), "{given}: {error}");
        }
        let twice = parse_servers(&["a=postgres://u@h".into(), "a=postgres://u@k".into()]);
        assert!(twice.expect_err("twice").contains("given twice"));
    }
}
