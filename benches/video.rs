//! Video decode speed: frames per second from a video file to medvqa's RGB pixels, through
//! the one `ffmpeg` pass per video that `src/data/video.rs` runs, against PyAV and the
//! `ffmpeg` program alone on the same files (`benches/peer_video.py`).
//!
//! ```text
//! $ cargo bench --bench video              # writes target/bench-video/clip240.{mkv,mp4}
//! $ python3 benches/peer_video.py          # needs av, numpy (pip install av numpy)
//! ```
//!
//! The files: 240 frames of 448×384 RGB from the phantom frames set (its clips one after
//! another), at 25 fps, as lossless FFV1 (what `medvqa phantom --video` writes) and as H.264
//! (libx264, CRF 18, yuv420p: what an endoscope's recorder writes). Two reads of each: all
//! 240 frames, and the 8 frames of `{"uniform": 8}`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};
use medvqa::data::phantom::{self, PhantomSet};
use medvqa::data::video::{self, FrameRule};
use medvqa::pixels::Pixels;
use medvqa::sample::ImageSource;

const FRAMES: usize = 240;

fn files() -> Option<(PathBuf, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-video");
    std::fs::create_dir_all(&dir).ok()?;
    let (mkv, mp4) = (dir.join("clip240.mkv"), dir.join("clip240.mp4"));
    if !mkv.exists() {
        let mut frames: Vec<Pixels> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for s in phantom::generate(PhantomSet::Frames, 11, 400) {
            for i in &s.images {
                if let ImageSource::Pixels(p) = &i.source
                    && seen.insert(i.key.clone())
                    && frames.len() < FRAMES
                {
                    frames.push((**p).clone());
                }
            }
        }
        if frames.len() < FRAMES {
            eprintln!("only {} phantom frames", frames.len());
            return None;
        }
        video::write_ffv1(&frames, 25, &mkv).ok()?;
    }
    if !mp4.exists() {
        let ok = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&mkv)
            .args(["-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p"])
            .arg(&mp4)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
    }
    Some((mkv, mp4))
}

// A bench that cannot read its own file has nothing to measure: stop loudly.
#[allow(clippy::expect_used)]
fn bench(c: &mut Criterion) {
    let Some((mkv, mp4)) = files() else {
        eprintln!("NOTICE: ffmpeg not available; SKIPPING the video bench");
        return;
    };
    let mut g = c.benchmark_group("video_decode");
    g.sample_size(10);
    for (name, path) in [("ffv1", &mkv), ("h264", &mp4)] {
        let probe = video::probe(path, name).expect("probe");
        if probe.frames != FRAMES {
            eprintln!("{name}: {} frames, not {FRAMES}", probe.frames);
            return;
        }
        let all: Vec<usize> = (0..FRAMES).collect();
        let eight = FrameRule::Uniform(8)
            .indices(probe.frames, probe.rate)
            .expect("rule");
        g.bench_function(format!("{name}_all_{FRAMES}"), |b| {
            b.iter(|| video::decode_frames(black_box(path), &probe, &all, name).expect("decode"))
        });
        g.bench_function(format!("{name}_uniform_8"), |b| {
            b.iter(|| video::decode_frames(black_box(path), &probe, &eight, name).expect("decode"))
        });
        g.bench_function(format!("{name}_probe"), |b| {
            b.iter(|| video::probe(black_box(path), name).expect("probe"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
