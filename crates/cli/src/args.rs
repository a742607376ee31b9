//! The command line, as clap derive types. Only parsing lives here; `commands/` does the work.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "gender-classifier", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More log output (-v info, -vv debug). RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prepare UTKFace: labels from file names, a stratified 60/20/20 split, class folders and a manifest.
    Prepare(PrepareArgs),
}

#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// A UTKFace folder, or an archive as UTKFace publishes it (.tar.gz, .tar, .zip).
    pub source: PathBuf,

    /// The output folder: new, empty, or one that prepare made with the same inputs.
    #[arg(long)]
    pub out: PathBuf,

    /// Seed of the split; the same seed gives the same split on any machine.
    #[arg(long, default_value_t = gc_dataset::DEFAULT_SEED)]
    pub seed: u64,

    /// Fractions of train, val and test.
    #[arg(long, default_value = "0.6,0.2,0.2")]
    pub split: gc_dataset::Fractions,

    /// Copy the images (the default).
    #[arg(long, conflicts_with = "link")]
    pub copy: bool,

    /// Hard-link the images instead of copying them (folder sources only). Editing a linked image
    /// edits the source file too.
    #[arg(long)]
    pub link: bool,

    /// Print the report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}
