//! `gender-classifier serve`: loads the model and detector once, then serves until Ctrl-C.

use crate::Status;
use crate::args::ServeArgs;
use crate::out::{errln, outln};
use anyhow::Context;
use gc_serve::{Limits, Running, Service};

pub fn run(args: ServeArgs) -> anyhow::Result<Status> {
    let model = super::load_model(&args.model)?;
    let (detector, mode) = super::load_faces(&args.faces)?;
    let mut limits = Limits {
        max_body_bytes: (args.max_body_mib as usize) << 20,
        max_waiting: args.max_waiting,
        body_timeout: std::time::Duration::from_secs(args.body_timeout_secs.into()),
        ..Limits::default()
    };
    if let Some(n) = args.max_concurrent {
        limits.max_concurrent = n.max(1);
    }
    let has_detector = detector.is_some();
    let service = Service::new(model, detector, mode, limits);
    let running = Running::start(&args.addr, service)
        .with_context(|| format!("listening on {}", args.addr))?;
    if !has_detector {
        errln!("no --detector: every image is classified whole, as one face");
    }
    // Scripts (and the tests) read the address from this line, port 0 included.
    outln!("listening on http://{}", running.addr);
    match running.wait_for_signal() {
        Ok(()) => Ok(Status::Success),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
            errln!("{e}");
            Ok(Status::Interrupted)
        }
        Err(e) => Err(e).context("serving"),
    }
}
