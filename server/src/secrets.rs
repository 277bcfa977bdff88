//! Encryption of secret parameters at rest: XChaCha20-Poly1305 with a 32-byte key
//! from the settings, a random nonce per value, and the request id and parameter
//! name as associated data, so a ciphertext copied to another request or parameter
//! no longer opens.

use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng;
use slipway_core::catalog::Catalog;
use slipway_core::ids::RequestId;

use crate::config::SettingError;

/// The setting the key comes from, as start-up errors name it.
pub const KEY_SETTING: &str = "--secret-key-file (SLIPWAY_SECRET_KEY_FILE) or SLIPWAY_SECRET_KEY";

/// Where demo mode keeps the key it generated, inside the data directory.
pub const DEMO_KEY_FILE: &str = "secret.key";

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// The key. Debug never shows it.
#[derive(Clone)]
pub struct SecretKey(Arc<[u8; KEY_LEN]>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    /// 32 bytes written as 64 hex digits or as base64 (standard or URL-safe, padded
    /// or not); surrounding white space is ignored.
    pub fn parse(text: &str) -> Result<SecretKey, String> {
        let text = text.trim();
        let bytes = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|e| e.to_string())?
        } else {
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            engines
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or("must be 32 bytes as 64 hex digits or as base64")?
        };
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|bytes: Vec<u8>| {
            format!(
                "must be 32 bytes as 64 hex digits or as base64, got {} bytes",
                bytes.len()
            )
        })?;
        Ok(SecretKey(Arc::new(key)))
    }

    pub fn generate() -> SecretKey {
        let mut key = [0u8; KEY_LEN];
        rand::rng().fill(&mut key);
        SecretKey(Arc::new(key))
    }

    /// A key for another purpose, derived from this one with HKDF-SHA-256 under a
    /// fixed label, so one setting serves every purpose and no derived key opens
    /// another's data.
    pub fn derive(&self, label: &str) -> [u8; KEY_LEN] {
        let mut okm = [0u8; KEY_LEN];
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(None, self.0.as_slice());
        // 32 bytes is far below HKDF-SHA-256's limit of 8160: expand cannot fail.
        if hkdf.expand(label.as_bytes(), &mut okm).is_err() {
            okm = sha2::Sha256::digest([label.as_bytes(), self.0.as_slice()].concat()).into();
        }
        okm
    }

    /// What the database records of the key: enough to tell another key from
    /// this one, nothing to recover it from (a one-way derivation).
    pub fn check_value(&self) -> String {
        hex::encode(&self.derive("slipway key check v1")[..16])
    }

    fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.as_slice())
    }

    /// Reads a key file.
    pub fn read_file(path: &Path) -> Result<SecretKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        SecretKey::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads the key file, or (demo mode) creates it with a new key, readable by
    /// its owner only.
    pub fn load_or_create(path: &Path) -> Result<SecretKey, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return SecretKey::parse(&text).map_err(|e| format!("{}: {e}", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
        let key = SecretKey::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(path).and_then(|mut file| {
            use std::io::Write;
            writeln!(file, "{}", key.to_base64())?;
            file.sync_all()
        });
        match written {
            Ok(()) => Ok(key),
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                SecretKey::load_or_create(path)
            }
            Err(e) => Err(format!("cannot write {}: {e}", path.display())),
        }
    }
}

/// Writes `key` to a new file beside the key file at `path` (`secret.new`),
/// readable by its owner only and flushed, for [`put_staged_key`] to move over
/// it: the key file then holds one whole key or the other at any moment.
pub fn stage_key_file(path: &Path, key: &SecretKey) -> Result<PathBuf, String> {
    use std::io::Write;
    let staged = path.with_extension("new");
    let failed =
        |e: std::io::Error| format!("cannot write the new key to {}: {e}", staged.display());
    // A file left by an earlier run keeps its own mode: made anew, it is 0600.
    match std::fs::remove_file(&staged) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&staged).map_err(failed)?;
    writeln!(file, "{}", key.to_base64()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    Ok(staged)
}

/// Moves a staged key file over the key file, and flushes the directory so the
/// move outlasts a crash.
pub fn put_staged_key(staged: &Path, path: &Path) -> Result<(), String> {
    std::fs::rename(staged, path).map_err(|e| {
        format!(
            "cannot move the new key from {} to {}: {e}",
            staged.display(),
            path.display()
        )
    })?;
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| {
            format!(
                "{} holds the new key, but its directory could not be flushed: {e}",
                path.display()
            )
        })
}

/// The key the server runs with: the configured one; in demo mode one generated
/// into the data directory; none when no type has secrets. A type with secrets and
/// no key stops start-up.
pub fn resolve_key(
    configured: Option<&SecretKey>,
    demo: bool,
    data_dir: &Path,
    catalog: &Catalog,
) -> Result<Option<SecretKey>, SettingError> {
    if let Some(key) = configured {
        return Ok(Some(key.clone()));
    }
    if demo {
        return SecretKey::load_or_create(&data_dir.join(DEMO_KEY_FILE))
            .map(Some)
            .map_err(|message| SettingError {
                setting: KEY_SETTING,
                message,
            });
    }
    let with_secrets: Vec<String> = catalog
        .types
        .values()
        .filter_map(|ty| {
            let params = ty.secret_params();
            (!params.is_empty()).then(|| format!("{} ({})", ty.name, params.join(", ")))
        })
        .collect();
    if with_secrets.is_empty() {
        Ok(None)
    } else {
        Err(SettingError {
            setting: KEY_SETTING,
            message: format!(
                "the catalog has secret parameters in {}; give a 32-byte key (64 hex digits or base64) to encrypt them",
                with_secrets.join(", ")
            ),
        })
    }
}

/// Refuses a key other than the one the database's secrets (and the audit
/// trail's checkpoints) were sealed with. The first start with a key records it,
/// once the key has opened a secret already stored (a database from before the
/// check, started first with the wrong key, would otherwise record that one).
pub async fn check_key_matches(
    db: &crate::storage::Db,
    key: &SecretKey,
    shown_url: String,
) -> Result<(), crate::cli::StartError> {
    let value = key.check_value();
    let refusal = |message: String| -> crate::cli::StartError {
        SettingError {
            setting: KEY_SETTING,
            message,
        }
        .into()
    };
    let recorded = async {
        let mut tx = db.write().await?;
        let recorded = match crate::storage::secrets::key_check(&mut tx).await? {
            Some(recorded) => Some(recorded),
            None => match crate::storage::secrets::one_sealed(&mut tx).await? {
                Some((request, param, sealed))
                    if SecretBox::new(key.clone())
                        .open(request, &param, &sealed)
                        .is_err() =>
                {
                    None
                }
                _ => Some(crate::storage::secrets::record_key_check(&mut tx, &value).await?),
            },
        };
        tx.commit().await?;
        Ok::<_, crate::storage::StorageError>(recorded)
    }
    .await
    .map_err(|source| crate::cli::StartError::Database {
        url: shown_url,
        source,
    })?;
    match recorded {
        Some(recorded) if recorded == value => Ok(()),
        Some(recorded) => Err(refusal(format!(
            "is not the key this database's secrets and audit checkpoints were sealed with \
             (its check value is {recorded}, this key's is {value}): start with that key; \
             a new key cannot open what the old one sealed"
        ))),
        None => Err(refusal(
            "cannot open the secrets this database already holds: start with the key they \
             were sealed with"
                .into(),
        )),
    }
}

/// One value as stored: the nonce and the ciphertext (with its tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error(
        "the secret parameter {param} of request #{request} cannot be decrypted: the key is not the one it was encrypted with, or the stored value was altered or moved from another request"
    )]
    Undecryptable { request: RequestId, param: String },
    #[error("the secret parameter {param} of request #{request} could not be encrypted")]
    Unencryptable { request: RequestId, param: String },
    #[error(
        "the secret parameter {param} of request #{request} is not valid UTF-8 after decryption"
    )]
    NotText { request: RequestId, param: String },
}

/// Seals and opens secret values with one key.
#[derive(Clone)]
pub struct SecretBox {
    key: SecretKey,
    /// The key's check value, as the database records the key in use.
    check: String,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(***)")
    }
}

/// The label the digests' key is derived under (see [`SecretKey::derive`]).
const DIGEST_KEY_LABEL: &str = "slipway payload digest v1";

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    match <Hmac<sha2::Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC takes a key of any length; this arm is never taken.
        Err(_) => hex::encode(sha2::Sha256::digest(data)),
    }
}

/// Binds a ciphertext to where it belongs.
fn associated_data(request: RequestId, param: &str) -> Vec<u8> {
    format!("slipway request secret\0{}\0{param}", request.0).into_bytes()
}

impl SecretBox {
    pub fn new(key: SecretKey) -> SecretBox {
        let check = key.check_value();
        SecretBox { key, check }
    }

    /// The check value of the key this box seals with.
    pub fn check_value(&self) -> &str {
        &self.check
    }

    /// A keyed digest (HMAC-SHA-256): equal inputs give equal digests, yet a stored
    /// digest confirms no guess about its input (a password inside a request body)
    /// to someone without the key. Keyed with a key derived for digests, never
    /// the one that seals secrets: one key, one purpose.
    pub fn digest(&self, data: &[u8]) -> String {
        hmac_hex(&self.key.derive(DIGEST_KEY_LABEL), data)
    }

    /// The digest builds before 2026-12-08 made, keyed with the sealing key
    /// itself: only compared with, while digests they stored are still kept.
    pub fn earlier_digest(&self, data: &[u8]) -> String {
        hmac_hex(self.key.0.as_slice(), data)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.0.as_slice().into())
    }

    pub fn seal(
        &self,
        request: RequestId,
        param: &str,
        value: &str,
    ) -> Result<Sealed, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill(&mut nonce);
        let aad = associated_data(request, param);
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SecretError::Unencryptable {
                request,
                param: param.to_string(),
            })?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    pub fn open(
        &self,
        request: RequestId,
        param: &str,
        sealed: &Sealed,
    ) -> Result<String, SecretError> {
        let undecryptable = || SecretError::Undecryptable {
            request,
            param: param.to_string(),
        };
        if sealed.nonce.len() != NONCE_LEN {
            return Err(undecryptable());
        }
        let aad = associated_data(request, param);
        let plain = self
            .cipher()
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| undecryptable())?;
        String::from_utf8(plain).map_err(|_| SecretError::NotText {
            request,
            param: param.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "canary-5f1c2b9e-secret";

    #[test]
    fn a_value_opens_with_its_key_request_and_parameter_only() -> Result<(), SecretError> {
        let secrets = SecretBox::new(SecretKey::generate());
        let sealed = secrets.seal(RequestId(7), "owner_password", CANARY)?;
        assert_eq!(
            secrets.open(RequestId(7), "owner_password", &sealed)?,
            CANARY
        );
        let moved = secrets.open(RequestId(8), "owner_password", &sealed);
        assert!(matches!(moved, Err(SecretError::Undecryptable { .. })));
        let renamed = secrets.open(RequestId(7), "api_key", &sealed);
        assert!(matches!(renamed, Err(SecretError::Undecryptable { .. })));
        let other_key = SecretBox::new(SecretKey::generate());
        let error = other_key
            .open(RequestId(7), "owner_password", &sealed)
            .err();
        assert_eq!(
            error.map(|e| e.to_string()).as_deref(),
            Some(
                "the secret parameter owner_password of request #7 cannot be decrypted: the key is not the one it was encrypted with, or the stored value was altered or moved from another request"
            )
        );
        Ok(())
    }

    /// One key, one purpose: a digest is not keyed with the sealing key, so
    /// nothing learned of one use helps against the other.
    #[test]
    fn digests_are_keyed_apart_from_sealing() {
        let key = SecretKey::generate();
        let secrets = SecretBox::new(key.clone());
        let digest = secrets.digest(b"payload");
        assert_eq!(digest, secrets.digest(b"payload"));
        assert_ne!(digest, secrets.digest(b"payload."));
        assert_ne!(digest, secrets.earlier_digest(b"payload"));
        assert_eq!(digest, hmac_hex(&key.derive(DIGEST_KEY_LABEL), b"payload"));
        assert_eq!(
            secrets.earlier_digest(b"payload"),
            hmac_hex(key.0.as_slice(), b"payload")
        );
        assert_eq!(digest.len(), 64);
    }

    #[test]
    fn each_value_gets_its_own_nonce() -> Result<(), SecretError> {
        let secrets = SecretBox::new(SecretKey::generate());
        let a = secrets.seal(RequestId(1), "p", CANARY)?;
        let b = secrets.seal(RequestId(1), "p", CANARY)?;
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert!(!String::from_utf8_lossy(&a.ciphertext).contains(CANARY));
        Ok(())
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_never_print() -> Result<(), String> {
        let hex_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let from_hex = SecretKey::parse(&format!(" {hex_key}\n"))?;
        let b64 = from_hex.to_base64();
        let from_b64 = SecretKey::parse(&b64)?;
        assert_eq!(from_hex.0, from_b64.0);
        assert_eq!(format!("{from_hex:?}"), "SecretKey(***)");
        let short = SecretKey::parse("c2hvcnQ=").err().unwrap_or_default();
        assert!(short.contains("got 5 bytes"), "{short}");
        assert!(SecretKey::parse("not a key!").is_err());
        Ok(())
    }

    #[test]
    fn demo_mode_creates_a_private_key_file_once() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(DEMO_KEY_FILE);
        let first = SecretKey::load_or_create(&path)?;
        let second = SecretKey::load_or_create(&path)?;
        assert_eq!(first.0, second.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        Ok(())
    }
}
