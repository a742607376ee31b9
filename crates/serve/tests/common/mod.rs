//! What the server tests share: the shared files, and a server with the built-in model and YuNet.
#![allow(dead_code)]

use gc_classify::photos::DetectMode;
use gc_detect::{Detector, DetectorKind};
use gc_serve::{Limits, Running, Service};

pub use gc_testdata::shared;

/// A server on a free loopback port: the built-in model, YuNet, and `limits`.
pub fn start(limits: Limits) -> Running {
    let model = Box::new(gc_classify::builtin::load().unwrap());
    let detector = Detector::from_path(
        &shared("models/detect/yunet-n-dynamic.onnx"),
        DetectorKind::YuNet,
    )
    .unwrap();
    let service = Service::new(model, Some(detector), DetectMode::Auto, limits);
    Running::start("127.0.0.1:0", service).unwrap()
}

pub fn url(server: &Running, path: &str) -> String {
    format!("http://{}{path}", server.addr)
}
