//! Exclude patterns for backup and include/exclude filters for restore.
//!
//! A pattern without `/` matches a file name anywhere (`*.tmp`, `node_modules`). A pattern that
//! starts with `/` matches the whole path (`/home/*/.cache`). Any other pattern with `/` matches
//! the end of a path at any depth (`target/debug` matches `/src/p/target/debug`). Globs follow
//! `globset`: `*` does not cross `/`, `**` does.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// A compiled set of patterns.
#[derive(Debug, Clone)]
pub struct PathMatcher {
    by_name: GlobSet,
    by_path: GlobSet,
    empty: bool,
}

impl PathMatcher {
    /// Compiles patterns; blank lines and lines starting with `#` are ignored.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self> {
        Self::build(patterns, false)
    }

    /// Compiles patterns that match without regard to case (`*.JPG` matches `a.jpg`).
    pub fn case_insensitive<S: AsRef<str>>(patterns: &[S]) -> Result<Self> {
        Self::build(patterns, true)
    }

    fn build<S: AsRef<str>>(patterns: &[S], case_insensitive: bool) -> Result<Self> {
        let mut by_name = GlobSetBuilder::new();
        let mut by_path = GlobSetBuilder::new();
        let mut empty = true;
        for p in patterns {
            let p = p.as_ref().trim_end_matches(['\r', '\n']);
            if p.trim().is_empty() || p.starts_with('#') {
                continue;
            }
            let body = p.trim_end_matches('/');
            let anchored =
                if body.contains('/') && !body.starts_with('/') && !body.starts_with("**") {
                    format!("**/{body}")
                } else {
                    body.to_string()
                };
            let glob = GlobBuilder::new(&anchored)
                .literal_separator(true)
                .backslash_escape(true)
                .case_insensitive(case_insensitive)
                .build()
                .map_err(|e| Error::InvalidPattern {
                    pattern: p.to_string(),
                    reason: e.to_string(),
                })?;
            if body.contains('/') {
                by_path.add(glob);
            } else {
                by_name.add(glob);
            }
            empty = false;
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|e| Error::InvalidPattern {
                pattern: e.glob().unwrap_or_default().to_string(),
                reason: e.kind().to_string(),
            })
        };
        Ok(Self {
            by_name: build(by_name)?,
            by_path: build(by_path)?,
            empty,
        })
    }

    /// True when no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// True when `path` (absolute, or relative to the restore root) matches a pattern.
    pub fn matches(&self, path: &Path) -> bool {
        if self.empty {
            return false;
        }
        if self.matches_as_is(path) {
            return true;
        }
        // A pattern is text: a path that is not UTF-8 also matches as it is shown, with U+FFFD
        // in place of its invalid bytes (how a pattern typed from a listing holds it).
        match path.to_str() {
            Some(_) => false,
            None => self.matches_as_is(Path::new(path.to_string_lossy().as_ref())),
        }
    }

    fn matches_as_is(&self, path: &Path) -> bool {
        if let Some(name) = path.file_name() {
            if self.by_name.is_match(name) {
                return true;
            }
        }
        self.by_path.is_match(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_that_is_not_utf8_matches_as_it_is_shown() {
        use std::os::unix::ffi::OsStrExt;
        let odd = Path::new(std::ffi::OsStr::from_bytes(b"/src/bad\xffname"));
        assert!(PathMatcher::new(&["bad\u{fffd}name"]).unwrap().matches(odd));
        assert!(PathMatcher::new(&["/src/*"]).unwrap().matches(odd));
        assert!(!PathMatcher::new(&["bad?name2"]).unwrap().matches(odd));
    }

    #[test]
    fn names_and_paths() {
        let m = PathMatcher::new(&[
            "*.tmp",
            "/home/*/.cache",
            "# comment",
            "",
            "**/target/debug",
        ])
        .unwrap();
        assert!(m.matches(Path::new("/a/b/x.tmp")));
        assert!(!m.matches(Path::new("/a/b/x.tmpx")));
        assert!(m.matches(Path::new("/home/ann/.cache")));
        assert!(!m.matches(Path::new("/home/ann/deep/.cache")));
        assert!(m.matches(Path::new("/src/p/target/debug")));
        let rel = PathMatcher::new(&["cache/tmp", "*/b"]).unwrap();
        assert!(rel.matches(Path::new("/home/x/cache/tmp")));
        assert!(!rel.matches(Path::new("/home/x/cache/tmpx")));
        assert!(rel.matches(Path::new("/a/b")));
        assert!(!PathMatcher::new(&["# only a comment"])
            .unwrap()
            .matches(Path::new("/x")));
        assert!(PathMatcher::new(&["a[b"]).is_err());
    }

    #[test]
    fn case_insensitive_patterns() {
        let m = PathMatcher::case_insensitive(&["*.jpg", "/Home/*/CACHE"]).unwrap();
        assert!(m.matches(Path::new("/a/B.JPG")));
        assert!(m.matches(Path::new("/home/ann/cache")));
        assert!(!PathMatcher::new(&["*.jpg"])
            .unwrap()
            .matches(Path::new("/a/B.JPG")));
    }
}
