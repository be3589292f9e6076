//! Fast 8-bit kernels the perturbation families share: lookup tables, per-value noise
//! tables, separable box blurs, shifted-tap line blurs, disk blurs and a quantile table of
//! the standard normal.
//!
//! They work on interleaved `u8` samples with integer arithmetic where the result allows
//! it, a row at a time, so that every perturbation stays well under 20 ms on a 512×512 RGB
//! image on one core. Edges replicate the border pixel. Nothing here draws randomness
//! except [`noise_by_table`], which reads it from the generator it is given.

use std::sync::OnceLock;

use image::{GrayImage, RgbImage};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::pixels::Pixels;

/// Bits of uniform randomness per sample in the noise tables: 1024 quantiles, so the
/// sampled distributions are cut at their 1/2048 tails (±3.3 sigma for a Gaussian).
pub const QBITS: u32 = 10;
pub const QUANTILES: usize = 1 << QBITS;

/// An image of the same kind and size as `like`, holding `data`.
pub fn with_data(like: &Pixels, data: Vec<u8>) -> Pixels {
    let (w, h) = like.dimensions();
    match like {
        Pixels::Gray(_) => {
            Pixels::Gray(GrayImage::from_raw(w, h, data).unwrap_or_else(|| GrayImage::new(w, h)))
        }
        Pixels::Rgb(_) => {
            Pixels::Rgb(RgbImage::from_raw(w, h, data).unwrap_or_else(|| RgbImage::new(w, h)))
        }
    }
}

/// Maps every sample through one table.
pub fn lut(p: &Pixels, table: &[u8; 256]) -> Pixels {
    with_data(p, crate::simd::lut(p.as_raw(), table))
}

/// `clamp(round(v·k + c))` for every sample `v`. For `0 ≤ k < 1` and `0 ≤ c ≤ 255` (a
/// contrast reduction) it is 8.8 fixed point: `(v·256)·k₁₆ >> 16`, a saturating add of `c`,
/// and the high byte, within a rounding step of the float table (the products are exact to
/// 1/256). Where [`crate::simd::lut`] runs in vector lanes, the 256 results go through it as
/// a table; elsewhere they are computed on 16-bit lanes (one `pmulhuw` and one saturating add
/// per eight or more samples). Both give the same bytes. Other `k` and `c` use the float table.
pub fn scale_add(p: &Pixels, k: f32, c: f32) -> Pixels {
    if !(0.0..1.0).contains(&k) || !(0.0..=255.0).contains(&c) {
        return lut(p, &table_of(|v| v * k + c));
    }
    let kk = (k * 65536.0).round().min(65535.0) as u16;
    let cc = ((c + 0.5) * 256.0).round().min(65535.0) as u16;
    #[inline(always)]
    fn fixed(v: u8, kk: u16, cc: u16) -> u8 {
        // (v·256)·kk / 65536 = v·k in 8.8 fixed point (one `pmulhuw`).
        let vk = ((u32::from(u16::from(v) << 8) * u32::from(kk)) >> 16) as u16;
        (vk.saturating_add(cc) >> 8) as u8
    }
    if crate::simd::lut_is_vectorised() {
        let mut table = [0u8; 256];
        for (v, t) in table.iter_mut().enumerate() {
            *t = fixed(v as u8, kk, cc);
        }
        return lut(p, &table);
    }
    let data = crate::simd::run(
        #[inline(always)]
        || p.as_raw().iter().map(|&v| fixed(v, kk, cc)).collect(),
    );
    with_data(p, data)
}

/// Maps each RGB channel through its own table; a gray image uses `gray`.
pub fn lut3(p: &Pixels, tables: &[[u8; 256]; 3], gray: &[u8; 256]) -> Pixels {
    match p {
        Pixels::Gray(_) => lut(p, gray),
        Pixels::Rgb(_) => {
            let mut data = p.as_raw().to_vec();
            for px in data.chunks_exact_mut(3) {
                px[0] = tables[0][px[0] as usize];
                px[1] = tables[1][px[1] as usize];
                px[2] = tables[2][px[2] as usize];
            }
            with_data(p, data)
        }
    }
}

/// A table from a function on 0–255 floats, rounded and clamped.
pub fn table_of(f: impl Fn(f32) -> f32) -> [u8; 256] {
    let mut t = [0u8; 256];
    for (i, v) in t.iter_mut().enumerate() {
        *v = clamp_u8(f(i as f32));
    }
    t
}

#[inline]
pub fn clamp_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Per-value noise table: `table[v << QBITS | q]` is the output for input value `v` and
/// uniform quantile index `q`. Built once per (family, severity) and cached.
pub type NoiseTable = Box<[u8]>;

/// Builds a noise table from `f(value, quantile index) -> output`.
pub fn build_noise_table(f: impl Fn(usize, usize) -> u8) -> NoiseTable {
    let mut t = vec![0u8; 256 * QUANTILES];
    for v in 0..256 {
        for q in 0..QUANTILES {
            t[(v << QBITS) | q] = f(v, q);
        }
    }
    t.into_boxed_slice()
}

/// A cached table per severity 1..=5.
pub struct TableCache(pub [OnceLock<NoiseTable>; 5]);

impl TableCache {
    pub const fn new() -> TableCache {
        TableCache([
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ])
    }

    pub fn get(&self, severity: u8, build: impl FnOnce() -> NoiseTable) -> &NoiseTable {
        let i = (severity.clamp(1, 5) - 1) as usize;
        self.0[i].get_or_init(build)
    }
}

impl Default for TableCache {
    fn default() -> Self {
        TableCache::new()
    }
}

/// Replaces every sample `v` by `table[v, q]` with `q` drawn uniformly from `rng`
/// (independently per sample and channel).
pub fn noise_by_table(p: &Pixels, table: &[u8], rng: &mut ChaCha8Rng) -> Pixels {
    let src = p.as_raw();
    let mut out = vec![0u8; src.len()];
    let mut bits = [0u8; 4096];
    let mask = (QUANTILES - 1) as u16;
    for (o, s) in out.chunks_mut(2048).zip(src.chunks(2048)) {
        let need = s.len() * 2;
        rng.fill_bytes(&mut bits[..need]);
        for ((dst, &v), r) in o.iter_mut().zip(s).zip(bits[..need].chunks_exact(2)) {
            let q = u16::from_le_bytes([r[0], r[1]]) & mask;
            *dst = table[((v as usize) << QBITS) | q as usize];
        }
    }
    with_data(p, out)
}

/// The standard normal quantile at the centre of each of the [`QUANTILES`] equal-probability
/// bins: a sorted table, symmetric about 0.
pub fn normal_quantiles() -> &'static [f32; QUANTILES] {
    static TABLE: OnceLock<[f32; QUANTILES]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0f32; QUANTILES];
        for (i, v) in t.iter_mut().enumerate() {
            *v = inverse_normal_cdf((i as f64 + 0.5) / QUANTILES as f64) as f32;
        }
        t
    })
}

/// Acklam's rational approximation of the inverse standard normal CDF (relative error
/// below 1.2e-9), for `p` in (0, 1).
pub fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.024_25;
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// One pass of a (2r+1)-wide box filter along rows, then along columns, in place on
/// interleaved samples. Integer sums; the division is a 16-bit reciprocal multiply.
pub fn box_blur(data: &mut [u8], w: usize, h: usize, ch: usize, rx: usize, ry: usize) {
    crate::simd::run(
        #[inline(always)]
        || box_blur_kernel(data, w, h, ch, rx, ry),
    )
}

#[inline(always)]
fn box_blur_kernel(data: &mut [u8], w: usize, h: usize, ch: usize, rx: usize, ry: usize) {
    if w == 0 || h == 0 {
        return;
    }
    if rx > 0 {
        box_rows(data, w, h, ch, rx);
    }
    if ry > 0 {
        box_cols(data, w, h, ch, ry);
    }
}

#[inline(always)]
fn recip(n: usize) -> u32 {
    (((1u64 << 16) + n as u64 / 2) / n as u64) as u32
}

#[inline(always)]
fn box_rows(data: &mut [u8], w: usize, h: usize, ch: usize, r: usize) {
    match ch {
        1 => box_rows_n::<1>(data, w, h, r),
        _ => box_rows_n::<3>(data, w, h, r),
    }
}

/// Sliding sums along each row over a copy padded with `r` replicated pixels on both
/// sides, so the inner loop has no edge tests; the `CH` channels run side by side.
#[inline(always)]
fn box_rows_n<const CH: usize>(data: &mut [u8], w: usize, h: usize, r: usize) {
    let inv = recip(2 * r + 1);
    let n = 2 * r + 1;
    let mut pad = vec![0u8; (w + 2 * r) * CH];
    for y in 0..h {
        let row = &mut data[y * w * CH..(y + 1) * w * CH];
        let (first, last) = (&row[..CH], &row[(w - 1) * CH..]);
        for i in 0..r {
            pad[i * CH..(i + 1) * CH].copy_from_slice(first);
            pad[(r + w + i) * CH..(r + w + i + 1) * CH].copy_from_slice(last);
        }
        pad[r * CH..(r + w) * CH].copy_from_slice(row);
        let mut acc = [0u32; CH];
        for px in pad[..n * CH].chunks_exact(CH) {
            for c in 0..CH {
                acc[c] += px[c] as u32;
            }
        }
        let (adds, subs) = (&pad[n * CH..], &pad[..]);
        for (x, out) in row.chunks_exact_mut(CH).enumerate() {
            for c in 0..CH {
                out[c] = ((acc[c] * inv + (1 << 15)) >> 16).min(255) as u8;
            }
            if x + 1 < w {
                for c in 0..CH {
                    acc[c] = acc[c] + adds[x * CH + c] as u32 - subs[x * CH + c] as u32;
                }
            }
        }
    }
}

#[inline(always)]
fn box_cols(data: &mut [u8], w: usize, h: usize, ch: usize, r: usize) {
    let inv = recip(2 * r + 1);
    let stride = w * ch;
    let src = data.to_vec();
    let row = |y: isize| {
        let y = y.clamp(0, h as isize - 1) as usize;
        &src[y * stride..(y + 1) * stride]
    };
    let mut acc = vec![0u32; stride];
    for dy in -(r as isize)..=r as isize {
        for (a, &v) in acc.iter_mut().zip(row(dy)) {
            *a += v as u32;
        }
    }
    for y in 0..h {
        let out = &mut data[y * stride..(y + 1) * stride];
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = ((a * inv + (1 << 15)) >> 16).min(255) as u8;
        }
        let add = row(y as isize + r as isize + 1);
        let sub = row(y as isize - r as isize);
        for ((a, &p), &m) in acc.iter_mut().zip(add).zip(sub) {
            *a = *a + p as u32 - m as u32;
        }
    }
}

/// Box radii for three passes whose combined variance best matches a Gaussian of
/// `sigma` pixels (Kovesi's construction).
pub fn gaussian_box_radii(sigma: f32) -> [usize; 3] {
    let n = 3.0f32;
    let ideal = (12.0 * sigma * sigma / n + 1.0).sqrt();
    let mut wl = ideal.floor() as i64;
    if wl % 2 == 0 {
        wl -= 1;
    }
    let wl = wl.max(1);
    let wu = wl + 2;
    let wlf = wl as f32;
    let m = ((12.0 * sigma * sigma - n * wlf * wlf - 4.0 * n * wlf - 3.0 * n) / (-4.0 * wlf - 4.0))
        .round()
        .clamp(0.0, 3.0) as usize;
    let mut r = [0usize; 3];
    for (i, ri) in r.iter_mut().enumerate() {
        let width = if i < m { wl } else { wu };
        *ri = ((width - 1) / 2) as usize;
    }
    r
}

/// Gaussian blur of `sigma` pixels: three box passes per axis, or for sigmas under one
/// pixel (where boxes are too coarse) a 3-tap kernel `[a, 1 - 2a, a]` of the same variance.
///
/// The box passes run down the columns, where one step updates a whole row of running
/// sums at once (16-bit lanes, which vectorise); the horizontal passes run the same code on
/// a transposed copy, and a second transpose puts the image back. Sliding along a row
/// instead is one long chain of dependent adds, several times slower.
pub fn gaussian_blur(p: &Pixels, sigma: f32) -> Pixels {
    crate::simd::run(
        #[inline(always)]
        || gaussian_blur_kernel(p, sigma),
    )
}

#[inline(always)]
fn gaussian_blur_kernel(p: &Pixels, sigma: f32) -> Pixels {
    if sigma <= 0.0 {
        return p.clone();
    }
    if sigma < 1.0 {
        let a = (sigma * sigma / 2.0).min(1.0 / 3.0);
        let row = integer_taps(&[(-1.0, 0.0, a), (0.0, 0.0, 1.0 - 2.0 * a), (1.0, 0.0, a)]);
        let col = integer_taps(&[(0.0, -1.0, a), (0.0, 0.0, 1.0 - 2.0 * a), (0.0, 1.0, a)]);
        return tap_blur(&tap_blur(p, &row), &col);
    }
    let (w, h) = (p.width() as usize, p.height() as usize);
    let ch = p.channels();
    let radii = gaussian_box_radii(sigma);
    if radii.iter().any(|&r| !narrow_box(r)) {
        let mut data = p.as_raw().to_vec();
        for r in radii {
            box_blur(&mut data, w, h, ch, r, r);
        }
        return with_data(p, data);
    }
    let mut a = p.as_raw().to_vec();
    let mut b = vec![0u8; a.len()];
    for r in radii {
        box_cols_narrow(&a, &mut b, w * ch, h, r);
        std::mem::swap(&mut a, &mut b);
    }
    transpose(&a, &mut b, w, h, ch);
    for r in radii {
        box_cols_narrow(&b, &mut a, h * ch, w, r);
        std::mem::swap(&mut a, &mut b);
    }
    transpose(&b, &mut a, h, w, ch);
    with_data(p, a)
}

/// Whether a (2r+1)-wide box's sums of 8-bit samples fit 16 bits.
fn narrow_box(r: usize) -> bool {
    (2 * r + 1) * 255 <= u16::MAX as usize
}

/// A (2r+1)-tall box filter down the columns of `src` (`h` rows of `stride` samples) into
/// `dst`, edges replicated: running sums in `u16` (see [`narrow_box`]), and the division
/// by the same 16-bit reciprocal and rounding as [`box_blur`].
#[inline(always)]
fn box_cols_narrow(src: &[u8], dst: &mut [u8], stride: usize, h: usize, r: usize) {
    if stride == 0 || h == 0 {
        return;
    }
    let inv = recip(2 * r + 1);
    let row = |y: isize| {
        let y = y.clamp(0, h as isize - 1) as usize;
        &src[y * stride..(y + 1) * stride]
    };
    let mut acc = vec![0u16; stride];
    for dy in -(r as isize)..=r as isize {
        for (a, &v) in acc.iter_mut().zip(row(dy)) {
            *a += u16::from(v);
        }
    }
    for (y, out) in dst.chunks_exact_mut(stride).take(h).enumerate() {
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = ((u32::from(a) * inv + (1 << 15)) >> 16).min(255) as u8;
        }
        let add = row(y as isize + r as isize + 1);
        let sub = row(y as isize - r as isize);
        for ((a, &p), &m) in acc.iter_mut().zip(add).zip(sub) {
            *a = a.wrapping_add(u16::from(p)).wrapping_sub(u16::from(m));
        }
    }
}

/// Writes the transpose of `src` (`h` rows of `w` pixels of `ch` samples) to `dst` (`w`
/// rows of `h` pixels), in 32×32-pixel tiles so that both sides stay in cache.
pub fn transpose(src: &[u8], dst: &mut [u8], w: usize, h: usize, ch: usize) {
    crate::simd::run(
        #[inline(always)]
        || transpose_kernel(src, dst, w, h, ch),
    )
}

#[inline(always)]
fn transpose_kernel(src: &[u8], dst: &mut [u8], w: usize, h: usize, ch: usize) {
    match ch {
        1 => transpose_n::<1>(src, dst, w, h),
        _ => transpose_n::<3>(src, dst, w, h),
    }
}

#[inline(always)]
fn transpose_n<const CH: usize>(src: &[u8], dst: &mut [u8], w: usize, h: usize) {
    const TILE: usize = 32;
    let (src, _) = src.as_chunks::<CH>();
    let (dst, _) = dst.as_chunks_mut::<CH>();
    if src.len() < w * h || dst.len() < w * h {
        return;
    }
    for y0 in (0..h).step_by(TILE) {
        let y1 = (y0 + TILE).min(h);
        for x0 in (0..w).step_by(TILE) {
            let x1 = (x0 + TILE).min(w);
            for y in y0..y1 {
                for (x, px) in src[y * w + x0..y * w + x1].iter().enumerate() {
                    dst[(x0 + x) * h + y] = *px;
                }
            }
        }
    }
}

/// A tap of a line kernel: integer offset and weight (weights of one kernel sum to 65536).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tap {
    pub dx: i32,
    pub dy: i32,
    pub weight: u32,
}

/// Turns float taps into integer taps: offsets rounded, equal offsets merged, weights
/// scaled to sum to exactly 65536.
pub fn integer_taps(taps: &[(f32, f32, f32)]) -> Vec<Tap> {
    let mut merged: Vec<(i32, i32, f32)> = Vec::new();
    for &(dx, dy, wt) in taps {
        let (ix, iy) = (dx.round() as i32, dy.round() as i32);
        match merged.iter_mut().find(|t| t.0 == ix && t.1 == iy) {
            Some(t) => t.2 += wt,
            None => merged.push((ix, iy, wt)),
        }
    }
    let total: f32 = merged.iter().map(|t| t.2).sum::<f32>().max(1e-12);
    let mut out: Vec<Tap> = merged
        .iter()
        .map(|&(dx, dy, wt)| Tap {
            dx,
            dy,
            weight: (wt / total * 65536.0).round() as u32,
        })
        .collect();
    let sum: u32 = out.iter().map(|t| t.weight).sum();
    if let Some(first) = out.iter_mut().max_by_key(|t| t.weight) {
        first.weight = (first.weight + 65536).saturating_sub(sum);
    }
    out
}

/// Convolves with a sparse kernel of shifted taps: `out(x, y) = Σ w · in(x + dx, y + dy)`,
/// edges replicated. Each tap adds a shifted source row into a row accumulator, which
/// vectorises.
pub fn tap_blur(p: &Pixels, taps: &[Tap]) -> Pixels {
    crate::simd::run(
        #[inline(always)]
        || tap_blur_kernel(p, taps),
    )
}

#[inline(always)]
fn tap_blur_kernel(p: &Pixels, taps: &[Tap]) -> Pixels {
    let (w, h) = (p.width() as usize, p.height() as usize);
    let ch = p.channels();
    let stride = w * ch;
    let src = p.as_raw();
    let mut out = vec![0u8; src.len()];
    let mut acc = vec![0u32; stride];
    for y in 0..h {
        acc.iter_mut().for_each(|a| *a = 0);
        for t in taps {
            let sy = (y as i64 + t.dy as i64).clamp(0, h as i64 - 1) as usize;
            let row = &src[sy * stride..(sy + 1) * stride];
            add_shifted(&mut acc, row, w, ch, t.dx as i64, t.weight);
        }
        for (o, &a) in out[y * stride..(y + 1) * stride].iter_mut().zip(&acc) {
            *o = ((a + (1 << 15)) >> 16).min(255) as u8;
        }
    }
    with_data(p, out)
}

/// `acc[x] += weight · row[clamp(x + dx)]` over one row of interleaved samples.
#[inline(always)]
fn add_shifted(acc: &mut [u32], row: &[u8], w: usize, ch: usize, dx: i64, weight: u32) {
    // Columns whose source lies inside the row: one contiguous slice each side.
    let lo = (-dx).clamp(0, w as i64) as usize;
    let hi = (w as i64 - dx).clamp(0, w as i64) as usize;
    if lo < hi {
        let s0 = (lo as i64 + dx) as usize;
        let dst = &mut acc[lo * ch..hi * ch];
        let src = &row[s0 * ch..(s0 + hi - lo) * ch];
        for (a, &v) in dst.iter_mut().zip(src) {
            *a += v as u32 * weight;
        }
    }
    let edge = |x: usize| &row[x * ch..x * ch + ch];
    for x in (0..lo).chain(hi.max(lo)..w) {
        let sx = (x as i64 + dx).clamp(0, w as i64 - 1) as usize;
        for c in 0..ch {
            acc[x * ch + c] += edge(sx)[c] as u32 * weight;
        }
    }
}

/// Disk (defocus) blur of radius `r` pixels: every output is the mean over a disk, summed
/// as one horizontal run per row offset from per-row prefix sums.
pub fn disk_blur(p: &Pixels, r: f32) -> Pixels {
    crate::simd::run(
        #[inline(always)]
        || disk_blur_kernel(p, r),
    )
}

#[inline(always)]
fn disk_blur_kernel(p: &Pixels, r: f32) -> Pixels {
    let (w, h) = (p.width() as usize, p.height() as usize);
    let ch = p.channels();
    let ri = r.floor().max(0.0) as usize;
    if ri == 0 {
        return p.clone();
    }
    // Half-widths of the disk's rows, and the disk's area.
    let spans: Vec<usize> = (0..=ri)
        .map(|dy| ((r * r - (dy * dy) as f32).max(0.0)).sqrt().floor() as usize)
        .collect();
    let area: u64 = (-(ri as i64)..=ri as i64)
        .map(|dy| 2 * spans[dy.unsigned_abs() as usize] as u64 + 1)
        .sum();
    let inv = (1u64 << 32) / area;
    // Prefix sums of each row padded by `ri` replicated samples on both sides.
    let pw = w + 2 * ri;
    let src = p.as_raw();
    let mut prefix = vec![0u32; h * (pw + 1) * ch];
    let mut padded = vec![0u8; pw * ch];
    for y in 0..h {
        let row = &src[y * w * ch..(y + 1) * w * ch];
        for i in 0..ri {
            padded[i * ch..(i + 1) * ch].copy_from_slice(&row[..ch]);
            padded[(ri + w + i) * ch..(ri + w + i + 1) * ch].copy_from_slice(&row[(w - 1) * ch..]);
        }
        padded[ri * ch..(ri + w) * ch].copy_from_slice(row);
        let pre = &mut prefix[y * (pw + 1) * ch..(y + 1) * (pw + 1) * ch];
        // Running sums per channel: pre[i + ch] = pre[i] + padded[i].
        for i in 0..pw * ch {
            pre[i + ch] = pre[i] + padded[i] as u32;
        }
    }
    let mut out = vec![0u8; src.len()];
    let mut acc = vec![0u32; w * ch];
    for y in 0..h {
        acc.iter_mut().for_each(|a| *a = 0);
        for dy in -(ri as i64)..=ri as i64 {
            let sy = (y as i64 + dy).clamp(0, h as i64 - 1) as usize;
            let half = spans[dy.unsigned_abs() as usize];
            let pre = &prefix[sy * (pw + 1) * ch..(sy + 1) * (pw + 1) * ch];
            // Output x covers padded columns x + ri - half ..= x + ri + half.
            let lo = (ri - half) * ch;
            let hi = (ri + half + 1) * ch;
            let plus = &pre[hi..hi + w * ch];
            let minus = &pre[lo..lo + w * ch];
            for ((a, &pv), &mv) in acc.iter_mut().zip(plus).zip(minus) {
                *a += pv - mv;
            }
        }
        for (o, &a) in out[y * w * ch..(y + 1) * w * ch].iter_mut().zip(&acc) {
            *o = ((a as u64 * inv + (1 << 31)) >> 32).min(255) as u8;
        }
    }
    with_data(p, out)
}

/// The short side of an image, in pixels, as a float.
pub fn short_side(p: &Pixels) -> f32 {
    p.width().min(p.height()) as f32
}

/// ImageNet-C parameters are given for 224-pixel images; this scales a length in those
/// pixels to the image's short side.
pub fn at_224(p: &Pixels, len: f32) -> f32 {
    len * short_side(p) / 224.0
}

/// A mutable view of interleaved 8-bit samples, for drawing overlays in place.
pub struct Plane<'a> {
    pub data: &'a mut [u8],
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

impl<'a> Plane<'a> {
    pub fn of(p: &'a mut Pixels) -> Plane<'a> {
        let (w, h, ch) = (p.width() as usize, p.height() as usize, p.channels());
        Plane {
            data: p.as_raw_mut(),
            width: w,
            height: h,
            channels: ch,
        }
    }

    /// Blends `color` (RGB; gray images take its luma) into every pixel whose centre lies
    /// in `[x0, x1) × [y0, y1)` (clipped), with the weight `alpha(x, y)` in [0, 1].
    pub fn paint(
        &mut self,
        (x0, y0, x1, y1): (f32, f32, f32, f32),
        color: [f32; 3],
        alpha: impl Fn(f32, f32) -> f32,
    ) {
        let clip = |v: f32, n: usize| (v.floor().max(0.0) as usize).min(n);
        let (xa, xb) = (clip(x0, self.width), clip(x1.ceil(), self.width));
        let (ya, yb) = (clip(y0, self.height), clip(y1.ceil(), self.height));
        let ch = self.channels;
        let col = if ch == 1 { [luma(color); 3] } else { color };
        for y in ya..yb {
            let row = &mut self.data[y * self.width * ch..(y + 1) * self.width * ch];
            for x in xa..xb {
                let a = alpha(x as f32 + 0.5, y as f32 + 0.5);
                if a <= 0.0 {
                    continue;
                }
                let a = a.min(1.0);
                for c in 0..ch {
                    let v = &mut row[x * ch + c];
                    *v = clamp_u8(*v as f32 + (col[c] - *v as f32) * a);
                }
            }
        }
    }

    /// Blends a drawn coverage canvas (1 channel, 0–255 = coverage) in at `(x, y)` with
    /// `color`.
    pub fn stamp(&mut self, canvas: &crate::draw::Canvas, x: i64, y: i64, color: [f32; 3]) {
        let (cw, chh) = (canvas.width as i64, canvas.height as i64);
        self.paint(
            (x as f32, y as f32, (x + cw) as f32, (y + chh) as f32),
            color,
            |px, py| {
                let (cx, cy) = (px.floor() as i64 - x, py.floor() as i64 - y);
                if cx < 0 || cy < 0 || cx >= cw || cy >= chh {
                    0.0
                } else {
                    canvas.data[(cy * cw + cx) as usize * canvas.channels] / 255.0
                }
            },
        );
    }
}

/// The pixels in `[x0, x0 + w) × [y0, y0 + h)` (clipped) as a float canvas, to draw on
/// and put back with [`put_region`].
pub fn region(p: &Pixels, x0: u32, y0: u32, w: u32, h: u32) -> crate::draw::Canvas {
    let (pw, ph) = p.dimensions();
    let (w, h) = (w.min(pw.saturating_sub(x0)), h.min(ph.saturating_sub(y0)));
    let ch = p.channels();
    let src = p.as_raw();
    let mut data = Vec::with_capacity((w * h) as usize * ch);
    for y in y0..y0 + h {
        let start = ((y * pw + x0) as usize) * ch;
        data.extend(
            src[start..start + w as usize * ch]
                .iter()
                .map(|&v| v as f32),
        );
    }
    crate::draw::Canvas {
        width: w,
        height: h,
        channels: ch,
        data,
    }
}

/// Writes a canvas from [`region`] back at `(x0, y0)`.
pub fn put_region(p: &mut Pixels, c: &crate::draw::Canvas, x0: u32, y0: u32) {
    let pw = p.width();
    let ch = p.channels();
    if c.channels != ch {
        return;
    }
    let dst = p.as_raw_mut();
    for y in 0..c.height {
        let start = (((y0 + y) * pw + x0) as usize) * ch;
        let row = &c.data[(y * c.width) as usize * ch..((y + 1) * c.width) as usize * ch];
        for (d, &v) in dst[start..start + row.len()].iter_mut().zip(row) {
            *d = clamp_u8(v);
        }
    }
}

/// Rec. 601 luma of an RGB colour.
pub fn luma(c: [f32; 3]) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

#[cfg(test)]
mod tests;
