//! Prints, as JSON on stdout, what the pure-Python license detection needs to give the same answers
//! as the native core: every candidate store text (its reported id and its normalized lines, as the
//! `spdx` crate's store holds them), and the canonical text of every SPDX license and exception id.
//!
//! Run by `python/polybuild/licenses/_gen_texts.py`, which writes the fallback's data files.

use polybuild_core::detect::{candidates, license_text};
use serde_json::{json, Map, Value};

fn main() {
    let candidates: Vec<Value> = candidates()
        .iter()
        .map(|c| json!([c.id, c.data.lines().join("\n")]))
        .collect();
    let licenses: Map<String, Value> = spdx::text::LICENSE_TEXTS
        .iter()
        .filter_map(|&(id, _)| Some((id.to_owned(), license_text(id)?.into())))
        .collect();
    let exceptions: Map<String, Value> = spdx::text::EXCEPTION_TEXTS
        .iter()
        .filter(|&(id, _)| spdx::license_id(id).is_none()) // licenses win, as in `license_text`
        .filter_map(|&(id, _)| Some((id.to_owned(), license_text(id)?.into())))
        .collect();
    let dump = json!({ "candidates": candidates, "licenses": licenses, "exceptions": exceptions });
    println!("{dump}");
}
