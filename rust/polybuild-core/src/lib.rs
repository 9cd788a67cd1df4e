//! Native core of polybuild: file and tree digests, hashed in parallel without holding the GIL.
//!
//! The pure-Python fallback in `python/polybuild/fingerprint.py` must give identical results;
//! the digest format is specified in the docstring of the `polybuild_core` module below.

use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

/// Files are streamed through the hasher in chunks of this size, never loaded whole.
const BUF_SIZE: usize = 64 * 1024;

/// A hashed tree entry: git-style mode string and raw sha256.
type Entry = (&'static str, [u8; 32]);

/// An I/O failure together with the full path it happened on.
type PathError = (PathBuf, io::Error);

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

#[cfg(unix)]
fn link_target_bytes(target: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    target.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
fn link_target_bytes(target: &Path) -> Vec<u8> {
    target.to_string_lossy().into_owned().into_bytes()
}

#[cfg(unix)]
fn is_executable(meta: &Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &Metadata) -> bool {
    false
}

/// Hashes one path without following a final symlink.
fn hash_entry(path: &Path) -> io::Result<Entry> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path)?;
        return Ok(("120000", Sha256::digest(link_target_bytes(&target)).into()));
    }
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = [0u8; BUF_SIZE];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mode = if is_executable(&meta) {
        "100755"
    } else {
        "100644"
    };
    Ok((mode, hasher.finalize().into()))
}

/// Hashes all paths in parallel; on failure reports the first failing path in input order,
/// so the error does not depend on thread scheduling.
fn hash_all(root: &Path, paths: &[String]) -> Result<Vec<Entry>, PathError> {
    let results: Vec<Result<Entry, PathError>> = paths
        .par_iter()
        .map(|p| {
            let full = root.join(p);
            hash_entry(&full).map_err(|e| (full, e))
        })
        .collect();
    results.into_iter().collect()
}

fn file_digests_impl(root: &Path, paths: &[String]) -> Result<Vec<String>, PathError> {
    Ok(hash_all(root, paths)?
        .iter()
        .map(|(_, d)| to_hex(d))
        .collect())
}

fn tree_digest_impl(root: &Path, mut paths: Vec<String>) -> Result<String, PathError> {
    // `String` orders by UTF-8 bytes, which is what the spec requires.
    paths.sort_unstable();
    paths.dedup();
    let entries = hash_all(root, &paths)?;
    let mut tree = Sha256::new();
    for (path, (mode, digest)) in paths.iter().zip(&entries) {
        tree.update(format!("{mode} {} {path}\n", to_hex(digest)).as_bytes());
    }
    Ok(to_hex(&tree.finalize()))
}

/// Converts an I/O error into the matching `OSError` subclass (e.g. `FileNotFoundError`),
/// with `errno`, `strerror` and `filename` set as Python's own `open()` would.
fn to_py_err((path, err): PathError) -> pyo3::PyErr {
    use pyo3::exceptions::PyOSError;
    match err.raw_os_error() {
        Some(code) => {
            let msg = err.to_string();
            let suffix = format!(" (os error {code})");
            let msg = msg.strip_suffix(&suffix).unwrap_or(&msg).to_owned();
            // OSError(errno, strerror, filename) picks the subclass from errno.
            PyOSError::new_err((code, msg, path.into_os_string()))
        }
        None => PyOSError::new_err(format!("{err}: {}", path.display())),
    }
}

/// Native core of polybuild: file and tree digests.
///
/// file_digests(root, paths) -> list[str]: lowercase hex sha256 of each path's content, in input
/// order (for a symlink: sha256 of the link target string, not followed).
///
/// tree_digest(root, paths) -> str: the digest of a file tree, defined exactly as:
/// take the given relative paths (POSIX separators, relative to root), deduplicate, sort by their
/// UTF-8 bytes; for each produce the line f"{mode} {sha256hex} {path}\n" where mode is "120000"
/// for a symlink (hash = sha256 of link target bytes), "100755" for a regular file with any
/// execute bit set, else "100644"; the tree digest is the lowercase hex sha256 of the
/// concatenated UTF-8 lines. An empty list gives the sha256 of the empty string.
///
/// Files are hashed in parallel with the GIL released. A missing or unreadable file raises
/// OSError (FileNotFoundError if missing) naming the first failing path in input order.
#[pyo3::pymodule]
mod polybuild_core {
    use std::path::PathBuf;

    use pyo3::prelude::*;

    #[allow(non_upper_case_globals)] // Python's dunder name
    #[pymodule_export]
    const __version__: &str = env!("CARGO_PKG_VERSION");

    /// Lowercase hex sha256 of each file (symlinks: of the link target), in input order.
    #[pyfunction]
    fn file_digests(py: Python<'_>, root: PathBuf, paths: Vec<String>) -> PyResult<Vec<String>> {
        py.detach(|| super::file_digests_impl(&root, &paths))
            .map_err(super::to_py_err)
    }

    /// Digest of the tree formed by `paths` under `root` (see the module docstring).
    #[pyfunction]
    fn tree_digest(py: Python<'_>, root: PathBuf, paths: Vec<String>) -> PyResult<String> {
        py.detach(|| super::tree_digest_impl(&root, paths))
            .map_err(super::to_py_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tree_is_sha256_of_nothing() {
        let digest = tree_digest_impl(Path::new("."), Vec::new()).unwrap();
        assert_eq!(
            digest,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
