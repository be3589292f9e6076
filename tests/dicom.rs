#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! DICOM through the safe decode path (issue 16, part 1): the files that
//! `tests/fixtures/make_dicoms.py` wrote with pydicom decode to the 8-bit pixels pydicom's
//! modality and VOI LUT functions give (within 1 grey level), the real SIIM radiograph
//! decodes to the same picture, and broken files fail their sample with the reason.

mod common;

use std::path::{Path, PathBuf};

use medvqa::data::decode::{decode_bytes, read_dimensions};
use medvqa::sample::{ImageError, ImageSource};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom")
}

/// A kept fuzz input (`fuzz/regressions/decode/`).
fn regression(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions/decode")
            .join(name),
    )
    .unwrap()
}

fn expected() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap()
}

const SIIM: &str = "chest_xray/siim/1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm";

#[test]
fn every_variant_decodes_to_what_pydicom_displays() {
    let want = expected();
    let mut checked = 0;
    for (name, case) in want.as_object().unwrap() {
        let Some(pixels) = case.get("pixels") else {
            continue;
        };
        let path = fixtures().join(format!("{name}.dcm"));
        let bytes = std::fs::read(&path).unwrap();
        let got = decode_bytes(&bytes, name, 1 << 20).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (w, h) = (
            case["width"].as_u64().unwrap(),
            case["height"].as_u64().unwrap(),
        );
        assert_eq!(got.dimensions(), (w as u32, h as u32), "{name}");
        assert!(got.is_gray(), "{name}");
        let want: Vec<i64> = pixels
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let worst = got
            .as_raw()
            .iter()
            .zip(&want)
            .map(|(&g, &w)| (i64::from(g) - w).abs())
            .max()
            .unwrap();
        assert!(worst <= 1, "{name}: off by {worst} grey levels");
        // The header alone gives the size, without decoding.
        let dims = read_dimensions(&ImageSource::File(path), name).unwrap();
        assert_eq!(dims, (w as u32, h as u32), "{name}");
        checked += 1;
    }
    assert_eq!(checked, 14);
}

#[test]
fn broken_dicom_files_fail_with_their_reason() {
    let read = |name: &str| std::fs::read(fixtures().join(name)).unwrap();
    let err = decode_bytes(&read("no-pixel-data.dcm"), "no-pixel-data.dcm", 1 << 20).unwrap_err();
    assert!(err.to_string().contains("no Pixel Data"), "{err}");
    let err = decode_bytes(&read("truncated.dcm"), "truncated.dcm", 1 << 20).unwrap_err();
    assert!(matches!(err, ImageError::Decode { .. }), "{err}");
    assert!(err.to_string().contains("truncated.dcm"), "{err}");
    let mut long = read("u16-12bit-window.dcm");
    let n = long.len();
    // The last element is Pixel Data (OW): make its 4-byte length claim 3 GB.
    long[n - 384 - 4..n - 384].copy_from_slice(&3_000_000_000u32.to_le_bytes());
    let err = decode_bytes(&long, "long.dcm", 1 << 20).unwrap_err();
    assert!(
        err.to_string()
            .contains("(7FE0,0010) declares 3000000000 bytes"),
        "{err}"
    );
    // Inputs the decode fuzz target found, each a failure of its image with the reason:
    // refused before dicom-parser or the RLE decoder allocates what a damaged header
    // declares, or a panic caught (fuzz/regressions/decode/).
    let refused = [
        // An element declaring more bytes than the file holds (1 KB that made the parser
        // zero-fill 2.5 GB).
        (
            "dicom-element-longer-than-file.dcm",
            "declares 2560137368 bytes, but only",
        ),
        // An unknown VR has a 4-byte length, as the parser reads it.
        (
            "dicom-unknown-vr-long-length.dcm",
            "(0008,0016) declares 775040561 bytes",
        ),
        // The RLE decoder of dicom-transfer-syntax-registry 0.10.1 indexes out of bounds on a
        // damaged segment: the panic is caught.
        ("dicom-rle-segment-overrun.dcm", "malformed input"),
        // An RLE frame declaring more than 15 segments (a 2.2 GB segment table).
        (
            "dicom-rle-segment-count.dcm",
            "segments; the standard allows at most 15",
        ),
        // The data set starts where the meta group's Group Length says (a 4 GB value behind
        // a meta group shorter than its stated length).
        ("dicom-meta-group-length.dcm", "bytes, but only"),
        // A binary value that is not a whole number of values: the parser reads whole values
        // and takes the next header from the left-over bytes (which then declared 4 GB).
        (
            "dicom-value-length-not-whole.dcm",
            "(0028,0103) with VR FD declares 2 bytes, not a whole number of its 8-byte values",
        ),
        // The meta group is read for as many bytes as its Group Length says, whatever the
        // elements' group (a data set element of 2 GB read as meta).
        ("dicom-meta-reads-past-group.dcm", "meta element"),
        // A delimiter with a length: outside a sequence the parser reads it as an element
        // and allocates its length (800 MB).
        (
            "dicom-delimiter-with-length.dcm",
            "delimiter (FFFE,E0DD) declares 838861824 bytes; a delimiter has none",
        ),
        // The transfer syntax UID with whitespace trimmed, as the parser reads it: an RLE
        // file whose UID ends in a newline still gets the RLE checks (a 4 GB table).
        (
            "dicom-rle-uid-with-newline.dcm",
            "segments; the standard allows at most 15",
        ),
    ];
    for (name, why) in refused {
        let err = decode_bytes(&regression(name), name, 1 << 20).unwrap_err();
        assert!(err.to_string().contains(why), "{name}: {err}");
    }
    // The same in Implicit VR, where the VR comes from the data dictionary: Columns (US)
    // given 3 bytes.
    let implicit = read("implicit-vr.dcm");
    let at = implicit
        .windows(4)
        .position(|w| w == [0x28, 0x00, 0x11, 0x00])
        .unwrap();
    let mut odd = implicit[..at + 4].to_vec();
    odd.extend_from_slice(&3u32.to_le_bytes());
    odd.extend_from_slice(&implicit[at + 8..at + 10]);
    odd.push(0);
    odd.extend_from_slice(&implicit[at + 10..]);
    let err = decode_bytes(&odd, "odd.dcm", 1 << 20).unwrap_err();
    assert!(
        err.to_string()
            .contains("(0028,0011) with VR US declares 3 bytes"),
        "{err}"
    );
    // The budget is checked from Rows and Columns, before any pixel is decoded.
    let err = decode_bytes(&read("u8-minmax.dcm"), "u8-minmax.dcm", 100).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::TooLarge {
                width: 16,
                height: 12,
                ..
            }
        ),
        "{err}"
    );
    // Sniffed by the magic, not the name: the same bytes under any name are DICOM, and
    // a PNG named .dcm is a PNG.
    let mut not_dicom = read("u8-minmax.dcm");
    not_dicom[128..132].copy_from_slice(b"DICX");
    let err = decode_bytes(&not_dicom, "x.dcm", 1 << 20).unwrap_err();
    assert!(matches!(err, ImageError::UnsupportedFormat { .. }), "{err}");
    // Every prefix of a good file fails cleanly (no panic, no hang).
    let good = read("rle-s16.dcm");
    for n in (0..good.len()).step_by(7) {
        let _ = decode_bytes(&good[..n], "prefix", 1 << 20);
    }
}

#[test]
fn the_siim_radiograph_decodes_as_pydicom_shows_it() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let want = &expected()["siim-block-means-256"];
    let bytes = std::fs::read(data.join(SIIM)).unwrap();
    let got = decode_bytes(&bytes, "siim", 64_000_000).unwrap();
    assert_eq!(got.dimensions(), (1024, 1024));
    let raw = got.as_raw();
    let means: Vec<f64> = want["means"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (i, want) in means.iter().enumerate() {
        let (by, bx) = (i / 4, i % 4);
        let mut sum = 0u64;
        for y in by * 256..(by + 1) * 256 {
            for x in bx * 256..(bx + 1) * 256 {
                sum += u64::from(raw[y * 1024 + x]);
            }
        }
        let mean = sum as f64 / 65536.0;
        // JPEG decoders may round differently (jpeg-decoder here, libjpeg-turbo under
        // pydicom); a block's mean must still agree within one grey level.
        assert!(
            (mean - want).abs() <= 1.0,
            "block {i}: {mean} against pydicom's {want}"
        );
    }
}

/// A manifest may name `.dcm` images: `inspect` loads and decodes them.
#[test]
fn a_manifest_of_dicom_images_loads_and_decodes() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["s16-rescale-window.dcm", "mono1.dcm", "truncated.dcm"] {
        std::fs::copy(fixtures().join(name), dir.path().join(name)).unwrap();
    }
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(
        &manifest,
        [
            r#"{"medvqa_manifest": 1, "box_frame": "pixels", "name": "dcm"}"#,
            r#"{"id": "ct", "images": ["s16-rescale-window.dcm"], "question": "Is there a nodule?", "kind": "closed", "answer": "no", "boxes": [{"image": 0, "box": [2, 2, 10, 8]}]}"#,
            r#"{"id": "cr", "images": ["mono1.dcm"], "question": "Is there a nodule?", "kind": "closed", "answer": "yes"}"#,
            r#"{"id": "bad", "images": ["truncated.dcm"], "question": "Is there a nodule?", "kind": "closed", "answer": "yes"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = common::run(&[
        "inspect",
        "--dataset",
        &format!("jsonl:{}", manifest.display()),
    ]);
    let text = format!(
        "{}{}",
        common::stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("truncated.dcm"), "{text}");
    let ds = medvqa::data::load(
        &format!("jsonl:{}", manifest.display()),
        &medvqa::data::LoadOptions::default(),
    )
    .unwrap();
    let ct = ds.samples.iter().find(|s| s.id == "ct").unwrap();
    // Pixel boxes convert with the DICOM's own Columns and Rows (16 x 12).
    assert_eq!(
        ct.boxes[0].bbox.to_array(),
        [0.125, 2.0 / 12.0, 0.625, 8.0 / 12.0]
    );
    // `eval` runs on it end to end: the two readable files are answered, the truncated one
    // fails alone with its reason, and the exit code says a sample failed.
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/idefics3");
    let run = dir.path().join("run");
    let out = common::medvqa()
        .args(["eval", "--quiet", "--dataset"])
        .arg(format!("jsonl:{}", manifest.display()))
        .args([
            "--model",
            model.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ])
        .args(["--perturbation", "none", "--max-new-tokens", "4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", common::stderr(&out));
    let records: Vec<serde_json::Value> = std::fs::read_to_string(run.join("predictions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_id = |id: &str| records.iter().find(|r| r["id"] == id).unwrap();
    for id in ["ct", "cr"] {
        assert!(by_id(id)["response"].is_string(), "{id}: {:?}", by_id(id));
    }
    let bad = by_id("bad");
    assert!(bad["response"].is_null());
    assert!(
        bad["error"].as_str().unwrap().contains("truncated.dcm"),
        "{bad}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    assert!(
        report.to_string().contains("truncated.dcm"),
        "the report lists the failure"
    );
}

/// `vindr:` reads `<image_id>.dicom` as downloaded, with its boxes in the DICOM's own pixels.
#[test]
fn vindr_reads_the_dicom_files_as_downloaded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("s16-rescale-window.dcm"),
        dir.path().join("a1.dicom"),
    )
    .unwrap();
    let csv = dir.path().join("train.csv");
    std::fs::write(
        &csv,
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\na1,Nodule/Mass,8,R1,4,3,8,9\n",
    )
    .unwrap();
    let ds = medvqa::data::load(
        &format!("vindr:{}", csv.display()),
        &medvqa::data::LoadOptions::default(),
    )
    .unwrap();
    assert!(ds.failures.is_empty(), "{:?}", ds.failures);
    let locate = ds
        .samples
        .iter()
        .find(|s| s.id == "a1/locate/Nodule/Mass")
        .unwrap();
    assert_eq!(locate.images[0].key, "a1.dicom");
    assert_eq!(locate.boxes[0].bbox.to_array(), [0.25, 0.25, 0.5, 0.75]);
    let store = medvqa::data::decode::ImageStore::new(1 << 20, 1 << 20);
    assert_eq!(store.get(&locate.images[0]).unwrap().dimensions(), (16, 12));
}

/// `--dicom-window` overrides the file's own VOI: `none` is min-max, `C,W` a linear window.
#[test]
fn the_window_can_be_overridden() {
    use medvqa::data::decode::decode_bytes_with;
    use medvqa::data::dicom::Window;
    let bytes = std::fs::read(fixtures().join("u16-12bit-window.dcm")).unwrap();
    let want = expected();
    let own: Vec<u8> = want["u16-12bit-window"]["pixels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    // The file's own window (2048, 1000), given explicitly, is what auto reads.
    let fixed: Window = "2048,1000".parse().unwrap();
    let got = decode_bytes_with(&bytes, "w", 1 << 20, fixed).unwrap();
    assert_eq!(got.as_raw(), own.as_slice());
    // none: the gradient row spans 0..255 and rises with x.
    let got = decode_bytes_with(&bytes, "w", 1 << 20, Window::None).unwrap();
    let row = &got.as_raw()[..16];
    assert_eq!((row[0], row[15]), (0, 255));
    assert!(row.windows(2).all(|p| p[0] <= p[1]), "{row:?}");
    assert_ne!(got.as_raw(), own.as_slice());
    for bad in ["", "40", "40,0", "a,b", "auto,1"] {
        assert!(bad.parse::<Window>().is_err(), "{bad}");
    }
    assert_eq!("none".parse::<Window>().unwrap().to_string(), "none");
    assert_eq!("40,400".parse::<Window>().unwrap().to_string(), "40,400");
    // The flag reaches the CLI, and a bad value is one clear line.
    let out = common::run(&[
        "inspect",
        "--dataset",
        "phantom:cxr",
        "--dicom-window",
        "40,x",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CENTER,WIDTH"));
}
