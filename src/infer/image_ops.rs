//! Image transforms that reproduce Hugging Face's PIL image-processor backend bit for bit.
//!
//! HF's PIL backend resizes 8-bit images with Pillow (`Image.resize`), then rescales with
//! `astype(float64) * factor → float32` and normalises in float32. [`resize`] is a port of
//! Pillow's two-pass convolution resampler (`Resample.c`: coefficients in f64, fixed point
//! with 22 fractional bits, horizontal pass first, each pass rounded and clipped to 8 bits),
//! so its output equals Pillow's byte for byte for the box, bilinear, hamming, bicubic and
//! lanczos filters; [`to_chw`] then gives the same float32 values as numpy. The torchvision
//! backend resizes differently and is *not* what this matches (docs/design.md §9).
//!
//! Images here are 8-bit RGB ([`RgbImage`]): every VLM processor converts to RGB first
//! (`do_convert_rgb`), as [`crate::pixels::Pixels::to_rgb`] does. A gray image may be
//! resized before that conversion instead ([`resize_pixels`], [`resize_kept`]): Pillow
//! resamples each channel alone with the same coefficients, so the bytes are the same.

use image::{GrayImage, ImageBuffer, RgbImage};
use rayon::prelude::*;

use crate::pixels::Pixels;

/// Pillow's resampling filters, by their `PIL.Image.Resampling` numbers, which is how
/// `preprocessor_config.json` names them (`"resample": 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Nearest,
    Lanczos,
    Bilinear,
    Bicubic,
    Box,
    Hamming,
}

impl Filter {
    /// The filter for a `resample` number; `None` for numbers Pillow does not define.
    pub fn from_pil(code: i64) -> Option<Filter> {
        Some(match code {
            0 => Filter::Nearest,
            1 => Filter::Lanczos,
            2 => Filter::Bilinear,
            3 => Filter::Bicubic,
            4 => Filter::Box,
            5 => Filter::Hamming,
            _ => return None,
        })
    }

    fn support(self) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    // Pillow writes the constants as C floats.
                    x.sin() / x * (0.54f32 as f64 + 0.46f32 as f64 * x.cos())
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: the first input index, the number of taps, and the fixed-point weights.
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`, for the whole input
/// range (`box` = the full image).
fn coeffs(in_size: usize, out_size: usize, filter: Filter) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate towards zero, as `as` does.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
        let xmax = xmax.max(0) as usize;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = filter.weight(((x as i64 + xmin) as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        let row = &mut weights[xx * ksize..(xx + 1) * ksize];
        for (x, kx) in k.iter().enumerate().take(xmax) {
            let v = if ww != 0.0 { kx / ww } else { *kx };
            let fixed = v * (1u32 << PRECISION_BITS) as f64;
            row[x] = if v < 0.0 {
                (-0.5 + fixed) as i32
            } else {
                (0.5 + fixed) as i32
            };
        }
        bounds.push((xmin as usize, xmax));
    }
    Coeffs {
        ksize,
        bounds,
        weights,
    }
}

/// Pillow's `clip8`: the fixed-point sum back to 8 bits. Sums are `i32`, as in Pillow
/// (which keeps them in C `int`), so no sum that Pillow computes can differ here.
#[inline(always)]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's rounding offset for each fixed-point sum.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Resizes like Pillow's `Image.resize((width, height), filter)` on an RGB image.
/// Resizing to the same size returns a copy, as Pillow does.
///
/// Pillow 13 runs the vertical pass first when the height shrinks by more than twice what
/// the width shrinks (`in_h - out_h > 2 * (in_w - out_w)`, so always when the width grows and
/// the height shrinks), and the horizontal pass first otherwise. Each pass rounds to 8 bits,
/// so the order shows in the output. The rule was measured against Pillow 13.0 (every
/// convolution filter, about 1,500 random sizes, every byte equal);
/// `tests/pil_resize_order.rs` keeps it checked.
pub fn resize(img: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    resize_buffer::<_, 3, ROW_BLOCK, { ROW_BLOCK * 3 }>(img, width, height, filter)
}

/// [`resize`] on one 8-bit channel. Pillow's resampler treats channels independently with the
/// same coefficients, so resizing a gray image and then repeating each value three times
/// gives the bytes of converting to RGB first and resizing that, at a third of the work.
pub fn resize_gray(img: &GrayImage, width: u32, height: u32, filter: Filter) -> GrayImage {
    resize_buffer::<_, 1, GRAY_ROW_BLOCK, GRAY_ROW_BLOCK>(img, width, height, filter)
}

/// [`resize_raw`] on an 8-bit image of `C` channels.
fn resize_buffer<P, const C: usize, const R: usize, const L: usize>(
    img: &ImageBuffer<P, Vec<u8>>,
    width: u32,
    height: u32,
    filter: Filter,
) -> ImageBuffer<P, Vec<u8>>
where
    P: image::Pixel<Subpixel = u8>,
{
    let (w, h) = (width as usize, height as usize);
    let raw = resize_raw::<C, R, L>(
        img.as_raw(),
        img.width() as usize,
        img.height() as usize,
        w,
        h,
        filter,
    );
    ImageBuffer::from_raw(width, height, raw).unwrap_or_else(|| ImageBuffer::new(width, height))
}

/// Pillow's RGB resize of `px` as every VLM processor does it (`convert("RGB")`, then
/// `resize`): a gray image is resized on its one channel and converted after, which gives
/// the same bytes (see [`resize_gray`]).
pub fn resize_pixels(px: &Pixels, width: u32, height: u32, filter: Filter) -> RgbImage {
    match px {
        Pixels::Rgb(img) => resize(img, width, height, filter),
        Pixels::Gray(img) => Pixels::Gray(resize_gray(img, width, height, filter)).to_rgb(),
    }
}

/// [`resize`] or [`resize_gray`], keeping the image's kind: what a processor that converts
/// to RGB at the end sees (see [`resize_gray`]).
pub fn resize_kept(px: &Pixels, width: u32, height: u32, filter: Filter) -> Pixels {
    match px {
        Pixels::Rgb(img) => Pixels::Rgb(resize(img, width, height, filter)),
        Pixels::Gray(img) => Pixels::Gray(resize_gray(img, width, height, filter)),
    }
}

/// [`resize`] on raw rows of `C` interleaved channels; `R` rows make one block of the
/// horizontal pass and `L` = `R * C` is its number of sums.
fn resize_raw<const C: usize, const R: usize, const L: usize>(
    src: &[u8],
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
    filter: Filter,
) -> Vec<u8> {
    if (in_w, in_h) == (out_w, out_h) || out_w == 0 || out_h == 0 {
        return if out_w == 0 || out_h == 0 {
            Vec::new()
        } else {
            src.to_vec()
        };
    }
    if filter == Filter::Nearest {
        return resize_nearest::<C>(src, in_w, in_h, out_w, out_h);
    }
    let (iw, ih, ow, oh) = (in_w as i64, in_h as i64, out_w as i64, out_h as i64);
    if ow != iw && oh < ih && ih - oh > 2 * (iw - ow) {
        let t = transpose::<C>(src, in_w, in_h);
        let r = resize_horizontal_first::<C, R, L>(&t, in_h, in_w, out_h, out_w, filter);
        return transpose::<C>(&r, out_h, out_w);
    }
    resize_horizontal_first::<C, R, L>(src, in_w, in_h, out_w, out_h, filter)
}

/// Rows of `w` pixels of `C` channels, `h` of them, as rows of `h` pixels.
fn transpose<const C: usize>(src: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut out = vec![0u8; w * h * C];
    for (y, row) in src.chunks_exact(w * C).enumerate() {
        for (x, p) in row.chunks_exact(C).enumerate() {
            let o = (x * h + y) * C;
            out[o..o + C].copy_from_slice(p);
        }
    }
    out
}

/// The two passes, horizontal first, on raw rows of `C` channels (see [`resize_raw`]).
fn resize_horizontal_first<const C: usize, const R: usize, const L: usize>(
    src: &[u8],
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
    filter: Filter,
) -> Vec<u8> {
    const { assert!(R * C == L) };
    let vert = coeffs(in_h, out_h, filter);
    // A large image is resampled in bands on rayon's threads (the pool the caller runs in);
    // the SIMD level is read here, so that worker threads use the caller's.
    let parallel = split_across_threads(in_w * in_h);
    let level = crate::simd::current();
    // The horizontal pass runs at AVX2 at most: compiled for AVX-512 its 48-lane sums ran
    // 15-20% slower than at AVX2 (llava-1.5 at 512², 1024×768 and 2048², BENCHMARKS.md
    // §"SIMD dispatch"). The bytes are the same either way.
    let h_level = level.min(crate::simd::Level::Avx2);

    // Horizontal pass first, over only the rows the vertical pass reads.
    let (tmp, tmp_w, row0) = if out_w != in_w {
        let horiz = coeffs(in_w, out_w, filter);
        let first = vert.bounds.first().map_or(0, |b| b.0);
        let last = vert.bounds.last().map_or(in_h, |b| b.0 + b.1);
        let (first, last) = if out_h != in_h {
            (first, last)
        } else {
            (0, in_h)
        };
        let rows = last - first;
        let mut tmp = vec![0u8; rows * out_w * C];
        let src = &src[first * in_w * C..last * in_w * C];
        if parallel {
            // Bands of whole row blocks, each resampled on its own: every output row comes
            // from its own input row, so the bands' bytes are the one-band bytes.
            let band = R * BAND_BLOCKS;
            src.par_chunks(in_w * C * band)
                .zip(tmp.par_chunks_mut(out_w * C * band))
                .for_each(|(s, d)| {
                    crate::simd::run_at(
                        h_level,
                        #[inline(always)]
                        || horizontal_pass::<C, R, L>(s, in_w, &horiz, d, out_w),
                    )
                });
        } else {
            crate::simd::run_at(
                h_level,
                #[inline(always)]
                || horizontal_pass::<C, R, L>(src, in_w, &horiz, &mut tmp, out_w),
            );
        }
        (std::borrow::Cow::Owned(tmp), out_w, first)
    } else {
        (std::borrow::Cow::Borrowed(src), in_w, 0)
    };

    if out_h == in_h {
        return tmp.into_owned();
    }
    let mut out = vec![0u8; out_w * out_h * C];
    let row_len = tmp_w * C;
    if parallel {
        let band = R * BAND_BLOCKS;
        out.par_chunks_mut(row_len * band)
            .enumerate()
            .for_each(|(i, d)| {
                crate::simd::run_at(
                    level,
                    #[inline(always)]
                    || vertical_pass(&tmp, row_len, &vert, row0, i * band, d),
                )
            });
    } else {
        crate::simd::run_at(
            level,
            #[inline(always)]
            || vertical_pass(&tmp, row_len, &vert, row0, 0, &mut out),
        );
    }
    out
}

/// Images of at least this many pixels are resampled in bands on several threads: a 2048²
/// radiograph or a 4k endoscopy frame, not a 512² one (where a band would cost more in
/// hand-off than it saves). The families' tensor writers use the same threshold.
pub const PARALLEL_PIXELS: usize = 1 << 21;

/// Whether work on `pixels` pixels is worth splitting across the caller's rayon pool.
pub fn split_across_threads(pixels: usize) -> bool {
    pixels >= PARALLEL_PIXELS && rayon::current_num_threads() > 1
}

/// Row blocks per band of a parallel resample: 128 rows.
const BAND_BLOCKS: usize = 8;

/// The vertical pass: output rows `out_row0..` (`row_len` bytes each, as the input's) from the
/// rows of `src` their coefficients name (`row0` is the first row `src` holds). Each output row
/// is made in chunks of [`V_CHUNK`] columns whose sums stay in registers while every tap adds
/// its input row's slice, which vectorises; integer sums do not depend on the order they are
/// added in. Inlined into [`crate::simd::run`]'s dispatch.
#[inline(always)]
fn vertical_pass(
    src: &[u8],
    row_len: usize,
    vert: &Coeffs,
    row0: usize,
    out_row0: usize,
    out: &mut [u8],
) {
    for (yy, dst_row) in out.chunks_exact_mut(row_len).enumerate() {
        let (ymin, n) = vert.bounds[out_row0 + yy];
        let ymin = ymin - row0;
        let k0 = (out_row0 + yy) * vert.ksize;
        let k = &vert.weights[k0..k0 + n];
        let rows = &src[ymin * row_len..(ymin + n) * row_len];
        // Columns in chunks whose sums stay in registers across every tap, instead of a
        // row of sums loaded and stored once per tap.
        let mut x = 0;
        let mut chunks = dst_row.chunks_exact_mut(V_CHUNK);
        for d in chunks.by_ref() {
            vertical_chunk::<V_CHUNK>(rows, row_len, x, k, d);
            x += V_CHUNK;
        }
        // The last columns, fewer than a chunk: the same sums with a run-time width. A
        // single function for both measured 30% slower, as the chunk's fixed width is what
        // keeps its sums in registers.
        let tail = chunks.into_remainder();
        let mut acc = [HALF; V_CHUNK];
        let acc = &mut acc[..tail.len()];
        for (t, &w) in k.iter().enumerate() {
            let row = &rows[t * row_len + x..t * row_len + x + tail.len()];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += p as i32 * w;
            }
        }
        for (d, &a) in tail.iter_mut().zip(acc.iter()) {
            *d = clip8(a);
        }
    }
}

/// Columns per chunk of [`vertical_pass`]: 32 sums, two 512-bit or four 256-bit registers
/// (64 measured no faster).
const V_CHUNK: usize = 32;

/// One chunk of `N` columns starting at byte `x` of each of the tap rows in `rows`.
#[inline(always)]
fn vertical_chunk<const N: usize>(rows: &[u8], row_len: usize, x: usize, k: &[i32], d: &mut [u8]) {
    let mut acc = [HALF; N];
    for (t, &w) in k.iter().enumerate() {
        let row = &rows[t * row_len + x..t * row_len + x + N];
        for (a, &p) in acc.iter_mut().zip(row) {
            *a += p as i32 * w;
        }
    }
    for (d, &a) in d.iter_mut().zip(&acc) {
        *d = clip8(a);
    }
}

/// Rows resampled together by [`horizontal_pass`] on RGB: 16 rows × 3 channels = 48 sums per
/// output pixel, which the compiler keeps in vector registers (8 rows measured slower at AVX2).
const ROW_BLOCK: usize = 16;

/// The same on one channel: 48 rows, so that a block holds 48 sums as on RGB.
const GRAY_ROW_BLOCK: usize = 48;

/// The horizontal pass over `src` (rows of `in_w` pixels of `C` channels) into `dst` (rows of
/// `out_w`).
///
/// A block of `R` rows is first laid out column-major (each input pixel's `R` rows × `C`
/// channels side by side), so that every tap adds `L` = `R * C` contiguous products: that
/// vectorises, where the per-pixel dot product does not. The sums are the same integers as
/// Pillow's, whatever the order they are added in. Inlined into [`crate::simd::run`]'s
/// dispatch.
#[inline(always)]
fn horizontal_pass<const C: usize, const R: usize, const L: usize>(
    src: &[u8],
    in_w: usize,
    horiz: &Coeffs,
    dst: &mut [u8],
    out_w: usize,
) {
    let mut cols = vec![0i32; in_w * L];
    let src_blocks = src.chunks_exact(in_w * C * R);
    let tail_src = src_blocks.remainder();
    let mut dst_blocks = dst.chunks_exact_mut(out_w * C * R);
    for (sb, db) in src_blocks.zip(dst_blocks.by_ref()) {
        for (r, row) in sb.chunks_exact(in_w * C).enumerate() {
            for (x, p) in row.chunks_exact(C).enumerate() {
                let c = &mut cols[x * L + r * C..x * L + r * C + C];
                for (c, &p) in c.iter_mut().zip(p) {
                    *c = p as i32;
                }
            }
        }
        for xx in 0..out_w {
            let (xmin, n) = horiz.bounds[xx];
            let k = &horiz.weights[xx * horiz.ksize..xx * horiz.ksize + n];
            let mut acc = [HALF; L];
            for (col, &w) in cols[xmin * L..(xmin + n) * L].chunks_exact(L).zip(k) {
                for (a, &v) in acc.iter_mut().zip(col) {
                    *a += v * w;
                }
            }
            for r in 0..R {
                let o = (r * out_w + xx) * C;
                for (d, &a) in db[o..o + C].iter_mut().zip(&acc[r * C..r * C + C]) {
                    *d = clip8(a);
                }
            }
        }
    }
    // The last rows, fewer than a block: one pixel at a time.
    let tail_dst = dst_blocks.into_remainder();
    for (dst_row, src_row) in tail_dst
        .chunks_exact_mut(out_w * C)
        .zip(tail_src.chunks_exact(in_w * C))
    {
        for (xx, d) in dst_row.chunks_exact_mut(C).enumerate() {
            let (xmin, n) = horiz.bounds[xx];
            let k = &horiz.weights[xx * horiz.ksize..xx * horiz.ksize + n];
            let px = &src_row[xmin * C..(xmin + n) * C];
            let mut ss = [HALF; C];
            for (p, &w) in px.chunks_exact(C).zip(k) {
                for (s, &p) in ss.iter_mut().zip(p) {
                    *s += p as i32 * w;
                }
            }
            for (d, &s) in d.iter_mut().zip(&ss) {
                *d = clip8(s);
            }
        }
    }
}

/// Pillow's nearest-neighbour resize (an affine transform sampling pixel centres), on raw
/// rows of `C` channels.
fn resize_nearest<const C: usize>(
    src: &[u8],
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    let sx = in_w as f64 / out_w as f64;
    let sy = in_h as f64 / out_h as f64;
    let mut out = Vec::with_capacity(out_w * out_h * C);
    for y in 0..out_h {
        let yi = (((y as f64 + 0.5) * sy) as usize).min(in_h - 1);
        for x in 0..out_w {
            let xi = (((x as f64 + 0.5) * sx) as usize).min(in_w - 1);
            let at = (yi * in_w + xi) * C;
            out.extend_from_slice(&src[at..at + C]);
        }
    }
    out
}

/// A crop `[x, x+w) × [y, y+h)`, clipped to the image, as numpy slicing does.
pub fn crop(img: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> RgbImage {
    let (iw, ih) = img.dimensions();
    let x1 = (x + w).min(iw);
    let y1 = (y + h).min(ih);
    let (x0, y0) = (x.min(x1), y.min(y1));
    image::imageops::crop_imm(img, x0, y0, x1 - x0, y1 - y0).to_image()
}

/// How 8-bit pixels become model input: HF's `rescale` then `normalize`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    /// `rescale_factor` when `do_rescale`, else `None`.
    pub rescale: Option<f64>,
    /// `(image_mean, image_std)` per channel when `do_normalize`, else `None`.
    pub mean_std: Option<([f32; 3], [f32; 3])>,
}

impl Normalize {
    /// One value, computed as numpy does: `(v as f64 * factor) as f32`, then
    /// `(x - mean) / std` in f32.
    #[inline]
    pub fn apply(&self, v: u8, channel: usize) -> f32 {
        let x = match self.rescale {
            Some(f) => (v as f64 * f) as f32,
            None => v as f32,
        };
        match &self.mean_std {
            Some((m, s)) => (x - m[channel]) / s[channel],
            None => x,
        }
    }

    /// Appends channel `channel` (0–2) of `pixels` (whole interleaved RGB pixels),
    /// normalised: what [`Self::apply`] gives for each, computed in SIMD lanes (one IEEE
    /// operation at a time, as `apply`, so the floats are the same; see
    /// [`crate::simd`]).
    pub fn extend_channel(&self, pixels: &[u8], channel: usize, out: &mut Vec<f32>) {
        self.channel_into(pixels, channel, out)
    }

    /// [`Self::extend_channel`] into the start of `out` in place of appending: as many values
    /// as `out` and `pixels` both hold.
    pub fn write_channel(&self, pixels: &[u8], channel: usize, mut out: &mut [f32]) {
        self.channel_into(pixels, channel, &mut out)
    }

    fn channel_into(&self, pixels: &[u8], channel: usize, out: &mut impl Sink) {
        crate::simd::run(
            #[inline(always)]
            || self.channel_at::<3>(pixels, channel, out),
        )
    }

    /// Channel `channel` of the `out.len()` pixels of `raw` from pixel `first` on, normalised
    /// into `out`. `raw` holds 3 interleaved channels, or 1 when `gray`: a gray value stands
    /// for all three channels (normalised with channel `channel`'s mean and std). No dispatch
    /// of its own: for a caller already inside [`crate::simd::run`] that writes many short
    /// runs (one dispatch per band or tile instead of one per row).
    #[inline(always)]
    pub fn write_run_inline(
        &self,
        raw: &[u8],
        gray: bool,
        first: usize,
        channel: usize,
        mut out: &mut [f32],
    ) {
        let n = out.len();
        if gray {
            self.channel_at::<1>(&raw[first..first + n], channel, &mut out)
        } else {
            self.channel_at::<3>(&raw[first * 3..(first + n) * 3], channel, &mut out)
        }
    }

    #[inline(always)]
    fn channel_at<const S: usize>(&self, pixels: &[u8], channel: usize, out: &mut impl Sink) {
        match channel {
            0 => self.channel_n::<S, 0>(pixels, out),
            1 => self.channel_n::<S, 1>(pixels, out),
            _ => self.channel_n::<S, 2>(pixels, out),
        }
    }

    #[inline(always)]
    fn channel_n<const S: usize, const C: usize>(&self, pixels: &[u8], out: &mut impl Sink) {
        let (px, _) = pixels.as_chunks::<S>();
        // The byte to read: channel C of an RGB pixel, the one value of a gray one.
        let i = if S == 1 { 0 } else { C };
        match (self.rescale, &self.mean_std) {
            (Some(f), Some((m, s))) => {
                let (m, s) = (m[C], s[C]);
                out.put(px.iter().map(|p| ((p[i] as f64 * f) as f32 - m) / s));
            }
            (Some(f), None) => out.put(px.iter().map(|p| (p[i] as f64 * f) as f32)),
            (None, Some((m, s))) => {
                let (m, s) = (m[C], s[C]);
                out.put(px.iter().map(|p| (p[i] as f32 - m) / s));
            }
            (None, None) => out.put(px.iter().map(|p| p[i] as f32)),
        }
    }
}

/// Where [`Normalize`] puts its values: appended to a `Vec`, or over a slice.
trait Sink {
    fn put(&mut self, values: impl Iterator<Item = f32>);
}

impl Sink for Vec<f32> {
    #[inline(always)]
    fn put(&mut self, values: impl Iterator<Item = f32>) {
        self.extend(values);
    }
}

impl Sink for &mut [f32] {
    #[inline(always)]
    fn put(&mut self, values: impl Iterator<Item = f32>) {
        for (o, v) in self.iter_mut().zip(values) {
            *o = v;
        }
    }
}

/// Appends the image as CHW float32 (channel planes, row-major) to `out`.
pub fn to_chw(img: &RgbImage, norm: &Normalize, out: &mut Vec<f32>) {
    let raw = img.as_raw();
    out.reserve(raw.len());
    for c in 0..3 {
        norm.extend_channel(raw, c, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 255 / w.max(1)) as u8,
                (y * 255 / h.max(1)) as u8,
                ((x * 7 + y * 13) % 256) as u8,
            ])
        })
    }

    /// The two passes, horizontal first, whatever the sizes.
    fn horizontal_first_rgb(img: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
        let raw = resize_horizontal_first::<3, ROW_BLOCK, { ROW_BLOCK * 3 }>(
            img.as_raw(),
            img.width() as usize,
            img.height() as usize,
            width as usize,
            height as usize,
            filter,
        );
        RgbImage::from_raw(width, height, raw).unwrap()
    }

    #[test]
    fn gray_resized_then_converted_equals_converted_then_resized() {
        // Small sizes cover every remainder of the 48-row gray blocks and both pass orders;
        // the large one is resampled in bands on three threads.
        let small = GrayImage::from_fn(53, 61, |x, y| image::Luma([(x * 7 + y * y * 3) as u8]));
        let large = GrayImage::from_fn(1501, 1399, |x, y| image::Luma([(x ^ (y * 3)) as u8]));
        const { assert!(1501 * 1399 >= PARALLEL_PIXELS) };
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for filter in [
            Filter::Lanczos,
            Filter::Bicubic,
            Filter::Bilinear,
            Filter::Box,
            Filter::Hamming,
            Filter::Nearest,
        ] {
            for (img, sizes) in [
                (
                    &small,
                    &[
                        (11, 5),
                        (90, 17),
                        (36, 64),
                        (53, 20),
                        (20, 61),
                        (5, 90),
                        (1, 1),
                    ][..],
                ),
                (&large, &[(336, 336), (1400, 333), (1501, 700)][..]),
            ] {
                let px = Pixels::Gray(img.clone());
                let rgb = px.to_rgb();
                for &(w, h) in sizes {
                    let want = resize(&rgb, w, h, filter);
                    let got = three.install(|| resize_pixels(&px, w, h, filter));
                    assert!(got == want, "{filter:?} {w}x{h}");
                }
            }
        }
    }

    /// Pillow's passes as `Resample.c` writes them, one pixel and one channel at a time.
    fn reference(img: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
        let (in_w, in_h) = (img.width() as usize, img.height() as usize);
        let (out_w, out_h) = (width as usize, height as usize);
        let h = coeffs(in_w, out_w, filter);
        let v = coeffs(in_h, out_h, filter);
        let mut tmp = vec![0u8; in_h * out_w * 3];
        for y in 0..in_h {
            for xx in 0..out_w {
                for c in 0..3 {
                    let (xmin, n) = h.bounds[xx];
                    let mut ss = HALF;
                    for t in 0..n {
                        ss += img.as_raw()[(y * in_w + xmin + t) * 3 + c] as i32
                            * h.weights[xx * h.ksize + t];
                    }
                    tmp[(y * out_w + xx) * 3 + c] = clip8(ss);
                }
            }
        }
        let mut out = vec![0u8; out_h * out_w * 3];
        for yy in 0..out_h {
            for xx in 0..out_w {
                for c in 0..3 {
                    let (ymin, n) = v.bounds[yy];
                    let mut ss = HALF;
                    for t in 0..n {
                        ss += tmp[((ymin + t) * out_w + xx) * 3 + c] as i32
                            * v.weights[yy * v.ksize + t];
                    }
                    out[(yy * out_w + xx) * 3 + c] = clip8(ss);
                }
            }
        }
        RgbImage::from_raw(width, height, out).unwrap()
    }

    #[test]
    fn banded_parallel_resampling_gives_the_one_thread_bytes() {
        // 1501 × 1399 = 2.1 MP, over the band threshold; odd sizes leave partial bands.
        let img = gradient(1501, 1399);
        const { assert!(1501 * 1399 >= PARALLEL_PIXELS) };
        let pool = |n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        };
        let (one, three) = (pool(1), pool(3));
        // Both passes, horizontal only, vertical only, and the transposed order.
        for (w, h, f) in [
            (336, 336, Filter::Bicubic),
            (1001, 1399, Filter::Lanczos),
            (1501, 700, Filter::Bilinear),
            (1400, 333, Filter::Hamming),
        ] {
            let a = one.install(|| resize(&img, w, h, f));
            let b = three.install(|| resize(&img, w, h, f));
            assert_eq!(a.dimensions(), (w, h));
            assert!(a.as_raw() == b.as_raw(), "{w}x{h} {f:?}");
        }
        // And the bands equal Pillow's plain loops (a small region keeps the loops quick).
        let a = three.install(|| horizontal_first_rgb(&img, 97, 64, Filter::Bicubic));
        assert!(a.as_raw() == reference(&img, 97, 64, Filter::Bicubic).as_raw());
    }

    #[test]
    fn blocked_passes_equal_the_plain_loops_for_every_remainder_of_rows() {
        let img = RgbImage::from_fn(37, 29, |x, y| {
            image::Rgb([(x * 7 + y * 3) as u8, (x * x + y) as u8, (x * y * 13) as u8])
        });
        for filter in [
            Filter::Lanczos,
            Filter::Bicubic,
            Filter::Bilinear,
            Filter::Box,
        ] {
            for (w, h) in [(11, 5), (90, 17), (36, 64), (5, 9), (74, 8), (20, 1)] {
                assert_eq!(
                    horizontal_first_rgb(&img, w, h, filter),
                    reference(&img, w, h, filter),
                    "{filter:?} {w}x{h}"
                );
            }
        }
    }

    #[test]
    fn same_size_is_a_copy() {
        let img = gradient(9, 5);
        assert_eq!(resize(&img, 9, 5, Filter::Lanczos), img);
    }

    #[test]
    fn a_flat_image_stays_flat_under_every_filter() {
        let img = RgbImage::from_pixel(13, 7, image::Rgb([10, 128, 250]));
        for code in 0..=5 {
            let f = Filter::from_pil(code).unwrap();
            for (w, h) in [(5, 3), (31, 17), (13, 20)] {
                let out = resize(&img, w, h, f);
                assert_eq!(out.dimensions(), (w, h));
                assert!(out.pixels().all(|p| p.0 == [10, 128, 250]), "{f:?} {w}x{h}");
            }
        }
    }

    #[test]
    fn pillow_coefficients_sum_to_one_in_fixed_point() {
        for f in [Filter::Bilinear, Filter::Bicubic, Filter::Lanczos] {
            let c = coeffs(50, 17, f);
            for (i, &(_, n)) in c.bounds.iter().enumerate() {
                let s: i64 = c.weights[i * c.ksize..i * c.ksize + n]
                    .iter()
                    .map(|&w| w as i64)
                    .sum();
                assert!((s - (1 << PRECISION_BITS)).abs() <= n as i64, "{f:?} {s}");
            }
        }
    }

    #[test]
    fn unknown_resample_codes_are_refused() {
        assert_eq!(Filter::from_pil(1), Some(Filter::Lanczos));
        assert_eq!(Filter::from_pil(6), None);
        assert_eq!(Filter::from_pil(-1), None);
    }

    #[test]
    fn normalisation_matches_numpy_float_steps() {
        let n = Normalize {
            rescale: Some(1.0 / 255.0),
            mean_std: Some(([0.5; 3], [0.5; 3])),
        };
        // numpy: (np.float64(200) * (1/255)).astype(np.float32) = 0.78431374
        let x = (200f64 * (1.0 / 255.0)) as f32;
        assert_eq!(n.apply(200, 0), (x - 0.5) / 0.5);
        assert_eq!(n.apply(0, 1), -1.0);
        assert_eq!(n.apply(255, 2), 1.0);
    }
}
