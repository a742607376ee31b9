//! `Detector`: an ONNX face detector run with tract. Owns loading (file and graph checks, output
//! lookup by name), the tract plans, thresholds, and turning decoded candidates into [`Face`]s in
//! pixels of the image. Each model family's preprocessing and decoding live in its own module.

use crate::nms::{Candidate, nms};
use crate::{ultraface, yunet};
use gc_core::{ModelError, RgbView};
use gc_onnx::read::{as_f32, check_file, read_model};
use gc_pipeline::transform::Size;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tracing::{debug, info};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

/// The IoU above which the weaker of two overlapping boxes is dropped: 0.3 in both upstream
/// references (UltraFace's `detect_imgs_onnx.py`, OpenCV's YuNet demo).
pub const DEFAULT_NMS_THRESHOLD: f32 = 0.3;

/// A YuNet graph with a free input size gets one plan per padded size; this many are kept, so a
/// folder of photos from a few cameras reuses them, and one of mixed sizes does not hoard them.
const MAX_PLANS: usize = 8;

type Plan = Arc<TypedRunnableModel>;

/// One face found in an image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    /// x, y, width, height in pixels of the input image; always inside it, width and height > 0.
    pub bbox: [f32; 4],
    /// The detector's confidence, in (0, 1].
    pub score: f32,
    /// Five points in pixels of the input image, in OpenCV's YuNet order: right eye, left eye, nose
    /// tip, right and left mouth corner, where right is the person's right (the image's left for a
    /// frontal face). Not clipped: a face cut by the border may have points outside the image.
    /// YuNet only; `None` from UltraFace.
    pub landmarks: Option<[[f32; 2]; 5]>,
}

/// The detector families we decode, each with its published file in `models/detect/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetectorKind {
    /// UltraFace version-RFB, 320x240 input (`ultraface-rfb-320.onnx`): the more accurate one.
    UltraFaceRfb320,
    /// UltraFace version-slim, 320x240 input (`ultraface-slim-320.onnx`): faster, less accurate.
    UltraFaceSlim320,
    /// YuNet with a free input size (`yunet-n-dynamic.onnx`; the fixed `yunet-n-320.onnx` works
    /// too): finds smaller faces, and gives landmarks.
    YuNet,
}

impl DetectorKind {
    pub const ALL: [DetectorKind; 3] = [
        DetectorKind::UltraFaceRfb320,
        DetectorKind::UltraFaceSlim320,
        DetectorKind::YuNet,
    ];

    /// The name it is parsed from.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::UltraFaceRfb320 => "ultraface",
            DetectorKind::UltraFaceSlim320 => "ultraface-slim",
            DetectorKind::YuNet => "yunet",
        }
    }

    /// The published model's file name.
    pub fn file_name(self) -> &'static str {
        match self {
            DetectorKind::UltraFaceRfb320 => "ultraface-rfb-320.onnx",
            DetectorKind::UltraFaceSlim320 => "ultraface-slim-320.onnx",
            DetectorKind::YuNet => "yunet-n-dynamic.onnx",
        }
    }

    /// The lowest score kept unless the caller sets another.
    ///
    /// UltraFace: 0.7, its reference's `--threshold`. YuNet: 0.6, below OpenCV's 0.9, which misses 2
    /// of the 6 faces of `photos/group-6-people.jpg`. From 0.6 to 0.8 YuNet finds the same faces on
    /// the six sample photos (0.5 one more in the crowd), every value from 0.4 to 0.7 finds exactly
    /// one face on each of the 500 UTK-500 crops, and random noise starts making faces at 0.3.
    pub fn default_score_threshold(self) -> f32 {
        match self {
            DetectorKind::UltraFaceRfb320 | DetectorKind::UltraFaceSlim320 => 0.7,
            DetectorKind::YuNet => 0.6,
        }
    }

    /// The [`face_crop`](crate::face_crop) margin that frames a face found by this detector as a
    /// UTKFace crop is framed.
    ///
    /// UTKFace crops are tight: on the 200x200 `crop_part1` images and on the aligned set (enlarged
    /// to 200), each detector's box covers most of the crop. The crop side over the box's longer
    /// side has a median of 1.04 for YuNet (interquartile range 1.01-1.08), 1.12-1.14 for UltraFace
    /// RFB (1.00-1.25) and 1.08-1.22 for UltraFace slim (0.98-1.36); the margins below give those
    /// sides. The crop centre lies 2-6% of the box height below the box centre; that shift is left
    /// out, so that the crop always holds the whole box.
    pub fn utkface_margin(self) -> f32 {
        match self {
            DetectorKind::UltraFaceRfb320 => 0.065,
            DetectorKind::UltraFaceSlim320 => 0.075,
            DetectorKind::YuNet => 0.02,
        }
    }

    fn is_ultraface(self) -> bool {
        matches!(
            self,
            DetectorKind::UltraFaceRfb320 | DetectorKind::UltraFaceSlim320
        )
    }

    fn output_names(self) -> &'static [&'static str] {
        if self.is_ultraface() {
            &ultraface::OUTPUTS
        } else {
            &yunet::OUTPUTS
        }
    }
}

impl fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A detector name that is none of [`DetectorKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownDetector(pub String);

impl fmt::Display for UnknownDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = DetectorKind::ALL.iter().map(|k| k.name()).collect();
        write!(
            f,
            "unknown face detector {:?}; expected one of: {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownDetector {}

impl FromStr for DetectorKind {
    type Err = UnknownDetector;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DetectorKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownDetector(s.to_string()))
    }
}

/// How the graph's input size is chosen.
enum Input {
    /// The graph declares its size (UltraFace, `yunet-n-320.onnx`): one plan, built at load.
    Fixed { size: Size, plan: Plan },
    /// YuNet with a free size: a plan per padded image size, built on first use.
    Free {
        model: Box<InferenceModel>,
        plans: Mutex<HashMap<Size, Plan>>,
    },
}

/// A face detector read from an ONNX file.
pub struct Detector {
    kind: DetectorKind,
    path: String,
    input: Input,
    /// Where each of `kind.output_names()` is among the graph's outputs.
    outputs: Vec<usize>,
    score_threshold: f32,
    nms_threshold: f32,
}

impl fmt::Debug for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detector")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("score_threshold", &self.score_threshold)
            .field("nms_threshold", &self.nms_threshold)
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// Loads the detector of `kind` from `path`, and checks that tract can run it and that its
    /// outputs are the ones `kind` decodes.
    pub fn from_path(path: &Path, kind: DetectorKind) -> Result<Detector, ModelError> {
        let shown = path.display().to_string();
        let format = |reason: String| ModelError::Format {
            path: shown.clone(),
            reason,
        };
        check_file(path)?;
        let started = Instant::now();
        let mut model = read_model(path)?;
        let outputs = find_outputs(&model, kind).map_err(&format)?;
        let declared = input_size(&model).map_err(&format)?;
        // The declared output shapes name symbols ("batch", "dim") that only get in the way of
        // tract's own inference once the input is fixed.
        for i in 0..model.outputs.len() {
            model
                .set_output_fact(i, InferenceFact::default())
                .map_err(|e| format(format!("{e:#}")))?;
        }
        let input = match (declared, kind.is_ultraface()) {
            (Some(size), _) => Input::Fixed {
                size,
                plan: build_plan(&model, size, &shown)?,
            },
            (None, true) => Input::Fixed {
                size: ultraface::DEFAULT_INPUT,
                plan: build_plan(&model, ultraface::DEFAULT_INPUT, &shown)?,
            },
            (None, false) => {
                // A plan for a common size proves now, not at the first photo, that tract can run
                // the graph.
                let size = yunet::Layout::new(640, 480, None).padded;
                let plan = build_plan(&model, size, &shown)?;
                Input::Free {
                    model: Box::new(model),
                    plans: Mutex::new(HashMap::from([(size, plan)])),
                }
            }
        };
        let detector = Detector {
            kind,
            path: shown,
            input,
            outputs,
            score_threshold: kind.default_score_threshold(),
            nms_threshold: DEFAULT_NMS_THRESHOLD,
        };
        info!(
            model = %detector.path,
            kind = %kind,
            ms = started.elapsed().as_millis() as u64,
            "loaded face detector"
        );
        Ok(detector)
    }

    /// Keeps faces scoring at least `threshold` (default: [`DetectorKind::default_score_threshold`]).
    pub fn with_score_threshold(mut self, threshold: f32) -> Result<Self, ModelError> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(ModelError::Input(format!(
                "face score threshold {threshold} is outside 0..=1"
            )));
        }
        self.score_threshold = threshold;
        Ok(self)
    }

    /// Drops a face whose box overlaps a better one's by more than this IoU (default:
    /// [`DEFAULT_NMS_THRESHOLD`]).
    pub fn with_nms_threshold(mut self, threshold: f32) -> Result<Self, ModelError> {
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(ModelError::Input(format!(
                "NMS IoU threshold {threshold} is outside 0 (excluded) to 1"
            )));
        }
        self.nms_threshold = threshold;
        Ok(self)
    }

    pub fn kind(&self) -> DetectorKind {
        self.kind
    }

    /// The model file, as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn score_threshold(&self) -> f32 {
        self.score_threshold
    }

    pub fn nms_threshold(&self) -> f32 {
        self.nms_threshold
    }

    /// The faces in `image`, left to right (by the box's left edge, then its top), which is the
    /// order a person reads a group photo in; sort by `score` for the most confident first.
    pub fn detect(&self, image: &RgbView<'_>) -> Result<Vec<Face>, ModelError> {
        let (width, height) = (image.width, image.height);
        if width == 0 || height == 0 || image.pixels.len() != width as usize * height as usize * 3 {
            return Err(ModelError::Input(format!(
                "{width}x{height} RGB image needs {} bytes, got {}",
                width as usize * height as usize * 3,
                image.pixels.len()
            )));
        }
        let started = Instant::now();
        let decoded = if self.kind.is_ultraface() {
            let size = match &self.input {
                Input::Fixed { size, .. } => *size,
                Input::Free { .. } => ultraface::DEFAULT_INPUT,
            };
            let data = ultraface::preprocess(image, size)?;
            let out = self.run(size, data)?;
            ultraface::decode(&out[0], &out[1], self.score_threshold, width, height)
        } else {
            let fixed = match &self.input {
                Input::Fixed { size, .. } => Some(*size),
                Input::Free { .. } => None,
            };
            let layout = yunet::Layout::new(width, height, fixed);
            let data = yunet::preprocess(image, layout)?;
            let out = self.run(layout.padded, data)?;
            yunet::decode(&out, self.score_threshold, layout, width, height)
        };
        let candidates =
            decoded.map_err(|reason| ModelError::Run(format!("{}: {reason}", self.path)))?;
        let n = candidates.len();
        let mut faces: Vec<Face> = nms(candidates, self.nms_threshold)
            .into_iter()
            .filter_map(|c| clip(c, width, height))
            .collect();
        faces.sort_by(|a, b| {
            a.bbox[0]
                .total_cmp(&b.bbox[0])
                .then(a.bbox[1].total_cmp(&b.bbox[1]))
        });
        debug!(
            model = %self.path,
            width,
            height,
            candidates = n,
            faces = faces.len(),
            ms = started.elapsed().as_millis() as u64,
            "detected faces"
        );
        Ok(faces)
    }

    /// Runs the graph on one [1, 3, h, w] image; returns the outputs `kind` decodes, in its order.
    fn run(&self, size: Size, data: Vec<f32>) -> Result<Vec<Vec<f32>>, ModelError> {
        let plan = self.plan(size)?;
        let run_err = |e: TractError| ModelError::Run(format!("{}: {e:#}", self.path));
        let shape = [1, 3, size.height as usize, size.width as usize];
        let input = Tensor::from_shape(&shape, &data).map_err(run_err)?;
        let outputs = plan.run(tvec![input.into_tvalue()]).map_err(run_err)?;
        self.outputs
            .iter()
            .map(|&i| as_f32(&outputs[i], &self.path))
            .collect()
    }

    fn plan(&self, size: Size) -> Result<Plan, ModelError> {
        match &self.input {
            Input::Fixed { plan, .. } => Ok(plan.clone()),
            Input::Free { model, plans } => {
                // Built under the lock, so each size is built once; a poisoned lock only means a
                // panic elsewhere while the map was consistent.
                let mut plans = plans.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(plan) = plans.get(&size) {
                    return Ok(plan.clone());
                }
                let plan = build_plan(model, size, &self.path)?;
                if plans.len() >= MAX_PLANS {
                    plans.clear();
                }
                plans.insert(size, plan.clone());
                Ok(plan)
            }
        }
    }
}

/// Clips a candidate's box to the image and turns it into a [`Face`]; `None` if nothing is left.
fn clip(c: Candidate, width: u32, height: u32) -> Option<Face> {
    let (w, h) = (width as f32, height as f32);
    let [x0, y0, x1, y1] = c.corners;
    let (x0, x1) = (x0.clamp(0.0, w), x1.clamp(0.0, w));
    let (y0, y1) = (y0.clamp(0.0, h), y1.clamp(0.0, h));
    // NaN fails both comparisons too.
    if !(x1 - x0 > 0.0 && y1 - y0 > 0.0) {
        return None;
    }
    Some(Face {
        bbox: [x0, y0, x1 - x0, y1 - y0],
        score: c.score,
        landmarks: c.landmarks,
    })
}

fn build_plan(model: &InferenceModel, size: Size, path: &str) -> Result<Plan, ModelError> {
    let started = Instant::now();
    let shape = [1, 3, size.height as usize, size.width as usize];
    let plan = model
        .clone()
        .with_input_fact(0, f32::fact(shape).into())
        .and_then(|m| m.into_typed())
        // The classifiers' convolution operators: YuNet is a MobileNet-like network (23
        // depthwise and 29 1x1 convolutions), and detecting was most of `sort`'s time on photos.
        .and_then(|m| gc_onnx::use_our_convolutions(m).map(|(m, _)| m))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| ModelError::Format {
            path: path.to_string(),
            reason: format!("tract cannot prepare the graph for input {shape:?}: {e:#}"),
        })?;
    debug!(model = %path, ?shape, ms = started.elapsed().as_millis() as u64, "built tract plan");
    Ok(plan)
}

/// The positions of the outputs `kind` decodes, found by name.
fn find_outputs(model: &InferenceModel, kind: DetectorKind) -> Result<Vec<usize>, String> {
    let names: Vec<String> = model
        .output_outlets()
        .map_err(|e| format!("{e:#}"))?
        .iter()
        .enumerate()
        .map(|(i, o)| {
            model
                .outlet_label(*o)
                .map_or_else(|| format!("output{i}"), str::to_string)
        })
        .collect();
    kind.output_names()
        .iter()
        .map(|want| {
            names.iter().position(|n| n == want).ok_or_else(|| {
                format!(
                    "a {kind} detector reads outputs {:?}, but this model's outputs are {names:?} \
                     (is it a {kind} model?)",
                    kind.output_names()
                )
            })
        })
        .collect()
}

/// The input's height and width when the graph fixes them; checks it is one [1, 3, H, W] f32 input.
fn input_size(model: &InferenceModel) -> Result<Option<Size>, String> {
    let n = model.input_outlets().map_err(|e| format!("{e:#}"))?.len();
    if n != 1 {
        return Err(format!(
            "the model has {n} inputs; a face detector takes exactly one image"
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
    let dims: Vec<Option<i64>> = fact
        .shape
        .dims()
        .map(|d| d.concretize().and_then(|d| d.to_i64().ok()))
        .collect();
    let bad = || {
        format!(
            "the input is {}; a face detector takes [1, 3, height, width]",
            fact.format_dt_shape()
        )
    };
    if fact.shape.rank().concretize().is_some_and(|r| r != 4)
        || dims.get(1).copied().flatten().is_some_and(|c| c != 3)
    {
        return Err(bad());
    }
    match (
        dims.get(2).copied().flatten(),
        dims.get(3).copied().flatten(),
    ) {
        (Some(h), Some(w)) => {
            let side = |v: i64| u32::try_from(v).ok().filter(|&v| v > 0);
            match (side(h), side(w)) {
                (Some(height), Some(width)) => Ok(Some(Size { width, height })),
                _ => Err(bad()),
            }
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detector_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Detector>();
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in DetectorKind::ALL {
            assert_eq!(kind.name().parse::<DetectorKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.name());
        }
        assert_eq!("YuNet".parse(), Ok(DetectorKind::YuNet));
        let err = "retinaface".parse::<DetectorKind>().unwrap_err();
        assert!(
            err.to_string().contains("ultraface, ultraface-slim, yunet"),
            "{err}"
        );
    }

    #[test]
    fn clip_keeps_boxes_inside_and_drops_empty_ones() {
        let c = |corners| Candidate {
            corners,
            score: 0.9,
            landmarks: None,
        };
        let f = clip(c([-5.0, 10.0, 50.0, 120.0]), 100, 100).unwrap();
        assert_eq!(f.bbox, [0.0, 10.0, 50.0, 90.0]);
        assert!(clip(c([120.0, 10.0, 150.0, 20.0]), 100, 100).is_none());
        assert!(clip(c([f32::NAN, 0.0, 10.0, 10.0]), 100, 100).is_none());
    }
}
