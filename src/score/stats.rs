//! Statistics for reports and comparisons: seeded percentile bootstrap intervals, the
//! exact McNemar test, the paired bootstrap, and calibration (ECE over equal-mass bins,
//! Brier, AUROC of confidence for correctness, risk–coverage and AURC).
//!
//! Every resample stream is `ChaCha8Rng` seeded from
//! `SHA-256("medvqa/bootstrap|{seed}|{label}")` (first 8 bytes, little-endian), where the
//! label names the group and metric, so an interval never depends on thread count, on the
//! order in which groups are computed, or on anything but the values and their order. The
//! callers pass values sorted by sample id and condition, so reports are byte-identical
//! across reruns and independent of the order of the prediction file.
//!
//! - Intervals are percentile intervals over `resamples` resamples of the samples (with
//!   replacement), each resample aggregated exactly as the reported value is (a mean, a
//!   pooled ratio, or corpus BLEU). Quantiles interpolate linearly between order statistics
//!   (numpy's default).
//! - McNemar's exact test is the two-sided binomial test on the discordant pairs:
//!   `p = min(1, 2 · P(X ≤ min(b, c)))`, `X ~ Binomial(b + c, 1/2)`; `p = 1` when there are
//!   none.
//! - The paired bootstrap resamples the shared samples, recomputes both runs' aggregates on
//!   each resample, and reports the percentile interval of the difference and the two-sided
//!   p-value `min(1, 2 · (min(#{d ≤ 0}, #{d ≥ 0}) + 1) / (resamples + 1))` (the add-one
//!   correction: with 1000 resamples the smallest p is about 0.002, never 0).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Aggregate, MetricValue};

/// A float rounded to 6 decimals, so that reports print stable, readable numbers.
pub fn r6(v: f64) -> f64 {
    if v.is_finite() {
        let r = (v * 1e6).round() / 1e6;
        // Avoid "-0.0" in reports.
        if r == 0.0 { 0.0 } else { r }
    } else {
        v
    }
}

/// serde `serialize_with` for [`r6`].
pub fn round6<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(r6(*v))
}

/// serde `serialize_with` for an optional float.
pub fn round6_opt<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) => s.serialize_f64(r6(*x)),
        None => s.serialize_none(),
    }
}

/// serde `serialize_with` for a map of floats.
pub fn round6_map<S: serde::Serializer>(
    m: &std::collections::BTreeMap<String, f64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        map.serialize_entry(k, &r6(*v))?;
    }
    map.end()
}

/// Bootstrap settings; recorded in every report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub resamples: usize,
    pub seed: u64,
    /// The interval's coverage, e.g. 0.95.
    pub confidence: f64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            resamples: 1000,
            seed: 0,
            confidence: 0.95,
        }
    }
}

/// The resample stream for one labelled quantity.
pub fn rng_for(seed: u64, label: &str) -> ChaCha8Rng {
    let digest = Sha256::digest(format!("medvqa/bootstrap|{seed}|{label}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    ChaCha8Rng::seed_from_u64(u64::from_le_bytes(first))
}

/// The percentile interval of the aggregate over resamples of `values`. `None` for no
/// values or no resamples.
pub fn ci(
    values: &[&MetricValue],
    agg: Aggregate,
    cfg: &Bootstrap,
    label: &str,
) -> Option<(f64, f64)> {
    let n = values.len();
    if n == 0 || cfg.resamples == 0 {
        return None;
    }
    let mut rng = rng_for(cfg.seed, label);
    let mut est = Vec::with_capacity(cfg.resamples);
    let mut pick: Vec<&MetricValue> = Vec::with_capacity(n);
    for _ in 0..cfg.resamples {
        pick.clear();
        for _ in 0..n {
            pick.push(values[rng.random_range(0..n)]);
        }
        if let Some(v) = agg.apply(pick.iter().copied()) {
            est.push(v);
        }
    }
    interval(&mut est, cfg.confidence)
}

/// [`ci`] resampling clusters instead of single values: `clusters[i]` names the cluster of
/// `values[i]` (questions on one image, one case, one video), and each resample draws as
/// many clusters as there are, with replacement, taking all their values. Questions that
/// share an image are not independent, so the naive interval is too narrow; this one is not.
/// With every value in its own cluster it is exactly [`ci`].
pub fn ci_clustered(
    values: &[&MetricValue],
    clusters: &[&str],
    agg: Aggregate,
    cfg: &Bootstrap,
    label: &str,
) -> Option<(f64, f64)> {
    let groups = group(clusters, values.len());
    if groups.len() == values.len() {
        return ci(values, agg, cfg, label);
    }
    let k = groups.len();
    if k == 0 || cfg.resamples == 0 {
        return None;
    }
    let mut rng = rng_for(cfg.seed, label);
    let mut est = Vec::with_capacity(cfg.resamples);
    let mut pick: Vec<&MetricValue> = Vec::with_capacity(values.len());
    for _ in 0..cfg.resamples {
        pick.clear();
        for _ in 0..k {
            pick.extend(groups[rng.random_range(0..k)].iter().map(|&i| values[i]));
        }
        if let Some(v) = agg.apply(pick.iter().copied()) {
            est.push(v);
        }
    }
    interval(&mut est, cfg.confidence)
}

/// Value indices by cluster, clusters in order of first appearance (so the resample stream
/// is a function of the records' order, which callers keep sorted). Missing names (a shorter
/// `clusters`) make singleton clusters.
pub fn group(clusters: &[&str], n: usize) -> Vec<Vec<usize>> {
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in 0..n {
        match clusters.get(i) {
            Some(c) => {
                let g = *at.entry(c).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[g].push(i);
            }
            None => groups.push(vec![i]),
        }
    }
    groups
}

/// The `(1 - confidence) / 2` and `(1 + confidence) / 2` quantiles.
fn interval(est: &mut [f64], confidence: f64) -> Option<(f64, f64)> {
    if est.is_empty() {
        return None;
    }
    est.sort_by(f64::total_cmp);
    let a = (1.0 - confidence) / 2.0;
    Some((quantile(est, a), quantile(est, 1.0 - a)))
}

/// Linear interpolation between order statistics of sorted data.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// McNemar's exact test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Pairs right in A and wrong in B.
    pub a_only: usize,
    /// Pairs wrong in A and right in B.
    pub b_only: usize,
    pub p_value: f64,
}

/// McNemar's exact test on paired 0/1 outcomes.
pub fn mcnemar(a: &[bool], b: &[bool]) -> McNemar {
    let a_only = a.iter().zip(b).filter(|(x, y)| **x && !**y).count();
    let b_only = a.iter().zip(b).filter(|(x, y)| !**x && **y).count();
    McNemar {
        a_only,
        b_only,
        p_value: binomial_two_sided(a_only, b_only),
    }
}

/// `min(1, 2 · P(X ≤ min(b, c)))` for `X ~ Binomial(b + c, 1/2)`, summed in log space so
/// that large counts neither overflow nor underflow.
pub fn binomial_two_sided(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    let ln2n = n as f64 * std::f64::consts::LN_2;
    // ln C(n, i) built up term by term.
    let mut ln_c = 0.0f64;
    let mut terms = Vec::with_capacity(k + 1);
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        terms.push(ln_c - ln2n);
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = max.exp() * terms.iter().map(|t| (t - max).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

/// A paired bootstrap comparison of one metric between two runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedDiff {
    /// A's aggregate minus B's, on all shared samples.
    pub diff: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
}

/// Paired bootstrap of `agg(a) - agg(b)` over shared samples (`a[i]` and `b[i]` are the
/// same sample). `None` when there are no pairs.
pub fn paired_bootstrap(
    a: &[&MetricValue],
    b: &[&MetricValue],
    agg: Aggregate,
    cfg: &Bootstrap,
    label: &str,
) -> Option<PairedDiff> {
    paired_bootstrap_clustered(a, b, &[], agg, cfg, label)
}

/// [`paired_bootstrap`] resampling clusters of pairs (`clusters[i]` for pair `i`, as in
/// [`ci_clustered`]); with no cluster names, or every pair its own, exactly
/// [`paired_bootstrap`].
pub fn paired_bootstrap_clustered(
    a: &[&MetricValue],
    b: &[&MetricValue],
    clusters: &[&str],
    agg: Aggregate,
    cfg: &Bootstrap,
    label: &str,
) -> Option<PairedDiff> {
    let n = a.len().min(b.len());
    if n == 0 {
        return None;
    }
    let diff = agg.apply(a[..n].iter().copied())? - agg.apply(b[..n].iter().copied())?;
    let groups = group(clusters, n);
    let k = groups.len();
    let mut rng = rng_for(cfg.seed, &format!("paired|{label}"));
    let mut est = Vec::with_capacity(cfg.resamples);
    let (mut le, mut ge) = (0usize, 0usize);
    let mut idx = Vec::with_capacity(n);
    for _ in 0..cfg.resamples {
        idx.clear();
        for _ in 0..k {
            idx.extend_from_slice(&groups[rng.random_range(0..k)]);
        }
        let (Some(x), Some(y)) = (
            agg.apply(idx.iter().map(|&i| a[i])),
            agg.apply(idx.iter().map(|&i| b[i])),
        ) else {
            continue;
        };
        let d = x - y;
        if d <= 0.0 {
            le += 1;
        }
        if d >= 0.0 {
            ge += 1;
        }
        est.push(d);
    }
    let (ci_low, ci_high) = interval(&mut est, cfg.confidence).unwrap_or((diff, diff));
    // The add-one correction keeps a finite number of resamples from claiming p = 0.
    let p_value = if est.is_empty() {
        1.0
    } else {
        (2.0 * (le.min(ge) + 1) as f64 / (est.len() + 1) as f64).min(1.0)
    };
    Some(PairedDiff {
        diff,
        ci_low,
        ci_high,
        p_value,
    })
}

// ---------------------------------------------------------------------------------------
// Calibration: how well a model's confidence in its answer tracks whether it is right.
// Each function takes `(confidence, correct)` pairs, confidence in [0, 1]; none depends on
// the order of its input.

/// The number of equal-mass bins of the expected calibration error.
pub const ECE_BINS: usize = 15;

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub n: usize,
    /// The bin's mean confidence and its share of correct answers.
    #[serde(serialize_with = "round6")]
    pub confidence: f64,
    #[serde(serialize_with = "round6")]
    pub accuracy: f64,
}

/// The pairs sorted by confidence ascending (then wrong before right, so that the order
/// never depends on the input's).
fn ascending(pairs: &[(f64, bool)]) -> Vec<(f64, bool)> {
    let mut v = pairs.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    v
}

/// Equal-mass bins: the pairs sorted by confidence and cut at sorted positions `k·n/B`
/// (`B = min(bins, n)`, `k = 1..B`), so that bin sizes differ by at most one. A cut inside
/// a run of tied confidences moves to the run's end: tied answers share a bin, since
/// splitting them would sort some into a bin by correctness alone (and with every
/// confidence equal, make the ECE depend on that split rather than on `|accuracy − c|`).
/// Ties can so leave fewer, larger bins.
pub fn equal_mass_bins(pairs: &[(f64, bool)], bins: usize) -> Vec<ReliabilityBin> {
    let v = ascending(pairs);
    let n = v.len();
    let b = bins.min(n);
    let mut cuts = vec![0usize];
    for k in 1..=b {
        let mut c = k * n / b;
        while c > 0 && c < n && v[c - 1].0 == v[c].0 {
            c += 1;
        }
        if cuts.last().is_some_and(|&l| c > l) {
            cuts.push(c);
        }
    }
    cuts.windows(2)
        .map(|w| {
            let part = &v[w[0]..w[1]];
            let k = part.len().max(1) as f64;
            ReliabilityBin {
                n: part.len(),
                confidence: part.iter().map(|p| p.0).sum::<f64>() / k,
                accuracy: part.iter().filter(|p| p.1).count() as f64 / k,
            }
        })
        .collect()
}

/// The expected calibration error over `bins` equal-mass bins:
/// `Σ_b (n_b / N) · |accuracy_b − confidence_b|`. `None` for no pairs.
pub fn ece_with(pairs: &[(f64, bool)], bins: usize) -> Option<f64> {
    if pairs.is_empty() || bins == 0 {
        return None;
    }
    let n = pairs.len() as f64;
    Some(
        equal_mass_bins(pairs, bins)
            .iter()
            .map(|b| b.n as f64 / n * (b.accuracy - b.confidence).abs())
            .sum(),
    )
}

/// [`ece_with`] over [`ECE_BINS`] bins.
pub fn ece(pairs: &[(f64, bool)]) -> Option<f64> {
    ece_with(pairs, ECE_BINS)
}

/// The Brier score: the mean of `(confidence − correct)²`, correct counting 1.
pub fn brier(pairs: &[(f64, bool)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let sq: f64 = pairs
        .iter()
        .map(|&(c, y)| (c - f64::from(u8::from(y))).powi(2))
        .sum();
    Some(sq / pairs.len() as f64)
}

/// The area under the ROC curve of confidence as a detector of correct answers: the chance
/// that a random right answer has a higher confidence than a random wrong one, ties
/// counting half (the Mann–Whitney U over both counts, from mid-ranks). `None` when all
/// answers are right or all wrong.
pub fn auroc(pairs: &[(f64, bool)]) -> Option<f64> {
    let v = ascending(pairs);
    let pos = v.iter().filter(|p| p.1).count();
    let neg = v.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        // Ranks i+1..=j share their mean.
        let mid = (i + 1 + j) as f64 / 2.0;
        rank_sum += mid * v[i..j].iter().filter(|p| p.1).count() as f64;
        i = j;
    }
    let (p, q) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

/// The risk–coverage curve: answers kept from the most confident down, one point per
/// distinct confidence (tied answers are kept or dropped together), each `(coverage,
/// risk)`: the share kept and the share of wrong answers among them.
pub fn risk_coverage(pairs: &[(f64, bool)]) -> Vec<(f64, f64)> {
    let mut v = ascending(pairs);
    v.reverse();
    let n = v.len();
    let mut out = Vec::new();
    let (mut kept, mut wrong, mut i) = (0usize, 0usize, 0usize);
    while i < n {
        let c = v[i].0;
        while i < n && v[i].0 == c {
            kept += 1;
            wrong += usize::from(!v[i].1);
            i += 1;
        }
        out.push((kept as f64 / n as f64, wrong as f64 / kept as f64));
    }
    out
}

/// The area under the risk–coverage curve: the mean risk over the `N` coverage points
/// `1/N, 2/N, …, 1`, where every answer of a tie group takes the risk at the group's end
/// (so `Σ_groups (size / N) · risk`). Lower is better; a model whose confidence carries no
/// information has AURC near its error rate.
pub fn aurc(pairs: &[(f64, bool)]) -> Option<f64> {
    let curve = risk_coverage(pairs);
    if curve.is_empty() {
        return None;
    }
    let mut prev = 0.0;
    let mut area = 0.0;
    for (cov, risk) in curve {
        area += (cov - prev) * risk;
        prev = cov;
    }
    Some(area)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(v: &[f64]) -> Vec<MetricValue> {
        v.iter()
            .map(|&x| MetricValue {
                value: x,
                stats: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn mcnemar_exact_matches_hand_computed_binomial_tails() {
        // 0 vs 5 discordant: 2 · (1/2)^5.
        assert!((binomial_two_sided(0, 5) - 0.0625).abs() < 1e-15);
        // 1 vs 6: 2 · (1 + 7) / 128.
        assert!((binomial_two_sided(1, 6) - 16.0 / 128.0).abs() < 1e-15);
        // 3 vs 3 and no discordant pairs: no evidence.
        assert_eq!(binomial_two_sided(3, 3), 1.0);
        assert_eq!(binomial_two_sided(0, 0), 1.0);
        // Large counts stay finite: 2 · P(X ≤ 400) for n = 1000 is about 2.7e-10.
        let p = binomial_two_sided(400, 600);
        assert!(p > 1e-11 && p < 1e-9, "{p}");
        let m = mcnemar(&[true, true, false, false], &[false, true, true, true]);
        assert_eq!((m.a_only, m.b_only), (1, 2));
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_mean() {
        let v = vals(&[0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
        let r: Vec<&MetricValue> = v.iter().collect();
        let cfg = Bootstrap::default();
        let a = ci(&r, Aggregate::Mean, &cfg, "x").unwrap();
        let b = ci(&r, Aggregate::Mean, &cfg, "x").unwrap();
        assert_eq!(a, b);
        assert!(a.0 <= 0.7 && 0.7 <= a.1 && a.0 >= 0.0 && a.1 <= 1.0);
        // Another label is another stream.
        assert_ne!(ci(&r, Aggregate::Mean, &cfg, "y").unwrap(), a);
        // Constant data has a degenerate interval.
        let c = vals(&[1.0; 5]);
        let rc: Vec<&MetricValue> = c.iter().collect();
        assert_eq!(ci(&rc, Aggregate::Mean, &cfg, "x"), Some((1.0, 1.0)));
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&s, 0.5), 2.5);
        assert_eq!(quantile(&s, 0.0), 1.0);
        assert!((quantile(&s, 0.025) - 1.075).abs() < 1e-12);
    }

    #[test]
    fn paired_bootstrap_sees_a_clear_difference() {
        let a = vals(&[1.0; 30]);
        let b = vals(
            &(0..30)
                .map(|i| if i % 3 == 0 { 1.0 } else { 0.0 })
                .collect::<Vec<_>>(),
        );
        let ra: Vec<&MetricValue> = a.iter().collect();
        let rb: Vec<&MetricValue> = b.iter().collect();
        let d = paired_bootstrap(&ra, &rb, Aggregate::Mean, &Bootstrap::default(), "m").unwrap();
        assert!((d.diff - 2.0 / 3.0).abs() < 1e-12);
        assert!(d.ci_low > 0.3 && d.p_value < 0.01);
        let same = paired_bootstrap(&ra, &ra, Aggregate::Mean, &Bootstrap::default(), "m").unwrap();
        assert_eq!((same.diff, same.p_value), (0.0, 1.0));
    }

    #[test]
    fn a_clustered_interval_is_wider_than_the_naive_one_when_clusters_agree_inside() {
        // 20 images, 10 questions each; every question on an image has the image's value:
        // the 200 questions carry the information of 20.
        let raw: Vec<f64> = (0..200)
            .map(|i| if (i / 10) % 3 == 0 { 1.0 } else { 0.0 })
            .collect();
        let raw = vals(&raw);
        let values: Vec<&MetricValue> = raw.iter().collect();
        let names: Vec<String> = (0..200).map(|i| format!("img{}", i / 10)).collect();
        let clusters: Vec<&str> = names.iter().map(String::as_str).collect();
        let cfg = Bootstrap::default();
        let (nl, nh) = ci(&values, Aggregate::Mean, &cfg, "x").unwrap();
        let (cl, ch) = ci_clustered(&values, &clusters, Aggregate::Mean, &cfg, "x").unwrap();
        // Independent computation: the naive SE is sqrt(p(1-p)/200), the clustered one
        // sqrt(p(1-p)/20), so the interval is about sqrt(10) = 3.2 times as wide.
        let ratio = (ch - cl) / (nh - nl);
        assert!((2.4..4.0).contains(&ratio), "width ratio {ratio}");
        // Singleton clusters give exactly the naive interval.
        let own: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        let own: Vec<&str> = own.iter().map(String::as_str).collect();
        assert_eq!(
            ci_clustered(&values, &own, Aggregate::Mean, &cfg, "x"),
            Some((nl, nh))
        );
        // The paired version widens too, and is unchanged without clusters.
        let zero = vals(&[0.0; 200]);
        let zero: Vec<&MetricValue> = zero.iter().collect();
        let naive = paired_bootstrap(&values, &zero, Aggregate::Mean, &cfg, "p").unwrap();
        let clustered =
            paired_bootstrap_clustered(&values, &zero, &clusters, Aggregate::Mean, &cfg, "p")
                .unwrap();
        assert!(clustered.ci_high - clustered.ci_low > 2.0 * (naive.ci_high - naive.ci_low));
        assert_eq!(
            paired_bootstrap_clustered(&values, &zero, &own, Aggregate::Mean, &cfg, "p"),
            Some(naive)
        );
    }
    // Five answers, by hand. Confidence ascending: 0.3 wrong, 0.6 right, 0.7 wrong,
    // 0.8 right, 0.9 right.
    const FIVE: [(f64, bool); 5] = [
        (0.9, true),
        (0.7, false),
        (0.3, false),
        (0.8, true),
        (0.6, true),
    ];

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn ece_on_hand_made_answers() {
        // 15 bins of 5 answers: one answer a bin, so ECE is the mean |correct - conf|:
        // (0.1 + 0.2 + 0.7 + 0.4 + 0.3) / 5 = 0.34.
        assert!(close(ece(&FIVE).unwrap(), 0.34));
        // 2 bins: positions [0, 2) and [2, 5). Bin 1: conf (0.3+0.6)/2 = 0.45, accuracy
        // 1/2, gap 0.05, weight 2/5. Bin 2: conf (0.7+0.8+0.9)/3 = 0.8, accuracy 2/3, gap
        // 0.1333.., weight 3/5. ECE = 0.02 + 0.08 = 0.1.
        assert!(close(ece_with(&FIVE, 2).unwrap(), 0.1));
        let bins = equal_mass_bins(&FIVE, 2);
        assert_eq!(bins.iter().map(|b| b.n).collect::<Vec<_>>(), vec![2, 3]);
        // 1 bin: |3/5 - 3.3/5| = 0.06.
        assert!(close(ece_with(&FIVE, 1).unwrap(), 0.06));
        assert_eq!(ece(&[]), None);
        // 16 answers in 15 bins: sizes differ by one at most.
        let many: Vec<(f64, bool)> = (0..16).map(|i| (i as f64 / 16.0, i % 2 == 0)).collect();
        let sizes: Vec<usize> = equal_mass_bins(&many, 15).iter().map(|b| b.n).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 16);
        assert!(sizes.iter().all(|&s| s == 1 || s == 2));
    }

    #[test]
    fn brier_on_hand_made_answers() {
        // 0.9 right, 0.7 wrong, 0.3 wrong, 0.8 right, 0.6 right:
        // (0.1² + 0.7² + 0.3² + 0.2² + 0.4²) / 5 = (0.01+0.49+0.09+0.04+0.16)/5 = 0.158.
        let want = (0.01 + 0.49 + 0.09 + 0.04 + 0.16) / 5.0;
        assert!(close(brier(&FIVE).unwrap(), want));
        assert!(close(want, 0.158));
        assert_eq!(brier(&[(1.0, true), (0.0, false)]), Some(0.0));
        assert_eq!(brier(&[]), None);
    }

    #[test]
    fn auroc_and_aurc_on_hand_made_answers() {
        // Right {0.9, 0.8, 0.6} against wrong {0.7, 0.3}: 5 of the 6 pairs are ordered
        // (0.6 < 0.7 is not).
        assert!(close(auroc(&FIVE).unwrap(), 5.0 / 6.0));
        // Most confident first: 0.9 R, 0.8 R, 0.7 W, 0.6 R, 0.3 W. Risk after k kept:
        // 0, 0, 1/3, 1/4, 2/5; AURC is their mean.
        let want = (0.0 + 0.0 + 1.0 / 3.0 + 0.25 + 0.4) / 5.0;
        assert!(close(aurc(&FIVE).unwrap(), want));
        let curve = risk_coverage(&FIVE);
        assert_eq!(curve.len(), 5);
        assert!(close(curve[2].0, 0.6) && close(curve[2].1, 1.0 / 3.0));
        assert_eq!(auroc(&[(0.2, true), (0.9, true)]), None);
        assert_eq!(auroc(&[(0.2, false)]), None);
        assert_eq!(aurc(&[]), None);
        // Perfect ranking: every right answer above every wrong one.
        assert_eq!(auroc(&[(0.9, true), (0.1, false)]), Some(1.0));
    }

    #[test]
    fn ties_count_half_and_are_kept_together() {
        // Right {0.8, 0.8}, wrong {0.8, 0.4}: the two tied pairs count 1/2 each, the
        // other two 1: AUROC = 3/4.
        let tied = [(0.8, true), (0.8, false), (0.8, true), (0.4, false)];
        assert!(close(auroc(&tied).unwrap(), 0.75));
        // The three 0.8 answers are kept or dropped together: coverage 3/4 at risk 1/3,
        // then 1 at risk 2/4. AURC = 3/4 · 1/3 + 1/4 · 1/2 = 0.375.
        assert_eq!(risk_coverage(&tied).len(), 2);
        assert!(close(aurc(&tied).unwrap(), 0.375));
        // The input order changes nothing.
        let mut rev = tied;
        rev.reverse();
        assert_eq!(auroc(&rev), auroc(&tied));
        assert_eq!(aurc(&rev), aurc(&tied));
        assert_eq!(ece(&rev), ece(&tied));
        assert_eq!(equal_mass_bins(&rev, 2), equal_mass_bins(&tied, 2));
        // 2 bins: the cut at position 2 (sorted 0.4 W, 0.8 W, 0.8 R, 0.8 R) falls inside the
        // 0.8 run and moves past it: one bin, confidence 2.8/4 = 0.7, accuracy 1/2.
        assert_eq!(equal_mass_bins(&tied, 2).len(), 1);
        assert!(close(ece_with(&tied, 2).unwrap(), 0.2));
        // All confidences equal: one bin, ECE = |accuracy − c| = |1/2 − 0.9|.
        let flat = [(0.9, true), (0.9, false), (0.9, false), (0.9, true)];
        assert!(close(ece(&flat).unwrap(), 0.4));
    }
}
