//! What the flex kernels of [`crate::conv`], [`crate::batch_norm`] and [`crate::max_pool`] share:
//! where they apply, and moving values between flex tensors and slices.

use burn::backend::DispatchDevice;
use burn::backend::flex::FlexTensor;
use burn::tensor::{Device, Shape, TensorData};

/// Whether `device`, with autodiff or without, runs on flex, the backend the kernels are for.
pub(crate) fn on_flex(device: &Device) -> bool {
    matches!(
        device.clone().inner().as_dispatch(),
        DispatchDevice::Flex(_)
    )
}

/// The values of an f32 tensor laid out contiguously (the callers check the dtype and make it so).
pub(crate) fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// A flex tensor of `values` in `shape`.
pub(crate) fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}
