//! Command-line definitions only (clap). Each subcommand's behaviour lives in
//! `commands/<name>.rs`; each flag is defined once here, with its test below.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::data::decode::DEFAULT_MAX_PIXELS;
use crate::geometry::BoxFrame;
use crate::perturb::Severities;

const EXIT_CODES: &str = "\
Exit codes:
  0  everything ran and no sample failed
  1  the command could not run (bad config, unreadable dataset file, ...)
  2  bad command-line usage
  3  the command ran, but some samples failed; each is listed with its reason";

#[derive(Debug, Parser)]
#[command(
    name = "medvqa",
    version,
    about = "Evaluate vision-language models on medical visual question answering",
    long_about = "Evaluate vision-language models on medical visual question answering: \
                  deterministic robustness sweeps, multi-image questions and grounding, \
                  on datasets in their published formats.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Worker threads for CPU work (default: all cores). Results never depend on it.
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a built-in phantom dataset (a manifest plus PNGs), deterministic from a seed.
    #[command(after_help = EXIT_CODES)]
    Phantom(PhantomArgs),
    /// Load a dataset and print counts by kind, modality and image count, plus every sample
    /// that failed to load and why.
    #[command(after_help = EXIT_CODES)]
    Inspect(InspectArgs),
    /// List the dataset formats medvqa reads, with their expected layout.
    Datasets,
    /// Write perturbed copies of a dataset's images plus a manifest with the boxes mapped;
    /// optionally draw a contact sheet of one sample across severities.
    #[command(after_help = EXIT_CODES)]
    Perturb(PerturbArgs),
    /// List every perturbation and track: description, modalities, parameter per severity.
    Perturbations(PerturbationsArgs),
}

/// Which phantom set to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PhantomSetArg {
    /// Chest radiographs: nodules, effusion, cardiomegaly, pneumothorax.
    Cxr,
    /// Colonoscopy frames: polyps, an instrument, a green box overlay, burned-in text.
    Endoscopy,
    /// 2-5 frame video sequences with a finding that changes across frames.
    Frames,
    /// All three sets, in one manifest.
    All,
}

#[derive(Debug, Args)]
pub struct PhantomArgs {
    /// The set to write.
    #[arg(long, value_enum, default_value = "all")]
    pub set: PhantomSetArg,
    /// Seed; the same seed always gives byte-identical files.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Questions per set (default: about 200).
    #[arg(long)]
    pub n: Option<usize>,
    /// Output folder; gets manifest.jsonl and the PNGs.
    #[arg(long)]
    pub out: PathBuf,
}

/// How to find and read a dataset; shared by every command that loads one.
#[derive(Debug, Clone, Args)]
pub struct DatasetArgs {
    /// FORMAT:PATH, e.g. jsonl:data/manifest.jsonl or phantom:cxr (see `medvqa datasets`).
    #[arg(long, value_name = "SPEC")]
    pub dataset: String,
    /// Folder that image paths resolve under, for formats that keep images apart (GEMeX's
    /// MIMIC-CXR-JPG root). Default: the dataset file's folder.
    #[arg(long, value_name = "DIR")]
    pub image_root: Option<PathBuf>,
    /// Override the format's declared frame for ground-truth boxes: normalized, pixels,
    /// pixels:WxH or grid:N.
    #[arg(long, value_name = "FRAME")]
    pub dataset_box_frame: Option<BoxFrame>,
    /// Refuse any image with more pixels than this, before decoding it.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// Seed for generated datasets (phantom:…).
    #[arg(long = "dataset-seed", value_name = "S", default_value_t = 0)]
    pub dataset_seed: u64,
    /// Questions per set for generated datasets (phantom:…).
    #[arg(long = "dataset-n", value_name = "N")]
    pub dataset_n: Option<usize>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Also write the loaded samples as a medvqa manifest (normalised boxes) at FILE; images
    /// not already under FILE's folder are copied beside it.
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    /// Check paths and rows only; do not decode the images.
    #[arg(long)]
    pub no_decode: bool,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PerturbArgs {
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Perturbations and tracks, comma separated (see `medvqa perturbations`), e.g.
    /// gaussian-noise,cxr-grid or modality-default or kvasir-weak.
    #[arg(
        long,
        value_name = "NAME[,NAME...]",
        value_delimiter = ',',
        required = true
    )]
    pub perturbation: Vec<String>,
    /// `all` (each perturbation's levels, 1-5), a number, a range such as 1..3, or a list
    /// such as 0,1,3. Severity 0 adds the clean image, written once under clean/s0/.
    #[arg(long, value_name = "S", default_value = "all")]
    pub severity: Severities,
    /// Run seed; with the dataset name, image key, perturbation and severity it fixes every
    /// random draw (DESIGN §3).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder: manifest.jsonl, failures.jsonl and the images under
    /// <perturbation>/s<severity>/<image key>.png.
    #[arg(long, value_name = "DIR", required_unless_present = "sheet")]
    pub out: Option<PathBuf>,
    /// Also draw a contact sheet (PNG): one sample, a row per perturbation, a column per
    /// severity, boxes drawn.
    #[arg(long, value_name = "FILE")]
    pub sheet: Option<PathBuf>,
    /// The sample to draw on the sheet (default: the first sample id, in sorted order,
    /// that has a box, else the first).
    #[arg(long, value_name = "ID", requires = "sheet")]
    pub sheet_sample: Option<String>,
    /// Height in pixels of each image on the sheet.
    #[arg(long, value_name = "PX", default_value_t = 128, requires = "sheet")]
    pub sheet_thumb: u32,
}

#[derive(Debug, Args)]
pub struct PerturbationsArgs {
    /// Print the registry as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn phantom_takes_set_seed_n_out() {
        let cli = Cli::try_parse_from([
            "medvqa", "phantom", "--set", "cxr", "--seed", "7", "--n", "12", "--out", "x",
        ])
        .unwrap();
        let Command::Phantom(a) = cli.command else {
            panic!("not phantom")
        };
        assert_eq!((a.set, a.seed, a.n), (PhantomSetArg::Cxr, 7, Some(12)));
    }

    #[test]
    fn inspect_rejects_an_unknown_box_frame() {
        let r = Cli::try_parse_from([
            "medvqa",
            "inspect",
            "--dataset",
            "jsonl:x",
            "--dataset-box-frame",
            "auto",
        ]);
        assert!(r.is_err());
    }

    #[test]
    fn perturb_takes_a_name_list_and_severities() {
        let cli = Cli::try_parse_from([
            "medvqa",
            "perturb",
            "--dataset",
            "phantom:cxr",
            "--perturbation",
            "gaussian-noise,rotate",
            "--severity",
            "0,2",
            "--out",
            "x",
        ])
        .unwrap();
        let Command::Perturb(a) = cli.command else {
            panic!("not perturb")
        };
        assert_eq!(a.perturbation, ["gaussian-noise", "rotate"]);
        assert_eq!(a.severity, Severities::List(vec![0, 2]));
        assert_eq!(a.seed, 0);
    }

    #[test]
    fn perturb_needs_an_output_or_a_sheet_and_a_valid_severity() {
        let base = [
            "medvqa",
            "perturb",
            "--dataset",
            "phantom:cxr",
            "--perturbation",
            "jpeg",
        ];
        assert!(Cli::try_parse_from(base).is_err());
        assert!(Cli::try_parse_from(base.iter().chain(&["--sheet", "s.png"])).is_ok());
        assert!(
            Cli::try_parse_from(base.iter().chain(&["--out", "o", "--severity", "6"])).is_err()
        );
    }

    #[test]
    fn quiet_and_threads_are_global() {
        let cli = Cli::try_parse_from(["medvqa", "datasets", "--quiet", "--threads", "2"]).unwrap();
        assert!(cli.quiet);
        assert_eq!(cli.threads, Some(2));
    }
}
