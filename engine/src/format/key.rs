//! Key files: the master key wrapped under a password (format-spec/format.md, "Key files").
//!
//! A key file is plain JSON so that it can be read before anything is decrypted. It holds the
//! Argon2id salt and parameters and the sealed master key. Several key files may wrap the same
//! master key, one per password.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use chrono::{DateTime, FixedOffset};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::aad;
use crate::format::crypto::{MasterKey, KEY_LEN};

/// Version of the key file layout.
pub const KEY_FILE_VERSION: u32 = 1;
/// Salt length.
pub const SALT_LEN: usize = 32;
/// Highest Argon2id memory cost accepted from a key file (4 GiB): a planted key file must not be
/// able to exhaust the machine.
pub const MAX_MEMORY_KIB: u32 = 4 << 20;
/// Highest Argon2id pass count accepted from a key file.
pub const MAX_ITERATIONS: u32 = 64;
/// Highest Argon2id lane count accepted from a key file.
pub const MAX_PARALLELISM: u32 = 64;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 32 MiB, 6 passes, 1 lane: about a quarter of a second on one core of a 2020s machine, the
    /// same time as 64 MiB with 3 passes in half the memory, which every command's peak carries.
    /// The attack it resists and what the smaller memory costs are in docs/security.md.
    fn default() -> Self {
        Self {
            memory_kib: 32 * 1024,
            iterations: 6,
            parallelism: 1,
        }
    }
}

/// The `kdf` object of a key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfRecord {
    /// Always `argon2id`.
    pub algorithm: String,
    /// Costs.
    #[serde(flatten)]
    pub params: KdfParams,
    /// Base64 (standard, padded) of the salt.
    pub salt: String,
}

/// A key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    /// Layout version, 1.
    pub version: u32,
    /// When the key was made.
    #[serde(deserialize_with = "crate::format::timestamp::fixed")]
    pub created: DateTime<FixedOffset>,
    /// Host that made it.
    pub hostname: String,
    /// User that made it.
    pub username: String,
    /// How the wrapping key is derived.
    pub kdf: KdfRecord,
    /// Base64 of `nonce || sealed(encryption key || id key) || tag`, AAD `floe/v1/master-key`.
    pub master_key: String,
}

pub(crate) fn derive(password: &[u8], salt: &[u8], p: KdfParams) -> Result<[u8; KEY_LEN]> {
    if p.memory_kib > MAX_MEMORY_KIB
        || p.iterations > MAX_ITERATIONS
        || p.parallelism > MAX_PARALLELISM
    {
        return Err(Error::InvalidOptions(format!(
            "Argon2id costs {p:?} exceed the accepted maximum ({MAX_MEMORY_KIB} KiB, {MAX_ITERATIONS} passes, {MAX_PARALLELISM} lanes)"
        )));
    }
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, Some(KEY_LEN))
        .map_err(|e| Error::InvalidOptions(format!("invalid Argon2id parameters: {e}")))?;
    let mut out = [0u8; KEY_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password, salt, &mut out)
        .map_err(|e| Error::Resource {
            what: "Argon2id failed",
            reason: e.to_string(),
        })?;
    Ok(out)
}

pub(crate) fn wrapping_key(derived: [u8; KEY_LEN]) -> MasterKey {
    // Only the encryption half is used to seal the master key.
    MasterKey::from_parts(derived, [0u8; KEY_LEN])
}

impl KeyFile {
    /// Wraps `master` under `password`.
    pub fn create(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        created: DateTime<FixedOffset>,
        hostname: String,
        username: String,
    ) -> Result<Self> {
        let mut salt = [0u8; SALT_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        Self::create_with_salt(master, password, params, &salt, created, hostname, username)
    }

    /// As [`KeyFile::create`] with a given salt (for test vectors).
    pub fn create_with_salt(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        salt: &[u8],
        created: DateTime<FixedOffset>,
        hostname: String,
        username: String,
    ) -> Result<Self> {
        let wrap = wrapping_key(derive(password, salt, params)?);
        let mut plain = Vec::with_capacity(2 * KEY_LEN);
        plain.extend_from_slice(master.encryption_key());
        plain.extend_from_slice(master.id_key());
        let sealed = wrap.seal(aad::MASTER_KEY, &plain);
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(Self {
            version: KEY_FILE_VERSION,
            created,
            hostname,
            username,
            kdf: KdfRecord {
                algorithm: "argon2id".into(),
                params,
                salt: b64.encode(salt),
            },
            master_key: b64.encode(sealed),
        })
    }

    /// Unwraps the master key. `Ok(None)` means the password does not open this key file; an
    /// error means the key file itself is malformed.
    pub fn open(&self, password: &[u8]) -> Result<Option<MasterKey>> {
        let bad = |why: &str| Error::MalformedKey(why.to_string());
        if self.version != KEY_FILE_VERSION {
            return Err(bad(&format!("unknown version {}", self.version)));
        }
        if self.kdf.algorithm != "argon2id" {
            return Err(bad(&format!("unknown KDF {:?}", self.kdf.algorithm)));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64
            .decode(&self.kdf.salt)
            .map_err(|_| bad("salt is not base64"))?;
        let sealed = b64
            .decode(&self.master_key)
            .map_err(|_| bad("master_key is not base64"))?;
        let wrap = wrapping_key(derive(password, &salt, self.kdf.params)?);
        let Ok(plain) = wrap.open(aad::MASTER_KEY, &sealed) else {
            return Ok(None);
        };
        if plain.len() != 2 * KEY_LEN {
            return Err(bad("master key has the wrong length"));
        }
        let mut enc = [0u8; KEY_LEN];
        let mut id = [0u8; KEY_LEN];
        enc.copy_from_slice(&plain[..KEY_LEN]);
        id.copy_from_slice(&plain[KEY_LEN..]);
        Ok(Some(MasterKey::from_parts(enc, id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> KdfParams {
        KdfParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn right_and_wrong_password() {
        let master = MasterKey::generate();
        let now = chrono::Utc::now().fixed_offset();
        let kf = KeyFile::create(&master, b"secret", cheap(), now, "h".into(), "u".into()).unwrap();
        let json = serde_json::to_string(&kf).unwrap();
        let back: KeyFile = serde_json::from_str(&json).unwrap();
        let opened = back.open(b"secret").unwrap().unwrap();
        assert_eq!(opened.encryption_key(), master.encryption_key());
        assert_eq!(opened.id_key(), master.id_key());
        assert!(back.open(b"Secret").unwrap().is_none());
    }

    #[test]
    fn two_key_files_share_one_master_key() {
        let master = MasterKey::generate();
        let now = chrono::Utc::now().fixed_offset();
        let a = KeyFile::create(&master, b"a", cheap(), now, "h".into(), "u".into()).unwrap();
        let b = KeyFile::create(&master, b"b", cheap(), now, "h".into(), "u".into()).unwrap();
        assert_eq!(
            a.open(b"a").unwrap().unwrap().id_key(),
            b.open(b"b").unwrap().unwrap().id_key()
        );
        assert!(a.open(b"b").unwrap().is_none());
    }
}
