use super::*;
use clap::CommandFactory;

#[test]
fn cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_command_that_loads_a_dataset_takes_the_same_dataset_flags() {
    let cmd = Cli::command();
    let flags = |name: &str| -> std::collections::BTreeSet<String> {
        cmd.find_subcommand(name)
            .unwrap()
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect()
    };
    let dataset: Vec<String> = DatasetArgs::augment_args(clap::Command::new("x"))
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    assert!(dataset.contains(&"filter".to_string()), "{dataset:?}");
    for command in ["inspect", "perturb", "score", "eval"] {
        let have = flags(command);
        let lacking: Vec<&String> = dataset.iter().filter(|f| !have.contains(*f)).collect();
        assert!(lacking.is_empty(), "{command} lacks {lacking:?}");
    }
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
    assert_eq!(
        (a.set.0, a.seed, a.n),
        (vec![crate::data::phantom::PhantomSet::Cxr], 7, Some(12))
    );
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
fn ask_takes_model_options_images_and_a_question() {
    let cli = Cli::try_parse_from([
        "medvqa",
        "ask",
        "--model",
        "m",
        "--image",
        "a.png",
        "--image",
        "b.png",
        "--variant",
        "q4",
        "--device",
        "cuda:1",
        "--kind",
        "single_choice",
        "--option",
        "x",
        "--option",
        "y",
        "--batch-size",
        "2",
        "Which?",
    ])
    .unwrap();
    let Command::Ask(a) = cli.command else {
        panic!("not ask")
    };
    assert_eq!(a.images.len(), 2);
    assert_eq!(a.kind, QuestionKind::SingleChoice);
    assert_eq!(a.options, vec!["x", "y"]);
    let o = a.model.options(Some(3));
    assert_eq!(o.variant.for_graph("decoder_model_merged"), Some("q4"));
    assert_eq!(o.runtime.device, Device::Cuda(1));
    assert_eq!((o.runtime.threads, o.batch_size), (Some(3), 2));
    assert!(
        Cli::try_parse_from(["medvqa", "ask", "--model", "m", "--device", "tpu", "q"]).is_err()
    );
    assert!(
        Cli::try_parse_from(["medvqa", "ask", "--model", "m", "--kind", "essay", "q"]).is_err()
    );
}

#[test]
fn score_box_frame_defaults_to_the_dataset_and_parses_frames() {
    let base = [
        "medvqa",
        "score",
        "--dataset",
        "jsonl:x",
        "--predictions",
        "p",
        "--out",
        "o",
    ];
    let Command::Score(a) = Cli::try_parse_from(base).unwrap().command else {
        panic!("not score")
    };
    assert_eq!(a.box_frame, PredFrameArg::Dataset);
    assert_eq!(a.grounding, crate::score::GroundingScope::GroundingKind);
    for (f, want) in [
        ("grid:1000", PredFrameArg::Frame(BoxFrame::Grid(1000))),
        ("pixels", PredFrameArg::Frame(BoxFrame::Pixels)),
        (
            "pixels:224x224",
            PredFrameArg::Frame(BoxFrame::PixelsOf {
                width: 224,
                height: 224,
            }),
        ),
        ("normalized", PredFrameArg::Frame(BoxFrame::Normalized)),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(["--box-frame", f]).collect();
        let Command::Score(a) = Cli::try_parse_from(args).unwrap().command else {
            panic!("not score")
        };
        assert_eq!(a.box_frame, want);
    }
    let bad: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--box-frame", "auto"])
        .collect();
    assert!(Cli::try_parse_from(bad).is_err());
}

#[test]
fn compare_takes_two_runs() {
    let cli = Cli::try_parse_from(["medvqa", "compare", "a", "b", "--out", "c"]).unwrap();
    let Command::Compare(a) = cli.command else {
        panic!("not compare")
    };
    assert_eq!((a.run_a.to_str(), a.run_b.to_str()), (Some("a"), Some("b")));
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
    assert!(Cli::try_parse_from(base.iter().chain(&["--out", "o", "--severity", "6"])).is_err());
}

#[test]
fn eval_overrides_are_optional_and_lists_split_on_commas() {
    let cli = Cli::try_parse_from([
        "medvqa",
        "eval",
        "--config",
        "c.toml",
        "--perturbation",
        "jpeg,rotate",
        "--shard",
        "1/4",
    ])
    .unwrap();
    let Command::Eval(a) = cli.command else {
        panic!("not eval")
    };
    assert_eq!(
        a.perturbation,
        Some(vec!["jpeg".to_string(), "rotate".to_string()])
    );
    assert_eq!(a.shard.map(|s| s.to_string()).as_deref(), Some("1/4"));
    assert!(a.model.is_none() && a.out.is_none() && !a.report_only);
    assert!(Cli::try_parse_from(["medvqa", "eval"]).is_err());
}

#[test]
fn merge_needs_run_folders() {
    assert!(Cli::try_parse_from(["medvqa", "merge", "--config", "c.toml"]).is_err());
    let cli = Cli::try_parse_from(["medvqa", "merge", "--config", "c.toml", "a", "b"]).unwrap();
    let Command::Merge(a) = cli.command else {
        panic!("not merge")
    };
    assert_eq!(a.runs.len(), 2);
}

#[test]
fn quiet_and_threads_are_global() {
    let cli = Cli::try_parse_from(["medvqa", "datasets", "--quiet", "--threads", "2"]).unwrap();
    assert!(cli.quiet);
    assert_eq!(cli.threads, Some(2));
}
