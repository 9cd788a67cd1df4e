//! License text detection: the `spdx` crate's detection (askalono's algorithm, the one cargo-deny
//! and cargo-about use) over the crate's built-in store of SPDX license texts and headers, with
//! the crate's scores, computed faster and deterministically.
//!
//! A text is normalized in two steps and cut into word bigrams; its score against a store text is
//! the Dice coefficient of the two bigram multisets, 0 to 1, in f32; the best scoring store text
//! names the license. Step 1 (per line: Unicode, punctuation, URLs, whitespace) is the crate's own
//! (`TextData::new(..).lines()`); the store holds its output for every license. Step 2 (on the
//! joined lines: comment prefixes, case, title and copyright lines) and the scoring are a port of
//! the crate's private code, because the crate scores a text by a hash-map intersection with each
//! of ~750 store texts (55 ms per text); here an inverted index from bigram to store texts does it
//! in about a millisecond, with the same f32 scores (checked against `TextData::match_score` in the
//! tests). Two deliberate differences: a tie between line prefixes in step 2 goes to the first seen
//! (the crate: hash order), and equal scores go to the smaller id (the crate: hash order), so the
//! answer never varies between runs.
//!
//! The pure-Python fallback (`python/polybuild/licenses/detect.py`) mirrors all of this over the
//! same store texts, dumped by `examples/detect_texts.rs`, and must give the same answers.

use std::collections::HashMap;
use std::sync::LazyLock;

use rayon::prelude::*;
use regex::Regex;
use spdx::detection::{Store, TextData};

/// One store text a sample is scored against: a license's own text or one of its standard headers.
pub struct Candidate {
    /// The SPDX id reported when this text matches best (see `reported_id`).
    pub id: String,
    /// The crate's data: `lines()` are this text after step 1.
    pub data: &'static TextData,
}

/// Decompressed and parsed once, on first use (about 0.1 s); shared by all threads.
static STORE: LazyLock<Store> =
    LazyLock::new(|| Store::load_inline().expect("the spdx crate's built-in store is valid"));

static CANDIDATES: LazyLock<Vec<Candidate>> = LazyLock::new(|| {
    let mut candidates: Vec<Candidate> = STORE
        .iter()
        .flat_map(|(name, entry)| {
            let id = reported_id(name);
            std::iter::once(&entry.original)
                .chain(&entry.headers)
                .chain(&entry.alternates)
                .map(move |data| Candidate {
                    id: id.clone(),
                    data,
                })
        })
        .collect();
    // In a fixed order: the dump for the Python fallback is reproducible, and ties are decided by id.
    candidates.sort_by(|a, b| (&a.id, a.data.lines()).cmp(&(&b.id, b.data.lines())));
    candidates
});

/// The id reported for a store entry named `name`. A license text never says whether "any later
/// version" applies: the GPL's own text carries both sample notices, and the grant is in the
/// project's notice, never in COPYING. The store nevertheless has near-identical entries "GPL-2.0+"
/// and "GPL-2.0-or-later" (aliases "GPL-2.0", "GPL-2.0-only"), so which one wins is noise; both
/// report the `-only` id, and so does every `X+` or `X-or-later` entry whose `X-only` SPDX knows.
/// Any other entry reports its own name.
fn reported_id(name: &str) -> String {
    let base = name
        .strip_suffix('+')
        .or_else(|| name.strip_suffix("-or-later"));
    match base.map(|base| format!("{base}-only")) {
        Some(only) if spdx::license_id(&only).is_some() => only,
        _ => name.to_owned(),
    }
}

/// Every store text with the id it reports, sorted by id.
pub fn candidates() -> &'static [Candidate] {
    &CANDIDATES
}

/// Step 2, ported from the crate's `apply_aggressive` (spdx 0.13 `detection/preproc.rs`,
/// Apache-2.0, from askalono): `lines` are step 1's output joined with "\n".
fn aggressive(lines: &str) -> String {
    static VERTICAL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[\r\n\v\f]").unwrap());
    static BLANK_LINES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\n{3,}").unwrap());
    static NON_WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[^\w\s]+").unwrap());
    static TITLE_LINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^.*license( version \S+)?( copyright.*)?\n\n").unwrap()
    });
    static COPYRIGHT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?mx)
            (
                # either a new paragraph, or the beginning of the text + empty lines
                (\n\n|\A\n*)
                # any number of lines starting with 'copyright' followed by a new paragraph
                (^\x20*copyright.*?$)+
                \n\n
            )
            |
            (
                # or the very first line if it has 'copyright' in it
                \A.*copyright.*$
            )
            |
            (
                # or any lines that really look like a copyright statement
                ^copyright (\s+(c|\d+))+ .*?$
            )
        ",
        )
        .unwrap()
    });
    static WHITE_SPACE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\s+").unwrap());

    let text = remove_common_prefix(lines);
    let text = VERTICAL.replace_all(&text, "\n");
    let text = BLANK_LINES.replace_all(&text, "\n\n");
    let text = NON_WORD.replace_all(&text, "").to_lowercase();
    let text = TITLE_LINE.replace_all(&text, "");
    let text = COPYRIGHT.replace_all(&text, "\n\n");
    WHITE_SPACE.replace_all(&text, " ").trim().to_owned()
}

/// The crate's `remove_common_tokens`: the longest common prefix of consecutive lines (trimmed, over
/// 3 bytes) seen most often is stripped from every line, and every line trimmed, when prefixes
/// starting with it were seen at least 0.8 times the line count. A tie goes to the first seen.
fn remove_common_prefix(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut counts: HashMap<&str, (u32, usize)> = HashMap::new(); // prefix -> (count, first seen)
    for (seen, pair) in lines.windows(2).enumerate() {
        let common = common_prefix(pair[0], pair[1]);
        if common.len() > 3 {
            counts.entry(common).or_insert((1, seen)).0 += 1; // the crate: `or_insert(1) += 1`
        }
    }
    let top = counts
        .iter()
        .max_by_key(|(_, &(count, seen))| (count, std::cmp::Reverse(seen)))
        .map(|(prefix, _)| *prefix);
    let Some(top) = top else {
        return text.to_owned();
    };
    let shared: u32 = counts
        .iter()
        .filter(|(prefix, _)| prefix.starts_with(top))
        .map(|(_, (count, _))| count)
        .sum();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // as the crate computes it
    let threshold = (0.8f32 * lines.len() as f32) as u32;
    if shared < threshold {
        return text.to_owned();
    }
    let stripped: Vec<&str> = lines
        .iter()
        .map(|line| line.strip_prefix(top).unwrap_or(line).trim())
        .collect();
    stripped.join("\n")
}

/// The common prefix of two lines, at a character boundary, trimmed.
fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let bytes = a
        .bytes()
        .zip(b.bytes())
        .take_while(|(x, y)| x == y)
        .count();
    let mut end = bytes;
    while !a.is_char_boundary(end) {
        end -= 1;
    }
    a[..end].trim()
}

/// The word bigrams of a step-2 text (words separated by single spaces), with their counts.
fn bigrams(processed: &str) -> HashMap<&str, u32> {
    // Word i starts at starts[i]; bigram i runs from there to the end of word i + 1.
    let starts: Vec<usize> = std::iter::once(0)
        .chain(processed.match_indices(' ').map(|(i, _)| i + 1))
        .collect();
    let mut counts = HashMap::new();
    if let Some(later) = starts.get(2..) {
        let ends = later.iter().map(|&start| start - 1).chain([processed.len()]);
        for (&start, end) in starts.iter().zip(ends) {
            *counts.entry(&processed[start..end]).or_insert(0) += 1;
        }
    }
    counts
}

/// All store texts as an inverted index: scoring a sample visits only the texts sharing a bigram.
struct Index {
    /// Bigram count of each candidate, in `candidates()` order.
    sizes: Vec<u32>,
    /// Bigram -> (candidate, count in it).
    postings: HashMap<String, Vec<(u32, u32)>>,
}

static INDEX: LazyLock<Index> = LazyLock::new(|| {
    let processed: Vec<String> = candidates()
        .par_iter()
        .map(|c| aggressive(&c.data.lines().join("\n")))
        .collect();
    let mut sizes = Vec::with_capacity(processed.len());
    let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
    for (candidate, text) in (0u32..).zip(&processed) {
        let grams = bigrams(text);
        sizes.push(grams.values().sum());
        for (gram, count) in grams {
            postings
                .entry(gram.to_owned())
                .or_default()
                .push((candidate, count));
        }
    }
    Index { sizes, postings }
});

/// The crate's `NgramSet::dice`, f32 arithmetic included.
#[allow(clippy::cast_precision_loss)] // exact below 2^24 bigrams
fn dice(shared: u32, size_a: u32, size_b: u32) -> f32 {
    (2.0 * shared as f32) / ((size_a + size_b) as f32)
}

/// The score of `text` against every candidate, in `candidates()` order: exactly the crate's
/// `TextData::match_score` (0 when they share no bigram).
fn scores(text: &str) -> Vec<f32> {
    let processed = aggressive(&TextData::new(text).lines().join("\n"));
    let sample = bigrams(&processed);
    let size: u32 = sample.values().sum();
    let index = &*INDEX;
    let mut shared = vec![0u32; index.sizes.len()];
    for (gram, &count) in &sample {
        for &(candidate, stored) in index.postings.get(*gram).into_iter().flatten() {
            shared[candidate as usize] += count.min(stored);
        }
    }
    shared
        .iter()
        .zip(&index.sizes)
        .map(|(&n, &other)| if n == 0 { 0.0 } else { dice(n, size, other) })
        .collect()
}

/// Licenses scoring within this of the best are reported with it: their texts are so alike (Apache-2.0
/// and Pixar's modified Apache) that one file cannot tell them apart.
pub const CLOSE: f32 = 0.05;

/// A detection: the best matching id, its score, and the other ids scoring within `CLOSE` of it.
pub type Match = (&'static str, f32, Vec<&'static str>);

/// The best matching license of `text` and its score (0..1], with the near ties; None when no store
/// text shares a single word bigram with it. Equal scores go to the smaller id.
pub fn detect(text: &str) -> Option<Match> {
    let scores = scores(text);
    // Candidates are sorted by id; reversed, `max_by` keeps the first of equal scores.
    let (best, score) = scores
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, score)| score > 0.0)
        .rev()
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let id = candidates()[best].id.as_str();
    let mut close: Vec<&'static str> = scores
        .iter()
        .enumerate()
        .filter(|&(_, &other)| other > 0.0 && score - other <= CLOSE)
        .map(|(i, _)| candidates()[i].id.as_str())
        .filter(|&other| other != id) // "X-or-later" entries are reported as "X-only" too
        .collect();
    close.dedup();
    Some((id, score, close))
}

/// `detect` of each text, in parallel, in input order.
pub fn detect_many(texts: &[String]) -> Vec<Option<Match>> {
    texts.par_iter().map(|text| detect(text)).collect()
}

/// The canonical text of an SPDX license id or license exception id (exact spelling; as the crate's
/// `license_id`, a trailing "+" names the base license), as the SPDX license list publishes it;
/// None for an unknown id or one without a text (NOASSERTION).
pub fn license_text(id: &str) -> Option<&'static str> {
    spdx::license_id(id)
        .map(|license| license.text())
        .or_else(|| spdx::exception_id(id).map(|exception| exception.text()))
        .filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIT_SHIPPED: &str = "MIT License\n\nCopyright (c) 2019 Jane Doe <jane@example.com>\n\n\
        Permission is hereby granted, free of charge, to any person obtaining a copy\n\
        of this software and associated documentation files (the \"Software\"), to deal\n\
        in the Software without restriction, including without limitation the rights\n\
        to use, copy, modify, merge, publish, distribute, sublicense, and/or sell\n\
        copies of the Software, and to permit persons to whom the Software is\n\
        furnished to do so, subject to the following conditions:\n\n\
        The above copyright notice and this permission notice shall be included in all\n\
        copies or substantial portions of the Software.\n\n\
        THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR\n\
        IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,\n\
        FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE\n\
        AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER\n\
        LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,\n\
        OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE\n\
        SOFTWARE.\n";

    /// A comment-prefixed BSD header: exercises the common-prefix step.
    const BSD_COMMENTED: &str = "// Copyright 2020 The Authors. All rights reserved.\n\
        // Use of this source code is governed by a BSD-style\n\
        // license that can be found in the LICENSE file.\n";

    /// The crate's own scores, by its own (slow) path: every candidate, in `candidates()` order.
    fn crate_scores(text: &str) -> Vec<f32> {
        let sample = TextData::new(text);
        candidates()
            .iter()
            .map(|c| c.data.match_score(&sample))
            .collect()
    }

    #[test]
    fn scores_equal_the_crates() {
        let texts = [
            MIT_SHIPPED,
            BSD_COMMENTED,
            license_text("Apache-2.0").unwrap(),
            license_text("GPL-3.0-or-later").unwrap(),
            "All rights reserved. Proprietary and confidential.",
            "",
        ];
        for text in texts {
            assert_eq!(scores(text), crate_scores(text), "{text:.40}");
        }
    }

    /// Whether the most common line prefix in step 2 is tied, so the crate picks one by hash order.
    fn prefix_tie(text: &str) -> bool {
        let lines = TextData::new(text).lines().to_vec();
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for pair in lines.windows(2) {
            let common = common_prefix(&pair[0], &pair[1]);
            if common.len() > 3 {
                *counts.entry(common).or_insert(1) += 1;
            }
        }
        let max = counts.values().max();
        counts.values().filter(|&count| Some(count) == max).count() > 1
    }

    /// Slow (half a minute in release): `cargo test --release -p polybuild-core -- --ignored`.
    /// Texts with a tied prefix are left out: the crate's answer for them varies between runs.
    #[test]
    #[ignore]
    fn scores_equal_the_crates_for_every_canonical_text() {
        let texts = spdx::text::LICENSE_TEXTS.iter().chain(spdx::text::EXCEPTION_TEXTS);
        let texts: Vec<&str> = texts.map(|&(_, text)| text).collect();
        texts.par_iter().filter(|text| !prefix_tie(text)).for_each(|text| {
            assert_eq!(scores(text), crate_scores(text), "{text:.40}");
        });
    }

    #[test]
    fn shipped_mit_text_is_detected() {
        let (id, score, _) = detect(MIT_SHIPPED).unwrap();
        assert_eq!(id, "MIT");
        assert!(score > 0.98, "{score}");
    }

    #[test]
    fn canonical_texts_match_themselves() {
        for id in ["MIT", "Apache-2.0", "BSD-3-Clause", "ISC", "MPL-2.0", "GPL-2.0-only"] {
            assert_eq!(detect(license_text(id).unwrap()).map(|m| (m.0, m.1)), Some((id, 1.0)));
        }
    }

    #[test]
    fn or_later_is_never_read_into_a_license_text() {
        for (id, reported) in [
            ("GPL-2.0-or-later", "GPL-2.0-only"),
            ("GPL-3.0-or-later", "GPL-3.0-only"),
            ("LGPL-2.1-or-later", "LGPL-2.1-only"),
        ] {
            assert_eq!(detect(license_text(id).unwrap()).map(|m| (m.0, m.1)), Some((reported, 1.0)));
        }
    }

    #[test]
    fn reported_ids() {
        assert_eq!(reported_id("GPL-2.0-or-later"), "GPL-2.0-only");
        assert_eq!(reported_id("GPL-2.0+"), "GPL-2.0-only");
        assert_eq!(reported_id("GFDL-1.2-invariants-or-later"), "GFDL-1.2-invariants-only");
        assert_eq!(reported_id("MIT"), "MIT");
    }

    #[test]
    fn no_shared_bigram_is_no_match() {
        assert_eq!(detect(""), None);
        assert_eq!(detect("hello"), None);
        assert_eq!(detect("zzqx vvkw"), None);
    }

    #[test]
    fn common_prefix_ties_go_to_the_first_seen() {
        // Both prefixes are seen twice; the first, shorter one covers the second and is stripped.
        let text = "copyright 2020 foo\ncopyright 2021 bar\ncopyright 2021 baz";
        assert_eq!(remove_common_prefix(text), "0 foo\n1 bar\n1 baz");
        assert_eq!(common_prefix("é1", "è1"), "");
    }

    #[test]
    fn bigrams_of_words() {
        let grams = bigrams("a b a b");
        assert_eq!(grams, HashMap::from([("a b", 2), ("b a", 1)]));
        assert!(bigrams("").is_empty());
        assert!(bigrams("one").is_empty());
    }

    #[test]
    fn detect_many_agrees_with_detect() {
        let texts = vec![
            MIT_SHIPPED.to_owned(),
            String::new(),
            BSD_COMMENTED.to_owned(),
        ];
        let expected: Vec<_> = texts.iter().map(|t| detect(t)).collect();
        assert_eq!(detect_many(&texts), expected);
    }

    #[test]
    fn canonical_texts_of_licenses_and_exceptions() {
        let mit = license_text("MIT").unwrap();
        assert!(mit.contains("Permission is hereby granted"));
        assert_eq!(license_text("GPL-2.0+"), license_text("GPL-2.0"));
        assert!(license_text("LLVM-exception")
            .unwrap()
            .contains("LLVM Exceptions"));
        assert_eq!(license_text("mit"), None);
        assert_eq!(license_text("NOASSERTION"), None);
        assert_eq!(license_text("Not-A-License"), None);
    }

    #[test]
    fn candidates_are_sorted_and_cover_the_store() {
        let ids: Vec<&str> = candidates().iter().map(|c| c.id.as_str()).collect();
        assert!(ids.is_sorted());
        assert!(ids.len() > STORE.len());
    }
}
