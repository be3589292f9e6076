//! Runtime-dispatched SIMD for the hot pixel kernels, with the same bytes on every CPU.
//!
//! medvqa is built for baseline x86-64 (SSE2), so that one binary runs anywhere. Its pixel
//! kernels (Pillow's resampler, the blur passes, the warps, normalisation) are written as
//! plain integer loops that the compiler vectorises; but baseline x86-64 lacks the
//! instructions that make them fast (SSE4.1's 32-bit multiply, AVX2's 256-bit integer lanes,
//! AVX-512's 512-bit ones), so on SSE2 the compiler emulates them.
//!
//! [`run`] calls a kernel inside a function compiled for the best instruction set the CPU
//! has, through [`pulp`] (a maintained safe abstraction: it checks the CPU at run time and
//! only then enters a `#[target_feature]` function, so no `unsafe` is needed here). The
//! kernel is the same Rust code at every level, marked `#[inline(always)]` so that it is
//! compiled into that function with its features. **That includes the closure handed to
//! [`run`]:** write `run(#[inline(always)] || kernel(..))`. Without the attribute the
//! compiler is free to leave the closure as its own function, compiled for the baseline,
//! and the dispatch then buys nothing; it did so for most kernels until issue 17's
//! profiling found the SSE2 loops inside `{{closure}}` symbols (`perf report`), which is
//! how to check a new kernel. `benches/perturb.rs` and `benches/preprocess.rs` run under
//! `MEDVQA_SIMD=baseline` and the default show the gain; a ratio near 1.0 means the kernel
//! did not reach the target-feature function.
//!
//! **Why the bytes do not change.** The dispatched kernels compute in integers, or in
//! floating point one IEEE operation at a time with no fused multiply-add (Rust never
//! contracts `a * b + c`): every lane computes exactly what the scalar loop computes, and
//! integer sums are the same in any order. `tests/simd.rs` checks each kernel byte for byte
//! at every level the machine has, and the determinism tests run with each level forced.
//!
//! **Byte kernels.** Two kernels that the compiler cannot vectorise from safe Rust, a
//! 256-entry table lookup per byte ([`lut`]) and a pixel-order reversal ([`mirror_rows`]),
//! are written with `std::arch` intrinsics in the one submodule below that allows `unsafe`
//! (AVX-512 VBMI's `vpermb`/`vpermi2b`; AVX2's `vpshufb` for gray mirrors), with the safety
//! argument there. They move bytes and compute nothing, so every path gives the same bytes by
//! construction; `tests/simd.rs` and this module's tests check it anyway.
//!
//! **Forcing a level.** `MEDVQA_SIMD=baseline|avx2|avx512` (read once per process) caps the
//! level; a level the CPU lacks falls back to the best one below it. `auto` or unset: the
//! best available. [`with_level`] caps it for one thread, for tests.

use std::sync::OnceLock;

/// An instruction-set level kernels can be compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The build's own target: SSE2 on x86-64, whatever the target has elsewhere.
    Baseline,
    /// x86-64-v3: AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE.
    Avx2,
    /// x86-64-v4: AVX-512 F, BW, CD, DQ and VL, on top of v3.
    Avx512,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 3] = [Level::Baseline, Level::Avx2, Level::Avx512];

    /// The name `MEDVQA_SIMD` takes and `timing.json` records.
    pub fn name(self) -> &'static str {
        match self {
            Level::Baseline => "baseline",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the level.
    pub fn is_available(self) -> bool {
        match self {
            Level::Baseline => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => pulp::x86::V3::try_new().is_some(),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => pulp::x86::V4::try_new().is_some(),
            #[cfg(not(target_arch = "x86_64"))]
            Level::Avx2 | Level::Avx512 => false,
        }
    }

    fn parse(s: &str) -> Option<Option<Level>> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Some(None),
            "baseline" | "scalar" | "sse2" => Some(Some(Level::Baseline)),
            "avx2" | "v3" => Some(Some(Level::Avx2)),
            "avx512" | "avx-512" | "v4" => Some(Some(Level::Avx512)),
            _ => None,
        }
    }
}

/// The levels this CPU can run, lowest first (always at least [`Level::Baseline`]).
pub fn available() -> Vec<Level> {
    Level::ALL
        .into_iter()
        .filter(|l| l.is_available())
        .collect()
}

/// The level [`run`] uses: the best available, capped by `MEDVQA_SIMD`.
pub fn level() -> Level {
    static CHOSEN: OnceLock<Level> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let best = available().into_iter().max().unwrap_or(Level::Baseline);
        let Ok(raw) = std::env::var("MEDVQA_SIMD") else {
            return best;
        };
        match Level::parse(&raw) {
            Some(None) => best,
            Some(Some(cap)) => {
                let got = cap.min(best);
                if got != cap {
                    eprintln!(
                        "medvqa: MEDVQA_SIMD={raw}: this CPU lacks {}; using {}",
                        cap.name(),
                        got.name()
                    );
                }
                got
            }
            None => {
                eprintln!(
                    "medvqa: MEDVQA_SIMD={raw} is not one of auto, baseline, avx2, avx512; \
                     using {}",
                    best.name()
                );
                best
            }
        }
    })
}

thread_local! {
    /// [`with_level`]'s cap for this thread, if any.
    static FORCED: std::cell::Cell<Option<Level>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with every [`run`] on this thread (not on threads it starts) capped at `level`:
/// how the tests compare the levels in one process. The previous cap comes back after.
pub fn with_level<R>(level: Level, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Level>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FORCED.with(|c| c.replace(Some(level))));
    f()
}

/// Runs `kernel` compiled for [`level`] (or [`with_level`]'s cap). The kernel closure, and
/// what it calls, must be `#[inline(always)]` to be compiled with the level's features; see
/// the module docs.
#[inline(always)]
pub fn run<R>(kernel: impl FnOnce() -> R) -> R {
    run_at(current(), kernel)
}

/// Runs `kernel` compiled for `level`, or for the best level below it that this CPU has.
/// Tests use it to compare levels; everything else calls [`run`].
#[inline(always)]
pub fn run_at<R>(level: Level, kernel: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if level >= Level::Avx512
            && let Some(simd) = pulp::x86::V4::try_new()
        {
            return simd.vectorize(kernel);
        }
        if level >= Level::Avx2
            && let Some(simd) = pulp::x86::V3::try_new()
        {
            return simd.vectorize(kernel);
        }
    }
    let _ = level;
    kernel()
}

/// The level a kernel called now on this thread runs at: [`with_level`]'s cap, else
/// [`level`]. Code that hands a kernel to other threads reads it first and passes it to
/// [`run_at`] there.
pub fn current() -> Level {
    FORCED.with(|c| c.get()).unwrap_or_else(level)
}

/// `table[v]` for every byte `v` of `src`: gamma, brightness and tone curves. On a CPU with
/// AVX-512 VBMI (at level [`Level::Avx512`]) 64 bytes go through four `vpermi2b` table
/// halves per step; elsewhere one byte at a time.
pub fn lut(src: &[u8], table: &[u8; 256]) -> Vec<u8> {
    if lut_is_vectorised() {
        #[cfg(target_arch = "x86_64")]
        return bytes::lut_vbmi(src, table);
    }
    lut_portable(src, table)
}

/// Whether [`lut`] runs in vector lanes here (AVX-512 VBMI at level [`Level::Avx512`]), so
/// that a per-byte map is faster as a table than computed: `perturb::raster::scale_add`
/// asks, and gives the same bytes either way.
pub fn lut_is_vectorised() -> bool {
    #[cfg(target_arch = "x86_64")]
    if current() >= Level::Avx512 && bytes::has_vbmi() {
        return true;
    }
    false
}

fn lut_portable(src: &[u8], table: &[u8; 256]) -> Vec<u8> {
    src.iter().map(|&v| table[v as usize]).collect()
}

/// The rows of an image (`width` pixels of `channels` bytes each; 1 or 3 channels) with
/// their pixels in reverse order: a horizontal flip. AVX-512 VBMI mirrors 16 RGB or 64 gray
/// pixels per `vpermb`; AVX2 mirrors 32 gray pixels per `vpshufb`; elsewhere the portable
/// block loop. Any other channel count, or a buffer that is not whole rows, goes through the
/// portable loop.
pub fn mirror_rows(src: &[u8], width: usize, channels: usize) -> Vec<u8> {
    let row = width * channels;
    if row == 0 || !src.len().is_multiple_of(row) || !(channels == 1 || channels == 3) {
        return mirror_portable(src, width.max(1), channels.max(1));
    }
    #[cfg(target_arch = "x86_64")]
    {
        let level = current();
        if level >= Level::Avx512 && bytes::has_vbmi() {
            return bytes::mirror_vbmi(src, width, channels);
        }
        if level >= Level::Avx2 && channels == 1 && Level::Avx2.is_available() {
            return bytes::mirror_gray_avx2(src, width);
        }
    }
    mirror_portable(src, width, channels)
}

fn mirror_portable(src: &[u8], width: usize, channels: usize) -> Vec<u8> {
    let row = (width * channels).max(1);
    let mut out = vec![0u8; src.len()];
    run(
        #[inline(always)]
        || {
            for (d, s) in out.chunks_exact_mut(row).zip(src.chunks_exact(row)) {
                match channels {
                    1 => mirror_row::<1>(s, d),
                    3 => mirror_row::<3>(s, d),
                    4 => mirror_row::<4>(s, d),
                    _ => {
                        for (dp, sp) in d
                            .chunks_exact_mut(channels)
                            .zip(s.chunks_exact(channels).rev())
                        {
                            dp.copy_from_slice(sp);
                        }
                    }
                }
            }
        },
    );
    out
}

/// `dst` = the pixels of `src` (one row) in reverse order. Blocks of 16 pixels are a fixed
/// permutation of 16·`CH` bytes, which the compiler turns into byte shuffles where it can;
/// the rest go one pixel at a time.
#[inline(always)]
fn mirror_row<const CH: usize>(src: &[u8], dst: &mut [u8]) {
    const BLOCK: usize = 16;
    let (src, _) = src.as_chunks::<CH>();
    let (dst, _) = dst.as_chunks_mut::<CH>();
    let n = src.len().min(dst.len());
    let mut x = 0;
    while x + BLOCK <= n {
        let s = &src[n - x - BLOCK..n - x];
        let d = &mut dst[x..x + BLOCK];
        for i in 0..BLOCK {
            d[i] = s[BLOCK - 1 - i];
        }
        x += BLOCK;
    }
    for i in x..n {
        dst[i] = src[n - 1 - i];
    }
}

/// An interleaved 8-bit image a kernel reads: `width × height` pixels, `data` row-major.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub data: &'a [u8],
    pub width: usize,
    pub height: usize,
}

/// One output row of an affine bilinear warp (rotate, the Kvasir recipe) in AVX-512 lanes,
/// where the CPU has AVX-512 VBMI (at level [`Level::Avx512`]): output pixel `x` samples the
/// source at `start + x·step`, 16.16 fixed point. Every block of 16 pixels whose four taps all
/// lie inside the source (and whose widest read stays inside `data`) is computed with the same
/// integer steps as the portable code (8-bit weights, across then down, rounded at 2¹⁵), so
/// with the same bytes; every other pixel goes through `pixel(x, out)`, the portable code
/// for output pixel `x` (by index: a closure over source positions, wrapped here, cost the
/// AVX-512 rotate 20%, gray 3,000 → 2,400 img/s). Returns false, writing nothing, where the
/// CPU lacks the level, `CH` is not 1 or 3, or the positions do not fit 32-bit lanes: the
/// caller then runs its own portable loop (kept in the caller, where it compiles to a
/// tighter loop than through this function).
#[inline(always)]
pub fn bilinear_row<const CH: usize>(
    src: &Source,
    start: (i64, i64),
    step: (i64, i64),
    row: &mut [u8],
    pixel: impl FnMut(usize, &mut [u8]),
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if (CH == 1 || CH == 3)
        && current() >= Level::Avx512
        && bytes::has_vbmi()
        && bytes::bilinear_fits(src, CH, start, step, row.len() / CH)
    {
        bytes::bilinear_row_avx512::<CH>(src, start, step, row, pixel);
        return true;
    }
    let _ = (src, start, step, row, pixel);
    false
}

/// A horizontal two-tap pass planned once for a whole image (the zoom's first pass, see
/// `perturb::geometric`): output sample `j` of a row is `line[l]·wl + line[r]·wr` in 16 bits.
/// With AVX-512 VBMI, each 32 output samples read one 64-byte window of the row through two
/// `vpermb` shuffles; [`TwoTapPlan::new`] gives `None` where the CPU lacks it or a window
/// would be wider than 64 bytes, and the caller runs its portable loop.
#[derive(Debug)]
pub struct TwoTapPlan {
    blocks: Vec<TwoTapBlock>,
    samples: usize,
    line_len: usize,
}

#[derive(Debug)]
struct TwoTapBlock {
    /// The window's first byte in the row.
    base: usize,
    left: [u8; 64],
    right: [u8; 64],
    wl: [u16; 32],
    wr: [u16; 32],
}

impl TwoTapPlan {
    /// `taps[x]`: output pixel `x`'s left source pixel and the two 8-bit weights, or `None`
    /// (the pixel stays 0); `channels` bytes per pixel; `line_len` bytes per source row.
    pub fn new(
        taps: &[Option<(usize, u32, u32)>],
        channels: usize,
        line_len: usize,
    ) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if current() >= Level::Avx512 && bytes::has_vbmi() {
            let samples = taps.len() * channels;
            let mut blocks = Vec::with_capacity(samples.div_ceil(32));
            for start in (0..samples).step_by(32) {
                let tap = |j: usize| {
                    let (x, k) = (j / channels, j % channels);
                    taps[x].map(|(i, wl, wr)| (i * channels + k, (i + 1) * channels + k, wl, wr))
                };
                let end = (start + 32).min(samples);
                let base = (start..end)
                    .filter_map(|j| tap(j).map(|t| t.0))
                    .min()
                    .unwrap_or(0);
                // A pixel with no taps reads the window's first byte with weight 0.
                let tap = |j: usize| tap(j).unwrap_or((base, base, 0, 0));
                let mut b = TwoTapBlock {
                    base,
                    left: [0; 64],
                    right: [0; 64],
                    wl: [0; 32],
                    wr: [0; 32],
                };
                for j in start..end {
                    let (l, r, wl, wr) = tap(j);
                    if r >= line_len || r - base >= 64 || wl > 256 || wr > 256 {
                        return None;
                    }
                    b.left[j - start] = (l - base) as u8;
                    b.right[j - start] = (r - base) as u8;
                    b.wl[j - start] = wl as u16;
                    b.wr[j - start] = wr as u16;
                }
                blocks.push(b);
            }
            return Some(TwoTapPlan {
                blocks,
                samples,
                line_len,
            });
        }
        let _ = (taps, channels, line_len);
        None
    }

    /// One row: `out[j]` for every output sample `j`. Returns false, writing nothing, when
    /// `line` is not the planned row length or `out` is shorter than the plan's samples.
    pub fn row(&self, line: &[u8], out: &mut [u16]) -> bool {
        if line.len() != self.line_len || out.len() < self.samples {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        {
            bytes::two_tap_row(self, line, out);
            true
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }
}

/// The hand-written byte kernels: the only `unsafe` code in medvqa.
///
/// **Safety argument.** Each `#[target_feature]` function here is entered only after
/// `is_x86_feature_detected!` has confirmed every feature it enables (`has_vbmi`, or the
/// AVX2 check in [`mirror_rows`]), so no instruction the CPU lacks can run. Every memory
/// access is an unaligned load or store (`loadu`/`storeu`, or the masked forms, whose masked-
/// off bytes are neither read nor written and cannot fault) at an offset checked against the
/// slice length by the loop bounds written next to it. Output goes into a `Vec`'s spare
/// capacity of exactly `src.len()` bytes, and `set_len` runs only after every one of those
/// bytes has been written. Nothing is read from uninitialised memory.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod bytes {
    use std::arch::x86_64::*;

    /// AVX-512 F, BW and VBMI: what `vpermb`, `vpermi2b` and the byte masks need.
    pub(super) fn has_vbmi() -> bool {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vbmi")
    }

    /// A mask of the low `n` bytes of a 64-byte vector (`n` ≤ 64).
    fn low_bytes(n: usize) -> __mmask64 {
        if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
    }

    pub(super) fn lut_vbmi(src: &[u8], table: &[u8; 256]) -> Vec<u8> {
        let mut out = Vec::with_capacity(src.len());
        // SAFETY: `has_vbmi()` was checked by the caller; see the module's argument.
        unsafe { lut_vbmi_into(src, table, out.as_mut_ptr()) };
        // SAFETY: `lut_vbmi_into` wrote all `src.len()` bytes, within the capacity.
        unsafe { out.set_len(src.len()) };
        out
    }

    /// Writes `table[src[i]]` to `dst[i]` for every `i < src.len()`.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VBMI; `dst` is valid for `src.len()` byte writes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    unsafe fn lut_vbmi_into(src: &[u8], table: &[u8; 256], dst: *mut u8) {
        let t = table.as_ptr();
        // SAFETY: four 64-byte loads at offsets 0, 64, 128 and 192 of a 256-byte table.
        let (t0, t1, t2, t3) = unsafe {
            (
                _mm512_loadu_si512(t.cast()),
                _mm512_loadu_si512(t.add(64).cast()),
                _mm512_loadu_si512(t.add(128).cast()),
                _mm512_loadu_si512(t.add(192).cast()),
            )
        };
        // Bit 6 of each byte picks t0/t1 (or t2/t3), bits 0–5 the entry; bit 7 the half.
        let look = |x: __m512i| {
            let low = _mm512_permutex2var_epi8(t0, x, t1);
            let high = _mm512_permutex2var_epi8(t2, x, t3);
            _mm512_mask_blend_epi8(_mm512_movepi8_mask(x), low, high)
        };
        let n = src.len();
        let s = src.as_ptr();
        let mut i = 0;
        while i + 64 <= n {
            // SAFETY: bytes i..i + 64 are within `src` and `dst` (the loop bound).
            unsafe {
                let x = _mm512_loadu_si512(s.add(i).cast());
                _mm512_storeu_si512(dst.add(i).cast(), look(x));
            }
            i += 64;
        }
        if i < n {
            let k = low_bytes(n - i);
            // SAFETY: the mask covers bytes i..n only, within `src` and `dst`.
            unsafe {
                let x = _mm512_maskz_loadu_epi8(k, s.add(i).cast());
                _mm512_mask_storeu_epi8(dst.add(i).cast(), k, look(x));
            }
        }
    }

    pub(super) fn mirror_vbmi(src: &[u8], width: usize, channels: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(src.len());
        // SAFETY: `has_vbmi()` was checked by the caller; `mirror_rows` passes only whole
        // rows of 1 or 3 channels.
        unsafe { mirror_vbmi_into(src, width, channels, out.as_mut_ptr()) };
        // SAFETY: every row, so every byte of `src.len()`, was written.
        unsafe { out.set_len(src.len()) };
        out
    }

    /// Mirrors each row of `src` into `dst`.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VBMI; `channels` is 1 or 3; `src.len()` is a multiple
    /// of `width · channels` > 0; `dst` is valid for `src.len()` byte writes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    unsafe fn mirror_vbmi_into(src: &[u8], width: usize, channels: usize, dst: *mut u8) {
        let ch = channels;
        // Pixels per step: 64 gray, or 16 RGB (48 of the vector's 64 bytes).
        let px = if ch == 1 { 64 } else { 16 };
        let bytes = px * ch;
        let mut idx = [0u8; 64];
        for (j, v) in idx.iter_mut().enumerate().take(bytes) {
            *v = ((px - 1 - j / ch) * ch + j % ch) as u8;
        }
        // SAFETY: a 64-byte load of a 64-byte array.
        let perm = unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) };
        let k = low_bytes(bytes);
        let row = width * ch;
        for (r, s) in src.chunks_exact(row).enumerate() {
            // SAFETY: this row's bytes r·row .. (r + 1)·row are within `dst`.
            let d = unsafe { dst.add(r * row) };
            let mut x = 0; // output pixel
            while x + px <= width {
                // Output pixels x..x + px are input pixels width − x − px .. width − x.
                let from = (width - x - px) * ch;
                // SAFETY: `bytes` bytes from `from` end at (width − x)·ch ≤ row, and the
                // store's `bytes` bytes from x·ch end at (x + px)·ch ≤ row (loop bound).
                unsafe {
                    let v = _mm512_maskz_loadu_epi8(k, s.as_ptr().add(from).cast());
                    _mm512_mask_storeu_epi8(
                        d.add(x * ch).cast(),
                        k,
                        _mm512_permutexvar_epi8(perm, v),
                    );
                }
                x += px;
            }
            while x < width {
                let from = (width - 1 - x) * ch;
                // SAFETY: pixel `x` < width of this row; `from` + ch ≤ row.
                unsafe { std::ptr::copy_nonoverlapping(s.as_ptr().add(from), d.add(x * ch), ch) };
                x += 1;
            }
        }
    }

    /// Whether every lane value of a [`super::bilinear_row`] call fits `i32`: the positions
    /// at both ends of the row, plus a block's overrun, and the byte offsets into `data`.
    pub(super) fn bilinear_fits(
        src: &super::Source,
        ch: usize,
        start: (i64, i64),
        step: (i64, i64),
        n: usize,
    ) -> bool {
        const LIMIT: i64 = 1 << 30;
        let end = n as i64 + 16;
        let ok = |v: i64, d: i64| {
            d.abs() < LIMIT / 16
                && v.abs() < LIMIT
                && d.checked_mul(end).is_some_and(|e| (v + e).abs() < LIMIT)
        };
        ok(start.0, step.0)
            && ok(start.1, step.1)
            && src.data.len() < (1 << 30)
            && src
                .width
                .checked_mul(src.height)
                .and_then(|p| p.checked_mul(ch))
                == Some(src.data.len())
            && src.width >= 2
            && src.height >= 2
    }

    /// The AVX-512 body of [`super::bilinear_row`].
    pub(super) fn bilinear_row_avx512<const CH: usize>(
        src: &super::Source,
        start: (i64, i64),
        step: (i64, i64),
        row: &mut [u8],
        pixel: impl FnMut(usize, &mut [u8]),
    ) {
        // SAFETY: the caller checked `has_vbmi()` and `bilinear_fits` (so `data` holds
        // exactly width × height × CH bytes, all lane values fit i32); `CH` is 1 or 3.
        unsafe { bilinear_row_into::<CH>(src, start, step, row, pixel) }
    }

    /// # Safety
    /// The CPU has AVX-512 F, BW and VBMI; `CH` is 1 or 3; [`bilinear_fits`] holds.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    unsafe fn bilinear_row_into<const CH: usize>(
        src: &super::Source,
        start: (i64, i64),
        step: (i64, i64),
        row: &mut [u8],
        mut pixel: impl FnMut(usize, &mut [u8]),
    ) {
        let n = row.len() / CH;
        let stride = src.width * CH;
        let data = src.data.as_ptr();
        // A lane may gather only if its widest read, 4 bytes at its bottom-right tap
        // (idx + stride + CH for RGB, idx + stride for gray), ends inside `data`.
        let far = (stride + if CH == 3 { CH + 4 } else { 4 }) as i64;
        let read_limit = src.data.len() as i64 - far + 1;
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let (dx, dy) = (
            _mm512_set1_epi32(step.0 as i32),
            _mm512_set1_epi32(step.1 as i32),
        );
        let (ix, iy) = (
            _mm512_set1_epi32((src.width - 1) as i32),
            _mm512_set1_epi32((src.height - 1) as i32),
        );
        let limit = _mm512_set1_epi32(read_limit.clamp(0, i32::MAX as i64) as i32);
        let v_stride = _mm512_set1_epi32(stride as i32);
        let v_ch = _mm512_set1_epi32(CH as i32);
        let byte = _mm512_set1_epi32(255);
        let w256 = _mm512_set1_epi32(256);
        let half = _mm512_set1_epi32(1 << 15);
        // RGB: lane i's three bytes (i·4 + 0..3) to output bytes i·3 + 0..3.
        let mut pack = [0u8; 64];
        for (j, v) in pack.iter_mut().enumerate().take(48) {
            *v = ((j / 3) * 4 + j % 3) as u8;
        }
        // SAFETY: a 64-byte load of a 64-byte array.
        let pack = unsafe { _mm512_loadu_si512(pack.as_ptr().cast()) };
        // One channel: (t·(256 − wy) + b·wy + 2¹⁵) >> 16, t and b blended across by wx.
        let blend = |tl: __m512i, tr: __m512i, bl: __m512i, br: __m512i, wx, wy| {
            let wx1 = _mm512_sub_epi32(w256, wx);
            let wy1 = _mm512_sub_epi32(w256, wy);
            let t = _mm512_add_epi32(_mm512_mullo_epi32(tl, wx1), _mm512_mullo_epi32(tr, wx));
            let b = _mm512_add_epi32(_mm512_mullo_epi32(bl, wx1), _mm512_mullo_epi32(br, wx));
            let s = _mm512_add_epi32(_mm512_mullo_epi32(t, wy1), _mm512_mullo_epi32(b, wy));
            _mm512_srli_epi32::<16>(_mm512_add_epi32(s, half))
        };
        let mut x = 0;
        while x + 16 <= n {
            // Exact: `bilinear_fits` keeps every lane's i64 value within i32.
            let fx = _mm512_add_epi32(
                _mm512_set1_epi32((start.0 + x as i64 * step.0) as i32),
                _mm512_mullo_epi32(lanes, dx),
            );
            let fy = _mm512_add_epi32(
                _mm512_set1_epi32((start.1 + x as i64 * step.1) as i32),
                _mm512_mullo_epi32(lanes, dy),
            );
            let (x0, y0) = (_mm512_srai_epi32::<16>(fx), _mm512_srai_epi32::<16>(fy));
            let idx = _mm512_add_epi32(
                _mm512_mullo_epi32(y0, v_stride),
                _mm512_mullo_epi32(x0, v_ch),
            );
            let inside = _mm512_cmplt_epu32_mask(x0, ix)
                & _mm512_cmplt_epu32_mask(y0, iy)
                & _mm512_cmplt_epu32_mask(idx, limit);
            if inside != 0xffff {
                for i in x..x + 16 {
                    pixel(i, &mut row[i * CH..(i + 1) * CH]);
                }
                x += 16;
                continue;
            }
            let wx = _mm512_and_si512(_mm512_srli_epi32::<8>(fx), byte);
            let wy = _mm512_and_si512(_mm512_srli_epi32::<8>(fy), byte);
            let below = _mm512_add_epi32(idx, v_stride);
            if CH == 3 {
                let right = _mm512_set1_epi32(3);
                // SAFETY: every lane is inside (checked above): its reads, 4 bytes at idx,
                // idx + 3, idx + stride and idx + stride + 3, end before `read_limit`'s
                // bound, inside `data`.
                let (tl, tr, bl, br) = unsafe {
                    (
                        _mm512_i32gather_epi32::<1>(idx, data.cast()),
                        _mm512_i32gather_epi32::<1>(_mm512_add_epi32(idx, right), data.cast()),
                        _mm512_i32gather_epi32::<1>(below, data.cast()),
                        _mm512_i32gather_epi32::<1>(_mm512_add_epi32(below, right), data.cast()),
                    )
                };
                let channel = |v: __m512i, c: u32| match c {
                    0 => _mm512_and_si512(v, byte),
                    1 => _mm512_and_si512(_mm512_srli_epi32::<8>(v), byte),
                    _ => _mm512_and_si512(_mm512_srli_epi32::<16>(v), byte),
                };
                let mut rgb = _mm512_setzero_si512();
                for c in 0..3u32 {
                    let o = blend(
                        channel(tl, c),
                        channel(tr, c),
                        channel(bl, c),
                        channel(br, c),
                        wx,
                        wy,
                    );
                    let shifted = match c {
                        0 => o,
                        1 => _mm512_slli_epi32::<8>(o),
                        _ => _mm512_slli_epi32::<16>(o),
                    };
                    rgb = _mm512_or_si512(rgb, shifted);
                }
                let out = _mm512_permutexvar_epi8(pack, rgb);
                // SAFETY: output bytes x·3 .. x·3 + 48 are within the row (x + 16 ≤ n).
                unsafe {
                    _mm512_mask_storeu_epi8(
                        row.as_mut_ptr().add(x * 3).cast(),
                        (1u64 << 48) - 1,
                        out,
                    )
                };
            } else {
                // SAFETY: as above: 4 bytes at idx and at idx + stride, inside `data`.
                let (top, bottom) = unsafe {
                    (
                        _mm512_i32gather_epi32::<1>(idx, data.cast()),
                        _mm512_i32gather_epi32::<1>(below, data.cast()),
                    )
                };
                let o = blend(
                    _mm512_and_si512(top, byte),
                    _mm512_and_si512(_mm512_srli_epi32::<8>(top), byte),
                    _mm512_and_si512(bottom, byte),
                    _mm512_and_si512(_mm512_srli_epi32::<8>(bottom), byte),
                    wx,
                    wy,
                );
                // SAFETY: output bytes x .. x + 16 are within the row (x + 16 ≤ n).
                unsafe {
                    _mm_storeu_si128(row.as_mut_ptr().add(x).cast(), _mm512_cvtepi32_epi8(o))
                };
            }
            x += 16;
        }
        for i in x..n {
            pixel(i, &mut row[i * CH..(i + 1) * CH]);
        }
    }

    /// The AVX-512 body of [`super::TwoTapPlan::row`], which checked `line` and `out`.
    pub(super) fn two_tap_row(plan: &super::TwoTapPlan, line: &[u8], out: &mut [u16]) {
        // SAFETY: a plan exists only where `has_vbmi()` held; `row` checked that `line` has
        // the planned length (so every block's base and indices are inside it, as `new`
        // checked) and that `out` holds the plan's samples.
        unsafe { two_tap_row_into(plan, line, out) }
    }

    /// # Safety
    /// The CPU has AVX-512 F, BW and VBMI; `out.len() ≥ plan.samples`; `line.len()` is the
    /// planned row length.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    unsafe fn two_tap_row_into(plan: &super::TwoTapPlan, line: &[u8], out: &mut [u16]) {
        for (n, b) in plan.blocks.iter().enumerate() {
            let avail = line.len() - b.base;
            // SAFETY: the mask covers `min(64, avail)` bytes from `base`, inside `line`; the
            // four table loads read 64-byte arrays.
            let (window, left, right, wl, wr) = unsafe {
                (
                    _mm512_maskz_loadu_epi8(low_bytes(avail), line.as_ptr().add(b.base).cast()),
                    _mm512_loadu_si512(b.left.as_ptr().cast()),
                    _mm512_loadu_si512(b.right.as_ptr().cast()),
                    _mm512_loadu_si512(b.wl.as_ptr().cast()),
                    _mm512_loadu_si512(b.wr.as_ptr().cast()),
                )
            };
            let widen = |idx| {
                _mm512_cvtepu8_epi16(_mm512_castsi512_si256(_mm512_permutexvar_epi8(idx, window)))
            };
            // l·wl + r·wr ≤ 255·256: exact in 16 bits.
            let sum = _mm512_add_epi16(
                _mm512_mullo_epi16(widen(left), wl),
                _mm512_mullo_epi16(widen(right), wr),
            );
            let start = n * 32;
            let count = (plan.samples - start).min(32);
            let mask: __mmask32 = if count >= 32 {
                u32::MAX
            } else {
                (1u32 << count) - 1
            };
            // SAFETY: samples start .. start + count are within `out` (`out.len() ≥ samples`).
            unsafe { _mm512_mask_storeu_epi16(out.as_mut_ptr().add(start).cast(), mask, sum) };
        }
    }

    pub(super) fn mirror_gray_avx2(src: &[u8], width: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(src.len());
        // SAFETY: the caller checked AVX2 (`Level::Avx2.is_available()`); whole rows.
        unsafe { mirror_gray_avx2_into(src, width, out.as_mut_ptr()) };
        // SAFETY: every byte was written.
        unsafe { out.set_len(src.len()) };
        out
    }

    /// Mirrors each gray row of `src` into `dst`, 32 pixels per step.
    ///
    /// # Safety
    /// The CPU has AVX2; `src.len()` is a multiple of `width` > 0; `dst` is valid for
    /// `src.len()` byte writes.
    #[target_feature(enable = "avx2")]
    unsafe fn mirror_gray_avx2_into(src: &[u8], width: usize, dst: *mut u8) {
        // Reverses the bytes within each 16-byte lane; the lanes then swap.
        let rev = _mm256_setr_epi8(
            15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8, 7,
            6, 5, 4, 3, 2, 1, 0,
        );
        for (r, s) in src.chunks_exact(width).enumerate() {
            // SAFETY: this row's bytes are within `dst`.
            let d = unsafe { dst.add(r * width) };
            let mut x = 0;
            while x + 32 <= width {
                // SAFETY: input bytes width − x − 32 .. width − x and output bytes
                // x .. x + 32 are within the row (loop bound).
                unsafe {
                    let v = _mm256_loadu_si256(s.as_ptr().add(width - x - 32).cast());
                    let m = _mm256_permute4x64_epi64::<0x4e>(_mm256_shuffle_epi8(v, rev));
                    _mm256_storeu_si256(d.add(x).cast(), m);
                }
                x += 32;
            }
            while x < width {
                // SAFETY: x < width, within the row.
                unsafe { *d.add(x) = s[width - 1 - x] };
                x += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn lut_is_the_same_at_every_level_and_length() {
        let mut table = [0u8; 256];
        for (i, t) in table.iter_mut().enumerate() {
            *t = (i as u8).wrapping_mul(167).wrapping_add(13);
        }
        for n in [0, 1, 63, 64, 65, 127, 200, 1000, 4099] {
            let src = random_bytes(n, n as u64);
            let want = lut_portable(&src, &table);
            assert_eq!(want.len(), n);
            for l in available() {
                assert_eq!(
                    with_level(l, || lut(&src, &table)),
                    want,
                    "{} n={n}",
                    l.name()
                );
            }
        }
    }

    #[test]
    fn mirror_rows_is_the_same_at_every_level_and_width() {
        for ch in [1usize, 3, 4] {
            for width in [1usize, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 130, 203] {
                let src = random_bytes(width * ch * 3, (width * 10 + ch) as u64);
                let want: Vec<u8> = src
                    .chunks_exact(width * ch)
                    .flat_map(|row| row.chunks_exact(ch).rev().flatten().copied())
                    .collect();
                for l in available() {
                    let got = with_level(l, || mirror_rows(&src, width, ch));
                    assert_eq!(got, want, "{} ch={ch} w={width}", l.name());
                }
            }
        }
        // Not whole rows: the portable loop, with no panic and the same length.
        assert_eq!(mirror_rows(&[1, 2, 3, 4, 5], 2, 1).len(), 5);
        assert_eq!(mirror_rows(&[], 0, 3), Vec::<u8>::new());
    }

    #[test]
    fn two_tap_rows_equal_the_formula_or_are_not_planned() {
        let mut planned = 0;
        for ch in [1usize, 3] {
            for (src_w, dst_w) in [(2usize, 1usize), (5, 7), (37, 53), (100, 143), (203, 64)] {
                // Upscaling taps (as a zoom makes), some columns outside the source.
                let taps: Vec<Option<(usize, u32, u32)>> = (0..dst_w)
                    .map(|x| {
                        let pos = (x * 256 * (src_w - 1)) / dst_w.max(1);
                        let (i, w) = ((pos / 256).min(src_w - 2), (pos % 256) as u32);
                        (x % 11 != 5).then_some((i, 256 - w, w))
                    })
                    .collect();
                let line = random_bytes(src_w * ch, (src_w * 7 + ch) as u64);
                let want: Vec<u16> = (0..dst_w * ch)
                    .map(|j| match taps[j / ch] {
                        Some((i, wl, wr)) => {
                            let (l, r) = (line[i * ch + j % ch], line[(i + 1) * ch + j % ch]);
                            (u32::from(l) * wl + u32::from(r) * wr) as u16
                        }
                        None => 0,
                    })
                    .collect();
                for l in available() {
                    let Some(plan) = with_level(l, || TwoTapPlan::new(&taps, ch, line.len()))
                    else {
                        continue;
                    };
                    let mut out = vec![7u16; dst_w * ch];
                    assert!(plan.row(&line, &mut out));
                    assert_eq!(out, want, "{} ch={ch} {src_w}->{dst_w}", l.name());
                    // The wrong row length or a short output: refused, nothing written.
                    assert!(!plan.row(&line[1..], &mut out));
                    assert!(!plan.row(&line, &mut out[1..]));
                    planned += 1;
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        if Level::Avx512.is_available() && bytes::has_vbmi() {
            assert!(planned >= 8, "{planned}");
        }
        // Without AVX-512 VBMI there is no plan: the caller's portable loop runs.
        let taps = [Some((0, 256, 0))];
        assert!(with_level(Level::Baseline, || TwoTapPlan::new(&taps, 3, 6)).is_none());
    }

    #[test]
    fn names_parse_back() {
        for l in Level::ALL {
            assert_eq!(Level::parse(l.name()), Some(Some(l)));
        }
        assert_eq!(Level::parse("auto"), Some(None));
        assert_eq!(Level::parse("neon"), None);
    }

    #[test]
    fn baseline_is_always_available_and_run_at_calls_the_kernel() {
        assert_eq!(available().first(), Some(&Level::Baseline));
        for l in Level::ALL {
            let v: Vec<i32> = (0..1000).collect();
            let s = run_at(l, || v.iter().map(|x| x * 3).sum::<i32>());
            assert_eq!(s, 3 * 999 * 1000 / 2);
        }
    }
}
