//! `OnnxClassifier`: an ONNX file run with tract behind gc-core's `Classifier`. Owns loading (file,
//! spec resolution, graph checks), the cache of optimised plans (one per batch size, for the
//! scores' output alone or for every output) and turning the chosen output slice into
//! probabilities. Preprocessing lives in `preprocess`, specs in `spec`.

use crate::presets::{preset, preset_for_file, presets};
use crate::read::{as_f32, check_file, read_model};
use crate::spec::{OutputTensor, PreprocessSpec, SPEC_SCHEMA, Scores};
use gc_core::{ClassLabel, Classifier, ModelError, RgbView, map_labels, softmax};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tracing::{debug, info};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

/// Images per tract run when the spec does not say. Measured on the three preset models
/// (single thread, release): one image a run is 2-3x faster per image than runs of 4 to 32 (dlib
/// 820 vs 350 images/s, InsightFace 235 vs 75-90; again on an AVX-512 machine, 2 threads, through
/// the bench: InsightFace 703 vs 176 at runs of 4), so images run one by one, in parallel.
pub const DEFAULT_BATCH: usize = 1;

type Plan = Arc<TypedRunnableModel>;

/// Where a classifier's spec came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecSource {
    /// A built-in preset, asked for by name or recognised by the file name.
    Preset(&'static str),
    /// A `<stem>.preprocess.json` file beside the model.
    File(PathBuf),
    /// Handed to `OnnxClassifier::with_spec` by the caller.
    Given,
}

/// One output tensor of a raw run: its name in the graph, shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct RawOutput {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A face classifier read from an ONNX file; see the crate docs for how its spec is found.
pub struct OnnxClassifier {
    name: String,
    path: String,
    spec: PreprocessSpec,
    source: SpecSource,
    labels: Vec<ClassLabel>,
    /// The graph as read, input shape left open: each plan pins its own batch size, which lets
    /// tract optimise every shape fully.
    model: InferenceModel,
    output: usize,
    output_names: Vec<String>,
    batch: usize,
    plans: Mutex<HashMap<(usize, Outputs), Plan>>,
}

/// Which of the graph's outputs a plan computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outputs {
    /// The one the scores are read from, so that tract leaves out what only the others need
    /// (yu4u's age head: a 131072x101 matrix product, 8% of its run time on one thread).
    Scores,
    /// Every output, in the graph's order, for `run_tensor`.
    All,
}

impl std::fmt::Debug for OnnxClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxClassifier")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("source", &self.source)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl OnnxClassifier {
    /// Loads `path` with the spec of the preset named `preset_name`, or else the spec file beside
    /// it (`model.onnx` -> `model.preprocess.json`), or else the preset its file name contains.
    pub fn from_path(
        path: impl AsRef<Path>,
        preset_name: Option<&str>,
    ) -> Result<Self, ModelError> {
        let path = path.as_ref();
        check_file(path)?;
        let (spec, source) = match resolve_spec(path, preset_name) {
            Ok(found) => found,
            Err(e) => {
                // A file that is no ONNX model is named as such, not asked for a spec.
                read_model(path)?;
                return Err(e);
            }
        };
        Self::load(path, spec, source)
    }

    /// Loads `path` with a spec built by the caller.
    pub fn with_spec(path: impl AsRef<Path>, spec: PreprocessSpec) -> Result<Self, ModelError> {
        let path = path.as_ref();
        check_file(path)?;
        Self::load(path, spec, SpecSource::Given)
    }

    /// Images per tract run from now on (at least 1); see [`DEFAULT_BATCH`].
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    pub fn spec(&self) -> &PreprocessSpec {
        &self.spec
    }

    pub fn spec_source(&self) -> &SpecSource {
        &self.source
    }

    /// The model file, as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The graph's output names, in output order.
    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// The name of the output the gender scores are read from.
    pub fn output_name(&self) -> &str {
        &self.output_names[self.output]
    }

    /// Runs the graph on an input tensor built by the caller: `batch` images of `spec().input_shape`
    /// in `data`. Returns every output. For parity tests and debugging; `classify` is the normal way.
    pub fn run_tensor(&self, batch: usize, data: &[f32]) -> Result<Vec<RawOutput>, ModelError> {
        let outputs = self.run(batch, data, Outputs::All)?;
        outputs
            .iter()
            .zip(&self.output_names)
            .map(|(t, name)| {
                let values = as_f32(t, &self.path)?;
                Ok(RawOutput {
                    name: name.clone(),
                    shape: t.shape().to_vec(),
                    data: values,
                })
            })
            .collect()
    }

    fn load(path: &Path, spec: PreprocessSpec, source: SpecSource) -> Result<Self, ModelError> {
        let shown = path.display().to_string();
        let format = |reason: String| ModelError::Format {
            path: shown.clone(),
            reason,
        };
        spec.validate(&shown)?;
        let labels = map_labels(&spec.labels, &shown)?;
        let started = Instant::now();
        let model = read_model(path)?;
        check_input(&model, &spec).map_err(format)?;
        let outlets = model
            .output_outlets()
            .map_err(|e| format(format!("{e:#}")))?;
        let output_names: Vec<String> = outlets
            .iter()
            .enumerate()
            .map(|(i, o)| {
                model
                    .outlet_label(*o)
                    .map_or_else(|| format!("output{i}"), str::to_string)
            })
            .collect();
        let output = match &spec.output.tensor {
            OutputTensor::Index(i) if *i < output_names.len() => *i,
            OutputTensor::Index(i) => {
                return Err(format(format!(
                    "the spec reads output {i} but the model has {} outputs: {output_names:?}",
                    output_names.len()
                )));
            }
            OutputTensor::Name(n) => output_names.iter().position(|o| o == n).ok_or_else(|| {
                format(format!(
                    "the spec reads output {n:?} but the model's outputs are {output_names:?}"
                ))
            })?,
        };
        let name = spec.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map_or_else(|| shown.clone(), |s| s.to_string_lossy().into_owned())
        });
        let batch = spec.batch.unwrap_or(DEFAULT_BATCH);
        let this = OnnxClassifier {
            name,
            path: shown.clone(),
            spec,
            source,
            labels,
            model,
            output,
            output_names,
            batch,
            plans: Mutex::new(HashMap::new()),
        };
        // Building the one-image plan proves that tract can run the graph and gives the output
        // shape to check the spec's slice against, before any image is read.
        let plan = this.plan(1, Outputs::Scores)?;
        let fact = plan
            .model()
            .output_fact(0)
            .map_err(|e| format(format!("{e:#}")))?;
        if let Some(shape) = fact.shape.as_concrete() {
            this.check_output_shape(shape, 1).map_err(&format)?;
        }
        info!(
            model = %this.path,
            name = %this.name,
            spec = ?this.source,
            input = ?this.spec.input_shape(1),
            output = %this.output_names[this.output],
            ms = started.elapsed().as_millis() as u64,
            "loaded ONNX classifier"
        );
        Ok(this)
    }

    /// The optimised plan for `n` images and `outputs`, built on first use.
    fn plan(&self, n: usize, outputs: Outputs) -> Result<Plan, ModelError> {
        // Plans are built under the lock: each is built once, and a poisoned lock only means a
        // panic elsewhere while the map was consistent.
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(plan) = plans.get(&(n, outputs)) {
            return Ok(plan.clone());
        }
        let shape = self.spec.input_shape(n);
        let started = Instant::now();
        let mut model = self.model.clone();
        if outputs == Outputs::Scores {
            let scores = model.output_outlets().map(|o| o[self.output]);
            if let Err(e) = scores.and_then(|o| model.select_output_outlets(&[o])) {
                return Err(ModelError::Format {
                    path: self.path.clone(),
                    reason: format!("cannot select output {}: {e:#}", self.output_name()),
                });
            }
        }
        let plan = model
            .with_input_fact(0, f32::fact(shape).into())
            .and_then(|m| m.into_typed())
            .and_then(|m| {
                let (m, [pointwise, plain, depthwise]) = use_our_convolutions(m)?;
                debug!(model = %self.path, pointwise, plain, depthwise, "convolutions run by our operators");
                Ok(m)
            })
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| ModelError::Format {
                path: self.path.clone(),
                reason: format!("tract cannot prepare the graph for input {shape:?}: {e:#}"),
            })?;
        debug!(model = %self.path, batch = n, ?outputs, ms = started.elapsed().as_millis() as u64, "built tract plan");
        plans.insert((n, outputs), plan.clone());
        Ok(plan)
    }

    fn run(&self, n: usize, data: &[f32], outputs: Outputs) -> Result<TVec<TValue>, ModelError> {
        let want = n * self.spec.image_len();
        if n == 0 || data.len() != want {
            return Err(ModelError::Input(format!(
                "{}: {n} images of {:?} need {want} values, got {}",
                self.path,
                self.spec.input_shape(1),
                data.len()
            )));
        }
        let plan = self.plan(n, outputs)?;
        let run_err = |e: TractError| ModelError::Run(format!("{}: {e:#}", self.path));
        let input = Tensor::from_shape(&self.spec.input_shape(n), data).map_err(run_err)?;
        plan.run(tvec![input.into_tvalue()]).map_err(run_err)
    }

    /// Checks that an output of this shape, for `n` images, holds the spec's slice.
    fn check_output_shape(&self, shape: &[usize], n: usize) -> Result<(), String> {
        let name = &self.output_names[self.output];
        if shape.first() != Some(&n) {
            return Err(format!(
                "output {name:?} has shape {shape:?} for {n} image(s): expected the batch first"
            ));
        }
        let per_image: usize = shape[1..].iter().product();
        let start = self.spec.output.offset;
        // Saturating: an offset near usize::MAX wrapped past this check, then panicked slicing.
        let end = start.saturating_add(self.labels.len());
        if end > per_image {
            return Err(format!(
                "output {name:?} has {per_image} values per image (shape {shape:?}) but the spec \
                 reads {start}..{end}"
            ));
        }
        Ok(())
    }

    /// The probability rows of `n` images from the selected output.
    fn probabilities(&self, output: &Tensor, n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        self.check_output_shape(output.shape(), n)
            .map_err(|reason| ModelError::Run(format!("{}: {reason}", self.path)))?;
        let values = as_f32(output, &self.path)?;
        let per_image = values.len() / n;
        let k = self.labels.len();
        values
            .chunks_exact(per_image)
            .enumerate()
            .map(|(i, row)| {
                let scores = &row[self.spec.output.offset..self.spec.output.offset + k];
                let p = match self.spec.output.scores {
                    Scores::Logits => softmax(scores),
                    Scores::Probabilities => renormalise(scores),
                };
                if p.len() != k || p.iter().any(|v| !v.is_finite()) {
                    // The caller names the image; a position is only news within a run of several.
                    let which = if n > 1 {
                        format!("image {} of the run: ", i + 1)
                    } else {
                        String::new()
                    };
                    return Err(ModelError::Run(format!(
                        "{}: {which}scores {scores:?} do not make probabilities{}",
                        self.path,
                        if self.spec.output.scores == Scores::Probabilities {
                            " (are they logits? say \"scores\": \"logits\" in the spec)"
                        } else {
                            ""
                        }
                    )));
                }
                Ok(p)
            })
            .collect()
    }
}

impl Classifier for OnnxClassifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn labels(&self) -> &[ClassLabel] {
        &self.labels
    }

    fn classify(&self, images: &[RgbView<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let data = self.spec.preprocess(images)?;
        let len = self.spec.image_len();
        let rows: Vec<Vec<Vec<f32>>> = batches(images.len(), self.batch)
            .into_par_iter()
            .map(|(start, n)| {
                let outputs =
                    self.run(n, &data[start * len..(start + n) * len], Outputs::Scores)?;
                self.probabilities(&outputs[0], n)
            })
            .collect::<Result<_, _>>()?;
        Ok(rows.into_iter().flatten().collect())
    }

    fn preferred_batch(&self) -> usize {
        // Runs go in parallel: a call should carry several per thread to keep every core busy.
        self.batch.max(8) * rayon::current_num_threads()
    }
}

/// Splits `n` images into runs of `batch`, the rest into runs of falling powers of two (13 with
/// batch 8: 8, 4, 1), so that at most log2(batch) + 1 plans are ever built.
fn batches(n: usize, batch: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while n - start >= batch {
        out.push((start, batch));
        start += batch;
    }
    let mut size = batch.next_power_of_two();
    while start < n {
        while size > n - start {
            size /= 2;
        }
        out.push((start, size));
        start += size;
    }
    out
}

fn renormalise(p: &[f32]) -> Vec<f32> {
    let sum: f32 = p.iter().sum();
    // Tiny negatives are float noise of a softmax; clearly negative ones mean logits.
    if !sum.is_finite() || sum <= 0.0 || p.iter().any(|v| *v < -1e-6) {
        return vec![f32::NAN; p.len()];
    }
    p.iter().map(|v| v.max(0.0) / sum).collect()
}

fn preset_names() -> String {
    presets()
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The spec beside the model first (the model's own, written for it), then the preset asked for,
/// then the preset its file name is recognised by. A preset asked for used to win over the
/// spec beside a model, so `compare --preset` could not put such a model next to one that
/// needed the preset.
fn resolve_spec(
    path: &Path,
    preset_name: Option<&str>,
) -> Result<(PreprocessSpec, SpecSource), ModelError> {
    // An unknown name is refused even where a spec beside the model would be used.
    let asked = preset_name
        .map(|name| {
            presets()
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| preset(p.name).map(|s| (s, p.name)))
                .ok_or_else(|| ModelError::Format {
                    path: path.display().to_string(),
                    reason: format!(
                        "unknown preset {name:?}; the presets are {}",
                        preset_names()
                    ),
                })
        })
        .transpose()?;
    let sidecar = PreprocessSpec::sidecar_path(path);
    if sidecar.exists() {
        let spec = PreprocessSpec::from_json_file(&sidecar)?;
        if let Some((_, name)) = asked {
            tracing::warn!(
                "{}: --preset {name} not used: the spec beside the model is ({})",
                path.display(),
                sidecar.display()
            );
        }
        return Ok((spec, SpecSource::File(sidecar)));
    }
    if let Some((spec, name)) = asked {
        return Ok((spec, SpecSource::Preset(name)));
    }
    if let Some(name) = preset_for_file(path)
        && let Some(spec) = preset(name)
    {
        return Ok((spec, SpecSource::Preset(name)));
    }
    Err(ModelError::Format {
        path: path.display().to_string(),
        reason: format!(
            "no preprocessing spec: write {} beside the model, or choose a preset ({}). \
             The spec says how to feed the model and read its output, like this:\n{SPEC_SCHEMA}",
            sidecar.display(),
            preset_names()
        ),
    })
}

/// What the graph declares about its input, checked against the spec where it is known.
fn check_input(model: &InferenceModel, spec: &PreprocessSpec) -> Result<(), String> {
    let n = model.input_outlets().map_err(|e| format!("{e:#}"))?.len();
    if n != 1 {
        return Err(format!(
            "the model has {n} inputs; an image classifier takes exactly one"
        ));
    }
    let fact = model.input_fact(0).map_err(|e| format!("{e:#}"))?;
    if let Some(dt) = fact.datum_type.concretize()
        && dt != f32::datum_type()
    {
        return Err(format!(
            "the input is {dt:?}; only f32 inputs are supported"
        ));
    }
    if let Some(rank) = fact.shape.rank().concretize()
        && rank != 4
    {
        return Err(format!(
            "the input has rank {rank} ({}); an image model takes 4 (N,C,H,W or N,H,W,C)",
            fact.format_dt_shape()
        ));
    }
    let want = spec.input_shape(1);
    for (i, dim) in fact.shape.dims().enumerate().skip(1) {
        if let Some(v) = dim.concretize().and_then(|d| d.to_i64().ok())
            && v != want[i] as i64
        {
            return Err(format!(
                "the input is {} but the spec describes {:?} ({:?})",
                fact.format_dt_shape(),
                want,
                spec.input.layout
            ));
        }
    }
    Ok(())
}

/// `model` (typed, not yet decluttered) decluttered, with its convolutions run by our operators
/// where they can: 1x1 ones of stride 1 without padding (`pointwise.rs`, swapped before the
/// declutter, which would make them matrix products of tract's), plain ones (`conv.rs`, the
/// batch norm after them folded in by tract's declutter) and depthwise ones (`depthwise.rs`);
/// the batch norm and ReLU after a 1x1 or depthwise one are folded into it (`fold.rs`). Returns
/// how many of each (1x1, plain, depthwise) were swapped.
pub fn use_our_convolutions(mut model: TypedModel) -> TractResult<(TypedModel, [usize; 3])> {
    let pointwise = crate::pointwise::use_pointwise_convolutions(&mut model)?;
    let mut model = model.into_decluttered()?;
    let plain = crate::conv::use_gemm_convolutions(&mut model)?;
    let depthwise = crate::depthwise::use_depthwise_convolutions(&mut model)?;
    Ok((model, [pointwise, plain, depthwise]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_everything_with_few_sizes() {
        assert_eq!(batches(0, 8), vec![]);
        assert_eq!(batches(13, 8), vec![(0, 8), (8, 4), (12, 1)]);
        assert_eq!(batches(16, 8), vec![(0, 8), (8, 8)]);
        assert_eq!(batches(7, 6), vec![(0, 6), (6, 1)]);
        assert_eq!(batches(5, 6), vec![(0, 4), (4, 1)]);
        for batch in 1..20 {
            for n in 0..70 {
                let b = batches(n, batch);
                assert_eq!(b.iter().map(|x| x.1).sum::<usize>(), n);
                assert!(b.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
                assert!(b.iter().all(|x| x.1 == batch || x.1.is_power_of_two()));
            }
        }
    }

    /// The plans `classify` runs leave out what only the other outputs need: yu4u's age head
    /// (a [131072, 101] matrix product and its softmax) is gone from them, kept for
    /// `run_tensor`, and the gender scores are the same either way.
    #[test]
    fn the_scores_plan_leaves_out_the_other_outputs() {
        use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;
        let path = gc_testdata::shared("models/gender/yu4u-wrn16-8-agegender-64.onnx");
        let clf = OnnxClassifier::from_path(&path, None).unwrap();
        assert_eq!(clf.output_names(), ["gender", "age"]);
        let [scores, all] = [Outputs::Scores, Outputs::All].map(|o| clf.plan(2, o).unwrap());
        let products = |plan: &Plan| {
            let nodes = &plan.model().nodes;
            nodes.iter().filter(|n| n.op_is::<OptMatMul>()).count()
        };
        assert_eq!(scores.model().outputs.len(), 1);
        assert_eq!(all.model().outputs.len(), 2);
        assert_eq!((products(&scores), products(&all)), (1, 2));
        assert!(scores.model().nodes.len() < all.model().nodes.len());

        let data: Vec<f32> = (0..clf.spec().image_len() * 2)
            .map(|i| (i * 37 % 256) as f32)
            .collect();
        let every = clf.run(2, &data, Outputs::All).unwrap();
        let only = clf.run(2, &data, Outputs::Scores).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].shape(), every[0].shape());
        let (a, b) = (
            as_f32(&only[0], "yu4u").unwrap(),
            as_f32(&every[0], "yu4u").unwrap(),
        );
        assert!(
            a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6),
            "{a:?} vs {b:?}"
        );
        assert!(
            a.iter().any(|x| *x > 0.0 && *x < 1.0),
            "probabilities, not a constant: {a:?}"
        );
    }

    #[test]
    fn renormalise_refuses_logits() {
        assert_eq!(renormalise(&[1.0, 3.0]), vec![0.25, 0.75]);
        assert!(renormalise(&[-2.0, 3.0])[0].is_nan());
        assert!(renormalise(&[0.0, 0.0])[0].is_nan());
    }
}
