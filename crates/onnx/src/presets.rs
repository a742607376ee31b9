//! Built-in preprocessing specs for the pretrained gender models we know (those in shared/models),
//! so that they run without a spec file; chosen by name or recognised by the model's file name.

use crate::spec::{
    Channels, Crop, Filter, InputSpec, Layout, Normalize, OutputSpec, OutputTensor, PreprocessSpec,
    Scores,
};
use std::path::Path;

/// A built-in spec: its name (also what a model's file name must contain to get it by default) and
/// a line on what the model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub summary: &'static str,
}

const PRESETS: &[Preset] = &[
    Preset {
        name: "dlib-cydral-gender-v1",
        summary: "dlib/Cydral gender CNN: 32x32 RGB, (x - mean) / 256, whole crop, softmax \
                  [female, male] (CC0-1.0)",
    },
    Preset {
        name: "insightface-genderage-112",
        summary: "InsightFace gender-age fmobilenet: 112x112 RGB raw 0..255, 10% margin, logits \
                  [female, male] in fc1[0..2]; best on ArcFace-aligned faces (non-commercial \
                  research only)",
    },
    Preset {
        name: "yu4u-wrn16-8-agegender-64",
        summary: "yu4u Wide ResNet 16-8 age-gender: 64x64 BGR raw 0..255, 40% margin, softmax \
                  `gender` [female, male]; slow (research-only training data)",
    },
];

/// The built-in specs, by name.
pub fn presets() -> &'static [Preset] {
    PRESETS
}

/// The spec of a built-in preset; `None` for a name we do not know.
pub fn preset(name: &str) -> Option<PreprocessSpec> {
    let female_male = vec!["female".to_string(), "male".to_string()];
    let raw = Normalize::default();
    let spec = match name {
        // Mean as in dlib's input_rgb_image (122.782, 117.001, 104.298), scaled by 1/256. The whole
        // crop: 96.2% of 585 UTKFace adults, against 95.2% with 5% trimmed and 94.9% with a 10% margin.
        "dlib-cydral-gender-v1" => PreprocessSpec {
            name: Some(name.to_string()),
            input: InputSpec {
                width: 32,
                height: 32,
                channels: Channels::Rgb,
                layout: Layout::Nchw,
            },
            normalize: Normalize {
                scale: 1.0,
                mean: [122.782, 117.001, 104.298],
                std: [256.0; 3],
            },
            crop: Crop::Whole,
            filter: Filter::Triangle,
            output: OutputSpec {
                tensor: OutputTensor::Name("probabilities".into()),
                offset: 0,
                scores: Scores::Probabilities,
            },
            labels: female_male,
            batch: None,
        },
        // fc1 is [gender logits (2), age (100 pairs)]; the graph normalises the raw pixels itself.
        // It was trained on ArcFace-aligned crops, which show more than a tight face crop: a 10%
        // margin took unaligned UTKFace adults from 84.4% to 88.4% (585 faces, disjoint from the
        // accuracy test's sample; trimming instead fell to about 60%).
        "insightface-genderage-112" => PreprocessSpec {
            name: Some(name.to_string()),
            input: InputSpec {
                width: 112,
                height: 112,
                channels: Channels::Rgb,
                layout: Layout::Nchw,
            },
            normalize: raw,
            crop: Crop::Margin { fraction: 0.1 },
            filter: Filter::Triangle,
            output: OutputSpec {
                tensor: OutputTensor::Name("fc1".into()),
                offset: 0,
                scores: Scores::Logits,
            },
            labels: female_male,
            batch: None,
        },
        // Trained with OpenCV (BGR) on face boxes widened by 40% on each side (the upstream demo's
        // `margin=0.4`): on UTKFace adults 72.1% whole, 84.8% / 90.8% / 92.0% / 92.3% with a
        // 10 / 20 / 30 / 40% margin (585 faces, disjoint from the accuracy test's sample).
        "yu4u-wrn16-8-agegender-64" => PreprocessSpec {
            name: Some(name.to_string()),
            input: InputSpec {
                width: 64,
                height: 64,
                channels: Channels::Bgr,
                layout: Layout::Nchw,
            },
            normalize: raw,
            crop: Crop::Margin { fraction: 0.4 },
            filter: Filter::Triangle,
            output: OutputSpec {
                tensor: OutputTensor::Name("gender".into()),
                offset: 0,
                scores: Scores::Probabilities,
            },
            labels: female_male,
            batch: None,
        },
        _ => return None,
    };
    Some(spec)
}

/// The preset a model file gets when none is asked for: the one whose name its file name contains.
pub fn preset_for_file(model: &Path) -> Option<&'static str> {
    let file = model.file_name()?.to_string_lossy().to_lowercase();
    PRESETS
        .iter()
        .map(|p| p.name)
        .find(|name| file.contains(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_preset_has_a_valid_spec() {
        for p in presets() {
            let spec = preset(p.name).unwrap_or_else(|| panic!("{} has no spec", p.name));
            spec.validate(p.name).unwrap();
            gc_core::map_labels(&spec.labels, p.name).unwrap();
            assert_eq!(spec.name.as_deref(), Some(p.name));
        }
        assert!(preset("resnet").is_none());
    }

    #[test]
    fn presets_are_recognised_by_file_name() {
        for (file, want) in [
            (
                "/m/gender/dlib-cydral-gender-v1.opset13.onnx",
                Some("dlib-cydral-gender-v1"),
            ),
            (
                "Insightface-GenderAge-112.onnx",
                Some("insightface-genderage-112"),
            ),
            (
                "x/yu4u-wrn16-8-agegender-64.onnx",
                Some("yu4u-wrn16-8-agegender-64"),
            ),
            ("my-model.onnx", None),
        ] {
            assert_eq!(preset_for_file(Path::new(file)), want, "{file}");
        }
    }
}
