//! The key files of a repository: one per password, each wrapping the same master key
//! (format-spec/format.md, "Key files"). Listing them, adding a password, removing one and
//! changing the password that opened the repository.

use chrono::{DateTime, FixedOffset};

use crate::error::{Error, Result};
use crate::format::key::KeyFile;
use crate::id::KeyId;
use crate::repo::repository::{host_and_user, now_local, read_key_file, Repository};
use crate::storage::FileType;

/// What a key file says of itself; a damaged one says only why it is damaged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    /// The key file's id.
    pub id: KeyId,
    /// When it was made.
    pub created: Option<DateTime<FixedOffset>>,
    /// The host that made it.
    pub hostname: Option<String>,
    /// The user that made it.
    pub username: Option<String>,
    /// True for the key file that opened this repository.
    pub current: bool,
    /// Why the file cannot be read as a key file, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

impl Repository {
    /// Every key file, oldest first, damaged ones (listed, so that they can be removed) last.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut keys = Vec::new();
        for entry in self.backend().list(FileType::Key)? {
            let id = KeyId::from_bytes(entry.id);
            let mut info = KeyInfo {
                id,
                created: None,
                hostname: None,
                username: None,
                current: id == self.key_id(),
                damaged: None,
            };
            match read_key_file(self.backend().as_ref(), &entry.id) {
                Ok(file) => {
                    info.created = Some(file.created);
                    info.hostname = Some(file.hostname);
                    info.username = Some(file.username);
                }
                Err(e @ Error::Backend(_)) => return Err(e),
                Err(e) => info.damaged = Some(e.to_string()),
            }
            keys.push(info);
        }
        keys.sort_by_key(|k| (k.damaged.is_some(), k.created, k.id));
        Ok(keys)
    }

    /// Adds a key file for `password`, with the key derivation costs of the key file that opened
    /// the repository. Returns its id.
    pub fn add_key(&self, password: &[u8]) -> Result<KeyId> {
        self.ensure_writable()?;
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
        self.ensure_writable()?;
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
        if keys.iter().filter(|k| k.damaged.is_none()).count() <= 1
            && keys.iter().any(|k| k.id == id && k.damaged.is_none())
        {
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
    use crate::storage::{Backend, MemoryBackend};

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
    fn a_damaged_key_file_is_listed_and_can_be_removed() {
        let (backend, repo) = repo();
        let planted = [7u8; 32];
        backend
            .write(FileType::Key, &planted, b"not a key file")
            .unwrap();
        let keys = repo.list_keys().unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys[1].damaged.is_some() && keys[1].created.is_none());
        // The only good key stays; the damaged one goes.
        assert!(matches!(
            repo.remove_key(repo.key_id()),
            Err(Error::KeyRefused { .. })
        ));
        repo.remove_key(KeyId::from_bytes(planted)).unwrap();
        assert_eq!(repo.list_keys().unwrap().len(), 1);
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
