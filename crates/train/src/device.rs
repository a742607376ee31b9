//! Where the tensors of a training run are computed: burn's pure-Rust CPU backend `flex`, or a GPU
//! through burn's `wgpu` backend (Vulkan, Metal or DirectX 12) when built with the `gpu` feature.
//!
//! Why wgpu and not burn's `cuda` backend: `cuda` (and burn's `cpu` backend) pull `cubecl-llvm`,
//! whose build script downloads LLVM, so they cannot be built offline; wgpu builds from crates
//! alone and runs on NVIDIA, AMD, Intel and Apple GPUs through their Vulkan/Metal/DX12 drivers.

use crate::TrainError;
use burn::tensor::Device;

/// The device a run computes on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrainDevice {
    /// burn's `flex` backend, on the threads of [`crate::RunOptions::threads`].
    #[default]
    Cpu,
    /// The best GPU wgpu finds (high-power adapters first; `CUBECL_WGPU_DEFAULT_DEVICE`, e.g.
    /// `DiscreteGpu(1)` or `Cpu`, overrides the choice). Needs the `gpu` feature.
    Gpu,
}

impl TrainDevice {
    /// Whether this build can compute on a GPU (the `gpu` cargo feature).
    pub const GPU_BUILT: bool = cfg!(feature = "gpu");

    /// The burn device, or an error that says why there is none.
    pub fn burn_device(self) -> Result<Device, TrainError> {
        match self {
            TrainDevice::Cpu => Ok(gc_models::cpu_device()),
            TrainDevice::Gpu => gpu_device(),
        }
    }
}

impl std::str::FromStr for TrainDevice {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(TrainDevice::Cpu),
            "gpu" => Ok(TrainDevice::Gpu),
            other => Err(TrainError::Config(format!(
                "unknown device {other:?}; expected cpu or gpu"
            ))),
        }
    }
}

impl std::fmt::Display for TrainDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrainDevice::Cpu => "cpu",
            TrainDevice::Gpu => "gpu",
        })
    }
}

#[cfg(feature = "gpu")]
fn gpu_device() -> Result<Device, TrainError> {
    // `init` rather than `Device::wgpu`: the lazy constructor panics at the first tensor when no
    // adapter is found; `init` returns that as an error we can word.
    Device::wgpu_options().init().map_err(|e| {
        TrainError::Config(format!(
            "no GPU could be opened through wgpu ({e}); check the GPU driver and its Vulkan \
             loader (`vulkaninfo --summary`), or use --device cpu"
        ))
    })
}

#[cfg(not(feature = "gpu"))]
fn gpu_device() -> Result<Device, TrainError> {
    Err(TrainError::Config(
        "this build computes on the CPU only; rebuild with the `gpu` feature \
         (`cargo install --path crates/cli --features gpu`, see the README) or use --device cpu"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for d in [TrainDevice::Cpu, TrainDevice::Gpu] {
            assert_eq!(d.to_string().parse::<TrainDevice>().unwrap(), d);
        }
        assert!("cuda".parse::<TrainDevice>().is_err());
    }

    #[cfg(not(feature = "gpu"))]
    #[test]
    fn gpu_refused_without_the_feature() {
        let err = TrainDevice::Gpu.burn_device().unwrap_err().to_string();
        assert!(err.contains("--features gpu"), "{err}");
    }
}
