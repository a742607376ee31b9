//! A trained model directory as a [`gc_core::Classifier`]: any RGB image in, probabilities out,
//! with the evaluation geometry of the pipeline (resize to 1.125 x the image size, centre crop).

use crate::config::ModelSpec;
use crate::model_dir::{InfoHead, ModelDir};
use burn::tensor::{Device, Tensor, TensorData};
use gc_core::{ClassLabel, Classifier, ModelError, RgbView, map_labels, softmax};
use gc_models::weights::{WeightsSpec, load_safetensors_bytes};
use gc_models::{Cnn, EfficientNetLite0, ImageClassifier};
use gc_pipeline::transform::{Crop, Geometry, Size, crop_to_chw, resize_rgb};
use std::path::Path;

/// The model of a directory, whichever its architecture.
// One value per loaded model, built once and never moved in a loop: the size difference between
// the variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum AnyModel {
    Cnn(Cnn),
    EfficientNetLite0(EfficientNetLite0),
}

impl AnyModel {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            AnyModel::Cnn(m) => m.forward(images),
            AnyModel::EfficientNetLite0(m) => m.forward(images),
        }
    }
}

/// A model directory loaded for inference on the CPU (burn's `flex` backend).
#[derive(Debug)]
pub struct BurnClassifier {
    name: String,
    labels: Vec<ClassLabel>,
    model: AnyModel,
    geometry: Geometry,
    device: Device,
}

/// Images per forward pass inside [`BurnClassifier::classify`], to bound memory.
const CHUNK: usize = 64;

/// Loads `dir/model.json` and `dir/model.safetensors`. A missing file, an unknown architecture, a
/// bad config, labels that are not one female and one male class, a missing tensor or a tensor of
/// the wrong shape is refused with a [`ModelError`] that names the file.
pub fn load_model(dir: &Path) -> Result<BurnClassifier, ModelError> {
    let files = ModelDir::new(dir);
    let info_path = files.info();
    let head = InfoHead::read(&info_path)?;
    let weights_path = files.weights();
    let weights = std::fs::read(&weights_path).map_err(|e| ModelError::File {
        path: weights_path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut model = from_parts(
        head,
        &info_path.display().to_string(),
        weights,
        &weights_path.display().to_string(),
    )?;
    model.name = format!("burn:{}", dir.display());
    Ok(model)
}

/// Loads a model from the contents of its `model.json` and `model.safetensors` (the built-in
/// model is compiled into the binary); `name` is the classifier's name and prefixes the names of
/// the two files in error messages.
pub fn load_model_bytes(
    name: &str,
    info_json: &str,
    weights: Vec<u8>,
) -> Result<BurnClassifier, ModelError> {
    let info_name = format!("{name}/model.json");
    let head = InfoHead::parse(info_json, &info_name)?;
    let mut model = from_parts(
        head,
        &info_name,
        weights,
        &format!("{name}/model.safetensors"),
    )?;
    model.name = name.to_string();
    Ok(model)
}

fn from_parts(
    head: InfoHead,
    info_name: &str,
    weights: Vec<u8>,
    weights_name: &str,
) -> Result<BurnClassifier, ModelError> {
    let spec = head.spec(info_name)?;
    let labels = map_labels(&head.labels, info_name)?;
    if labels.len() != spec.num_classes() {
        return Err(ModelError::Format {
            path: info_name.to_string(),
            reason: format!(
                "{} labels for a model with {} classes",
                labels.len(),
                spec.num_classes()
            ),
        });
    }
    let geometry = Geometry {
        image_size: Size::square(head.image_size),
        resize_size: Size::square(head.resize_size),
    };
    if !geometry.is_valid() || head.image_size > 4096 || head.resize_size > 4096 {
        return Err(ModelError::Format {
            path: info_name.to_string(),
            reason: format!(
                "image size {} and resize size {} are not a valid crop",
                head.image_size, head.resize_size
            ),
        });
    }
    let device = gc_models::cpu_device();
    let model = match spec {
        ModelSpec::Cnn(config) => AnyModel::Cnn(load_safetensors_bytes(
            config.init(&device),
            weights,
            weights_name,
            &WeightsSpec::NATIVE,
        )?),
        ModelSpec::EfficientNetLite0(config) => {
            AnyModel::EfficientNetLite0(load_safetensors_bytes(
                config.init(&device),
                weights,
                weights_name,
                &WeightsSpec::NATIVE,
            )?)
        }
    };
    Ok(BurnClassifier {
        name: String::new(),
        labels,
        model,
        geometry,
        device,
    })
}

impl BurnClassifier {
    /// The crop the model sees and the size images are resized to first.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Logits for a batch of preprocessed images (`[n, 3, h, w]` in [0, 1], NCHW).
    pub fn logits(&self, images: Vec<f32>, n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let side = self.geometry.image_size;
        let shape = [n, 3, side.height as usize, side.width as usize];
        if images.len() != shape.iter().product::<usize>() {
            return Err(ModelError::Input(format!(
                "{} floats for {n} images of {}x{}",
                images.len(),
                side.width,
                side.height
            )));
        }
        let x = Tensor::<4>::from_data(TensorData::new(images, shape), &self.device);
        let logits = self.model.forward(x);
        let classes = logits.dims()[1];
        let flat: Vec<f32> = logits
            .into_data()
            .try_into_vec()
            .map_err(|e| ModelError::Run(format!("{e:?}")))?;
        Ok(flat.chunks(classes).map(<[f32]>::to_vec).collect())
    }

    /// Resize and centre-crop one image into `out` (`[3, h, w]`).
    fn preprocess(&self, image: &RgbView<'_>, out: &mut [f32]) -> Result<(), ModelError> {
        let checked = RgbView::new(image.width, image.height, image.pixels)?;
        let resized = resize_rgb(
            checked.pixels,
            checked.width,
            checked.height,
            self.geometry.resize_size,
        )
        .map_err(|e| ModelError::Input(e.to_string()))?;
        crop_to_chw(&resized, &self.geometry, Crop::center(&self.geometry), out);
        Ok(())
    }
}

impl Classifier for BurnClassifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn labels(&self) -> &[ClassLabel] {
        &self.labels
    }

    fn classify(&self, images: &[RgbView<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let per_image = self.geometry.chw_len();
        let mut rows = Vec::with_capacity(images.len());
        for chunk in images.chunks(CHUNK) {
            let mut buffer = vec![0.0f32; per_image * chunk.len()];
            for (image, out) in chunk.iter().zip(buffer.chunks_mut(per_image)) {
                self.preprocess(image, out)?;
            }
            rows.extend(self.logits(buffer, chunk.len())?.iter().map(|l| softmax(l)));
        }
        Ok(rows)
    }

    fn preferred_batch(&self) -> usize {
        CHUNK
    }
}
