//! The key files of a repository: one per password, each wrapping the same master key
//! (format-spec/format.md, "Key files"). Listing them, adding a password, removing one and
//! changing the password that opened the repository.

use chrono::{DateTime, FixedOffset};

use crate::error::{Error, Result};
use crate::format::key::KeyFile;
use crate::id::KeyId;
use crate::repo::repository::{host_and_user, now_local, read_key_file, Repository};
use crate::storage::FileType;

/// What a key file says of itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    /// The key file's id.
    pub id: KeyId,
    /// When it was made.
    pub created: DateTime<FixedOffset>,
    /// The host that made it.
    pub hostname: String,
    /// The user that made it.
    pub username: String,
    /// True for the key file that opened this repository.
    pub current: bool,
}

impl Repository {
    /// Every key file, oldest first. A damaged key file is an error naming it.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut keys = Vec::new();
        for entry in self.backend().list(FileType::Key)? {
            let file = read_key_file(self.backend().as_ref(), &entry.id)?;
            let id = KeyId::from_bytes(entry.id);
            keys.push(KeyInfo {
                id,
                created: file.created,
                hostname: file.hostname,
                username: file.username,
                current: id == self.key_id(),
            });
        }
        keys.sort_by_key(|k| (k.created, k.id));
        Ok(keys)
    }

    /// Adds a key file for `password`, with the key derivation costs of the key file that opened
    /// the repository. Returns its id.
    pub fn add_key(&self, password: &[u8]) -> Result<KeyId> {
        if password.is_empty() {
            return Err(Error::InvalidOptions(
                "an empty password is not accepted".into(),
            ));
        }
        let current = read_key_file(self.backend().as_ref(), self.key_id().as_bytes())?;
        let (host, user, _, _) = host_and_user();
        let file = KeyFile::create(
            self.key(),
            password,
            current.kdf.params,
            now_local(),
            host,
            user,
        )?;
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| Error::Encode {
            what: "a key file",
            reason: e.to_string(),
        })?;
        let id = KeyId::hash_of(&bytes);
        self.backend().write(FileType::Key, id.as_bytes(), &bytes)?;
        Ok(id)
    }

    /// Removes key file `id`. The key that opened the repository and the last key are refused:
    /// the first would end this session's access, the second everyone's.
    pub fn remove_key(&self, id: KeyId) -> Result<()> {
        let keys = self.list_keys()?;
        if !keys.iter().any(|k| k.id == id) {
            return Err(Error::KeyNotFound(id.short()));
        }
        if id == self.key_id() {
            return Err(Error::KeyRefused {
                id: id.short(),
                reason: "it opened the repository; open it with another password to remove it, \
                         or change this password with `key passwd`",
            });
        }
        if keys.len() == 1 {
            return Err(Error::KeyRefused {
                id: id.short(),
                reason: "it is the last key: without it nobody could open the repository",
            });
        }
        Ok(self.backend().remove(FileType::Key, id.as_bytes())?)
    }

    /// Replaces the password of the key file that opened the repository: a new key file for
    /// `password` is written first, then the old one removed. Returns the new key's id; this
    /// handle goes on with it.
    pub fn change_password(&mut self, password: &[u8]) -> Result<KeyId> {
        let old = self.key_id();
        let new = self.add_key(password)?;
        self.backend().remove(FileType::Key, old.as_bytes())?;
        self.set_key_id(new);
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::MemoryBackend;

    fn repo() -> (Arc<MemoryBackend>, Repository) {
        let backend = Arc::new(MemoryBackend::new());
        let repo = crate::repo::repository::test_repository(backend.clone());
        (backend, repo)
    }

    #[test]
    fn an_added_key_opens_and_the_current_and_last_are_kept() {
        let (backend, repo) = repo();
        let first = repo.key_id();
        let second = repo.add_key(b"second password").unwrap();
        let other = Repository::open(backend.clone(), b"second password").unwrap();
        assert_eq!(other.key_id(), second);
        let keys = repo.list_keys().unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.iter().find(|k| k.id == first).unwrap().current);
        assert!(matches!(
            repo.remove_key(first),
            Err(Error::KeyRefused { .. })
        ));
        other.remove_key(first).unwrap();
        assert_eq!(other.list_keys().unwrap().len(), 1);
        assert!(matches!(
            other.remove_key(second),
            Err(Error::KeyRefused { .. })
        ));
        assert!(matches!(
            other.remove_key(first),
            Err(Error::KeyNotFound(_))
        ));
    }

    #[test]
    fn a_changed_password_replaces_the_old_one() {
        let (backend, mut repo) = repo();
        let old = repo.key_id();
        let new = repo.change_password(b"new password").unwrap();
        assert_ne!(old, new);
        assert_eq!(repo.list_keys().unwrap().len(), 1);
        assert_eq!(
            Repository::open(backend, b"new password").unwrap().key_id(),
            new
        );
    }
}
