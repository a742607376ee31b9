//! One file per subcommand.

mod prepare;

use crate::Status;
use crate::args::Command;

pub fn run(command: Command) -> anyhow::Result<Status> {
    match command {
        Command::Prepare(args) => prepare::run(args),
    }
}
