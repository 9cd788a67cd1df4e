//! The persistent stat cache, like git's index: path -> (size, mtime_ns, ctime_ns, inode) -> (mode,
//! digest), so an unchanged file costs one `lstat`. Same semantics and byte-identical file format
//! as `StatCache` in `python/polybuild/support/fingerprint.py` (either can read the other's file):
//!
//! * The file is the header line `polybuild-statcache 1`, then one line per entry, sorted by the
//!   path's bytes: `mode digest size mtime_ns ctime_ns inode path` (mode one of 100644, 100755,
//!   120000; digest 64 lowercase hex; integers in canonical decimal; path non-empty, UTF-8 with
//!   surrogateescape, any bytes but newline). A file whose header differs or with any malformed
//!   line is ignored as a whole: a damaged cache only costs re-hashing.
//! * An entry is used only if size, mtime_ns, ctime_ns and inode all equal the path's `lstat`.
//! * A hashed file is stored only if its mtime and ctime are more than 2 s in the past (an edit
//!   within the timestamp granularity right after hashing could otherwise go unnoticed: git's
//!   "racy clean" problem), and never if its path contains a newline.
//! * Special files (not regular, not symlink; directories included) are skipped.
//! * `save` writes only if an entry was added, changed or dropped, atomically (temp + rename).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use super::{
    hash_with_meta, map_in_order, to_hex, to_py_err, Entry, PathError, PARALLEL_MIN_BYTES,
    PARALLEL_MIN_ITEMS,
};

pub(crate) const HEADER: &[u8] = b"polybuild-statcache 1\n";
/// Files changed less than this long ago (mtime or ctime) are not stored.
const RACY_NS: i128 = 2_000_000_000;
const MODES: [&str; 3] = ["100644", "100755", "120000"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Signature {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl Signature {
    /// As Python's `st_size, st_mtime_ns, st_ctime_ns, st_ino`.
    fn of(meta: &Metadata) -> Self {
        let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        Signature {
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Cached {
    sig: Signature,
    entry: Entry,
}

/// Keyed by the path's bytes as stored in the file (UTF-8, surrogateescape).
pub(crate) type Entries = HashMap<Vec<u8>, Cached>;

#[derive(Default)]
pub(crate) struct State {
    entries: Entries,
    dirty: bool,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The entries of a cache file, or None if it is not one (wrong header, any malformed line).
pub(crate) fn parse(data: &[u8]) -> Option<Entries> {
    let body = data.strip_prefix(HEADER)?;
    let mut entries = Entries::new();
    if body.is_empty() {
        return Some(entries);
    }
    for line in body.strip_suffix(b"\n")?.split(|&b| b == b'\n') {
        let (path, cached) = parse_line(line)?;
        entries.insert(path.to_vec(), cached);
    }
    Some(entries)
}

fn parse_line(line: &[u8]) -> Option<(&[u8], Cached)> {
    let mut fields = line.splitn(7, |&b| b == b' ');
    let mode = fields.next()?;
    let mode = *MODES.iter().find(|m| m.as_bytes() == mode)?;
    let digest = parse_hex(fields.next()?)?;
    let sig = Signature {
        size: parse_canonical(fields.next()?)?,
        mtime_ns: parse_canonical(fields.next()?)?,
        ctime_ns: parse_canonical(fields.next()?)?,
        ino: parse_canonical(fields.next()?)?,
    };
    let path = fields.next().filter(|p| !p.is_empty())?;
    let entry = (mode, digest);
    Some((path, Cached { sig, entry }))
}

/// An integer written exactly as `{}` writes it: no sign but '-', no leading zeros, no "-0".
fn parse_canonical<T: FromStr + ToString>(field: &[u8]) -> Option<T> {
    let text = std::str::from_utf8(field).ok()?;
    let value: T = text.parse().ok()?;
    (value.to_string() == text).then_some(value)
}

fn parse_hex(field: &[u8]) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if field.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(field.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

pub(crate) fn serialize(entries: &Entries) -> Vec<u8> {
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(HEADER.len() + sorted.len() * 160);
    out.extend_from_slice(HEADER);
    for (path, Cached { sig, entry }) in sorted {
        let line = format!(
            "{} {} {} {} {} {} ",
            entry.0,
            to_hex(&entry.1),
            sig.size,
            sig.mtime_ns,
            sig.ctime_ns,
            sig.ino
        );
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(path);
        out.push(b'\n');
    }
    out
}

/// Writes `data` to `file` through a temp file and a rename, so readers never see a partial file.
fn write_atomic(file: &Path, data: &[u8]) -> Result<(), PathError> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| (dir.to_path_buf(), e))?;
    }
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    if let Err(e) = fs::write(&tmp, data).and_then(|()| fs::rename(&tmp, file)) {
        let _ = fs::remove_file(&tmp);
        return Err((tmp, e));
    }
    Ok(())
}

fn now_ns() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

/// (mode, digest) of each path (None: a special file), given as (filesystem path, cache key):
/// all paths are `lstat`ed in parallel, only the misses are hashed (in parallel too), and the
/// lock is not held meanwhile. Fails for the first failing path in input order.
pub(crate) fn lookup(
    state: &Mutex<State>,
    root: &Path,
    paths: &[(PathBuf, Vec<u8>)],
) -> Result<Vec<Option<Entry>>, PathError> {
    let metas: Result<Vec<Metadata>, PathError> =
        map_in_order(paths, paths.len() >= PARALLEL_MIN_ITEMS, |(path, _)| {
            let full = root.join(path);
            fs::symlink_metadata(&full).map_err(|e| (full, e))
        })
        .into_iter()
        .collect();
    let metas = metas?;
    let mut out = vec![None; paths.len()];
    let mut misses = Vec::new();
    {
        let state = lock(state);
        for (i, ((_, key), meta)) in paths.iter().zip(&metas).enumerate() {
            let file_type = meta.file_type();
            if !file_type.is_file() && !file_type.is_symlink() {
                continue;
            }
            match state.entries.get(key) {
                Some(cached) if cached.sig == Signature::of(meta) => out[i] = Some(cached.entry),
                _ => misses.push(i),
            }
        }
    }
    if misses.is_empty() {
        return Ok(out);
    }
    let now = now_ns();
    let bytes: u64 = misses.iter().map(|&i| metas[i].len()).sum();
    let parallel =
        misses.len() >= PARALLEL_MIN_ITEMS || (misses.len() > 1 && bytes >= PARALLEL_MIN_BYTES);
    let hashed: Result<Vec<Entry>, PathError> = map_in_order(&misses, parallel, |&i| {
        let full = root.join(&paths[i].0);
        hash_with_meta(&full, &metas[i]).map_err(|e| (full, e))
    })
    .into_iter()
    .collect();
    let hashed = hashed?;
    let mut guard = lock(state);
    let state = &mut *guard;
    for (&i, &entry) in misses.iter().zip(&hashed) {
        out[i] = Some(entry);
        let key = &paths[i].1;
        let sig = Signature::of(&metas[i]);
        let changed = if now - sig.mtime_ns.max(sig.ctime_ns) > RACY_NS && !key.contains(&b'\n') {
            let new = Cached { sig, entry };
            state.entries.insert(key.clone(), new) != Some(new)
        } else {
            state.entries.remove(key).is_some()
        };
        state.dirty |= changed;
    }
    Ok(out)
}

/// StatCache(file): the persistent stat cache stored in `file` (loaded now; a missing or
/// damaged file gives an empty cache). Thread-safe; filesystem work runs without the GIL.
#[pyclass(frozen, module = "polybuild_core")]
pub struct StatCache {
    file: PathBuf,
    state: Mutex<State>,
}

#[pymethods]
impl StatCache {
    #[new]
    fn new(py: Python<'_>, file: PathBuf) -> Self {
        let entries = py.detach(|| fs::read(&file).ok().and_then(|data| parse(&data)));
        let state = State {
            entries: entries.unwrap_or_default(),
            dirty: false,
        };
        StatCache {
            file,
            state: Mutex::new(state),
        }
    }

    /// The cache file's path.
    #[getter]
    fn file(&self) -> OsString {
        self.file.clone().into_os_string()
    }

    /// Number of entries held (loaded or stored since).
    fn __len__(&self) -> usize {
        lock(&self.state).entries.len()
    }

    /// entries(root, paths) -> dict[str, tuple[str, str]]: path -> (mode, digest) for the
    /// regular files and symlinks among `paths` (relative to `root`), in input order,
    /// duplicates merged; special files are skipped. A missing or unreadable path raises
    /// OSError for the first failing path in input order.
    fn entries<'py>(
        &self,
        py: Python<'py>,
        root: PathBuf,
        paths: Vec<Bound<'py, PyString>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let sys = py.import("sys")?;
        let fs_utf8 = sys
            .call_method0("getfilesystemencoding")?
            .extract::<String>()?
            == "utf-8"
            && sys
                .call_method0("getfilesystemencodeerrors")?
                .extract::<String>()?
                == "surrogateescape";
        let mut seen = HashSet::with_capacity(paths.len());
        let mut names = Vec::with_capacity(paths.len());
        let mut items = Vec::with_capacity(paths.len());
        for name in paths {
            let key = match name.to_str() {
                Ok(text) => text.as_bytes().to_vec(),
                // Lone surrogates: a non-UTF-8 file name decoded by os.fsdecode.
                Err(_) => name
                    .call_method1(intern!(py, "encode"), ("utf-8", "surrogateescape"))?
                    .cast_into::<PyBytes>()?
                    .as_bytes()
                    .to_vec(),
            };
            if !seen.insert(key.clone()) {
                continue;
            }
            let fs_path = if fs_utf8 {
                PathBuf::from(OsString::from_vec(key.clone()))
            } else {
                name.extract::<PathBuf>()?
            };
            items.push((fs_path, key));
            names.push(name);
        }
        let found = py
            .detach(|| lookup(&self.state, &root, &items))
            .map_err(to_py_err)?;
        let dict = PyDict::new(py);
        for (name, entry) in names.iter().zip(found) {
            if let Some((mode, digest)) = entry {
                // Interned: the three modes are all there is.
                let mode = match mode {
                    "120000" => intern!(py, "120000"),
                    "100755" => intern!(py, "100755"),
                    _ => intern!(py, "100644"),
                };
                dict.set_item(name, (mode, to_hex(&digest)))?;
            }
        }
        Ok(dict)
    }

    /// Writes the cache file if anything changed, atomically (temp file + rename).
    fn save(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| {
            let mut state = lock(&self.state);
            if state.dirty {
                write_atomic(&self.file, &serialize(&state.entries))?;
                state.dirty = false;
            }
            Ok(())
        })
        .map_err(to_py_err)
    }
}
