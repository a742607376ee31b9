//! Evaluation of gender classifiers: the metrics (`metrics`), the statistics under them (`stats`),
//! temperature scaling (`calibration`), and the reports that show them. It takes plain
//! predictions, so it evaluates any model the same way.

pub mod calibration;
pub mod metrics;
pub mod report;
pub mod stats;

pub use metrics::{EvalOptions, Evaluation, Sample, evaluate};
pub use report::{ModelResult, Report};
pub use stats::Proportion;
