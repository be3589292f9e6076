use super::*;

const MINIMAL: &str = r#"
[dataset]
spec = "phantom:cxr"
[model]
path = "m"
"#;

#[test]
fn a_minimal_config_takes_documented_defaults() {
    let c = Config::from_toml(MINIMAL).unwrap();
    assert_eq!(c.run.out, PathBuf::from("runs/eval"));
    assert_eq!(c.model.batch_size, 8);
    assert_eq!(c.model.variant.to_string(), "fp32");
    assert_eq!(c.perturb.severities, Severities::All);
    assert!(c.perturb.perturbations.is_empty());
    assert_eq!(c.score.bootstrap, 1000);
}

#[test]
fn unknown_keys_are_errors_that_name_the_key() {
    let err = Config::from_toml(&format!("{MINIMAL}batchsize = 4\n")).unwrap_err();
    assert!(err.contains("batchsize"), "{err}");
    let err = Config::from_toml(&format!("{MINIMAL}[scoring]\nx = 1\n")).unwrap_err();
    assert!(err.contains("scoring"), "{err}");
}

#[test]
fn a_misspelt_key_names_its_line_and_the_closest_key() {
    let text = format!("{MINIMAL}batchsize = 4\n");
    let err = Config::from_toml(&text).unwrap_err();
    let mut lines = err.lines();
    assert_eq!(
        lines.next(),
        Some("6: unknown key batchsize; did you mean batch_size?"),
        "{err}"
    );
    assert!(err.contains("   6 | batchsize = 4"), "{err}");
    assert!(err.contains("keys allowed here: backend, path"), "{err}");
}

#[test]
fn users_spellings_are_accepted() {
    // A byte-order mark, perturbation names in any case with `_` and spaces, and
    // severities as a TOML list.
    let text = format!(
        "\u{feff}{MINIMAL}[perturb]\nperturbations = [\" Gaussian_Noise\", \"CXR-grid\"]\nseverities = [1, 3, 5]\n"
    );
    let c = Config::from_toml(&text).unwrap();
    assert_eq!(c.perturb.perturbations, ["gaussian-noise", "cxr-grid"]);
    assert_eq!(c.perturb.severities, Severities::List(vec![1, 3, 5]));
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("configs");
    std::fs::create_dir(&sub).unwrap();
    let file = sub.join("c.toml");
    std::fs::write(
        &file,
        "[run]\nout = \"../runs/x\"\n[dataset]\nspec = \"jsonl:data/m.jsonl\"\n\
         image_root = \"/abs/images\"\n[model]\npath = \"../models/m\"\n",
    )
    .unwrap();
    let c = Config::from_file(&file).unwrap();
    assert_eq!(c.run.out, dir.path().join("runs/x"));
    assert_eq!(
        c.dataset.spec,
        format!("jsonl:{}", sub.join("data/m.jsonl").display())
    );
    assert_eq!(c.dataset.image_root, Some(PathBuf::from("/abs/images")));
    assert_eq!(c.model.path, dir.path().join("models/m"));
    // A generated set's name is not a path.
    std::fs::write(
        &file,
        "[dataset]\nspec = \"phantom:all\"\n[model]\npath = \"m\"\n",
    )
    .unwrap();
    assert_eq!(
        Config::from_file(&file).unwrap().dataset.spec,
        "phantom:all"
    );
}

#[test]
fn the_resolved_config_reads_back_from_its_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::minimal("jsonl:data/m.jsonl", Path::new("models/m")).unwrap();
    c.run.out = dir.path().join("runs/a");
    c.model.path = dir.path().join("models/m");
    c.dataset.spec = format!("jsonl:{}", dir.path().join("data/m.jsonl").display());
    std::fs::create_dir_all(&c.run.out).unwrap();
    c.write_resolved(&c.run.out).unwrap();
    // Absolute paths stay absolute.
    let back = Config::from_file(&c.run.out.join("config.resolved.toml")).unwrap();
    assert_eq!(back, c);
    // A path relative to the current directory is written relative to the run folder
    // and reads back as the same place.
    let cwd = std::env::current_dir().unwrap();
    c.model.path = PathBuf::from("models/m");
    c.write_resolved(&c.run.out).unwrap();
    let text = std::fs::read_to_string(c.run.out.join("config.resolved.toml")).unwrap();
    assert!(text.contains("path = \"../"), "{text}");
    let back = Config::from_file(&c.run.out.join("config.resolved.toml")).unwrap();
    assert_eq!(back.model.path, cwd.join("models/m"));
}

#[test]
fn paths_normalise_lexically_and_relate() {
    assert_eq!(
        normalize(Path::new("configs/../assets/./m")),
        PathBuf::from("assets/m")
    );
    assert_eq!(normalize(Path::new("../a")), PathBuf::from("../a"));
    assert_eq!(normalize(Path::new("a/..")), PathBuf::from("."));
    assert_eq!(
        relative_to(Path::new("assets/m"), Path::new("runs/x")),
        PathBuf::from("../../assets/m")
    );
    assert_eq!(
        relative_to(Path::new("runs/x"), Path::new("runs/x")),
        PathBuf::from(".")
    );
    assert_eq!(
        relative_to(Path::new("/data/m"), Path::new("/data/runs")),
        PathBuf::from("../m")
    );
}

#[test]
fn bad_values_are_errors_at_their_line_before_a_run_starts() {
    for (extra, needle) in [
        ("[run]\nshard = \"3/2\"\n", "3/2"),
        ("[perturb]\nseverities = \"1..9\"\n", "1..9"),
        ("device = \"tpu\"\n", "tpu"),
        ("variant = \"q4!\"\n", "q4!"),
        ("[score]\ngrounding = \"boxes\"\n", "boxes"),
        ("[score]\ncluster = \"video\"\n", "meta.KEY"),
        (
            "[perturb]\nperturbations = [\"gausian-noise\"]\n",
            "did you mean gaussian-noise?",
        ),
    ] {
        let err = Config::from_toml(&format!("{MINIMAL}{extra}")).unwrap_err();
        assert!(err.contains(needle), "{extra}: {err}");
    }
    let ok = Config::from_toml(&format!(
        "{MINIMAL}device = \"cuda:1\"\n[run]\nshard = \"1/4\"\n[score]\ngrounding = \"grounding-kind\"\ncluster = \"meta.video_id\"\n"
    ))
    .unwrap();
    assert_eq!(
        ok.score.cluster,
        Some(crate::score::ClusterRule::Meta("video_id".into()))
    );
    assert_eq!(ok.model.device, Device::Cuda(1));
    assert_eq!(ok.run.shard.map(|s| s.to_string()).as_deref(), Some("1/4"));
}

#[test]
fn box_frames_are_validated() {
    let bad = format!("{MINIMAL}box_frame = \"auto\"\n");
    assert!(Config::from_toml(&bad).unwrap_err().contains("auto"));
}

#[test]
fn the_resolved_config_reads_back_equal() {
    let mut c = Config::from_toml(MINIMAL).unwrap();
    c.model.box_frame = Some(BoxFrame::Grid(1000));
    c.perturb.perturbations = vec!["modality-default".into()];
    let back = Config::from_toml(&c.to_toml().unwrap()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn every_shipped_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let c = Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            c.validate()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(
        n >= 4,
        "expected default + three benchmark configs, found {n}"
    );
}

const SERVED: &str = "[dataset]\nspec = \"phantom:all\"\n[model]\nbackend = \"openai\"\nurl = \"http://localhost:8000/v1\"\nmodel = \"Qwen/Qwen2.5-VL-7B-Instruct\"\nbox_frame = \"qwen2.5-vl:min_pixels=3136,max_pixels=12845056,factor=28\"\n";

#[test]
fn a_served_model_reads_its_settings_and_defaults() {
    let c = Config::from_toml(&format!(
        "{SERVED}api_key_env = \"OPENAI_API_KEY\"\nmax_concurrency = 16\ntimeout_s = 30\nmax_retries = 2\nmax_tokens = 64\nseed = 5\nprice_prompt_per_mtok = 2.5\nprice_completion_per_mtok = 10\n"
    ))
    .unwrap();
    c.validate().unwrap();
    let s = c.model.served_settings().unwrap();
    assert_eq!(s.endpoint(), "http://localhost:8000/v1/chat/completions");
    assert_eq!(s.max_concurrency, 16);
    assert_eq!(s.retry.timeout, std::time::Duration::from_secs(30));
    assert_eq!(s.retry.max_retries, 2);
    assert_eq!(s.max_tokens, Some(64));
    assert_eq!(s.temperature, 0.0);
    assert_eq!(s.seed, Some(5));
    assert_eq!(s.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
    assert_eq!(s.prices.unwrap().completion_per_mtok, 10.0);
    assert_eq!(s.image_format, crate::infer::served::ImageFormat::Png);
    // `max_tokens` is read as max_new_tokens and written back under that name.
    let back = Config::from_toml(&c.to_toml().unwrap()).unwrap();
    assert_eq!(back, c);
    assert!(!c.to_toml().unwrap().contains("path ="));
}

#[test]
fn served_and_onnx_settings_do_not_mix() {
    let err = |text: String| {
        Config::from_toml(&text)
            .and_then(|c| c.validate().map(|()| c))
            .unwrap_err()
    };
    // An ONNX config with a served key, and the reverse.
    assert!(err(format!("{MINIMAL}url = \"http://x/v1\"\n")).contains("backend = \"openai\""));
    assert!(err(format!("{SERVED}path = \"m\"\n")).contains("model.path applies to ONNX"));
    assert!(err(format!("{SERVED}sessions = 2\n")).contains("model.sessions"));
    // What a served model must state.
    let no_frame = SERVED.replace(
        "box_frame = \"qwen2.5-vl:min_pixels=3136,max_pixels=12845056,factor=28\"\n",
        "",
    );
    assert!(err(no_frame).contains("never guessed"));
    assert!(
        err(SERVED.replace("url = \"http://localhost:8000/v1\"\n", ""))
            .contains("model.url is missing")
    );
    assert!(
        err(SERVED.replace("model = \"Qwen/Qwen2.5-VL-7B-Instruct\"\n", ""))
            .contains("model.model is missing")
    );
    assert!(err(format!("{SERVED}max_side = 512\n")).contains("max_side"));
    assert!(err(format!("{SERVED}max_concurrency = 0\n")).contains("at least 1"));
    assert!(err(format!("{SERVED}jpeg_quality = 80\n")).contains("image_format = \"jpeg\""));
    assert!(err(format!("{SERVED}timeout_s = -1\n")).contains("timeout_s"));
    assert!(err(format!("{SERVED}image_format = \"gif\"\n")).contains("gif"));
    // An ONNX config without a folder.
    assert!(
        err("[dataset]\nspec = \"phantom:all\"\n[model]\n".into())
            .contains("model.path is missing")
    );
}

#[test]
fn the_benchmark_configs_ask_their_papers_prompts() {
    use crate::infer::prompt::{ImagesAt, sample_text_with};
    use crate::sample::{Sample, Task};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mfq = Config::from_file(&dir.join("medframeqa.toml")).unwrap();
    let p = mfq.prompt.settings();
    assert!(
        p.system
            .as_deref()
            .unwrap()
            .starts_with("Answer the following multiple-choice question. Images are provided.")
    );
    assert!(
        p.system
            .as_deref()
            .unwrap()
            .ends_with("Think step by step before answering.\"\n")
    );
    assert_eq!(p.images, ImagesAt::Last);
    let s = Sample {
        id: "q".into(),
        images: Vec::new(),
        question: "Which is seen in the first image?".into(),
        task: Task::SingleChoice {
            options: vec!["Stent".into(), "Clot".into()],
            answer: 0,
        },
        boxes: Vec::new(),
        meta: Default::default(),
    };
    assert_eq!(
        sample_text_with(&s, BoxFrame::Normalized, &p),
        "Question:Which is seen in the first image? \n\nOptions:\n['A. Stent', 'B. Clot']\n"
    );
    let kv = Config::from_file(&dir.join("kvasir-vqa-x1.toml")).unwrap();
    let p = kv.prompt.settings();
    assert!(
        p.system
            .as_deref()
            .unwrap()
            .starts_with("You are a medical vision-language assistant;")
    );
    let open = Sample {
        question: "Is there a polyp and where?".into(),
        task: Task::Open { answer: "x".into() },
        ..s
    };
    assert_eq!(
        sample_text_with(&open, BoxFrame::Normalized, &p),
        "Is there a polyp and where?"
    );
    // The resolved config keeps the prompt verbatim.
    let back = Config::from_toml(&mfq.to_toml().unwrap()).unwrap();
    assert_eq!(back.prompt, mfq.prompt);
}

#[test]
fn the_image_cache_budget_is_read_and_split() {
    let c = Config::from_toml(&format!("{MINIMAL}[run]\nimage_cache_mib = 64\n")).unwrap();
    assert_eq!(c.run.image_cache_mib, Some(64));
    assert_eq!(
        Config::from_toml(MINIMAL).unwrap().run.image_cache_mib,
        None
    );
}
