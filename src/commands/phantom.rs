//! `medvqa phantom`: write built-in phantom sets as a manifest plus PNGs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Context;
use rayon::prelude::*;

use super::{Outcome, out};
use crate::cli::PhantomArgs;
use crate::data::phantom::{self, PhantomSet};
use crate::data::{manifest, video};
use crate::pixels::Pixels;
use crate::progress::Progress;
use crate::sample::{ImageSource, Sample};

pub fn run(a: &PhantomArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let sets: &[PhantomSet] = &a.set.0;
    let progress = Progress::new(sets.len() as u64, "phantom", quiet);
    let mut samples = Vec::new();
    for &set in sets {
        samples.extend(phantom::generate(
            set,
            a.seed,
            a.n.unwrap_or(phantom::DEFAULT_QUESTIONS),
        ));
        progress.inc(1);
    }
    progress.finish();
    // The clips' frames as the generator drew them, before they become PNG bytes.
    let clips = if a.video {
        anyhow::ensure!(
            sets.contains(&PhantomSet::Frames),
            "--video writes the clips of the frames set; add it to --set (e.g. --set frames)"
        );
        clips_of(&samples)
    } else {
        BTreeMap::new()
    };
    encode_images(&mut samples)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let path = a.out.join("manifest.jsonl");
    manifest::write(&path, phantom::DATASET_NAME, &samples, "")
        .with_context(|| format!("writing {}", path.display()))?;
    out(&format!(
        "wrote {} questions to {}\n",
        samples.len(),
        path.display()
    ))?;
    if a.video {
        let video_manifest = write_videos(&a.out, &path, &clips)?;
        out(&format!(
            "wrote {} clips as lossless FFV1 videos and their questions to {}\n",
            clips.len(),
            video_manifest.display()
        ))?;
    }
    Ok(Outcome::Clean)
}

/// Frames per second of the phantom clips' videos.
const CLIP_FPS: u32 = 1;

/// The frames of every clip of the frames set, by the clip's key (`frames/0007`).
fn clips_of(samples: &[Sample]) -> BTreeMap<String, Vec<Arc<Pixels>>> {
    let mut clips = BTreeMap::new();
    for s in samples {
        if s.meta.get("set").map(|v| v.to_string()).as_deref() != Some("frames") {
            continue;
        }
        let Some(first) = s.images.first() else {
            continue;
        };
        let Some((clip, _)) = first.key.rsplit_once("_f") else {
            continue;
        };
        clips.entry(clip.to_string()).or_insert_with(|| {
            s.images
                .iter()
                .filter_map(|i| match &i.source {
                    ImageSource::Pixels(p) => Some(p.clone()),
                    _ => None,
                })
                .collect()
        });
    }
    clips
}

/// Writes each clip as `<clip>.mkv` (FFV1, lossless) and `manifest-video.jsonl`: the frames
/// set's questions with `"video"` and `{"uniform": N}` (every frame, in order) instead of
/// the PNGs, and boxes on `"frame"` indices.
fn write_videos(
    dir: &std::path::Path,
    manifest: &std::path::Path,
    clips: &BTreeMap<String, Vec<Arc<Pixels>>>,
) -> anyhow::Result<std::path::PathBuf> {
    clips
        .par_iter()
        .map(|(clip, frames)| {
            let dest = dir.join(format!("{clip}.mkv"));
            video::write_ffv1(frames, CLIP_FPS, &dest).map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<Vec<()>>>()?;
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}", manifest.display(), i + 1))?;
        let Some(obj) = v.as_object_mut() else {
            continue;
        };
        if obj.contains_key("medvqa_manifest") {
            lines.push(v.to_string());
            continue;
        }
        let clip = obj
            .get("images")
            .and_then(|i| i.get(0))
            .and_then(|i| i.as_str())
            .and_then(|k| k.rsplit_once("_f"))
            .map(|(c, _)| c.to_string());
        let Some(frames) = clip.as_ref().and_then(|c| clips.get(c)) else {
            continue;
        };
        let (clip, n) = (clip.unwrap_or_default(), frames.len());
        obj.remove("images");
        obj.insert("video".into(), format!("{clip}.mkv").into());
        obj.insert("frames".into(), serde_json::json!({ "uniform": n }));
        if let Some(boxes) = obj.get_mut("boxes").and_then(|b| b.as_array_mut()) {
            for b in boxes.iter_mut().filter_map(|b| b.as_object_mut()) {
                if let Some(image) = b.remove("image") {
                    b.insert("frame".into(), image);
                }
            }
        }
        lines.push(v.to_string());
    }
    let path = dir.join("manifest-video.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Encodes every distinct generated image to PNG once, in parallel, so that writing the
/// manifest only copies bytes. The encoder's settings are fixed, so the bytes do not
/// depend on which thread encoded them.
fn encode_images(samples: &mut [Sample]) -> anyhow::Result<()> {
    let mut unique = BTreeMap::new();
    for s in samples.iter() {
        for img in &s.images {
            if let ImageSource::Pixels(p) = &img.source {
                unique.entry(img.key.clone()).or_insert_with(|| p.clone());
            }
        }
    }
    let encoded: HashMap<String, Arc<[u8]>> = unique
        .into_par_iter()
        .map(|(key, p)| {
            let bytes = p
                .encode_png()
                .with_context(|| format!("encoding {key} as PNG"))?;
            Ok((key, Arc::from(bytes)))
        })
        .collect::<anyhow::Result<_>>()?;
    for s in samples.iter_mut() {
        for img in &mut s.images {
            if let Some(b) = encoded.get(&img.key) {
                img.source = ImageSource::Bytes(b.clone());
            }
        }
    }
    Ok(())
}
