//! Writing tree blobs outside a backup, for the commands that make new snapshots from old ones
//! (rewrite, repair snapshots): sealed one at a time into tree packs, then one index file.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::format::blob::BlobType;
use crate::format::crypto::NONCE_LEN;
use crate::format::index_file::IndexFile;
use crate::format::pack::{BlobSealer, Packer};
use crate::format::tree::Tree;
use crate::id::BlobId;
use crate::repo::index::Index;
use crate::repo::lock::LockHealth;
use crate::repo::repository::Repository;
use crate::storage::FileType;

/// Stores trees that the index does not hold yet.
pub struct TreeWriter<'r> {
    repo: &'r Repository,
    packer: Packer,
    sealer: BlobSealer,
    written: HashSet<BlobId>,
    new_packs: IndexFile,
    /// Computes ids only, writes nothing.
    dry_run: bool,
}

impl<'r> TreeWriter<'r> {
    /// A writer for `repo`; with `dry_run` it only computes ids.
    pub fn new(repo: &'r Repository, dry_run: bool) -> Result<Self> {
        Ok(Self {
            repo,
            packer: Packer::new(BlobType::Tree, repo.config().tree_pack_size),
            sealer: BlobSealer::with(repo.blob_compression())
                .map_err(|e| Error::io("start zstd", "compressor", e))?,
            written: HashSet::new(),
            new_packs: IndexFile::default(),
            dry_run,
        })
    }

    /// The id of `tree`, storing it unless `index` or this writer has it already.
    pub fn save(&mut self, index: &Index, tree: &Tree) -> Result<BlobId> {
        let bytes = tree.encode();
        let id = self.repo.key().blob_id(BlobType::Tree, &bytes);
        if !self.dry_run && !index.contains(&id) && self.written.insert(id) {
            let mut buf = Vec::with_capacity(NONCE_LEN + bytes.len());
            buf.resize(NONCE_LEN, 0);
            buf.extend_from_slice(&bytes);
            let sealed = self.sealer.seal(self.repo.key(), BlobType::Tree, id, buf);
            self.packer.add(&sealed);
            if self.packer.is_full() {
                self.flush()?;
            }
        }
        Ok(id)
    }

    fn flush(&mut self) -> Result<()> {
        if self.packer.is_empty() {
            return Ok(());
        }
        let p = self.packer.finish(self.repo.key());
        let size = p.bytes.len() as u64;
        self.repo
            .backend()
            .write_owned(FileType::TreePack, p.id.as_bytes(), p.bytes)?;
        self.new_packs.add_pack(p.id, p.blob_type, size, &p.entries);
        Ok(())
    }

    /// Writes the last pack, then, while `lock` still holds, the index file that names the new
    /// packs: after this, snapshots may refer to the trees.
    pub fn finish(mut self, lock: &LockHealth) -> Result<()> {
        self.flush()?;
        lock.check()?;
        if !self.new_packs.packs.is_empty() {
            self.repo.save_index(&self.new_packs)?;
        }
        Ok(())
    }
}
