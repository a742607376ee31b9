//! One file per subcommand.

mod eval;
mod predict;
mod prepare;
pub mod train;

use crate::Status;
use crate::args::Command;

pub fn run(command: Command) -> anyhow::Result<Status> {
    match command {
        Command::Predict(args) => predict::run(args),
        Command::Eval(args) => eval::run_eval(args),
        Command::Compare(args) => eval::run_compare(args),
        Command::Prepare(args) => prepare::run(args),
        Command::Train(args) => train::run(args),
    }
}
