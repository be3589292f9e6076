//! Sample-level perturbations of multi-frame questions: frame drop, frame shuffle and
//! frame duplicate. Each returns the indices of the original frames in the order the
//! model sees them; the images themselves are untouched. Seeds come from the sample id.
//!
//! A single-frame sample has nothing to reorder: every one of these returns `[0]` for it.
//! For two or more frames every severity changes the list.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::{Apply, Family, Modality, Perturbation};

const VIDEO: &[Modality] = &[Modality::Video];

/// Share of frames dropped (at least one, never all).
const DROP_SHARE: [f32; 5] = [0.2, 0.3, 0.4, 0.6, 0.8];
/// Random adjacent swaps applied (the list never comes back unchanged).
const SHUFFLE_SWAPS: [usize; 5] = [1, 2, 3, 5, 8];
/// Share of frames replaced by a repeat of the frame before (at least one).
const DUPLICATE_SHARE: [f32; 5] = [0.2, 0.3, 0.4, 0.6, 0.8];

fn at<T: Copy>(table: &[T; 5], severity: u8) -> T {
    table[(severity.clamp(1, 5) - 1) as usize]
}

pub const DROP: Perturbation = Perturbation {
    name: "frame-drop",
    family: Family::Frames,
    summary: "drop a share of the frames (at least one, never all); order kept",
    modalities: VIDEO,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "share of frames dropped",
    table: |s| format!("{}", at(&DROP_SHARE, s)),
    apply: Apply::Frames(drop),
};

pub const SHUFFLE: Perturbation = Perturbation {
    name: "frame-shuffle",
    family: Family::Frames,
    summary: "reorder frames by random adjacent swaps; never the original order",
    modalities: VIDEO,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "adjacent swaps",
    table: |s| format!("{}", at(&SHUFFLE_SWAPS, s)),
    apply: Apply::Frames(shuffle),
};

pub const DUPLICATE: Perturbation = Perturbation {
    name: "frame-duplicate",
    family: Family::Frames,
    summary: "freeze: replace a share of frames by a repeat of the frame before; count kept",
    modalities: VIDEO,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "share of frames replaced",
    table: |s| format!("{}", at(&DUPLICATE_SHARE, s)),
    apply: Apply::Frames(duplicate),
};

/// `k` distinct indices from `pool`, sorted (a partial Fisher-Yates shuffle).
fn choose(pool: &mut [usize], k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let k = k.min(pool.len());
    for i in 0..k {
        let j = rng.random_range(i..pool.len());
        pool.swap(i, j);
    }
    let mut out = pool[..k].to_vec();
    out.sort_unstable();
    out
}

fn count(n: usize, share: f32, max: usize) -> usize {
    ((n as f32 * share).round() as usize).clamp(1, max)
}

fn drop(n: usize, s: u8, rng: &mut ChaCha8Rng) -> Vec<usize> {
    if n < 2 {
        return (0..n).collect();
    }
    let k = count(n, at(&DROP_SHARE, s), n - 1);
    let mut pool: Vec<usize> = (0..n).collect();
    let gone = choose(&mut pool, k, rng);
    (0..n).filter(|i| !gone.contains(i)).collect()
}

fn shuffle(n: usize, s: u8, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if n < 2 {
        return order;
    }
    for _ in 0..at(&SHUFFLE_SWAPS, s) {
        let i = rng.random_range(0..n - 1);
        order.swap(i, i + 1);
    }
    if order.iter().enumerate().all(|(i, &v)| i == v) {
        let i = rng.random_range(0..n - 1);
        order.swap(i, i + 1);
    }
    order
}

fn duplicate(n: usize, s: u8, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if n < 2 {
        return order;
    }
    let k = count(n, at(&DUPLICATE_SHARE, s), n - 1);
    let mut pool: Vec<usize> = (1..n).collect();
    for i in choose(&mut pool, k, rng) {
        order[i] = order[i - 1];
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng(s: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(s)
    }

    #[test]
    fn drop_keeps_order_and_at_least_one_frame() {
        for n in 2..=5 {
            for s in 1..=5 {
                let out = drop(n, s, &mut rng(s as u64));
                assert!(!out.is_empty() && out.len() < n);
                assert!(out.windows(2).all(|w| w[0] < w[1]));
            }
        }
        assert_eq!(drop(5, 5, &mut rng(0)).len(), 1);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        for n in 2..=5 {
            let mut out = shuffle(n, 5, &mut rng(n as u64));
            out.sort_unstable();
            assert_eq!(out, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn duplicate_keeps_the_count_and_repeats_neighbours() {
        let out = duplicate(5, 3, &mut rng(1));
        assert_eq!(out.len(), 5);
        assert_eq!(out[0], 0);
        let distinct: std::collections::BTreeSet<_> = out.iter().collect();
        assert_eq!(distinct.len(), 5 - 2);
    }
}
