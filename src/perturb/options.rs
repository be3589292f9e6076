//! Option order: the same choice question with its options cyclically rotated, the
//! reference letters remapped to match. A model that picks options by position answers
//! differently; one that reads them does not (VLMEvalKit's CircularEval).
//!
//! `option-rotate` at severity `r` moves every option up `r` places, cyclically: with
//! options `[A, B, C, D]` rotation 1 asks `[B, C, D, A]`, so the option that was `B` is
//! now `A`. A question with `k` options has the rotations `1..k` (rotation `k` would be the
//! original order); the severities it lacks do not apply to it and are not planned. No
//! random draw is involved: the rotation is the severity.

use super::{ANY, Apply, Family, Perturbation};
use crate::sample::Task;

pub const ROTATE: Perturbation = Perturbation {
    name: "option-rotate",
    family: Family::Options,
    summary: "choice questions: options rotated cyclically by the severity, reference remapped (circular evaluation)",
    modalities: ANY,
    levels: 5,
    seeded: false,
    geometric: false,
    parameter: "places each option moves up",
    table: |s| s.to_string(),
    apply: Apply::Options(rotate),
};

/// `task` with its options rotated up by `r` places and its reference remapped; `None`
/// for kinds without options, and for `r` of 0 or at least the number of options.
pub fn rotate(task: &Task, r: u8) -> Option<Task> {
    let r = usize::from(r);
    let k = task.options().len();
    if r == 0 || r >= k {
        return None;
    }
    let options: Vec<String> = (0..k)
        .map(|seen| task.options()[original_index(k, r, seen)].clone())
        .collect();
    match task {
        Task::SingleChoice { answer, .. } => Some(Task::SingleChoice {
            options,
            answer: seen_index(k, r, *answer),
        }),
        Task::MultiChoice { answer, .. } => {
            let mut answer: Vec<usize> = answer.iter().map(|&j| seen_index(k, r, j)).collect();
            answer.sort_unstable();
            Some(Task::MultiChoice { options, answer })
        }
        _ => None,
    }
}

/// The task as asked under the condition `label` at `severity` (a label as stored:
/// `option-rotate`), when that condition reorders options; `None` for every other
/// condition, and where it does not apply.
pub fn task_as_asked(label: &str, severity: u8, task: &Task) -> Option<Task> {
    let name = label.split_once(".v").map_or(label, |(n, _)| n);
    match super::find(name)?.apply {
        Apply::Options(f) => f(task, severity),
        _ => None,
    }
}

/// The original index of the option seen at position `seen` under rotation `r` of `k`
/// options.
pub fn original_index(k: usize, r: usize, seen: usize) -> usize {
    (seen + r) % k.max(1)
}

/// Where the original option `j` is seen under rotation `r` of `k` options.
pub fn seen_index(k: usize, r: usize, j: usize) -> usize {
    let k = k.max(1);
    (j + k - r % k) % k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("opt{i}")).collect()
    }

    #[test]
    fn rotation_moves_options_up_and_the_reference_with_them() {
        let t = Task::SingleChoice {
            options: opts(4),
            answer: 1,
        };
        let Some(Task::SingleChoice { options, answer }) = rotate(&t, 1) else {
            panic!("single choice stays single choice");
        };
        assert_eq!(options, ["opt1", "opt2", "opt3", "opt0"]);
        assert_eq!(answer, 0, "B was right; after one rotation it is A");
        assert_eq!(options[answer], "opt1");
        // Every rotation keeps the right option's text right.
        for r in 1..4 {
            let Some(Task::SingleChoice { options, answer }) = rotate(&t, r) else {
                panic!()
            };
            assert_eq!(options[answer], "opt1", "r{r}");
        }
    }

    #[test]
    fn multi_choice_answers_are_remapped_and_sorted() {
        let t = Task::MultiChoice {
            options: opts(5),
            answer: vec![0, 3],
        };
        let Some(Task::MultiChoice { options, answer }) = rotate(&t, 2) else {
            panic!()
        };
        assert_eq!(options, ["opt2", "opt3", "opt4", "opt0", "opt1"]);
        assert_eq!(answer, vec![1, 3]);
    }

    #[test]
    fn rotations_outside_the_option_list_and_other_kinds_do_not_apply() {
        let t = Task::SingleChoice {
            options: opts(3),
            answer: 0,
        };
        assert!(rotate(&t, 0).is_none());
        assert!(rotate(&t, 2).is_some());
        assert!(rotate(&t, 3).is_none());
        assert!(rotate(&Task::Closed { answer: true }, 1).is_none());
        assert!(rotate(&Task::Open { answer: "x".into() }, 1).is_none());
        assert!(ROTATE.applies_to(2, 1, &t) && !ROTATE.applies_to(3, 1, &t));
    }

    #[test]
    fn index_maps_invert_each_other() {
        for k in 2..7 {
            for r in 0..k {
                for j in 0..k {
                    assert_eq!(original_index(k, r, seen_index(k, r, j)), j);
                }
            }
        }
    }
}
