//! Python bindings for `serving-core`, importable as `serving_runtime._native`.
//!
//! The Python package `serving_runtime` (in `python/`) re-exports these.

use pyo3::prelude::*;

/// `serving_runtime._native`: the compiled part of `serving_runtime`.
#[pymodule]
mod _native {
    use pyo3::exceptions::PyValueError;
    use pyo3::prelude::*;
    use serving_core::DecodeError;

    #[allow(non_upper_case_globals)]
    #[pymodule_export]
    const __version__: &str = env!("CARGO_PKG_VERSION");

    /// The accelerator backend this build was compiled for: "cpu", "cuda" or "metal".
    #[pyfunction]
    fn device() -> &'static str {
        serving_core::device()
    }

    /// Numerically stable softmax of a sequence of logits.
    #[pyfunction]
    fn softmax(logits: Vec<f32>) -> Vec<f32> {
        serving_core::softmax(&logits)
    }

    /// Numerically stable log-softmax of a sequence of logits.
    #[pyfunction]
    fn log_softmax(logits: Vec<f32>) -> Vec<f32> {
        serving_core::log_softmax(&logits)
    }

    /// The k highest logits as (index, logit) pairs, best first; ties by lower index.
    #[pyfunction]
    fn top_k(logits: Vec<f32>, k: usize) -> Vec<(usize, f32)> {
        serving_core::top_k(&logits, k)
    }

    /// Index of the highest logit (first on ties), or None for an empty sequence.
    #[pyfunction]
    fn argmax(logits: Vec<f32>) -> Option<usize> {
        serving_core::argmax(&logits)
    }

    /// Logits divided by a positive temperature.
    #[pyfunction]
    fn apply_temperature(logits: Vec<f32>, temperature: f32) -> PyResult<Vec<f32>> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(PyValueError::new_err(format!(
                "temperature must be a positive finite number, got {temperature}"
            )));
        }
        Ok(serving_core::apply_temperature(&logits, temperature))
    }

    /// Error of one decoding step: either raised by the Python callback or by the decoder.
    enum StepError {
        Py(PyErr),
        Decode(DecodeError),
    }

    impl From<DecodeError> for StepError {
        fn from(e: DecodeError) -> Self {
            StepError::Decode(e)
        }
    }

    impl From<StepError> for PyErr {
        fn from(e: StepError) -> Self {
            match e {
                StepError::Py(e) => e,
                StepError::Decode(e) => PyValueError::new_err(e.to_string()),
            }
        }
    }

    /// Greedy decoding driven by a Python callable.
    ///
    /// `step(tokens: list[int]) -> list[float]` returns next-token logits for the
    /// tokens so far. Returns the generated tokens (eos included when produced).
    #[pyfunction]
    #[pyo3(signature = (step, prompt, max_new_tokens, eos=None))]
    fn greedy_decode(
        step: &Bound<'_, PyAny>,
        prompt: Vec<usize>,
        max_new_tokens: usize,
        eos: Option<usize>,
    ) -> PyResult<Vec<usize>> {
        let generated = serving_core::greedy_decode(&prompt, max_new_tokens, eos, |tokens| {
            step.call1((tokens.to_vec(),))
                .and_then(|logits| logits.extract::<Vec<f32>>())
                .map_err(StepError::Py)
        })?;
        Ok(generated)
    }
}
