//! Sample-level perturbations of multi-frame questions: frame drop, frame shuffle and
//! frame duplicate. Each returns the indices of the original frames in the order the
//! model sees them; the images themselves are untouched. Seeds come from the sample id.
//!
//! A single-frame sample has nothing to reorder: every one of these returns `[0]` for it.
//! For two or more frames every severity changes the list.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::{Apply, Family, Modality, Perturbation};
use crate::sample::{MetaValue, Sample, Task};

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

/// What a frame reordering does to a question's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameTruth {
    /// The answer stands: the frames are in their order, or the dataset says the answer
    /// does not depend on it (`frame_order = "independent"`).
    Same,
    /// The answer as the reordered frames show it.
    Remapped(Task),
    /// The dataset cannot say how the answer follows the frames: the answer is unknown
    /// under this order, and the record is reported apart.
    OrderDependent,
}

/// How `sample`'s answer follows the frames seen in `order` (indices into its frames).
///
/// A sample says so in its meta (docs/datasets.md):
/// - `frame_answer = "<rule>:<facts>"`, where `facts` holds one `1` or `0` per frame
///   (the subject visible in that frame, as the phantom clips record it) and `rule` is
///   `first` / `last` (open: the number of the first / last frame seen showing it),
///   `count` (open: how many frames seen show it), `every` (closed: every frame seen shows
///   it) or `at<K>` (closed: frame K as seen shows it);
/// - or `frame_order = "independent"`: reordering, dropping or repeating frames leaves the
///   answer as it is.
///
/// Anything else, or a rule whose answer is undefined under `order` (the subject in no
/// frame seen; frame K dropped), is [`FrameTruth::OrderDependent`].
pub fn answer_under_order(sample: &Sample, order: &[usize]) -> FrameTruth {
    let n = sample.images.len();
    if order.iter().copied().eq(0..n) {
        return FrameTruth::Same;
    }
    let text = |key: &str| match sample.meta.get(key) {
        Some(MetaValue::Str(s)) => Some(s.as_str()),
        _ => None,
    };
    let Some(spec) = text("frame_answer") else {
        return if text("frame_order") == Some("independent") {
            FrameTruth::Same
        } else {
            FrameTruth::OrderDependent
        };
    };
    remap(spec, n, order, &sample.task).map_or(FrameTruth::OrderDependent, FrameTruth::Remapped)
}

fn remap(spec: &str, n: usize, order: &[usize], task: &Task) -> Option<Task> {
    let (rule, facts) = spec.split_once(':')?;
    let facts: Vec<bool> = facts
        .chars()
        .map(|c| match c {
            '1' => Some(true),
            '0' => Some(false),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if facts.len() != n {
        return None;
    }
    let seen: Vec<bool> = order
        .iter()
        .map(|&i| facts.get(i).copied())
        .collect::<Option<_>>()?;
    let open = |v: usize| Task::Open {
        answer: v.to_string(),
    };
    let answer = match rule {
        "first" => open(seen.iter().position(|&v| v)? + 1),
        "last" => open(seen.iter().rposition(|&v| v)? + 1),
        "count" => open(seen.iter().filter(|&&v| v).count()),
        "every" => Task::Closed {
            answer: seen.iter().all(|&v| v),
        },
        at => {
            let k: usize = at.strip_prefix("at")?.parse().ok()?;
            Task::Closed {
                answer: *seen.get(k.checked_sub(1)?)?,
            }
        }
    };
    // The rule must fit the question's kind.
    (std::mem::discriminant(&answer) == std::mem::discriminant(task)).then_some(answer)
}

#[cfg(test)]
mod remap_tests {
    use super::*;
    use crate::sample::{ImageRef, ImageSource};

    fn clip(facts: &str, task: Task) -> Sample {
        let mut meta = crate::sample::Meta::new();
        meta.insert(
            "frame_answer".into(),
            MetaValue::Str(format!("{}:{facts}", "RULE")),
        );
        Sample {
            id: "v".into(),
            images: (0..facts.len())
                .map(|i| ImageRef {
                    source: ImageSource::File(format!("f{i}.png").into()),
                    key: format!("f{i}"),
                })
                .collect(),
            question: "?".into(),
            task,
            boxes: Vec::new(),
            meta,
        }
    }

    fn with_rule(mut s: Sample, rule: &str) -> Sample {
        let v = s.meta.get("frame_answer").map(ToString::to_string).unwrap();
        s.meta.insert(
            "frame_answer".into(),
            MetaValue::Str(v.replace("RULE", rule)),
        );
        s
    }

    fn open(a: &str) -> Task {
        Task::Open { answer: a.into() }
    }

    #[test]
    fn answers_follow_the_frames_as_seen() {
        // The subject is visible in frames 3 and 4 of 5 (1-based).
        let s = |rule: &str, task: Task| with_rule(clip("00110", task), rule);
        let shuffled = [3, 0, 1, 4, 2];
        let first = s("first", open("3"));
        assert_eq!(
            answer_under_order(&first, &[0, 1, 2, 3, 4]),
            FrameTruth::Same
        );
        assert_eq!(
            answer_under_order(&first, &shuffled),
            FrameTruth::Remapped(open("1"))
        );
        let last = s("last", open("4"));
        assert_eq!(
            answer_under_order(&last, &shuffled),
            FrameTruth::Remapped(open("5"))
        );
        // A repeated frame counts again; a dropped one does not.
        let count = s("count", open("2"));
        assert_eq!(
            answer_under_order(&count, &[0, 2, 2, 3, 4]),
            FrameTruth::Remapped(open("3"))
        );
        let every = s("every", Task::Closed { answer: false });
        assert_eq!(
            answer_under_order(&every, &[2, 3]),
            FrameTruth::Remapped(Task::Closed { answer: true })
        );
        let at2 = s("at2", Task::Closed { answer: false });
        assert_eq!(
            answer_under_order(&at2, &shuffled),
            FrameTruth::Remapped(Task::Closed { answer: false })
        );
        assert_eq!(
            answer_under_order(&at2, &[2, 3, 0]),
            FrameTruth::Remapped(Task::Closed { answer: true })
        );
    }

    #[test]
    fn what_cannot_be_followed_is_order_dependent() {
        let s = |rule: &str, task: Task| with_rule(clip("00110", task), rule);
        // The subject in no frame seen; frame 4 dropped; a rule that does not fit the kind.
        assert_eq!(
            answer_under_order(&s("first", open("3")), &[0, 1]),
            FrameTruth::OrderDependent
        );
        assert_eq!(
            answer_under_order(&s("at4", Task::Closed { answer: true }), &[0, 1, 2]),
            FrameTruth::OrderDependent
        );
        assert_eq!(
            answer_under_order(&s("every", open("x")), &[1, 0, 2, 3, 4]),
            FrameTruth::OrderDependent
        );
        // No rule: the dataset cannot say, unless it says the order does not matter.
        let mut plain = clip("00110", open("polyp"));
        plain.meta.remove("frame_answer");
        assert_eq!(
            answer_under_order(&plain, &[1, 0, 2, 3, 4]),
            FrameTruth::OrderDependent
        );
        plain
            .meta
            .insert("frame_order".into(), MetaValue::Str("independent".into()));
        assert_eq!(
            answer_under_order(&plain, &[1, 0, 2, 3, 4]),
            FrameTruth::Same
        );
        // Malformed facts: cannot say.
        let bad = with_rule(clip("0x110", open("3")), "first");
        assert_eq!(
            answer_under_order(&bad, &[1, 0, 2, 3, 4]),
            FrameTruth::OrderDependent
        );
    }
}
