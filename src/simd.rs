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
//! compiled into that function with its features.
//!
//! **Why the bytes do not change.** The dispatched kernels compute in integers, or in
//! floating point one IEEE operation at a time with no fused multiply-add (Rust never
//! contracts `a * b + c`): every lane computes exactly what the scalar loop computes, and
//! integer sums are the same in any order. `tests/simd.rs` checks each kernel byte for byte
//! at every level the machine has, and the determinism tests run with each level forced.
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

/// Runs `kernel` compiled for [`level`] (or [`with_level`]'s cap). The kernel, and what it
/// calls, must be `#[inline(always)]` to be compiled with the level's features; see the
/// module docs.
#[inline(always)]
pub fn run<R>(kernel: impl FnOnce() -> R) -> R {
    let level = FORCED.with(|c| c.get()).unwrap_or_else(level);
    run_at(level, kernel)
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

#[cfg(test)]
mod tests {
    use super::*;

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
