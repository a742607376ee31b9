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
        summary: "dlib/Cydral gender CNN: 32x32 RGB, (x - mean) / 256, softmax [female, male]; \
                  use the .opset13.onnx export with tract (CC0-1.0)",
    },
    Preset {
        name: "insightface-genderage-112",
        summary: "InsightFace gender-age fmobilenet: 112x112 RGB raw 0..255, logits [female, male] \
                  in fc1[0..2]; wants ArcFace-aligned faces (non-commercial research only)",
    },
    Preset {
        name: "yu4u-wrn16-8-agegender-64",
        summary: "yu4u Wide ResNet 16-8 age-gender: 64x64 BGR raw 0..255, softmax `gender` \
                  [female, male]; slow (research-only training data)",
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
        // Mean as in dlib's input_rgb_image (122.782, 117.001, 104.298), scaled by 1/256.
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
        "insightface-genderage-112" => PreprocessSpec {
            name: Some(name.to_string()),
            input: InputSpec {
                width: 112,
                height: 112,
                channels: Channels::Rgb,
                layout: Layout::Nchw,
            },
            normalize: raw,
            crop: Crop::Whole,
            filter: Filter::Triangle,
            output: OutputSpec {
                tensor: OutputTensor::Name("fc1".into()),
                offset: 0,
                scores: Scores::Logits,
            },
            labels: female_male,
            batch: None,
        },
        // Trained with OpenCV (BGR) on crops with a 25-40% margin, which UTKFace-style crops have.
        "yu4u-wrn16-8-agegender-64" => PreprocessSpec {
            name: Some(name.to_string()),
            input: InputSpec {
                width: 64,
                height: 64,
                channels: Channels::Bgr,
                layout: Layout::Nchw,
            },
            normalize: raw,
            crop: Crop::Whole,
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
