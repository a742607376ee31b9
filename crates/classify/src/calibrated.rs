//! Calibrated models: any model with its probabilities temperature-scaled, named on the command
//! line by a small JSON file that `gender-classifier calibrate` writes:
//!
//! ```json
//! {"calibrates": "/models/dlib.onnx", "preset": null, "temperature": 1.53,
//!  "fitted_on": {"data": "/data/utkface-64", "split": "val", "temperature": 1.53, "images": 4741, ...}}
//! ```
//!
//! The file, not a flag, carries the temperature because a temperature belongs to one model and
//! to the data it was fitted on: `compare --model a.json --model b.json` keeps each with its own,
//! and the file says where its number came from. A relative `calibrates` path is read from the
//! file's folder, so a hand-written file can travel with its model.

use gc_core::{ClassLabel, Classifier, Gender, ModelError, RgbView};
use gc_eval::calibration::{MAX_TEMPERATURE, MIN_TEMPERATURE, TemperatureFit, scale_probability};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a calibration file is not written: one message for the check before the fit and for the
/// write that finds the name taken after it.
pub const ALREADY_EXISTS: &str =
    "already exists; calibrate writes a new file and never replaces one";

/// What a calibration file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationFile {
    /// The `--model` value of the model it scales (`builtin`, a path, `hf:...`, `flip:...`).
    pub calibrates: String,
    /// The `--preset` of an ONNX model, if it needed one.
    #[serde(default)]
    pub preset: Option<String>,
    pub temperature: f64,
    /// Where the temperature came from; absent in a hand-written file.
    #[serde(default)]
    pub fitted_on: Option<FittedOn>,
}

/// The images a temperature was fitted on, and what it changed there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedOn {
    pub data: String,
    pub split: String,
    #[serde(flatten)]
    pub fit: TemperatureFit,
}

impl CalibrationFile {
    /// Reads and checks a calibration file (not the model it names).
    pub fn read(path: &Path) -> Result<CalibrationFile, ModelError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::File {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let file: CalibrationFile =
            serde_json::from_str(&text).map_err(|e| ModelError::Format {
                path: shown.clone(),
                reason: format!(
                    "not a calibration file (as `gender-classifier calibrate` writes): {e}"
                ),
            })?;
        let t = file.temperature;
        if !(MIN_TEMPERATURE..=MAX_TEMPERATURE).contains(&t) {
            return Err(ModelError::Format {
                path: shown,
                reason: format!(
                    "temperature {t} is outside [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}]"
                ),
            });
        }
        Ok(file)
    }

    /// Writes the file at `path`, which must not exist: the JSON goes to a temporary file beside it
    /// and is linked into place only if nothing took the name meanwhile, so an existing file is
    /// never replaced and an interrupted write leaves no half file under the name.
    pub fn write_new(&self, path: &Path) -> Result<(), ModelError> {
        let fail = |reason: String| ModelError::File {
            path: path.display().to_string(),
            reason,
        };
        let json = serde_json::to_string_pretty(self).map_err(|e| fail(e.to_string()))?;
        // The permissions of any new file, not tempfile's private ones.
        let mut tmp = crate::place::temp_in_existing(&CalibrationFile::base_dir(path))
            .map_err(|e| fail(e.to_string()))?;
        std::io::Write::write_all(&mut tmp, format!("{json}\n").as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| fail(e.to_string()))?;
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                fail(ALREADY_EXISTS.into())
            } else {
                fail(e.error.to_string())
            }
        })?;
        Ok(())
    }

    /// Whether `--model` takes `path` for a calibration file: its name ends in `.json`.
    pub fn has_its_name(path: &Path) -> bool {
        path.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    }

    /// The folder relative `calibrates` paths are read from.
    pub fn base_dir(path: &Path) -> PathBuf {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// A model whose every probability row is temperature-scaled.
pub struct TemperatureScaled {
    inner: Box<dyn Classifier>,
    temperature: f64,
    name: String,
}

impl TemperatureScaled {
    pub fn new(inner: Box<dyn Classifier>, temperature: f64) -> TemperatureScaled {
        let name = format!("{}+T{temperature:.2}", inner.name());
        TemperatureScaled {
            inner,
            temperature,
            name,
        }
    }
}

impl Classifier for TemperatureScaled {
    fn name(&self) -> &str {
        &self.name
    }

    fn labels(&self) -> &[ClassLabel] {
        self.inner.labels()
    }

    fn classify(&self, images: &[RgbView<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut rows = self.inner.classify(images)?;
        for row in &mut rows {
            scale_by_gender(row, self.inner.labels(), self.temperature);
        }
        Ok(rows)
    }

    fn preferred_batch(&self) -> usize {
        self.inner.preferred_batch()
    }
}

/// Scales the probability of `female` (the sum of the labels that mean female) as the fit did,
/// and shares each gender's new probability among its labels as the model shared the old one,
/// so that a model with several labels a gender (`woman`, `girl`) gets exactly the transform
/// that was fitted on its female/male probability.
fn scale_by_gender(row: &mut [f32], labels: &[ClassLabel], temperature: f64) {
    let of = |row: &[f32], g: Gender| -> f64 {
        row.iter()
            .zip(labels)
            .filter(|(_, l)| l.gender == g)
            .map(|(&p, _)| p as f64)
            .sum()
    };
    let total = of(row, Gender::Female) + of(row, Gender::Male);
    if total <= 0.0 || !total.is_finite() {
        return;
    }
    let female = of(row, Gender::Female) / total;
    let scaled = scale_probability(female, temperature);
    for g in [Gender::Female, Gender::Male] {
        let (old, new) = match g {
            Gender::Female => (female, scaled),
            Gender::Male => (1.0 - female, 1.0 - scaled),
        };
        let count = labels.iter().filter(|l| l.gender == g).count().max(1) as f64;
        for (p, l) in row.iter_mut().zip(labels) {
            if l.gender == g {
                *p = if old > 0.0 {
                    (*p as f64 / total / old * new) as f32
                } else {
                    (new / count) as f32
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Scripted;

    #[test]
    fn scales_every_row_and_names_the_temperature() {
        let model = TemperatureScaled::new(Box::new(Scripted(|_| Some(vec![0.9, 0.1]))), 2.0);
        assert_eq!(model.name(), "scripted+T2.00");
        let px = [0u8; 3];
        let view = RgbView::new(1, 1, &px).unwrap();
        let rows = model.classify(&[view, view]).unwrap();
        for row in rows {
            // σ(ln 9 / 2) = 3/4.
            assert!(
                (row[0] - 0.75).abs() < 1e-6 && (row[1] - 0.25).abs() < 1e-6,
                "{row:?}"
            );
        }
    }

    #[test]
    fn several_labels_a_gender_get_the_fitted_transform() {
        let label = |name: &str, gender| ClassLabel {
            name: name.into(),
            gender,
        };
        let labels = [
            label("woman", Gender::Female),
            label("girl", Gender::Female),
            label("man", Gender::Male),
        ];
        // p(female) = 0.6; at T = 0.5 it becomes σ(2 ln 1.5) = 2.25 / 3.25 = 0.692308, shared
        // half and half as before; the man gets the rest.
        let mut row = [0.3f32, 0.3, 0.4];
        scale_by_gender(&mut row, &labels, 0.5);
        let f = 2.25 / 3.25;
        for (got, want) in row.iter().zip([f / 2.0, f / 2.0, 1.0 - f]) {
            assert!((*got as f64 - want).abs() < 1e-6, "{row:?}");
        }
        // Two labels: the binary formula itself.
        let mut row = [0.9f32, 0.1];
        scale_by_gender(&mut row, &labels[1..], 2.0);
        assert!(
            (row[0] - 0.75).abs() < 1e-6 && (row[1] - 0.25).abs() < 1e-6,
            "{row:?}"
        );
        // A gender at exactly 0 is clamped away from it, its share split evenly.
        let mut row = [0.0f32, 0.0, 1.0];
        scale_by_gender(&mut row, &labels, 2.0);
        assert!(row[0] > 0.0 && row[0] == row[1], "{row:?}");
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{row:?}");
    }

    #[test]
    fn files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cal.json");
        let write = |text: &str| std::fs::write(&path, text).unwrap();

        write(r#"{"calibrates": "builtin", "temperature": 1.5}"#);
        let file = CalibrationFile::read(&path).unwrap();
        assert_eq!(
            (file.calibrates.as_str(), file.temperature),
            ("builtin", 1.5)
        );
        assert_eq!(file.fitted_on, None);

        for (text, says) in [
            (r#"{"calibrates": "builtin", "temperature": -1}"#, "outside"),
            (r#"{"calibrates": "builtin", "temperature": 0}"#, "outside"),
            (r#"{"calibrates": "builtin"}"#, "temperature"),
            (
                r#"{"calibrates": "builtin", "temperature": 1, "temprature": 2}"#,
                "temprature",
            ),
            ("{", "not a calibration file"),
        ] {
            write(text);
            let err = CalibrationFile::read(&path).unwrap_err().to_string();
            assert!(
                err.contains("cal.json") && err.contains(says),
                "{text}: {err}"
            );
        }
        let missing = CalibrationFile::read(&dir.path().join("nope.json")).unwrap_err();
        assert!(missing.to_string().contains("nope.json"), "{missing}");
    }

    #[test]
    fn writes_a_new_file_and_never_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = CalibrationFile {
            calibrates: "builtin".into(),
            preset: None,
            temperature: 1.25,
            fitted_on: Some(FittedOn {
                data: "/data".into(),
                split: "val".into(),
                fit: gc_eval::calibration::fit_temperature(&[gc_eval::Sample {
                    id: "a.jpg".into(),
                    truth: Gender::Female,
                    p_female: 0.7,
                    age: None,
                    race: None,
                }])
                .unwrap(),
            }),
        };
        let path = dir.path().join("cal.json");
        file.write_new(&path).unwrap();
        assert_eq!(CalibrationFile::read(&path).unwrap(), file);
        std::fs::write(&path, "mine").unwrap();
        let err = file.write_new(&path).unwrap_err().to_string();
        assert!(
            err.contains("cal.json") && err.contains("already exists"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
        // Nothing but the one file is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let other = dir.path().join("other.json");
            file.write_new(&other).unwrap();
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
            let probe = dir.path().join("probe");
            std::fs::write(&probe, b"").unwrap();
            assert_eq!(mode(&other), mode(&probe));
        }
    }
}
