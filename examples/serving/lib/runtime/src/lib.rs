//! Small numeric helpers for the serving runtime.
//!
//! Everything here works on plain `f32` logits so that the Python bindings and
//! any Rust caller share one implementation:
//!
//! * [`softmax`] / [`log_softmax`]: numerically stable normalisation;
//! * [`top_k`]: the `k` best `(index, logit)` pairs with a deterministic order;
//! * [`argmax`] and [`greedy_decode`]: the simplest decoding strategy;
//! * [`device`]: which accelerator backend this build was compiled for.

use std::cmp::Ordering;

/// The accelerator backend selected at compile time with the `cuda` or
/// `metal` feature; `"cpu"` without either. `cuda` wins if both are enabled.
pub fn device() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "metal") {
        "metal"
    } else {
        "cpu"
    }
}

/// Numerically stable softmax.
///
/// An empty input gives an empty output. If every logit is `-inf` the result
/// is the uniform distribution (there is no information to prefer one entry).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    if logits.is_empty() {
        return Vec::new();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return vec![1.0 / logits.len() as f32; logits.len()];
    }
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Numerically stable `ln(softmax(logits))`.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    if logits.is_empty() {
        return Vec::new();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        let v = -(logits.len() as f32).ln();
        return vec![v; logits.len()];
    }
    let lse = max + logits.iter().map(|&x| (x - max).exp()).sum::<f32>().ln();
    logits.iter().map(|&x| x - lse).collect()
}

/// Divides logits by `temperature` (> 0). A temperature of 1 is the identity.
///
/// # Panics
/// If `temperature` is not a positive finite number.
pub fn apply_temperature(logits: &[f32], temperature: f32) -> Vec<f32> {
    assert!(
        temperature.is_finite() && temperature > 0.0,
        "temperature must be a positive finite number, got {temperature}"
    );
    logits.iter().map(|&x| x / temperature).collect()
}

/// Ranking used by [`top_k`] and [`argmax`]: higher logit first, NaN after
/// every number, and equal logits by ascending index, so the order is total
/// and does not depend on the sorting algorithm.
fn rank(a: (usize, f32), b: (usize, f32)) -> Ordering {
    let by_value = match (a.1.is_nan(), b.1.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => b.1.partial_cmp(&a.1).expect("non-NaN values compare"),
    };
    by_value.then(a.0.cmp(&b.0))
}

/// The `k` highest logits as `(index, logit)` pairs, best first.
///
/// Ties are broken by the lower index and NaN ranks below every number, so the
/// result is deterministic. `k` larger than the input returns everything.
pub fn top_k(logits: &[f32], k: usize) -> Vec<(usize, f32)> {
    let k = k.min(logits.len());
    if k == 0 {
        return Vec::new();
    }
    let mut pairs: Vec<(usize, f32)> = logits.iter().copied().enumerate().collect();
    if k < pairs.len() {
        // Partition first so large vocabularies cost O(n + k log k).
        pairs.select_nth_unstable_by(k - 1, |&a, &b| rank(a, b));
        pairs.truncate(k);
    }
    pairs.sort_unstable_by(|&a, &b| rank(a, b));
    pairs
}

/// Index of the highest logit (the lowest such index on ties), or `None` for
/// an empty input.
pub fn argmax(logits: &[f32]) -> Option<usize> {
    logits
        .iter()
        .copied()
        .enumerate()
        .min_by(|&a, &b| rank(a, b))
        .map(|(i, _)| i)
}

/// Error from [`greedy_decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The step function returned no logits at the given position.
    EmptyLogits { position: usize },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::EmptyLogits { position } => {
                write!(f, "model returned no logits at position {position}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Greedy decoding: repeatedly asks `step` for next-token logits given the
/// tokens so far and appends the [`argmax`], until `max_new_tokens` tokens were
/// generated or `eos` was produced (the `eos` token is included).
///
/// Returns only the generated tokens, not the prompt.
pub fn greedy_decode<F, E>(
    prompt: &[usize],
    max_new_tokens: usize,
    eos: Option<usize>,
    mut step: F,
) -> Result<Vec<usize>, E>
where
    F: FnMut(&[usize]) -> Result<Vec<f32>, E>,
    E: From<DecodeError>,
{
    let mut tokens = prompt.to_vec();
    let mut generated = Vec::with_capacity(max_new_tokens);
    for _ in 0..max_new_tokens {
        let logits = step(&tokens)?;
        let next = argmax(&logits).ok_or(DecodeError::EmptyLogits {
            position: tokens.len(),
        })?;
        tokens.push(next);
        generated.push(next);
        if Some(next) == eos {
            break;
        }
    }
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    #[test]
    fn device_matches_features() {
        let want = if cfg!(feature = "cuda") {
            "cuda"
        } else if cfg!(feature = "metal") {
            "metal"
        } else {
            "cpu"
        };
        assert_eq!(device(), want);
    }

    #[test]
    fn softmax_known_values() {
        // e^0, e^1, e^2 normalised.
        let (a, b, c) = (1.0f32, 1.0f32.exp(), 2.0f32.exp());
        let s = a + b + c;
        assert!(close(&softmax(&[0.0, 1.0, 2.0]), &[a / s, b / s, c / s]));
    }

    #[test]
    fn softmax_is_shift_invariant_and_stable() {
        let p = softmax(&[1000.0, 1001.0, 1002.0]);
        assert!(p.iter().all(|x| x.is_finite()));
        assert!(close(&p, &softmax(&[0.0, 1.0, 2.0])));
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn softmax_edge_cases() {
        assert!(softmax(&[]).is_empty());
        assert!(close(&softmax(&[f32::NEG_INFINITY; 4]), &[0.25; 4]));
        assert!(close(&softmax(&[0.0, f32::NEG_INFINITY]), &[1.0, 0.0]));
    }

    #[test]
    fn log_softmax_matches_ln_softmax() {
        let x = [0.5, -1.0, 3.0, 2.0];
        let want: Vec<f32> = softmax(&x).iter().map(|p| p.ln()).collect();
        assert!(close(&log_softmax(&x), &want));
        assert!(log_softmax(&[]).is_empty());
    }

    #[test]
    fn temperature_scales() {
        assert_eq!(apply_temperature(&[2.0, -4.0], 2.0), vec![1.0, -2.0]);
    }

    #[test]
    #[should_panic(expected = "temperature")]
    fn temperature_rejects_zero() {
        apply_temperature(&[1.0], 0.0);
    }

    #[test]
    fn top_k_orders_best_first() {
        assert_eq!(top_k(&[1.0, 3.0, 2.0], 2), vec![(1, 3.0), (2, 2.0)]);
        assert_eq!(top_k(&[1.0, 3.0, 2.0], 0), vec![]);
        assert_eq!(
            top_k(&[1.0, 3.0, 2.0], 10),
            vec![(1, 3.0), (2, 2.0), (0, 1.0)]
        );
        assert_eq!(top_k(&[], 3), vec![]);
    }

    #[test]
    fn top_k_ties_are_stable() {
        let logits = [5.0, 7.0, 5.0, 7.0, 5.0, 1.0];
        assert_eq!(top_k(&logits, 3), vec![(1, 7.0), (3, 7.0), (0, 5.0)]);
        assert_eq!(
            top_k(&logits, 5),
            vec![(1, 7.0), (3, 7.0), (0, 5.0), (2, 5.0), (4, 5.0)]
        );
    }

    #[test]
    fn top_k_ranks_nan_last() {
        let got = top_k(&[f32::NAN, 1.0, f32::NEG_INFINITY, 2.0], 3);
        assert_eq!(got, vec![(3, 2.0), (1, 1.0), (2, f32::NEG_INFINITY)]);
    }

    #[test]
    fn top_k_agrees_with_full_sort_on_larger_input() {
        // Deterministic pseudo-random logits with many duplicates.
        let logits: Vec<f32> = (0..1000u32).map(|i| ((i * 7919) % 97) as f32).collect();
        let mut all: Vec<(usize, f32)> = logits.iter().copied().enumerate().collect();
        all.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
        for k in [1, 2, 17, 500, 999, 1000] {
            assert_eq!(top_k(&logits, k), all[..k].to_vec(), "k = {k}");
        }
    }

    #[test]
    fn argmax_picks_first_maximum() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN, -1.0]), Some(1));
        assert_eq!(argmax(&[]), None);
    }

    #[test]
    fn greedy_decode_stops_at_eos_or_limit() {
        // A toy "model" over a vocabulary of 4 that predicts (last + 1) % 4.
        let step = |tokens: &[usize]| -> Result<Vec<f32>, DecodeError> {
            let next = (tokens.last().copied().unwrap_or(0) + 1) % 4;
            let mut logits = vec![0.0; 4];
            logits[next] = 1.0;
            Ok(logits)
        };
        assert_eq!(greedy_decode(&[0], 10, Some(3), step), Ok(vec![1, 2, 3]));
        assert_eq!(greedy_decode(&[0], 2, Some(3), step), Ok(vec![1, 2]));
        assert_eq!(greedy_decode(&[2], 5, None, step), Ok(vec![3, 0, 1, 2, 3]));
        assert_eq!(greedy_decode(&[0], 0, None, step), Ok(vec![]));
    }

    #[test]
    fn greedy_decode_reports_empty_logits() {
        let step = |_: &[usize]| -> Result<Vec<f32>, DecodeError> { Ok(vec![]) };
        assert_eq!(
            greedy_decode(&[7, 8], 3, None, step),
            Err(DecodeError::EmptyLogits { position: 2 })
        );
    }
}
