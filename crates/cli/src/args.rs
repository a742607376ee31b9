//! The command line, as clap derive types. Only parsing lives here; `commands/` does the work.

use clap::builder::TypedValueParser;
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

/// Makes `gender-classifier photo.jpg` mean `gender-classifier predict photo.jpg`: when the first
/// argument names no subcommand (and is not --help/--version), `predict` is put in front of it.
/// The global `-v`/`--verbose` may come first (`gender-classifier -v eval ...`): the word looked
/// at is the first after them.
pub fn with_default_subcommand(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let is_verbose = |a: &OsString| {
        a.to_str().is_some_and(|a| {
            a == "--verbose"
                || (a.len() > 1 && a.starts_with('-') && a[1..].bytes().all(|b| b == b'v'))
        })
    };
    let at = 1 + args.iter().skip(1).take_while(|a| is_verbose(a)).count();
    let Some(first) = args.get(at) else {
        return args;
    };
    // A first word that is not UTF-8 is no subcommand's name: a photo's path.
    let Some(first) = first.to_str() else {
        args.insert(at, OsString::from("predict"));
        return args;
    };
    let cmd = Cli::command();
    let known = cmd
        .get_subcommands()
        .any(|s| s.get_name() == first || s.get_all_aliases().any(|a| a == first))
        || matches!(first, "help" | "-h" | "--help" | "-V" | "--version");
    if !known {
        args.insert(at, OsString::from("predict"));
    }
    args
}

/// `--batch-size` of the commands that run a model: 1 to `gc_core::MAX_BATCH`.
fn batch_size() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..=gc_core::MAX_BATCH as u64)
}

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
    /// Classify images: the predicted class and the probability of every class.
    /// `gender-classifier PATH...` is short for `gender-classifier predict PATH...`.
    Predict(PredictArgs),
    /// Evaluate a model on a labelled set: accuracy, calibration, accuracy by age and race, fairness
    /// gaps, the worst failures; writes report.json, report.md and report.html.
    Eval(EvalArgs),
    /// The same report for several models side by side, on the same images.
    Compare(CompareArgs),
    /// Fit a temperature on held-out labelled images (the validation split) so that the model's
    /// probabilities say how often it is right; writes a calibration file that --model takes.
    Calibrate(CalibrateArgs),
    /// Prepare UTKFace: labels from file names, a stratified 60/20/20 split, class folders and a manifest.
    Prepare(PrepareArgs),
    /// Train one of our architectures (the notebook CNN or EfficientNet-Lite0) on a prepared dataset.
    Train(crate::commands::train::TrainArgs),
    /// Sort a folder of photos into female/, male/, mixed/, no-face/ and uncertain/ (copies or hard
    /// links; the originals are never moved or changed), with an index.csv.
    Sort(SortArgs),
    /// Serve the model over HTTP on this machine: POST /v1/classify, GET /healthz, and a page at /.
    Serve(ServeArgs),
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

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The model (as for predict). Default: the built-in model.
    #[arg(long, short)]
    pub model: Option<String>,

    /// Preprocessing preset for an .onnx model without a JSON spec beside it.
    #[arg(long)]
    pub preset: Option<String>,

    #[command(flatten)]
    pub common: EvalCommon,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// A model to compare (repeat: --model A --model B ...). `builtin` names the built-in model,
    /// `flip:MODEL` a model averaged over each face and its mirror image, a .json file from
    /// `calibrate` a model with its probabilities temperature-scaled.
    #[arg(long = "model", short, required = true)]
    pub models: Vec<String>,

    /// Preprocessing preset for the .onnx models among them that have no JSON spec beside them
    /// and no file name recognised as a preset (those keep their own).
    #[arg(long)]
    pub preset: Option<String>,

    #[command(flatten)]
    pub common: EvalCommon,
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// A prepared dataset (manifest.csv) or a folder of class folders, with labels.
    #[arg(long)]
    pub data: PathBuf,

    /// Which split to fit on: not the one the model is tested on.
    #[arg(long, default_value = "val")]
    pub split: String,

    /// The calibration file to write (.json); a new file, an existing one is never replaced.
    #[arg(long)]
    pub out: PathBuf,

    /// Fit on N images only, spread evenly over the split (both classes, every age).
    #[arg(long)]
    pub limit: Option<usize>,

    /// Images per model call.
    #[arg(long, value_parser = batch_size())]
    pub batch_size: Option<usize>,

    /// Print the calibration file's JSON on stdout instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalCommon {
    /// A prepared dataset (manifest.csv gives age and race) or a folder of class folders.
    #[arg(long)]
    pub data: PathBuf,

    /// Which split of a prepared dataset.
    #[arg(long, default_value = "test")]
    pub split: String,

    /// Where report.json, report.md and report.html go: a new or empty folder, or one holding
    /// only an earlier report, which is replaced.
    #[arg(long)]
    pub out: PathBuf,

    /// Predictions below this confidence count as "uncertain": report coverage and the accuracy on
    /// what is kept, per group.
    #[arg(long)]
    pub min_confidence: Option<f64>,

    /// Evaluate only N images, spread evenly over the split (both classes, every age), for a
    /// quick look.
    #[arg(long)]
    pub limit: Option<usize>,

    /// Images per model call.
    #[arg(long, value_parser = batch_size())]
    pub batch_size: Option<usize>,

    /// How many of the most confident failures to show per model (and per age bucket and race
    /// group, up to 6 each; 0 for none).
    #[arg(long, default_value_t = 24)]
    pub failures: usize,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Image files, folders (with --recursive), or `-` to read one path per line from stdin.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub faces: FaceArgs,

    /// Classify the images in folders and their sub-folders.
    #[arg(long, short)]
    pub recursive: bool,

    /// One JSON object per line on stdout instead of aligned text.
    #[arg(long)]
    pub json: bool,

    /// Images per model call (default: what the model prefers).
    #[arg(long, value_parser = batch_size())]
    pub batch_size: Option<usize>,

    /// Write a copy of each photo with the faces boxed and labelled into this folder (created if
    /// missing; existing files are never replaced).
    #[arg(long, value_name = "DIR")]
    pub annotate: Option<PathBuf>,
}

/// Which model classifies.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The model: an .onnx file, a folder trained by `train` (model.json) or in Hugging Face format
    /// (config.json), or `hf:OWNER/NAME[@REVISION]`. Default: the built-in model. `flip:MODEL` runs
    /// MODEL on each face and its mirror image and averages the two (twice the work). A .json
    /// file written by `calibrate` names a model with its probabilities temperature-scaled.
    #[arg(long, short)]
    pub model: Option<String>,

    /// Preprocessing preset for an .onnx model without a JSON spec beside it.
    #[arg(long)]
    pub preset: Option<String>,
}

impl FaceArgs {
    /// The detector asked for, an empty value being none.
    pub fn detector(&self) -> Option<&std::path::Path> {
        self.detector
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
    }
}

/// How faces are found in photos.
#[derive(Debug, Args)]
pub struct FaceArgs {
    /// A face detector (.onnx): UltraFace (`ultraface-rfb-320.onnx`, `ultraface-slim-320.onnx`) or
    /// YuNet (`yunet-n-dynamic.onnx`), recognised from the file name or named with
    /// --detector-kind; or a folder holding them under those names, from which UltraFace RFB-320
    /// is taken unless --detector-kind says otherwise. With it, photos are classified face by face.
    /// An empty value (`GC_DETECTOR=`) means none.
    // clap's path parser refuses an empty value, which made an exported but empty GC_DETECTOR
    // an error ("a value is required") instead of the unset variable it stands for in a shell.
    #[arg(long, env = "GC_DETECTOR", value_name = "ONNX|DIR",
          value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from))]
    pub detector: Option<PathBuf>,

    /// The detector's family when its file name does not say: ultraface, ultraface-slim, yunet.
    #[arg(long, value_name = "KIND")]
    pub detector_kind: Option<String>,

    /// When to look for faces: auto (with --detector, unless the image looks like a face crop:
    /// 256 px or less on its long side and at most 4:3; without one, whole images), always
    /// (needs --detector), or never (the whole image is one face; what `sort` takes instead of a
    /// detector, for folders of face crops).
    #[arg(long, value_enum, default_value_t = Detect::Auto)]
    pub detect: Detect,
}

#[derive(Debug, Args)]
pub struct SortArgs {
    /// The folder of photos to sort (read only; sub-folders included).
    pub source: PathBuf,

    /// Where the sorted copies go: female/, male/, mixed/, no-face/, uncertain/ and index.csv.
    /// Running again into the same folder continues where the last run stopped.
    #[arg(long)]
    pub out: PathBuf,

    /// Hard-link instead of copying (same file system only; the link is the user's photo itself).
    #[arg(long)]
    pub link: bool,

    /// A photo with a face predicted below this probability goes to uncertain/.
    #[arg(long, default_value_t = 0.8, value_name = "P")]
    pub min_confidence: f32,

    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub faces: FaceArgs,

    /// Images per model call (default: what the model prefers).
    #[arg(long, value_parser = batch_size())]
    pub batch_size: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on. Anything other than loopback exposes the service to the network.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,

    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub faces: FaceArgs,

    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_body_mib: u32,

    /// Images classified at once (default: the number of cores); more requests wait.
    #[arg(long)]
    pub max_concurrent: Option<usize>,

    /// Requests allowed to wait for a turn; beyond them the answer is 503.
    #[arg(long, default_value_t = 32)]
    pub max_waiting: usize,

    /// Seconds allowed to receive a request's body; a slower upload gets 408 and frees its place.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub body_timeout_secs: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Detect {
    Auto,
    Always,
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[&str]) -> Vec<String> {
        with_default_subcommand(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn bare_paths_mean_predict() {
        assert_eq!(words(&["gc", "a.jpg"]), ["gc", "predict", "a.jpg"]);
        assert_eq!(
            words(&["gc", "--json", "a.jpg"]),
            ["gc", "predict", "--json", "a.jpg"]
        );
        assert_eq!(words(&["gc", "prepare", "x"]), ["gc", "prepare", "x"]);
        assert_eq!(words(&["gc", "--help"]), ["gc", "--help"]);
        assert_eq!(words(&["gc"]), ["gc"]);
        // The global -v may come before the subcommand, or before the paths.
        assert_eq!(words(&["gc", "-v", "eval", "x"]), ["gc", "-v", "eval", "x"]);
        assert_eq!(
            words(&["gc", "-vv", "--verbose", "a.jpg"]),
            ["gc", "-vv", "--verbose", "predict", "a.jpg"]
        );
        assert_eq!(words(&["gc", "-v", "--help"]), ["gc", "-v", "--help"]);
        assert_eq!(words(&["gc", "-v"]), ["gc", "-v"]);
        let cli = Cli::try_parse_from(words(&["gc", "-v", "eval", "--data", "d", "--out", "o"]));
        assert!(matches!(cli.unwrap().command, Command::Eval(_)));
        // A first path that is not UTF-8 is a path too.
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let photo = OsString::from_vec(b"caf\xe9.jpg".to_vec());
            let args = with_default_subcommand([OsString::from("gc"), photo.clone()]);
            assert_eq!(args, [OsString::from("gc"), "predict".into(), photo]);
        }
    }

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
