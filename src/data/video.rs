//! Video files as multi-image samples: a sample names a video and a rule for its frames.
//!
//! ```text
//! {"id": "c1", "video": "clips/a.mkv", "frames": {"uniform": 4}, "question": "...", ...}
//! ```
//!
//! - FFmpeg does the work, as the `ffprobe` and `ffmpeg` programs (Debian's `ffmpeg`
//!   package; `scripts/setup.sh` installs it). Linking FFmpeg's libraries would tie the build
//!   to one FFmpeg ABI and make every user build against C headers; a subprocess per video is
//!   cheap next to decoding it, and a crashing decoder cannot take medvqa with it.
//! - At load, `ffprobe` reads the stream's frame count (packets counted, nothing decoded),
//!   frame rate and size; the rule then names the frame indices ([`FrameRule::indices`]), so
//!   the sample's images, and their keys `<video>#<index>`, are known before anything is
//!   decoded.
//! - Frame choice is integer arithmetic on the index, or one IEEE multiplication for
//!   timestamps, so every machine picks the same frames. A video is taken as constant frame
//!   rate: frame `i` shows from `i / rate` to `(i + 1) / rate` seconds, with `rate` the
//!   stream's `r_frame_rate`.
//! - Each video is decoded once per run: the first frame asked for decodes every frame any
//!   sample of the run wants from that video, in one `ffmpeg` pass that keeps only those
//!   frames (a `select` filter; `-frames:v` stops the decoder after the last). The frames are
//!   held until each was handed out once, then dropped (the image store keeps its own
//!   bounded copies). A long video therefore costs one stream of decoding, and memory for
//!   the wanted frames only: at most [`HELD_BYTES`] across all videos.
//! - Colour conversion asks swscale for its bit-exact mode, so a frame's pixels do not
//!   depend on the CPU's SIMD level. Gray streams stay 8-bit gray; everything else is RGB.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::pixels::Pixels;
use crate::sample::ImageError;

/// The most frames one rule may give a sample; a prompt of more images than this is not a
/// question a VLM can take, and a rule that gives it is more likely a mistake.
pub const MAX_FRAMES: usize = 64;

/// The most bytes of decoded frames that all videos together hold for frames decoded
/// ahead of being asked for. Past it, a frame is decoded again when it is asked for.
pub const HELD_BYTES: u64 = 256 << 20;

/// How a sample's frames are chosen from its video. In the manifest: `{"uniform": N}`,
/// `{"fps": F}` or `{"fps": F, "max": M}`, or `{"at": [seconds, ...]}`.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameRule {
    /// `N` frames spread evenly by index, the first and the last included.
    Uniform(usize),
    /// One frame every `1 / fps` seconds from the start; at most `max`, spread evenly over
    /// those, when given.
    Fps { fps: f64, max: Option<usize> },
    /// The frames shown at these times, in this order.
    At(Vec<f64>),
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uniform: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<Vec<f64>>,
}

impl<'de> Deserialize<'de> for FrameRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let r = RawRule::deserialize(d)?;
        let rule = match (r.uniform, r.fps, r.at) {
            (Some(n), None, None) if r.max.is_none() => FrameRule::Uniform(n),
            (None, Some(fps), None) => FrameRule::Fps { fps, max: r.max },
            (None, None, Some(at)) if r.max.is_none() => FrameRule::At(at),
            _ => {
                return Err(D::Error::custom(
                    "a frame rule is one of {\"uniform\": N}, {\"fps\": F} (with an optional \"max\": M) or {\"at\": [seconds, ...]}",
                ));
            }
        };
        rule.check().map_err(D::Error::custom)?;
        Ok(rule)
    }
}

impl Serialize for FrameRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = match self {
            FrameRule::Uniform(n) => RawRule {
                uniform: Some(*n),
                ..RawRule::default()
            },
            FrameRule::Fps { fps, max } => RawRule {
                fps: Some(*fps),
                max: *max,
                ..RawRule::default()
            },
            FrameRule::At(at) => RawRule {
                at: Some(at.clone()),
                ..RawRule::default()
            },
        };
        raw.serialize(s)
    }
}

impl FrameRule {
    /// What the rule asks for, before the video is known.
    fn check(&self) -> Result<(), String> {
        match self {
            FrameRule::Uniform(0) => Err("\"uniform\" must ask for at least 1 frame".into()),
            FrameRule::Uniform(n) if *n > MAX_FRAMES => Err(format!(
                "\"uniform\" asks for {n} frames; at most {MAX_FRAMES} are allowed"
            )),
            FrameRule::Fps { fps, .. } if !(fps.is_finite() && *fps > 0.0) => {
                Err(format!("\"fps\" must be a positive number, not {fps}"))
            }
            FrameRule::Fps { max: Some(0), .. } => {
                Err("\"max\" must allow at least 1 frame".into())
            }
            FrameRule::Fps { max: Some(m), .. } if *m > MAX_FRAMES => Err(format!(
                "\"max\" allows {m} frames; at most {MAX_FRAMES} are allowed"
            )),
            FrameRule::At(at) if at.is_empty() => Err("\"at\" must list at least one time".into()),
            FrameRule::At(at) if at.len() > MAX_FRAMES => Err(format!(
                "\"at\" lists {} times; at most {MAX_FRAMES} are allowed",
                at.len()
            )),
            FrameRule::At(at) => match at.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
                Some(t) => Err(format!(
                    "\"at\" times are seconds from the start, 0 or more, not {t}"
                )),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// The frame indices this rule picks from a video of `frames` frames at `rate` frames
    /// per second:
    ///
    /// - `uniform: N`: index `k` (0-based, `k < N`) is `round(k (T - 1) / (N - 1))`, halves
    ///   rounded up, in integers; `N = 1` gives the middle frame `(T - 1) / 2` rounded down.
    ///   `N > T` is an error.
    /// - `fps: F`: times `k / F` for `k = 0, 1, ...` while the frame exists; the frame of
    ///   time `t` is `floor(t * rate)`. `F` above the video's rate is an error (frames would
    ///   repeat). With `max: M` and more than `M` times, the `uniform: M` rule picks among
    ///   them; without `max`, more than [`MAX_FRAMES`] is an error.
    /// - `at: [t, ...]`: frame `floor(t * rate)` for each time, in the order written; a time
    ///   at or past the end is an error.
    pub fn indices(&self, frames: usize, rate: Rate) -> Result<Vec<usize>, String> {
        self.check()?;
        if frames == 0 {
            return Err("the video has no frames".into());
        }
        let r = rate.as_f64();
        let length = format!(
            "{frames} frames at {} fps, {:.3} s",
            rate,
            frames as f64 / r
        );
        match self {
            FrameRule::Uniform(n) => uniform(*n, frames)
                .ok_or_else(|| format!("the rule asks for {n} frames, but the video has {length}")),
            FrameRule::Fps { fps, max } => {
                if *fps > r {
                    return Err(format!(
                        "\"fps\" {fps} is above the video's rate ({length}); frames would repeat"
                    ));
                }
                let step = r / fps;
                let all: Vec<usize> = (0..)
                    .map(|k| (k as f64 * step + 1e-9).floor() as usize)
                    .take_while(|&i| i < frames)
                    .collect();
                match max {
                    Some(m) if all.len() > *m => Ok(uniform(*m, all.len())
                        .unwrap_or_default()
                        .into_iter()
                        .map(|k| all[k])
                        .collect()),
                    None if all.len() > MAX_FRAMES => Err(format!(
                        "\"fps\" {fps} gives {} frames from a video of {length}; at most {MAX_FRAMES} are allowed (add \"max\")",
                        all.len()
                    )),
                    _ => Ok(all),
                }
            }
            FrameRule::At(at) => at
                .iter()
                .map(|&t| {
                    let i = (t * r + 1e-9).floor() as usize;
                    if i < frames {
                        Ok(i)
                    } else {
                        Err(format!(
                            "time {t} s is past the end of the video ({length})"
                        ))
                    }
                })
                .collect(),
        }
    }
}

/// `n` indices spread evenly over `0..t`, first and last included; `None` when `n > t`.
fn uniform(n: usize, t: usize) -> Option<Vec<usize>> {
    if n == 0 || n > t {
        return None;
    }
    if n == 1 {
        return Some(vec![(t - 1) / 2]);
    }
    Some(
        (0..n)
            .map(|k| (2 * k * (t - 1) + (n - 1)) / (2 * (n - 1)))
            .collect(),
    )
}

/// A frame rate as the stream declares it, `num / den` frames per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub num: u32,
    pub den: u32,
}

impl Rate {
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// What `ffprobe` says about a video's first video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub frames: usize,
    pub rate: Rate,
    pub width: u32,
    pub height: u32,
    /// A gray pixel format (`gray`, `gray16le`, ...): decoded as 8-bit gray.
    pub gray: bool,
    pub codec: String,
}

fn tool_error(what: &str, tool: &str, e: &std::io::Error) -> ImageError {
    let message = if e.kind() == std::io::ErrorKind::NotFound {
        format!(
            "the `{tool}` program is not on PATH; medvqa reads videos through FFmpeg (scripts/setup.sh installs it, or `apt-get install ffmpeg`)"
        )
    } else {
        format!("cannot run `{tool}`: {e}")
    };
    ImageError::Io {
        what: what.to_string(),
        message,
    }
}

fn video_error(what: &str, message: impl Into<String>) -> ImageError {
    ImageError::Decode {
        what: what.to_string(),
        message: message.into(),
    }
}

/// Reads the first video stream's frame count, rate, size and pixel format.
pub fn probe(path: &Path, what: &str) -> Result<Probe, ImageError> {
    let meta = std::fs::metadata(path).map_err(|e| ImageError::Io {
        what: what.to_string(),
        message: e.to_string(),
    })?;
    if meta.len() == 0 {
        return Err(video_error(what, "the video file is empty (0 bytes)"));
    }
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=codec_name,width,height,pix_fmt,r_frame_rate,nb_read_packets",
            "-of",
            "json",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| tool_error(what, "ffprobe", &e))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.trim();
        return Err(video_error(
            what,
            format!(
                "ffprobe cannot read it: {}",
                if why.is_empty() {
                    "no reason given"
                } else {
                    why
                }
            ),
        ));
    }
    #[derive(Deserialize)]
    struct Out {
        #[serde(default)]
        streams: Vec<Stream>,
    }
    #[derive(Deserialize)]
    struct Stream {
        codec_name: Option<String>,
        width: Option<u32>,
        height: Option<u32>,
        pix_fmt: Option<String>,
        r_frame_rate: Option<String>,
        nb_read_packets: Option<String>,
    }
    let parsed: Out = serde_json::from_slice(&out.stdout)
        .map_err(|e| video_error(what, format!("unexpected ffprobe output: {e}")))?;
    let s = parsed
        .streams
        .into_iter()
        .next()
        .ok_or_else(|| video_error(what, "the file has no video stream"))?;
    let frames = s
        .nb_read_packets
        .as_deref()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    if frames == 0 {
        return Err(video_error(what, "the video stream has no frames"));
    }
    let rate = s
        .r_frame_rate
        .as_deref()
        .and_then(|r| {
            let (n, d) = r.split_once('/')?;
            Some(Rate {
                num: n.parse().ok()?,
                den: d.parse().ok()?,
            })
        })
        .filter(|r| r.num > 0 && r.den > 0)
        .ok_or_else(|| video_error(what, "the video stream declares no frame rate"))?;
    let (width, height) = match (s.width, s.height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
        _ => return Err(video_error(what, "the video stream declares no frame size")),
    };
    let pix = s.pix_fmt.unwrap_or_default();
    Ok(Probe {
        frames,
        rate,
        width,
        height,
        gray: pix.starts_with("gray") || pix.starts_with("ya"),
        codec: s.codec_name.unwrap_or_else(|| "unknown".into()),
    })
}

/// A `select` filter expression for these frame indices (sorted, distinct): runs of
/// consecutive indices become one `between`.
fn select_expr(indices: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j + 1] == indices[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            format!("eq(n\\,{})", indices[i])
        } else {
            format!("between(n\\,{}\\,{})", indices[i], indices[j])
        });
        i = j + 1;
    }
    parts.join("+")
}

/// The `ffmpeg` program, quiet but for errors, never reading the terminal.
fn ffmpeg() -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-nostdin", "-hide_banner", "-v", "error"]);
    c
}

/// Decodes the frames at `indices` (sorted, distinct) in one `ffmpeg` pass. `-xerror`
/// makes a decoding error end the pass, and any error FFmpeg prints fails it, so a damaged
/// stream fails its samples instead of giving concealed pixels.
pub fn decode_frames(
    path: &Path,
    probe: &Probe,
    indices: &[usize],
    what: &str,
) -> Result<Vec<Pixels>, ImageError> {
    if indices.is_empty() {
        return Ok(Vec::new());
    }
    let channels = if probe.gray { 1 } else { 3 };
    let frame_bytes = probe.width as usize * probe.height as usize * channels;
    let mut child = ffmpeg()
        .args(["-xerror", "-threads", "1", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:v:0",
            "-vf",
            &format!("select='{}'", select_expr(indices)),
            "-fps_mode",
            "passthrough",
            "-frames:v",
            &indices.len().to_string(),
            "-sws_flags",
            "accurate_rnd+full_chroma_int+bitexact",
            "-f",
            "rawvideo",
            "-pix_fmt",
            if probe.gray { "gray" } else { "rgb24" },
            "pipe:1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_error(what, "ffmpeg", &e))?;
    // stderr is read on its own thread so that a chatty decoder cannot fill its pipe and
    // stall while medvqa waits on stdout.
    let mut stderr = child.stderr.take();
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.take(64 * 1024).read_to_string(&mut s);
        }
        s
    });
    let mut frames = Vec::with_capacity(indices.len());
    if let Some(mut out) = child.stdout.take() {
        for _ in indices {
            let mut buf = vec![0u8; frame_bytes];
            if out.read_exact(&mut buf).is_err() {
                break;
            }
            frames.push(buf);
        }
    }
    let status = child.wait().map_err(|e| tool_error(what, "ffmpeg", &e))?;
    let errs = errs.join().unwrap_or_default();
    if frames.len() < indices.len() {
        let why = errs.trim();
        return Err(video_error(
            what,
            format!(
                "ffmpeg gave {} of the {} frames asked for (the header says {} frames){}{}",
                frames.len(),
                indices.len(),
                probe.frames,
                if status.success() {
                    ""
                } else {
                    "; ffmpeg failed: "
                },
                if why.is_empty() && !status.success() {
                    "no reason given"
                } else {
                    why
                }
            ),
        ));
    }
    // Some decoders conceal damage and go on (FFV1 on a slice CRC mismatch): any error
    // FFmpeg reports fails the frames, rather than handing on concealed pixels.
    if !errs.trim().is_empty() {
        return Err(video_error(
            what,
            format!("ffmpeg reported a damaged stream: {}", errs.trim()),
        ));
    }
    frames
        .into_iter()
        .map(|buf| {
            let (w, h) = (probe.width, probe.height);
            let px = if probe.gray {
                image::GrayImage::from_raw(w, h, buf).map(Pixels::Gray)
            } else {
                image::RgbImage::from_raw(w, h, buf).map(Pixels::Rgb)
            };
            px.ok_or_else(|| video_error(what, "a frame has the wrong size"))
        })
        .collect()
}

/// Writes `frames` (all one size and colour type) as a lossless FFV1 video in Matroska at
/// `rate` frames per second, with FFmpeg's bit-exact flags, so the same frames always give
/// the same bytes. Decoding it gives back exactly these pixels.
pub fn write_ffv1<P: Borrow<Pixels>>(frames: &[P], rate: u32, out: &Path) -> Result<(), String> {
    use std::io::Write;
    let frames: Vec<&Pixels> = frames.iter().map(Borrow::borrow).collect();
    let first = frames.first().ok_or("no frames to write")?;
    let (w, h) = first.dimensions();
    let gray = first.is_gray();
    if frames
        .iter()
        .any(|f| f.dimensions() != (w, h) || f.is_gray() != gray)
    {
        return Err("the frames differ in size or colour type".into());
    }
    let size = format!("{w}x{h}");
    let rate = rate.to_string();
    let (input, output) = if gray {
        ("gray", "gray")
    } else {
        ("rgb24", "gbrp")
    };
    let mut child = ffmpeg()
        .args(["-y", "-f", "rawvideo"])
        .args([
            "-pix_fmt",
            input,
            "-s",
            &size,
            "-framerate",
            &rate,
            "-i",
            "pipe:0",
        ])
        .args(["-c:v", "ffv1", "-level", "3", "-g", "1", "-pix_fmt", output])
        .args(["-threads", "1", "-slices", "4", "-slicecrc", "1"])
        .args([
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
            "-map_metadata",
            "-1",
        ])
        .arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_error(&out.display().to_string(), "ffmpeg", &e).to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        for f in frames {
            stdin
                .write_all(f.as_raw())
                .map_err(|e| format!("writing frames to ffmpeg: {e}"))?;
        }
    }
    let done = child
        .wait_with_output()
        .map_err(|e| format!("waiting for ffmpeg: {e}"))?;
    if !done.status.success() {
        return Err(format!(
            "ffmpeg could not write {}: {}",
            out.display(),
            String::from_utf8_lossy(&done.stderr).trim()
        ));
    }
    Ok(())
}

/// One video of a run: what the probe found, which frames the run's samples want, and the
/// decoded frames while they are handed out.
#[derive(Debug)]
pub struct Video {
    path: PathBuf,
    /// The path as the dataset names it; frame keys are `<rel>#<index>`.
    rel: String,
    probe: Probe,
    state: Mutex<Held>,
    passes: AtomicU64,
}

#[derive(Debug, Default)]
struct Held {
    wanted: BTreeSet<usize>,
    /// Frames handed out at least once: a later pass decodes them only when asked again.
    taken: BTreeSet<usize>,
    frames: HashMap<usize, Pixels>,
}

impl Video {
    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// The image key of frame `index`: `<video path as written>#<index>`.
    pub fn frame_key(&self, index: usize) -> String {
        format!("{}#{index}", self.rel)
    }

    /// Registers that a sample of this run uses these frames.
    pub fn want(&self, indices: &[usize]) {
        if let Ok(mut h) = self.state.lock() {
            h.wanted.extend(indices.iter().copied());
        }
    }

    /// Frame `index`, decoding on first use every frame the run wants from this video.
    pub fn frame(&self, index: usize, max_pixels: u64) -> Result<Pixels, ImageError> {
        let what = self.frame_key(index);
        let pixels = self.probe.width as u64 * self.probe.height as u64;
        if pixels > max_pixels {
            return Err(ImageError::TooLarge {
                what,
                width: self.probe.width,
                height: self.probe.height,
                pixels,
                budget: max_pixels,
            });
        }
        let mut h = self
            .state
            .lock()
            .map_err(|_| video_error(&what, "the video's frame cache was poisoned"))?;
        let per = pixels * if self.probe.gray { 1 } else { 3 };
        h.taken.insert(index);
        if let Some(p) = h.frames.remove(&index) {
            HELD.fetch_sub(per, Ordering::Relaxed);
            return Ok(p);
        }
        // This frame and every wanted frame not yet handed out, whichever sample asks first,
        // as many as fit the held budget (the nearest after this one first).
        let room = (HELD_BYTES / per.max(1)).max(1) as usize;
        let pending = |i: &&usize| !h.taken.contains(*i) && !h.frames.contains_key(*i);
        let mut batch: Vec<usize> = std::iter::once(index)
            .chain(h.wanted.range(index + 1..).filter(pending).copied())
            .chain(h.wanted.range(..index).filter(pending).copied())
            .take(room)
            .collect();
        batch.sort_unstable();
        self.passes.fetch_add(1, Ordering::Relaxed);
        let decoded = decode_frames(&self.path, &self.probe, &batch, &what)?;
        let mut out = None;
        for (i, p) in batch.into_iter().zip(decoded) {
            if i == index {
                out = Some(p);
            } else if HELD.fetch_add(per, Ordering::Relaxed) + per <= HELD_BYTES {
                h.frames.insert(i, p);
            } else {
                // Over the process-wide budget: dropped now, decoded again if asked for.
                HELD.fetch_sub(per, Ordering::Relaxed);
            }
        }
        out.ok_or_else(|| video_error(&what, "ffmpeg did not return the frame"))
    }
}

/// Bytes of decoded frames all videos hold for frames not yet handed out.
static HELD: AtomicU64 = AtomicU64::new(0);

impl Drop for Video {
    fn drop(&mut self) {
        if let Ok(h) = self.state.get_mut() {
            let bytes: u64 = h.frames.values().map(|p| p.as_raw().len() as u64).sum();
            HELD.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

impl crate::sample::VideoFrames for Video {
    fn frame(&self, index: usize, max_pixels: u64) -> Result<Pixels, ImageError> {
        Video::frame(self, index, max_pixels)
    }

    fn dimensions(&self) -> (u32, u32) {
        (self.probe.width, self.probe.height)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn decode_passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }
}

/// The videos of one dataset load, by resolved path: each is probed once, and all its
/// samples share one [`Video`].
#[derive(Debug, Default)]
pub struct Videos {
    by_path: HashMap<PathBuf, Result<Arc<Video>, ImageError>>,
}

impl Videos {
    /// The video at `path` (resolved, inside the dataset root), probed on first use.
    pub fn get(&mut self, path: &Path, rel: &str) -> Result<Arc<Video>, ImageError> {
        self.by_path
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                probe(path, rel).map(|probe| {
                    Arc::new(Video {
                        path: path.to_path_buf(),
                        rel: rel.to_string(),
                        probe,
                        state: Mutex::new(Held::default()),
                        passes: AtomicU64::new(0),
                    })
                })
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(num: u32, den: u32) -> Rate {
        Rate { num, den }
    }

    #[test]
    fn uniform_takes_first_and_last_and_spreads_evenly() {
        let r = rate(25, 1);
        assert_eq!(FrameRule::Uniform(5).indices(5, r), Ok(vec![0, 1, 2, 3, 4]));
        assert_eq!(FrameRule::Uniform(3).indices(10, r), Ok(vec![0, 5, 9]));
        assert_eq!(FrameRule::Uniform(4).indices(10, r), Ok(vec![0, 3, 6, 9]));
        assert_eq!(FrameRule::Uniform(1).indices(10, r), Ok(vec![4]));
        assert_eq!(FrameRule::Uniform(2).indices(2, r), Ok(vec![0, 1]));
        let err = FrameRule::Uniform(6).indices(5, r).unwrap_err();
        assert!(
            err.contains("asks for 6 frames, but the video has 5 frames"),
            "{err}"
        );
    }

    #[test]
    fn fps_steps_through_time_and_caps() {
        // 10 frames at 25 fps = 0.4 s; 10 fps gives times 0, 0.1, 0.2, 0.3.
        let r = rate(25, 1);
        let rule = FrameRule::Fps {
            fps: 10.0,
            max: None,
        };
        assert_eq!(rule.indices(10, r), Ok(vec![0, 2, 5, 7]));
        let capped = FrameRule::Fps {
            fps: 10.0,
            max: Some(2),
        };
        assert_eq!(capped.indices(10, r), Ok(vec![0, 7]));
        // NTSC: 30000/1001 fps, one frame a second.
        let ntsc = FrameRule::Fps {
            fps: 1.0,
            max: None,
        };
        assert_eq!(
            ntsc.indices(100, rate(30000, 1001)),
            Ok(vec![0, 29, 59, 89])
        );
        let fast = FrameRule::Fps {
            fps: 30.0,
            max: None,
        };
        assert!(
            fast.indices(10, r)
                .unwrap_err()
                .contains("frames would repeat")
        );
        let many = FrameRule::Fps {
            fps: 25.0,
            max: None,
        };
        assert!(many.indices(1000, r).unwrap_err().contains("add \"max\""));
    }

    #[test]
    fn at_picks_the_frame_shown_at_each_time() {
        let r = rate(2, 1);
        let rule = FrameRule::At(vec![1.0, 0.0, 0.49, 0.5]);
        assert_eq!(rule.indices(4, r), Ok(vec![2, 0, 0, 1]));
        let err = FrameRule::At(vec![2.0]).indices(4, r).unwrap_err();
        assert!(err.contains("time 2 s is past the end"), "{err}");
    }

    #[test]
    fn rules_parse_from_the_manifest_form_and_refuse_mixtures() {
        let p = |s: &str| serde_json::from_str::<FrameRule>(s);
        assert_eq!(p(r#"{"uniform": 4}"#).unwrap(), FrameRule::Uniform(4));
        assert_eq!(
            p(r#"{"fps": 0.5, "max": 8}"#).unwrap(),
            FrameRule::Fps {
                fps: 0.5,
                max: Some(8)
            }
        );
        assert_eq!(
            p(r#"{"at": [0, 1.5]}"#).unwrap(),
            FrameRule::At(vec![0.0, 1.5])
        );
        for bad in [
            r#"{"uniform": 4, "fps": 1}"#,
            r#"{"uniform": 0}"#,
            r#"{"uniform": 4, "max": 2}"#,
            r#"{"fps": -1}"#,
            r#"{"fps": 1, "max": 65}"#,
            r#"{"at": []}"#,
            r#"{"at": [-0.5]}"#,
            r#"{"every": 2}"#,
            r#"{}"#,
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        for rule in [
            FrameRule::Uniform(3),
            FrameRule::Fps {
                fps: 2.0,
                max: Some(4),
            },
            FrameRule::At(vec![0.25]),
        ] {
            let back: FrameRule =
                serde_json::from_str(&serde_json::to_string(&rule).unwrap()).unwrap();
            assert_eq!(back, rule);
        }
    }

    #[test]
    fn select_joins_runs() {
        assert_eq!(
            select_expr(&[0, 1, 2, 5, 7, 8]),
            "between(n\\,0\\,2)+eq(n\\,5)+between(n\\,7\\,8)"
        );
    }
}
