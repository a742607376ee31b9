//! Pipeline batches (plain NCHW `f32` buffers) to burn tensors.

use burn::tensor::{Device, Int, Tensor, TensorData};
use gc_pipeline::Batch;

/// `[n, 3, h, w]` images in [0, 1] and `[n]` class indices, on `device`. Takes the batch by value
/// so the image buffer moves into the tensor without a copy.
pub fn batch_to_tensors(batch: Batch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let n = batch.shape[0];
    let images = Tensor::<4>::from_data(TensorData::new(batch.images, batch.shape), device);
    let labels: Vec<i64> = batch.labels.iter().map(|&l| i64::from(l)).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device);
    (images, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_values_survive() {
        let device = gc_models::cpu_device();
        let batch = Batch {
            images: (0..2 * 3 * 2 * 2).map(|i| i as f32 / 24.0).collect(),
            labels: vec![1, 0],
            indices: vec![5, 7],
            shape: [2, 3, 2, 2],
        };
        let (x, y) = batch_to_tensors(batch.clone(), &device);
        assert_eq!(x.dims(), [2, 3, 2, 2]);
        assert_eq!(x.into_data().try_into_vec::<f32>().unwrap(), batch.images);
        assert_eq!(y.into_data().try_into_vec_as::<i64>().unwrap(), vec![1, 0]);
    }
}
