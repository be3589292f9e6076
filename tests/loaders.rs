//! The dataset loaders on the real samples in `../shared/data`, read in place, and on bad
//! input generated here (parquet written with the arrow writer into temp folders).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields};
use image::{GrayImage, Luma, RgbImage};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use medvqa::data::decode::{DEFAULT_MAX_PIXELS, ImageStore};
use medvqa::data::{self, Counts, Dataset, LoadOptions};
use medvqa::failure::Stage;
use medvqa::geometry::BBox;
use medvqa::pixels::Pixels;
use medvqa::progress::Progress;
use medvqa::sample::{MetaValue, QuestionKind, Sample, Task};

fn load(spec: &str) -> Dataset {
    data::load(spec, &LoadOptions::default()).unwrap()
}

fn load_with(spec: &str, opts: LoadOptions) -> Dataset {
    data::load(spec, &opts).unwrap()
}

fn root_opts(root: &Path) -> LoadOptions {
    LoadOptions {
        image_root: Some(root.to_path_buf()),
        ..LoadOptions::default()
    }
}

fn by_id(ds: &Dataset) -> BTreeMap<&str, &Sample> {
    ds.samples.iter().map(|s| (s.id.as_str(), s)).collect()
}

fn decode_all(ds: &mut Dataset) -> ImageStore {
    let store = ImageStore::new(DEFAULT_MAX_PIXELS, 256 << 20);
    ds.validate_images(&store, &Progress::new(0, "decode", true));
    store
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn assert_box(b: &BBox, px: [f64; 4], w: f64, h: f64) {
    let want = [px[0] / w, px[1] / h, px[2] / w, px[3] / h];
    let got = b.to_array();
    assert!(
        got.iter().zip(want).all(|(g, w)| close(*g, w)),
        "box {got:?} != {want:?}"
    );
}

fn jpeg(w: u32, h: u32, v: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::DynamicImage::ImageLuma8(GrayImage::from_pixel(w, h, Luma([v])))
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .unwrap();
    out
}

fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([seed, (x * 7 % 256) as u8, (y * 13 % 256) as u8])
    });
    Pixels::Rgb(img).encode_png().unwrap()
}

fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// -----------------------------------------------------------------------------------------
// MedFrameQA

#[test]
fn medframeqa_items_have_2_to_5_frames_in_their_column_order() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let file = d.join("medframeqa/test-00000-of-00001.parquet");
    let mut ds = load(&format!("medframeqa:{}", file.display()));
    assert!(ds.failures.is_empty(), "{:?}", ds.failures);
    let ids: Vec<&str> = ds.samples.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "paper_example_1",
            "paper_example_2",
            "paper_example_3",
            "paper_example_4"
        ]
    );
    let frames: Vec<usize> = ds.samples.iter().map(|s| s.images.len()).collect();
    assert_eq!(frames, [2, 3, 4, 5]);

    // Against the transcription the parquet was made from.
    let truth: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(d.join("medframeqa/questions.json")).unwrap(),
    )
    .unwrap();
    for (s, t) in ds.samples.iter().zip(&truth) {
        assert_eq!(s.question, t["question"].as_str().unwrap());
        let Task::SingleChoice { options, answer } = &s.task else {
            panic!("{} is not single choice", s.id)
        };
        let want: Vec<&str> = t["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(options, &want);
        let letter = t["correct_answer"]
            .as_str()
            .unwrap()
            .chars()
            .next()
            .unwrap();
        assert_eq!(*answer, (letter as u8 - b'A') as usize);
        for key in ["system", "organ", "modality", "video_id", "reasoning_chain"] {
            assert_eq!(
                s.meta.get(key),
                Some(&MetaValue::Str(t[key].as_str().unwrap().to_string())),
                "{} {key}",
                s.id
            );
        }
    }
    assert_eq!(
        ds.samples
            .iter()
            .map(|s| s.task.answer_text().unwrap())
            .collect::<Vec<_>>(),
        ["A", "A", "C", "A"]
    );

    // Each frame, decoded from the embedded bytes, is exactly the cropped frame file of
    // the same position: order is kept.
    let store = decode_all(&mut ds);
    assert!(ds.failures.is_empty(), "{:?}", ds.failures);
    assert_eq!(store.decode_count(), 14);
    for (n, s) in ds.samples.iter().enumerate() {
        for (k, img) in s.images.iter().enumerate() {
            let got = store.get(img).unwrap();
            let path = d.join(format!("medframeqa/frames/ex{}_frame{}.png", n + 1, k + 1));
            let want = data::decode::decode_bytes(
                &std::fs::read(&path).unwrap(),
                "want",
                DEFAULT_MAX_PIXELS,
            )
            .unwrap();
            assert_eq!(got.dimensions(), want.dimensions(), "{}", path.display());
            assert!(*got == want, "{} frame {k} differs", s.id);
            assert_eq!(img.key, format!("{}/image_{}", s.id, k + 1));
        }
    }
}

#[test]
fn medframeqa_export_writes_the_embedded_frames_and_loads_back() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let file = d.join("medframeqa/test-00000-of-00001.parquet");
    let ds = load(&format!("medframeqa:{}", file.display()));
    let out = tempfile::tempdir().unwrap();
    let manifest = out.path().join("m.jsonl");
    data::manifest::write(&manifest, &ds.name, &ds.samples, "m_images").unwrap();
    let mut back = load(&format!("jsonl:{}", manifest.display()));
    assert!(back.failures.is_empty(), "{:?}", back.failures);
    assert_eq!(
        back.samples
            .iter()
            .map(|s| s.images.len())
            .collect::<Vec<_>>(),
        [2, 3, 4, 5]
    );
    assert!(
        out.path()
            .join("m_images/paper_example_4/image_5.png")
            .is_file()
    );
    decode_all(&mut back);
    assert!(back.failures.is_empty(), "{:?}", back.failures);
}

// -----------------------------------------------------------------------------------------
// GEMeX

/// A root holding a placeholder JPEG at every `image_path` of the real GEMeX rows.
fn gemex_image_root(d: &Path) -> (tempfile::TempDir, BTreeSet<String>) {
    let root = tempfile::tempdir().unwrap();
    let mut paths = BTreeSet::new();
    for (f, _) in data::gemex::FILES {
        for row in read_jsonl(&d.join(format!("gemex/{f}_question.jsonl"))) {
            paths.insert(row["image_path"].as_str().unwrap().to_string());
        }
    }
    for p in &paths {
        let dest = root.path().join(p);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, jpeg(64, 64, 90)).unwrap();
    }
    (root, paths)
}

#[test]
fn gemex_80_rows_give_160_samples_with_boxes_on_the_224_frame() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let (root, paths) = gemex_image_root(&d);
    assert_eq!(paths.len(), 11);
    let mut ds = load_with(
        &format!("gemex:{}", d.join("gemex").display()),
        root_opts(root.path()),
    );
    assert!(ds.failures.is_empty(), "{:?}", ds.failures);
    assert_eq!(ds.samples.len(), 160);
    let c = Counts::of(&ds);
    let kinds: Vec<(&str, usize)> = c.by_kind.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        kinds,
        [
            ("closed", 20),
            ("grounding", 80),
            ("multi_choice", 20),
            ("open", 20),
            ("single_choice", 20)
        ]
    );
    assert_eq!(c.images, 11);
    assert_eq!(ds.source_frame.to_string(), "pixels:224x224");
    // `inspect` lists the meta keys (what --filter and --by can use) with their counts.
    assert!(
        c.meta_keys.get("modality").is_some_and(|&n| n > 0),
        "{:?}",
        c.meta_keys
    );

    // Every row: the question and its grounding item carry the row's boxes, mapped from the
    // 224x224 frame, labelled with the row's regions.
    let ids = by_id(&ds);
    let mut n_boxes = 0;
    for (f, kind) in data::gemex::FILES {
        for row in read_jsonl(&d.join(format!("gemex/{f}_question.jsonl"))) {
            let id = format!(
                "{f}/{}/{}",
                row["row_id"].as_str().unwrap(),
                row["q_id"].as_i64().unwrap()
            );
            let q = ids[id.as_str()];
            let g = ids[format!("{id}#grounding").as_str()];
            assert_eq!(q.kind(), kind);
            assert_eq!(g.kind(), QuestionKind::Grounding);
            assert_eq!(q.question, row["question"].as_str().unwrap());
            assert_eq!(q.images[0].key, row["image_path"].as_str().unwrap());
            let locs = row["visual_locations"].as_array().unwrap();
            let regions = row["visual_regions"].as_array().unwrap();
            for s in [q, g] {
                assert_eq!(s.boxes.len(), locs.len(), "{}", s.id);
                for ((b, l), r) in s.boxes.iter().zip(locs).zip(regions) {
                    let px: Vec<f64> = l
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                        .collect();
                    assert_box(&b.bbox, [px[0], px[1], px[2], px[3]], 224.0, 224.0);
                    assert_eq!(b.label.as_deref(), r.as_str());
                    assert_eq!(b.image, 0);
                }
            }
            n_boxes += locs.len();
            assert_eq!(
                q.meta.get("type"),
                Some(&MetaValue::Str(row["type"].as_str().unwrap().into()))
            );
        }
    }
    assert_eq!(c.boxes, 2 * n_boxes);

    // Values of single rows, one per kind.
    let closed = ids["closed_ended/row_0/0"];
    assert_eq!(closed.task, Task::Closed { answer: false });
    assert_box(
        &closed.boxes[0].bbox,
        [43.0, 35.0, 212.0, 156.0],
        224.0,
        224.0,
    );
    assert_eq!(
        ids["closed_ended/row_1/1"].task,
        Task::Closed { answer: true }
    );
    assert_eq!(
        ids["single_choice/row_0/1"].task,
        Task::SingleChoice {
            options: vec![
                "Left lung".into(),
                "Right hemidiaphragm".into(),
                "Right upper lung zone".into(),
                "Cardiac region".into()
            ],
            answer: 1
        }
    );
    let multi = ids["multi_choice/row_0/1"];
    assert_eq!(
        multi.task,
        Task::MultiChoice {
            options: vec![
                "Right lung".into(),
                "Cardiac region".into(),
                "Left lung".into(),
                "Bilateral lung".into()
            ],
            answer: vec![0, 1]
        }
    );
    assert_eq!(
        ids["multi_choice/row_0/1#grounding"].question,
        "Locate the right lung and the cardiac region in this chest X-ray."
    );
    assert_eq!(
        ids["open_ended/row_0/0"].task,
        Task::Open {
            answer: "Restrictive lung disease.".into()
        }
    );

    // One decode per distinct image, however many questions share it.
    let store = decode_all(&mut ds);
    assert!(ds.failures.is_empty());
    assert_eq!(store.decode_count(), 11);
}

#[test]
fn gemex_without_the_mimic_images_fails_each_row_with_the_fix() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let ds = load(&format!("gemex:{}", d.join("gemex").display()));
    assert!(ds.samples.is_empty());
    assert_eq!(ds.failures.len(), 80);
    let f = &ds.failures[0];
    assert_eq!(f.stage, Stage::Decode);
    assert_eq!(f.location.as_deref(), Some("open_ended_question.jsonl:1"));
    assert_eq!(f.id.as_deref(), Some("open_ended/row_0/0"));
    assert!(f.reason.contains("pass --image-root"), "{}", f.reason);
    let last = ds.failures.last().unwrap();
    assert_eq!(
        last.location.as_deref(),
        Some("multi_choice_question.jsonl:20")
    );
}

#[test]
fn gemex_frame_can_be_overridden_and_one_file_loads_alone() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let (root, _) = gemex_image_root(&d);
    let ds = load_with(
        &format!(
            "gemex:{}",
            d.join("gemex/closed_ended_question.jsonl").display()
        ),
        LoadOptions {
            image_root: Some(root.path().to_path_buf()),
            box_frame: Some("pixels:448x448".parse().unwrap()),
            ..LoadOptions::default()
        },
    );
    assert_eq!(ds.samples.len(), 40);
    let s = by_id(&ds)["closed_ended/row_0/0"];
    assert_box(&s.boxes[0].bbox, [43.0, 35.0, 212.0, 156.0], 448.0, 448.0);
}

#[test]
fn gemex_bad_rows_fail_alone_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("img.jpg"), jpeg(8, 8, 1)).unwrap();
    let good = r#"{"question": "Is it?", "type": "disease", "answer": "Yes.", "reason": "r", "visual_regions": ["left lung"], "visual_locations": [[0, 0, 230, 112]], "image_path": "img.jpg", "q_id": 0, "row_id": "row_0"}"#;
    let q = |n: u32| format!("\"q_id\": {n}");
    let lines = [
        good.to_string(),
        good.replace("\"Is it?\"", "null").replace(&q(0), &q(1)),
        good.replace("\"Yes.\"", "\"Maybe.\"").replace(&q(0), &q(2)),
        good.replace("[[0, 0, 230, 112]]", "[[50, 0, 10, 112]]")
            .replace(&q(0), &q(3)),
        good.replace("[\"left lung\"]", "[\"left lung\", \"right lung\"]")
            .replace(&q(0), &q(4)),
        good.replace(&q(0), &q(5)),
        good.to_string(),
        // Far past the 224 frame: a box in another frame, refused rather than clamped.
        good.replace("[[0, 0, 230, 112]]", "[[0, 0, 448, 224]]")
            .replace(&q(0), &q(6)),
    ];
    let file = dir.path().join("closed_ended_question.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let ds = load(&format!("gemex:{}", file.display()));
    let ids: Vec<&str> = ds.samples.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "closed_ended/row_0/0",
            "closed_ended/row_0/0#grounding",
            "closed_ended/row_0/5",
            "closed_ended/row_0/5#grounding"
        ]
    );
    // A few pixels past the frame are clamped: x2 = 230 on a 224 frame is the right edge.
    assert_eq!(ds.samples[0].boxes[0].bbox.to_array(), [0.0, 0.0, 1.0, 0.5]);
    let got = failures_at(&ds);
    let want = [
        (
            "closed_ended_question.jsonl:2",
            "column `question` is null, expected a string",
        ),
        (
            "closed_ended_question.jsonl:3",
            "answer \"Maybe.\" is not valid for a closed question: expected \"Yes.\" or \"No.\"",
        ),
        (
            "closed_ended_question.jsonl:4",
            "visual_locations[0]: box [0.22321428571428573, 0.0, 0.044642857142857144, 0.5] has x2 < x1 or y2 < y1",
        ),
        (
            "closed_ended_question.jsonl:5",
            "2 visual_regions for 1 visual_locations; they pair up one to one",
        ),
        (
            "closed_ended_question.jsonl:7",
            "duplicate id \"closed_ended/row_0/0\" (first seen on line 1)",
        ),
        (
            "closed_ended_question.jsonl:8",
            "visual_locations[0]: box [0.0, 0.0, 448.0, 224.0] lies outside the declared pixels:224x224 frame (by more than 5% of the image): the boxes look written in another frame; declare theirs (box_frame in a manifest's header, --dataset-box-frame)",
        ),
    ];
    assert_eq!(got, want.map(|(l, r)| (l.to_string(), r.to_string())));
    assert_eq!(ds.failures[3].id.as_deref(), Some("closed_ended/row_0/4"));
}

// -----------------------------------------------------------------------------------------
// Kvasir-VQA-x1

const KVASIR_IDS: [&str; 6] = [
    "clb0kvxwr92ng074yc6jndr8l",
    "clb0kvxuv8zrw074y9iwrgb8n",
    "clb0lbx1hdqfg086ucm8x0vso",
    "clb0kvxw891s0074y52u3c3i9",
    "clb0lbwz9dowg086ufyyzgc9v",
    "clb0lbwybdnys086udgmag3y4",
];

/// A copy of the Kvasir-VQA-x1 sample files plus an `images/` folder made from the
/// Kvasir-SEG images, one per `img_id`.
fn kvasir_with_images(d: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["test-00000-of-00001.parquet", "sample_eval_rows.jsonl"] {
        std::fs::copy(d.join("kvasir_vqa_x1").join(f), dir.path().join(f)).unwrap();
    }
    let mut seg: Vec<PathBuf> = std::fs::read_dir(d.join("kvasir_seg/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    seg.sort();
    std::fs::create_dir(dir.path().join("images")).unwrap();
    for (i, id) in KVASIR_IDS.iter().enumerate() {
        std::fs::copy(
            &seg[i % seg.len()],
            dir.path().join(format!("images/{id}.jpg")),
        )
        .unwrap();
    }
    dir
}

#[test]
fn kvasir_vqa_x1_rows_load_with_images_built_from_kvasir_seg() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let dir = kvasir_with_images(&d);
    let truth = read_jsonl(&d.join("kvasir_vqa_x1/sample_eval_rows.jsonl"));
    let mut ids_by_form = Vec::new();
    for f in ["test-00000-of-00001.parquet", "sample_eval_rows.jsonl"] {
        let mut ds = load(&format!("kvasir-vqa-x1:{}", dir.path().join(f).display()));
        assert!(ds.failures.is_empty(), "{f}: {:?}", ds.failures);
        assert_eq!(ds.samples.len(), 6);
        // The id scheme as documented in `medvqa datasets`.
        assert_eq!(ds.samples[0].id, "clb0kvxwr92ng074yc6jndr8l/29587eea85e9");
        for (s, t) in ds.samples.iter().zip(&truth) {
            let img_id = t["img_id"].as_str().unwrap();
            assert!(s.id.starts_with(&format!("{img_id}/")), "{}", s.id);
            assert_eq!(s.id.len(), img_id.len() + 13);
            assert_eq!(s.question, t["question"].as_str().unwrap());
            assert_eq!(
                s.task,
                Task::Open {
                    answer: t["answer"].as_str().unwrap().into()
                }
            );
            assert_eq!(s.images[0].key, format!("images/{img_id}.jpg"));
            assert_eq!(
                s.meta.get("complexity"),
                Some(&MetaValue::Int(t["complexity"].as_i64().unwrap()))
            );
            let classes: Vec<String> = t["question_class"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            assert_eq!(
                s.meta.get("question_class"),
                Some(&MetaValue::List(classes))
            );
            assert_eq!(
                s.meta.get("original"),
                Some(&MetaValue::Str(t["original"].as_str().unwrap().into()))
            );
            assert_eq!(s.modality(), "endoscopy");
        }
        let store = decode_all(&mut ds);
        assert!(ds.failures.is_empty(), "{:?}", ds.failures);
        assert_eq!(store.decode_count(), 6);
        ids_by_form.push(ds.samples.iter().map(|s| s.id.clone()).collect::<Vec<_>>());
    }
    // Parquet and JSONL copies of one row join on one id.
    assert_eq!(ids_by_form[0], ids_by_form[1]);
    let c = Counts::of(&load(&format!(
        "kvasir-vqa-x1:{}",
        dir.path().join("sample_eval_rows.jsonl").display()
    )));
    assert_eq!(c.by_kind.get("open"), Some(&6));
}

#[test]
fn kvasir_vqa_x1_reads_the_ms_swift_form_with_the_same_ids() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let dir = kvasir_with_images(&d);
    let rows = read_jsonl(&d.join("kvasir_vqa_x1/sample_eval_rows.jsonl"));
    let abs_images = dir.path().canonicalize().unwrap().join("images");
    let swift: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let img = format!("{}.jpg", r["img_id"].as_str().unwrap());
            // The Kvasir scripts write absolute paths; relative ones are common too.
            let path = if i % 2 == 0 {
                abs_images.join(&img).display().to_string()
            } else {
                format!("images/{img}")
            };
            serde_json::json!({
                "messages": [
                    {"role": "user", "content": format!("<image>{}", r["question"].as_str().unwrap())},
                    {"role": "assistant", "content": r["answer"]}
                ],
                "images": [path]
            })
            .to_string()
        })
        .collect();
    let file = dir.path().join("1_transform_to_vqa_format_test.jsonl");
    std::fs::write(&file, swift.join("\n")).unwrap();
    let ds = load(&format!("kvasir-vqa-x1:{}", file.display()));
    assert!(ds.failures.is_empty(), "{:?}", ds.failures);
    let hf = load(&format!(
        "kvasir-vqa-x1:{}",
        dir.path().join("test-00000-of-00001.parquet").display()
    ));
    let a: Vec<(&str, &str)> = ds
        .samples
        .iter()
        .map(|s| (s.id.as_str(), s.images[0].key.as_str()))
        .collect();
    let b: Vec<(&str, &str)> = hf
        .samples
        .iter()
        .map(|s| (s.id.as_str(), s.images[0].key.as_str()))
        .collect();
    assert_eq!(a, b);
}

#[test]
fn kvasir_vqa_x1_in_place_fails_each_row_for_its_missing_image() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let ds = load(&format!(
        "kvasir-vqa-x1:{}",
        d.join("kvasir_vqa_x1/test-00000-of-00001.parquet")
            .display()
    ));
    assert!(ds.samples.is_empty());
    assert_eq!(ds.failures.len(), 6);
    for (i, f) in ds.failures.iter().enumerate() {
        assert_eq!(
            f.location.as_deref(),
            Some(format!("test-00000-of-00001.parquet#row {i}").as_str())
        );
        assert!(f.id.as_deref().unwrap().starts_with(KVASIR_IDS[i]));
        assert!(f.reason.contains("--image-root"), "{}", f.reason);
    }
}

// -----------------------------------------------------------------------------------------
// Box imports

#[test]
fn tbx11k_coco_gives_3_boxes_on_2_images_and_no_questions_for_the_healthy_one() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let json = d.join("chest_xray/tbx11k/annotations/json/TBX11K_train.json");
    let mut ds = load(&format!("coco:{}", json.display()));
    assert!(ds.failures.is_empty(), "{:?}", ds.failures);
    let locate: Vec<&Sample> = ds
        .samples
        .iter()
        .filter(|s| s.kind() == QuestionKind::Grounding)
        .collect();
    let boxes: usize = locate.iter().map(|s| s.boxes.len()).sum();
    let images: BTreeSet<&str> = locate.iter().map(|s| s.images[0].key.as_str()).collect();
    assert_eq!(boxes, 3);
    assert_eq!(
        images.into_iter().collect::<Vec<_>>(),
        ["tb/tb0005.png", "tb/tb0007.png"]
    );

    let ids = by_id(&ds);
    let tb5 = ids["tb/tb0005.png/locate/ActiveTuberculosis"];
    assert_eq!(
        tb5.question,
        "Locate the active tuberculosis in this image."
    );
    assert_box(
        &tb5.boxes[0].bbox,
        [
            381.8337097167969,
            126.8733901977539,
            381.8337097167969 + 40.236907958984375,
            126.8733901977539 + 44.565773010253906,
        ],
        512.0,
        512.0,
    );
    assert_eq!(
        ids["tb/tb0007.png/locate/ObsoletePulmonaryTuberculosis"]
            .boxes
            .len(),
        2
    );
    assert_eq!(
        ids["tb/tb0005.png/present/ActiveTuberculosis"].task,
        Task::Closed { answer: true }
    );
    // The healthy image: "no" for each of the 3 categories, nothing else.
    let healthy: Vec<&Sample> = ds
        .samples
        .iter()
        .filter(|s| s.images[0].key == "health/h0001.png")
        .collect();
    assert_eq!(healthy.len(), 3);
    assert!(
        healthy
            .iter()
            .all(|s| s.task == Task::Closed { answer: false } && s.boxes.is_empty())
    );
    assert_eq!(
        healthy[0].question,
        "Is there any active tuberculosis in this image?"
    );
    assert_eq!(ds.samples.len(), 7);
    let store = decode_all(&mut ds);
    assert!(ds.failures.is_empty());
    assert_eq!(store.decode_count(), 3);
}

#[test]
fn kvasir_seg_boxes_lie_within_their_masks() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let root = d.join("kvasir_seg");
    let mut ds = load(&format!(
        "kvasir-seg:{}",
        root.join("kavsir_bboxes.subset.json").display()
    ));
    assert!(ds.failures.is_empty(), "{:?}", ds.failures);
    assert_eq!(ds.samples.len(), 10);
    let store = decode_all(&mut ds);
    assert!(ds.failures.is_empty(), "{:?}", ds.failures);
    let mut checked = 0;
    for s in ds
        .samples
        .iter()
        .filter(|s| s.kind() == QuestionKind::Grounding)
    {
        let img = store.get(&s.images[0]).unwrap();
        let (w, h) = img.dimensions();
        let name = s.id.split('/').next().unwrap();
        let mask = image::open(root.join(format!("masks/{name}.jpg")))
            .unwrap()
            .to_luma8();
        assert_eq!(mask.dimensions(), (w, h), "{name}");
        let on = |x: u32, y: u32| mask.get_pixel(x, y).0[0] > 127;
        let mut covered = vec![false; (w * h) as usize];
        for b in &s.boxes {
            let [x1, y1, x2, y2] = b.bbox.to_pixels(w, h).map(|v| v.round() as u32);
            let (mut mx1, mut my1, mut mx2, mut my2) = (u32::MAX, u32::MAX, 0, 0);
            let mut inside = 0u64;
            for y in y1..(y2 + 1).min(h) {
                for x in x1..(x2 + 1).min(w) {
                    covered[(y * w + x) as usize] = true;
                    if on(x, y) {
                        inside += 1;
                        (mx1, my1, mx2, my2) = (mx1.min(x), my1.min(y), mx2.max(x), my2.max(y));
                    }
                }
            }
            let area = ((x2.min(w - 1) - x1 + 1) * (y2.min(h - 1) - y1 + 1)) as f64;
            // The polyp fills the box and the box is tight around it, to JPEG noise.
            assert!(
                inside as f64 / area > 0.4,
                "{name}: box {:?} mostly empty",
                b.bbox
            );
            for (got, want) in [
                (mx1, x1),
                (my1, y1),
                (mx2, x2.min(w - 1)),
                (my2, y2.min(h - 1)),
            ] {
                assert!(
                    got.abs_diff(want) <= 2,
                    "{name}: mask edge {got} vs box {want}"
                );
            }
            checked += 1;
        }
        let outside = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| on(x, y) && !covered[(y * w + x) as usize])
            .count();
        assert!(
            outside <= 2,
            "{name}: {outside} mask pixels outside every box"
        );
    }
    assert_eq!(checked, 7);
    let ids = by_id(&ds);
    assert_box(
        &ids["cju0qkwl35piu0993l0dewei2/locate/polyp"].boxes[0].bbox,
        [38.0, 5.0, 430.0, 338.0],
        622.0,
        529.0,
    );
}

/// The first `n` data lines of a CSV, with its header, written to `dir/name`.
fn csv_head(src: &str, n: usize, dest: &Path) -> Vec<Vec<String>> {
    let lines: Vec<&str> = src.lines().take(n + 1).collect();
    std::fs::write(dest, lines.join("\n")).unwrap();
    lines[1..]
        .iter()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn nih_bbox_list_imports_boxes_on_the_1024_frame() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let real = d.join("chest_xray/annotations_only/BBox_List_2017.csv");
    // In place there are no images: one failure per image, no question.
    let ds = load(&format!("nih-bbox:{}", real.display()));
    assert!(ds.samples.is_empty());
    assert_eq!(ds.failures.len(), 880);
    assert!(ds.failures[0].reason.contains("00013118_008.png not found"));
    assert!(ds.failures[0].reason.contains("pass --image-root"));
    assert_eq!(
        ds.failures[0].location.as_deref(),
        Some("BBox_List_2017.csv:2")
    );

    let dir = tempfile::tempdir().unwrap();
    let rows = csv_head(
        &std::fs::read_to_string(&real).unwrap(),
        40,
        &dir.path().join("BBox_List_2017.csv"),
    );
    std::fs::create_dir(dir.path().join("images")).unwrap();
    let names: BTreeSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    for n in &names {
        // Downsized copies, as torchxrayvision ships them: the frame stays 1024.
        std::fs::write(dir.path().join("images").join(n), png(512, 512, 3)).unwrap();
    }
    let ds = load(&format!(
        "nih-bbox:{}",
        dir.path().join("BBox_List_2017.csv").display()
    ));
    assert!(ds.failures.is_empty(), "{:?}", ds.failures);
    assert_eq!(ds.source_frame.to_string(), "pixels:1024x1024");
    let ids = by_id(&ds);
    let first = &rows[0];
    let s = ids[format!("{}/locate/{}", first[0], first[1]).as_str()];
    let v: Vec<f64> = first[2..6].iter().map(|x| x.parse().unwrap()).collect();
    assert_box(
        &s.boxes[0].bbox,
        [v[0], v[1], v[0] + v[2], v[1] + v[3]],
        1024.0,
        1024.0,
    );
    assert_eq!(s.question, "Locate the atelectasis in this image.");
    let locate_boxes: usize = ds
        .samples
        .iter()
        .filter(|s| s.kind() == QuestionKind::Grounding)
        .map(|s| s.boxes.len())
        .sum();
    assert_eq!(locate_boxes, 40);
    assert!(
        ds.samples
            .iter()
            .all(|s| s.task != Task::Closed { answer: false })
    );
    assert_eq!(s.modality(), "X-ray");
}

#[test]
fn vindr_csv_merges_readers_and_asks_no_for_normal_images() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let real = d.join("chest_xray/annotations_only/vinbigdata-train.csv.gz");
    let ds = load(&format!("vindr:{}", real.display()));
    assert!(ds.samples.is_empty());
    assert_eq!(ds.failures.len(), 15_000);

    // A small CSV, gzipped, with images for three of its image ids.
    let dir = tempfile::tempdir().unwrap();
    let csv = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n\
               a,Cardiomegaly,3,R1,100,200,300,400\n\
               a,Cardiomegaly,3,R2,110,200,310,400\n\
               a,Nodule/Mass,8,R1,10,10,20,20\n\
               b,No finding,14,R1,,,,\n\
               b,No finding,14,R2,,,,\n\
               c,Aortic enlargement,0,R3,5,5,abc,8\n";
    let gz = dir.path().join("train.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, csv.as_bytes()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    std::fs::write(dir.path().join("a.png"), png(1000, 800, 1)).unwrap();
    std::fs::write(dir.path().join("b.jpg"), jpeg(10, 10, 1)).unwrap();
    std::fs::write(dir.path().join("c.png"), png(10, 10, 1)).unwrap();
    let ds = load(&format!("vindr:{}", gz.display()));
    let ids = by_id(&ds);
    let cardio = ids["a/locate/Cardiomegaly"];
    assert_eq!(cardio.boxes.len(), 1);
    assert_box(
        &cardio.boxes[0].bbox,
        [105.0, 200.0, 305.0, 400.0],
        1000.0,
        800.0,
    );
    assert_eq!(
        ids["a/locate/Nodule/Mass"].question,
        "Locate the nodule/mass in this image."
    );
    // b: "No finding" from every reader: "no" for each label the file knows, in class order.
    let normal: Vec<&str> = ds
        .samples
        .iter()
        .filter(|s| s.images[0].key == "b.jpg")
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(normal, ["b/present/Cardiomegaly", "b/present/Nodule/Mass"]);
    assert_eq!(ds.samples.len(), 6);
    assert_eq!(ds.failures.len(), 1);
    assert_eq!(ds.failures[0].location.as_deref(), Some("train.csv.gz:7"));
    assert!(
        ds.failures[0].reason.contains("x_max"),
        "{}",
        ds.failures[0].reason
    );
}

// -----------------------------------------------------------------------------------------
// Bad parquet input, generated

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>, row_group: usize) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn strings(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn string_lists(v: &[Vec<&str>]) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for l in v {
        for s in l {
            b.values().append_value(s);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

/// An HF `Image` column: `None` is a null cell; otherwise `(bytes, path)`.
type Cell = Option<(Option<Vec<u8>>, Option<String>)>;

fn image_column(cells: &[Cell]) -> ArrayRef {
    let bytes: BinaryArray = cells
        .iter()
        .map(|c| c.as_ref().and_then(|(b, _)| b.as_deref()))
        .collect();
    let paths: StringArray = cells
        .iter()
        .map(|c| c.as_ref().and_then(|(_, p)| p.as_deref()))
        .collect();
    let fields = Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]);
    let nulls =
        arrow_buffer::NullBuffer::from(cells.iter().map(Option::is_some).collect::<Vec<_>>());
    Arc::new(
        StructArray::try_new(fields, vec![Arc::new(bytes), Arc::new(paths)], Some(nulls)).unwrap(),
    )
}

struct Mfq {
    ids: Vec<String>,
    questions: Vec<Option<String>>,
    options: Vec<Vec<&'static str>>,
    answers: Vec<String>,
    frames: Vec<Vec<Cell>>, // [frame k][row]
}

fn mfq(n: usize) -> Mfq {
    Mfq {
        ids: (0..n).map(|i| format!("q{i}")).collect(),
        questions: (0..n).map(|i| Some(format!("Question {i}?"))).collect(),
        options: (0..n).map(|_| vec!["one", "two", "three"]).collect(),
        answers: (0..n).map(|_| "B".to_string()).collect(),
        frames: (0..5)
            .map(|k| {
                (0..n)
                    .map(|i| (k < 2).then(|| (Some(png(4, 3, (i * 5 + k) as u8)), None)))
                    .collect()
            })
            .collect(),
    }
}

fn mfq_columns(m: &Mfq) -> Vec<(&'static str, ArrayRef)> {
    let s = |v: &[String]| strings(&v.iter().map(|x| Some(x.as_str())).collect::<Vec<_>>());
    let mut c: Vec<(&'static str, ArrayRef)> = vec![
        ("question_id", s(&m.ids)),
        (
            "question",
            strings(&m.questions.iter().map(|q| q.as_deref()).collect::<Vec<_>>()),
        ),
        ("options", string_lists(&m.options)),
        ("correct_answer", s(&m.answers)),
        (
            "modality",
            strings(&m.ids.iter().map(|_| Some("CT")).collect::<Vec<_>>()),
        ),
    ];
    for (k, name) in ["image_1", "image_2", "image_3", "image_4", "image_5"]
        .iter()
        .enumerate()
    {
        c.push((name, image_column(&m.frames[k])));
    }
    c
}

fn failures_at(ds: &Dataset) -> Vec<(String, String)> {
    ds.failures
        .iter()
        .map(|f| (f.location.clone().unwrap_or_default(), f.reason.clone()))
        .collect()
}

#[test]
fn parquet_bad_rows_fail_alone_with_their_row_number_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = mfq(6);
    m.questions[1] = None; // null question
    m.answers[2] = "E".into(); // letter outside A-C
    m.frames[0][3] = Some((None, None)); // struct with neither bytes nor path
    m.frames[0][4] = None; // frame 1 null, frame 2 set
    let file = dir.path().join("test-00000-of-00001.parquet");
    write_parquet(&file, mfq_columns(&m), 4);
    let mut ds = load(&format!("medframeqa:{}", file.display()));
    let ids: Vec<&str> = ds.samples.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["q0", "q5"]);
    let f = failures_at(&ds);
    assert_eq!(f.len(), 4, "{f:?}");
    let name = "test-00000-of-00001.parquet";
    assert_eq!(f[0].0, format!("{name}#row 1"));
    assert!(f[0].1.contains("column `question` is null"), "{}", f[0].1);
    assert_eq!(f[1].0, format!("{name}#row 2"));
    assert!(
        f[1].1.contains("\"E\" is not among the 3 options (A-C)"),
        "{}",
        f[1].1
    );
    assert_eq!(f[2].0, format!("{name}#row 3"));
    assert!(f[2].1.contains("neither bytes nor a path"), "{}", f[2].1);
    assert_eq!(f[3].0, format!("{name}#row 4"));
    assert!(f[3].1.contains("at least one frame"), "{}", f[3].1);
    assert_eq!(ds.failures[1].id.as_deref(), Some("q2"));

    // The rows that loaded decode from their embedded bytes, read back lazily.
    let store = decode_all(&mut ds);
    assert!(ds.failures.len() == 4, "{:?}", ds.failures);
    assert_eq!(store.decode_count(), 4);
    let want = data::decode::decode_bytes(&png(4, 3, 26), "w", DEFAULT_MAX_PIXELS).unwrap();
    assert!(*store.get(&ds.samples[1].images[1]).unwrap() == want);
}

#[test]
fn parquet_missing_and_mistyped_columns_fail_every_row_and_say_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let m = mfq(3);
    let missing = dir.path().join("missing.parquet");
    let cols: Vec<_> = mfq_columns(&m)
        .into_iter()
        .filter(|(n, _)| *n != "question")
        .collect();
    write_parquet(&missing, cols, 100);
    let ds = load(&format!("medframeqa:{}", missing.display()));
    assert!(ds.samples.is_empty());
    let f = failures_at(&ds);
    assert_eq!(f.len(), 3);
    for (i, (loc, reason)) in f.iter().enumerate() {
        assert_eq!(loc, &format!("missing.parquet#row {i}"));
        assert_eq!(reason, "missing column `question` (expected a string)");
    }

    // A parquet of some other dataset: not one expected column.
    let other = dir.path().join("other.parquet");
    write_parquet(&other, vec![("foo", strings(&[Some("a"), Some("b")]))], 100);
    let f = failures_at(&load(&format!("medframeqa:{}", other.display())));
    assert_eq!(
        f,
        [0, 1].map(|i| (
            format!("other.parquet#row {i}"),
            "missing column `question_id` (expected a string)".to_string()
        ))
    );

    let typed = dir.path().join("typed.parquet");
    let cols: Vec<_> = mfq_columns(&m)
        .into_iter()
        .map(|(n, a)| {
            if n == "options" {
                (n, strings(&[Some("a;b"), Some("a;b"), Some("a;b")]))
            } else {
                (n, a)
            }
        })
        .collect();
    write_parquet(&typed, cols, 100);
    let ds = load(&format!("medframeqa:{}", typed.display()));
    let f = failures_at(&ds);
    assert_eq!(f.len(), 3);
    assert_eq!(
        f[2].1,
        "column `options` has type Utf8, expected a list of strings"
    );

    // Kvasir: `complexity` must be an integer when present.
    let kv = dir.path().join("kv.parquet");
    write_parquet(
        &kv,
        vec![
            ("img_id", strings(&[Some("x")])),
            ("question", strings(&[Some("q")])),
            ("answer", strings(&[Some("a")])),
            ("complexity", strings(&[Some("high")])),
        ],
        10,
    );
    let ds = load(&format!("kvasir-vqa-x1:{}", kv.display()));
    assert_eq!(
        failures_at(&ds),
        [(
            "kv.parquet#row 0".to_string(),
            "column `complexity` has type Utf8, expected an integer".to_string()
        )]
    );
}

#[test]
fn a_truncated_parquet_shard_fails_alone_and_the_other_shards_load() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("test-00000-of-00002.parquet");
    write_parquet(&good, mfq_columns(&mfq(3)), 2);
    let mut other = mfq(3);
    other.ids = vec!["r0".into(), "r1".into(), "r2".into()];
    let cut = dir.path().join("test-00001-of-00002.parquet");
    write_parquet(&cut, mfq_columns(&other), 2);
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    std::fs::write(dir.path().join("README.md"), "not data").unwrap();

    let ds = load(&format!("medframeqa:{}", dir.path().display()));
    assert_eq!(ds.samples.len(), 3);
    let f = failures_at(&ds);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "test-00001-of-00002.parquet");
    assert!(f[0].1.contains("truncated"), "{}", f[0].1);
    let pattern = load(&format!(
        "medframeqa:{}",
        dir.path().join("test-00000-*.parquet").display()
    ));
    assert_eq!((pattern.samples.len(), pattern.failures.len()), (3, 0));
}

#[test]
fn a_damaged_row_group_loses_its_rows_and_the_next_groups_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("damaged.parquet");
    let mut m = mfq(6);
    for q in m.questions.iter_mut() {
        *q = Some("x".repeat(3000));
    }
    write_parquet(&file, mfq_columns(&m), 2);
    // Overwrite the second row group's first page header with garbage; the footer and the
    // other groups stay intact.
    let meta = parquet::file::reader::FileReader::metadata(
        &parquet::file::serialized_reader::SerializedFileReader::new(
            std::fs::File::open(&file).unwrap(),
        )
        .unwrap(),
    )
    .clone();
    let (start, _) = meta.row_group(1).column(0).byte_range();
    let mut bytes = std::fs::read(&file).unwrap();
    for b in &mut bytes[start as usize..start as usize + 64] {
        *b = 0xAB;
    }
    std::fs::write(&file, bytes).unwrap();
    let ds = load(&format!("medframeqa:{}", file.display()));
    let ids: Vec<&str> = ds.samples.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["q0", "q1", "q4", "q5"]);
    let f = failures_at(&ds);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "damaged.parquet#rows 2-3");
    assert!(f[0].1.contains("cannot decode row group 1"), "{}", f[0].1);
}

#[test]
fn kvasir_image_column_bytes_are_shared_per_img_id_and_decoded_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("train-00000-of-00001.parquet");
    let ids = ["a", "a", "b", "a"];
    write_parquet(
        &file,
        vec![
            ("img_id", strings(&ids.map(Some))),
            (
                "question",
                strings(&[Some("q1"), Some("q2"), Some("q1"), Some("q1")]),
            ),
            ("answer", strings(&[Some("x"); 4])),
            ("complexity", Arc::new(Int64Array::from(vec![1, 2, 3, 1]))),
            (
                "question_class",
                string_lists(&[vec!["c"], vec![], vec!["d", "e"], vec![]]),
            ),
            (
                "image",
                image_column(
                    &ids.map(|i| {
                        Some((Some(png(5, 5, i.as_bytes()[0])), Some(format!("{i}.png"))))
                    }),
                ),
            ),
        ],
        2,
    );
    let mut ds = load(&format!("kvasir-vqa-x1:{}", file.display()));
    assert!(ds.failures.is_empty(), "{:?}", ds.failures);
    let got: Vec<&str> = ds.samples.iter().map(|s| s.id.as_str()).collect();
    let h = medvqa::data::kvasir_vqa_x1::question_hash;
    assert_eq!(
        got,
        [
            format!("a/{}", h("q1")),
            format!("a/{}", h("q2")),
            format!("b/{}", h("q1")),
            format!("a/{}~2", h("q1"))
        ]
    );
    let store = decode_all(&mut ds);
    assert!(ds.failures.is_empty(), "{:?}", ds.failures);
    assert_eq!(store.decode_count(), 2);
}

// -----------------------------------------------------------------------------------------
// Registry

#[test]
fn every_file_format_refuses_a_missing_path_as_a_whole_dataset_error() {
    let dir = tempfile::tempdir().unwrap();
    for f in data::FORMATS.iter().filter(|f| f.name != "phantom") {
        let spec = format!("{}:{}", f.name, dir.path().join("nope.x").display());
        match data::load(&spec, &LoadOptions::default()) {
            Err(e) => assert!(e.to_string().contains("nope.x"), "{}: {e}", f.name),
            Ok(ds) => panic!("{} loaded a missing file: {:?}", f.name, ds.failures),
        }
    }
}

#[test]
fn a_directory_where_a_file_is_read_ends_the_load_instead_of_looping() {
    // Reading a directory fails on every read (EISDIR). The line readers used to record the
    // error as one bad line and read again, forever, growing the failure list.
    let dir = tempfile::tempdir().unwrap();
    let trap = dir.path().join("train.jsonl");
    std::fs::create_dir(&trap).unwrap();
    // `jsonl`: the manifest path itself is the directory.
    let (tx, rx) = std::sync::mpsc::channel();
    let spec = format!("jsonl:{}", trap.display());
    std::thread::spawn(move || {
        let _ = tx.send(data::load(&spec, &LoadOptions::default()).map(|d| d.failures.len()));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(20)) {
        Ok(Err(e)) => assert!(e.to_string().contains("train.jsonl"), "{e}"),
        Ok(Ok(n)) => panic!("a directory loaded as a manifest, with {n} failures"),
        Err(_) => panic!("jsonl: reading a directory did not end in 20 s"),
    }
    // The folder formats that read every `*.jsonl` inside: a directory with that name must
    // not hang them either; whatever they answer, they answer.
    for format in ["gemex", "kvasir-vqa-x1"] {
        let (tx, rx) = std::sync::mpsc::channel();
        let spec = format!("{format}:{}", dir.path().display());
        std::thread::spawn(move || {
            let _ = tx.send(data::load(&spec, &LoadOptions::default()).is_ok());
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_secs(20)).is_ok(),
            "{format}: a directory named train.jsonl did not end in 20 s"
        );
    }
}

#[test]
fn loading_twice_gives_the_same_ids_in_the_same_order() {
    let Some(d) = common::shared_data() else {
        return;
    };
    for spec in [
        "medframeqa:DATA/medframeqa/test-00000-of-00001.parquet",
        "gemex:DATA/gemex",
        "kvasir-vqa-x1:DATA/kvasir_vqa_x1",
        "coco:DATA/chest_xray/tbx11k/annotations/json/TBX11K_train.json",
        "kvasir-seg:DATA/kvasir_seg/kavsir_bboxes.subset.json",
    ] {
        let spec = spec.replace("DATA", &d.display().to_string());
        let ids = |ds: Dataset| {
            let mut v: Vec<String> = ds.samples.into_iter().map(|s| s.id).collect();
            v.extend(
                ds.failures
                    .into_iter()
                    .map(|f| format!("{:?}{:?}", f.id, f.location)),
            );
            v
        };
        let a = ids(load(&spec));
        assert!(!a.is_empty(), "{spec}");
        assert_eq!(a, ids(load(&spec)), "{spec}");
    }
}

// -----------------------------------------------------------------------------------------
// CLI

#[test]
fn datasets_lists_every_format_with_its_layout_frame_and_ids() {
    let o = common::run(&["datasets"]);
    assert!(o.status.success());
    let out = common::stdout(&o);
    for f in data::FORMATS {
        let at = out
            .find(&format!("{}:PATH\n", f.name))
            .unwrap_or_else(|| panic!("{} missing", f.name));
        let block = &out[at..];
        let end = block.find("\n\n").unwrap_or(block.len());
        let block = &block[..end];
        assert!(block.contains(f.summary), "{}", f.name);
        for line in f.layout.lines() {
            assert!(block.contains(line.trim()), "{}: {line}", f.name);
        }
        assert!(
            block.contains(&format!("boxes:  {}", f.frame)),
            "{}",
            f.name
        );
        assert!(block.contains(&format!("ids:    {}", f.ids)), "{}", f.name);
    }
}

#[test]
fn inspect_on_the_real_samples_counts_and_exits_by_failures() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let spec = |s: &str| s.replace("DATA", &d.display().to_string());
    let o = common::run(&[
        "inspect",
        "--quiet",
        "--dataset",
        &spec("medframeqa:DATA/medframeqa/test-00000-of-00001.parquet"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    let out = common::stdout(&o);
    assert!(out.contains("samples      4 loaded, 0 failed"), "{out}");
    assert!(out.contains("by modality  CT 2 | X-ray 2"), "{out}");
    assert!(
        out.contains("by images    2 image(s): 1 | 3 image(s): 1 | 4 image(s): 1 | 5 image(s): 1"),
        "{out}"
    );

    let o = common::run(&["inspect", "--quiet", "--dataset", &spec("gemex:DATA/gemex")]);
    assert_eq!(o.status.code(), Some(3));
    let out = common::stdout(&o);
    assert!(out.contains("samples      0 loaded, 80 failed"), "{out}");
    assert!(out.contains("pass --image-root"), "{out}");

    let (root, _) = gemex_image_root(&d);
    let o = common::run(&[
        "inspect",
        "--quiet",
        "--json",
        "--dataset",
        &spec("gemex:DATA/gemex"),
        "--image-root",
        root.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stdout(&o));
    let v: serde_json::Value = serde_json::from_str(&common::stdout(&o)).unwrap();
    assert_eq!(v["counts"]["samples"], 160);
    assert_eq!(v["counts"]["by_kind"]["grounding"], 80);
    assert_eq!(v["source_box_frame"], "pixels:224x224");

    let o = common::run(&[
        "inspect",
        "--quiet",
        "--dataset",
        &spec("coco:DATA/chest_xray/tbx11k/annotations/json/TBX11K_train.json"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stdout(&o));
    assert!(common::stdout(&o).contains("by kind      closed 5 | grounding 2"));

    let o = common::run(&[
        "inspect",
        "--quiet",
        "--dataset",
        &spec("kvasir-vqa-x1:DATA/kvasir_vqa_x1/sample_eval_rows.jsonl"),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(common::stdout(&o).contains("samples      0 loaded, 6 failed"));
}
