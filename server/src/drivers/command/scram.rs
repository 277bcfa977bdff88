//! The SCRAM-SHA-256 verifier of a password, as PostgreSQL stores it
//! (RFC 5802 and 7677; PostgreSQL's `scram_build_secret`). Given to
//! `CREATE ROLE`/`ALTER ROLE … PASSWORD`, the verifier sets that password
//! while the password itself never appears in the statement, which the
//! server may write to its log (`log_statement`, an error's statement).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// PostgreSQL's default `scram_iterations`.
const ITERATIONS: u32 = 4096;
const SALT_BYTES: usize = 16;

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` with a fresh
/// random salt.
pub fn verifier(password: &str) -> String {
    let mut salt = [0u8; SALT_BYTES];
    rand::rng().fill_bytes(&mut salt);
    verifier_with(password, &salt, ITERATIONS)
}

/// Whether `stored` (a role's `rolpassword`) is a SCRAM-SHA-256 verifier of
/// `password`: computed again with its own salt and iterations. False for any
/// other form (an MD5 hash, a plain password, none).
pub fn matches(stored: &str, password: &str) -> bool {
    let Some(rest) = stored.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    let Some((iterations, rest)) = rest.split_once(':') else {
        return false;
    };
    let Some((salt, _keys)) = rest.split_once('$') else {
        return false;
    };
    // PostgreSQL's own bound; a verifier past it was not written by a server.
    let (Ok(iterations), Ok(salt)) = (iterations.parse::<u32>(), STANDARD.decode(salt)) else {
        return false;
    };
    (1..=1_000_000).contains(&iterations) && verifier_with(password, &salt, iterations) == stored
}

fn verifier_with(password: &str, salt: &[u8], iterations: u32) -> String {
    // PostgreSQL prepares the password with SASLprep, and uses it as it is
    // when that fails (a password that is not valid UTF-8 text for it).
    // An empty result (a password of characters SASLprep maps to nothing) is
    // refused by PostgreSQL, which then uses the password as it is too.
    let prepared = match stringprep::saslprep(password) {
        Ok(prepared) if !prepared.is_empty() => prepared,
        _ => password.into(),
    };
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(prepared.as_bytes(), salt, iterations, &mut salted);
    let client_key = keyed(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = keyed(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

fn keyed(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_is_postgresqls() {
        // Computed apart (Python's hashlib.pbkdf2_hmac and hmac) for this salt.
        let salt: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            verifier_with("pencil-Abc123", &salt, 4096),
            "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$po9eSzbMvL9Md/M2Zg90aqPEjVICMNox2VzWH0HTZjY=:dR2lUNeFUZCWkVLyYevSIxceOvlomr+JReodPnGAkJM="
        );
    }

    #[test]
    fn a_password_saslprep_empties_is_taken_as_it_is() {
        // U+00AD (a soft hyphen) maps to nothing: PostgreSQL then hashes the
        // password's own bytes, and so must this.
        let salt: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            verifier_with("\u{00AD}", &salt, 4096),
            "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$SZkxrvFFqAD5aFlZQn4lVuZycZZKMFRT8rog3aIS6/o=:/J5Er/A3ylR51P4oIB5DsbkgDmuvrVlRZVYC6A5U8Zs="
        );
    }

    #[test]
    fn a_stored_verifier_is_matched_only_by_its_password() {
        let stored = verifier("pencil-Abc123");
        assert!(matches(&stored, "pencil-Abc123"));
        assert!(!matches(&stored, "pencil-Abc124"));
        for other in [
            "",
            "md5c2a3b1f0e9d8c7b6a5f4e3d2c1b0a9f8",
            "SCRAM-SHA-256$x:AAEC$a:b",
            "SCRAM-SHA-256$4096:not base64!$a:b",
            "SCRAM-SHA-256$4000000000:AAECAwQFBgcICQoLDA0ODw==$a:b",
        ] {
            assert!(!matches(other, "pencil-Abc123"), "{other}");
        }
    }

    #[test]
    fn each_verifier_has_its_own_salt_and_never_the_password() {
        let (one, two) = (verifier("pencil-Abc123"), verifier("pencil-Abc123"));
        assert_ne!(one, two);
        assert!(one.starts_with("SCRAM-SHA-256$4096:") && !one.contains("pencil"));
    }
}
