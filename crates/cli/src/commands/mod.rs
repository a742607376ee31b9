//! One file per subcommand.

mod predict;
mod prepare;

use crate::Status;
use crate::args::Command;

pub fn run(command: Command) -> anyhow::Result<Status> {
    match command {
        Command::Predict(args) => predict::run(args),
        Command::Prepare(args) => prepare::run(args),
    }
}
