//! Native core of polybuild: file and tree digests, hashed in parallel without holding the GIL,
//! the persistent stat cache (`StatCache`), and license text detection (`detect`).
//!
//! The pure-Python fallbacks in `python/polybuild/support/fingerprint.py` and
//! `python/polybuild/licenses/detect.py` must give identical results; the digest format is
//! specified in the docstring of the `polybuild_core` module below, the stat cache file format in
//! the `statcache` module, the detection algorithm in the `detect` module.

use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

pub mod detect;

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

/// `errno` of the error for a special file: EINVAL, 22 on Linux, macOS, the BSDs and Windows' CRT.
const EINVAL: i32 = 22;

/// A FIFO, socket or device file: opening one can block (a FIFO without a writer) and reading one
/// need never end, so it is refused before it is opened. Raised to Python as
/// `OSError(EINVAL, "Not a regular file or symlink", path)`, exactly as the fallback does.
#[derive(Debug)]
struct SpecialFile;

impl fmt::Display for SpecialFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Not a regular file or symlink")
    }
}

impl std::error::Error for SpecialFile {}

/// Hashes one path without following a final symlink.
fn hash_entry(path: &Path) -> io::Result<Entry> {
    hash_with_meta(path, &fs::symlink_metadata(path)?)
}

/// Hashes one path whose `lstat` is `meta`: the mode comes from `meta`. A directory is left to
/// fail on reading (EISDIR, as Python's `open` does); special files are refused unopened.
fn hash_with_meta(path: &Path, meta: &Metadata) -> io::Result<Entry> {
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        let target = fs::read_link(path)?;
        return Ok(("120000", Sha256::digest(link_target_bytes(&target)).into()));
    }
    if !file_type.is_file() && !file_type.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, SpecialFile));
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
    let mode = if is_executable(meta) {
        "100755"
    } else {
        "100644"
    };
    Ok((mode, hasher.finalize().into()))
}

/// Below this many items, or this many bytes to hash, a stat cache lookup runs in the calling
/// thread: handing a batch to rayon's pool (waking its threads, waiting for them) costs more than
/// stat'ing and hashing a handful of small files, which is what a task's inputs usually are.
const PARALLEL_MIN_ITEMS: usize = 64;
const PARALLEL_MIN_BYTES: u64 = 1 << 20;

/// `f` over `items` in input order; on rayon's pool only when `parallel`.
fn map_in_order<T: Sync, R: Send>(
    items: &[T],
    parallel: bool,
    f: impl Fn(&T) -> R + Sync + Send,
) -> Vec<R> {
    if parallel {
        items.par_iter().map(f).collect()
    } else {
        items.iter().map(f).collect()
    }
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
    if let Some(special) = err.get_ref().and_then(|e| e.downcast_ref::<SpecialFile>()) {
        return PyOSError::new_err((EINVAL, special.to_string(), path.into_os_string()));
    }
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

/// The persistent stat cache (its own module: semantics and file format are documented there).
#[cfg(unix)]
mod statcache;

/// Native core of polybuild: file and tree digests, and the persistent stat cache.
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
/// OSError (FileNotFoundError if missing) naming the first failing path in input order; so does a
/// directory (IsADirectoryError) and a FIFO, socket or device file, which is never opened:
/// OSError(errno.EINVAL, "Not a regular file or symlink", path).
///
/// StatCache(file) (Unix only): the persistent stat cache, with .entries(root, paths) ->
/// dict[str, tuple[str, str]] and .save(); semantics and file format as the Python StatCache.
///
/// detect_license(text) -> tuple[str, float, list[str]] | None: the SPDX id the license text
/// `text` most plausibly is (or the ids of the several texts it holds, joined by " AND "), the
/// score (0..1] and the ids of the near ties, with the `spdx` crate's detection (askalono's
/// algorithm) over its built-in SPDX texts; None when nothing matches at all. detect_licenses(texts) does the same for
/// many texts in parallel. license_text(spdx_id) -> str | None: the canonical text of a license or
/// exception id. See `python/polybuild/licenses/detect.py`.
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

    /// The SPDX id of the license `text` most resembles and its score (0..1], None when nothing
    /// matches at all. Runs without the GIL; the built-in store loads on first use.
    #[pyfunction]
    fn detect_license(py: Python<'_>, text: &str) -> Option<super::detect::Match> {
        py.detach(|| super::detect::detect(text))
    }

    /// `detect_license` of each text, in parallel without the GIL, in input order.
    #[pyfunction]
    fn detect_licenses(py: Python<'_>, texts: Vec<String>) -> Vec<Option<super::detect::Match>> {
        py.detach(|| super::detect::detect_many(&texts))
    }

    /// The canonical text of an SPDX license or exception id (exact spelling), None if unknown.
    #[pyfunction]
    fn license_text(spdx_id: &str) -> Option<&'static str> {
        super::detect::license_text(spdx_id)
    }

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        #[cfg(unix)]
        m.add_class::<super::statcache::StatCache>()?;
        #[cfg(not(unix))]
        let _ = m; // the stat cache needs inode and ctime: the Python fallback serves elsewhere
        Ok(())
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

    #[cfg(unix)]
    #[test]
    fn special_files_are_refused_unopened() {
        // /dev/null is a character device: opening it would succeed, so only the check refuses it.
        let err = hash_entry(Path::new("/dev/null")).unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<SpecialFile>()));
    }

    #[cfg(unix)]
    #[test]
    fn statcache_file_round_trips() {
        let digest = "ab".repeat(32);
        let mut data = format!(
            "polybuild-statcache 1\n\
             100644 {digest} 0 -1500000000 0 1 a b\n\
             120000 {digest} 18446744073709551615 5 7 18446744073709551615 "
        )
        .into_bytes();
        // A non-UTF-8 path (a lone surrogate on the Python side) and a CR stay raw bytes.
        data.extend_from_slice(b"\xff\r\n");
        let entries = statcache::parse(&data).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(statcache::serialize(&entries), data);
        assert_eq!(statcache::parse(statcache::HEADER).unwrap().len(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn statcache_rejects_malformed_files() {
        let digest = "ab".repeat(32);
        let good = format!("100644 {digest} 1 2 3 4 p");
        assert!(statcache::parse(format!("polybuild-statcache 1\n{good}\n").as_bytes()).is_some());
        for bad in [
            format!("polybuild-statcache 2\n{good}\n"),
            format!("polybuild-statcache 1\n{good}"), // truncated: no final newline
            format!("polybuild-statcache 1\n\n{good}\n"),
            format!("polybuild-statcache 1\n100600 {digest} 1 2 3 4 p\n"),
            format!(
                "polybuild-statcache 1\n100644 {} 1 2 3 4 p\n",
                digest.to_uppercase()
            ),
            format!("polybuild-statcache 1\n100644 {digest} 01 2 3 4 p\n"),
            format!("polybuild-statcache 1\n100644 {digest} +1 2 3 4 p\n"),
            format!("polybuild-statcache 1\n100644 {digest} 1 -0 3 4 p\n"),
            format!("polybuild-statcache 1\n100644 {digest} -1 2 3 4 p\n"),
            format!("polybuild-statcache 1\n100644 {digest} 18446744073709551616 2 3 4 p\n"),
            format!("polybuild-statcache 1\n100644 {digest} 1 2 3 4 \n"),
            format!("polybuild-statcache 1\n100644 {digest} 1 2 3 4\n"),
        ] {
            assert!(statcache::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }
}
