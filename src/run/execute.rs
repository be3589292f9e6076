//! Execution: a producer thread decodes, perturbs and preprocesses the next batch while
//! the model answers the current one; each batch's records are appended to the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::RunError;
use super::plan::Item;
use crate::cache::BoundedCache;
use crate::data::Dataset;
use crate::data::decode::{ImageError, ImageStore};
use crate::failure::{Failure, Stage, error_chain};
use crate::infer::{Model, PreparedBatch, PromptInput};
use crate::perturb::{Application, BoxMap, SeedContext, Swaps, apply_to_sample, perturb_image};
use crate::pixels::Pixels;
use crate::progress::Progress;
use crate::report::Timing;
use crate::sample::{GtBox, ImageRef, Sample};
use crate::store::{Record, Store};

/// A sample's images as the model sees them under one condition.
pub(super) struct Seen {
    pub images: Vec<Arc<Pixels>>,
    pub frames: Option<Vec<usize>>,
    pub gt_boxes: Option<Vec<GtBox>>,
    /// The sample as asked, when the condition changed its question (rotated options).
    pub sample: Option<Sample>,
}

/// Perturbed images by (image key, label, severity), computed once however many questions
/// share them; a bounded number are kept.
pub(super) struct PerturbedCache(BoundedCache<PerturbKey, Result<(Arc<Pixels>, BoxMap), String>>);

/// (image key, label, severity).
type PerturbKey = (String, String, u8);

impl PerturbedCache {
    /// Keeps perturbed images up to `bytes` of pixels (the newest always, however large).
    pub fn new(bytes: usize) -> PerturbedCache {
        PerturbedCache(BoundedCache::new(bytes))
    }

    fn get(
        &self,
        key: PerturbKey,
        make: impl FnOnce() -> Result<(Arc<Pixels>, BoxMap), String>,
    ) -> Result<(Arc<Pixels>, BoxMap), String> {
        self.0.get_or_make(&key, make, |r| {
            r.as_ref().map_or(0, |(p, _)| p.as_raw().len()) + 64
        })
    }
}

pub(super) struct Runner<'a> {
    pub ds: &'a Dataset,
    pub model: &'a Model,
    pub ctx: &'a SeedContext,
    pub decoded: &'a ImageStore,
    pub perturbed: PerturbedCache,
    pub swaps: &'a Swaps,
}

#[derive(Debug, Default)]
pub(super) struct StageTimes {
    /// Decoding and perturbing, summed over the producer's batches (overlaps the model).
    perturb: Duration,
    /// Image preprocessing, templating and tokenizing, summed over samples. The producer does
    /// it one batch ahead, so it overlaps the model.
    preprocess: Duration,
    /// Time the pipeline waited on the model: vision, prefill, decode, and the CPU work of a
    /// batch the producer could not prepare (a dual encoder's).
    model: Duration,
    /// Time the model's graphs ran (vision, prefill, decode), each batch counted once
    /// ([`crate::infer::Timings::graph_share`]). With `sessions > 1` batches overlap, and this
    /// sum can exceed the time waited on the model.
    model_compute: Duration,
    /// Time the model waited for the producer (images and preprocessing).
    starved: Duration,
    /// Appending to the store.
    store: Duration,
}

impl StageTimes {
    pub fn to_timing<const N: usize>(
        &self,
        wall: Duration,
        extra: [(&str, Duration); N],
        answered: usize,
    ) -> Timing {
        let mut stages: BTreeMap<String, f64> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_secs_f64()))
            .collect();
        stages.insert("perturb".into(), self.perturb.as_secs_f64());
        stages.insert("preprocess".into(), self.preprocess.as_secs_f64());
        stages.insert("model".into(), self.model.as_secs_f64());
        stages.insert("model_compute".into(), self.model_compute.as_secs_f64());
        stages.insert("waiting_for_images".into(), self.starved.as_secs_f64());
        stages.insert("store".into(), self.store.as_secs_f64());
        let w = wall.as_secs_f64();
        Timing {
            command: "eval".to_string(),
            wall_seconds: w,
            stages,
            records: answered,
            records_per_second: if w > 0.0 { answered as f64 / w } else { 0.0 },
            threads: rayon::current_num_threads(),
            peak_rss_mib: crate::report::peak_rss_mib(),
            served: None,
        }
    }
}

/// One batch handed from the producer to the model: the items and their images (or why
/// they could not be made).
type Prepared<'a> = Vec<(&'a Item, Result<Seen, Failure>)>;

impl Runner<'_> {
    pub fn run(
        &self,
        pending: &[&Item],
        store: &mut Store,
        batch_size: usize,
        sessions: usize,
        quiet: bool,
        times: &mut StageTimes,
    ) -> Result<usize, RunError> {
        let step = (batch_size.max(1) * sessions.max(1)).max(1);
        let progress = Progress::new(pending.len() as u64, "eval", quiet);
        // The producer decodes and perturbs the next batch's images and does the model's CPU
        // work for it (templates, tokens, image preprocessing) while the model runs this one.
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Prepared<'_>, PreparedBatch, Duration)>(1);
        let mut answered = 0;
        let result = std::thread::scope(|scope| -> Result<(), RunError> {
            // The receiver lives in this closure: when an error (a full disk) ends the loop
            // early, it is dropped before the scope joins the producer, whose next send then
            // fails and ends it, instead of blocking forever on a full channel.
            let rx = rx;
            scope.spawn(move || {
                for chunk in pending.chunks(step) {
                    let t = Instant::now();
                    let prepared: Prepared<'_> = chunk
                        .par_iter()
                        .map(|item| (*item, self.seen(item)))
                        .collect();
                    let t_perturb = t.elapsed();
                    let batch = self.model.prepare_batch(&self.inputs(&prepared));
                    if tx.send((prepared, batch, t_perturb)).is_err() {
                        break;
                    }
                }
            });
            loop {
                let t_wait = Instant::now();
                let Ok((prepared, batch, t_perturb)) = rx.recv() else {
                    break;
                };
                times.starved += t_wait.elapsed();
                times.perturb += t_perturb;
                let records = self.answer(&prepared, batch, times);
                let t = Instant::now();
                store.append(&records)?;
                times.store += t.elapsed();
                answered += records.len();
                progress.inc(records.len() as u64);
            }
            Ok(())
        });
        progress.finish();
        result.map(|()| answered)
    }

    /// The model inputs of a batch's items whose images were made, in batch order.
    fn inputs<'b>(&'b self, prepared: &'b Prepared<'_>) -> Vec<PromptInput<'b>> {
        prepared
            .iter()
            .filter_map(|(i, r)| r.as_ref().ok().map(|s| (*i, s)))
            .map(|(i, s)| PromptInput {
                sample: s.sample.as_ref().unwrap_or(&self.ds.samples[i.sample]),
                images: &s.images,
            })
            .collect()
    }

    /// Runs the model on one prepared batch; one record per item.
    fn answer(
        &self,
        prepared: &Prepared<'_>,
        batch: PreparedBatch,
        times: &mut StageTimes,
    ) -> Vec<Record> {
        let ok: Vec<(&Item, &Seen)> = prepared
            .iter()
            .filter_map(|(i, r)| r.as_ref().ok().map(|s| (*i, s)))
            .collect();
        let inputs = self.inputs(prepared);
        let t = Instant::now();
        let answers = self.model.answer_prepared(&inputs, batch);
        times.model += t.elapsed();
        let mut by_key: HashMap<&str, Record> = HashMap::new();
        for ((item, seen), answer) in ok.iter().zip(answers) {
            let mut r = self.record(item);
            r.frames = seen.frames.clone();
            r.gt_boxes = seen.gt_boxes.clone();
            match answer {
                Ok(g) => {
                    times.preprocess += g.timings.preprocess;
                    times.model_compute += g.timings.graph_share();
                    r.response = Some(g.text);
                    r.tokens = Some(g.completion_tokens.unwrap_or(g.token_ids.len()));
                    r.token_probs = (!g.token_probs.is_empty()).then_some(g.token_probs);
                    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
                    let t = &g.timings;
                    let stages: &[(&str, Duration)] = if t.request > Duration::ZERO {
                        // A served model: the request, retries and waits included.
                        &[("request", t.request)]
                    } else {
                        &[
                            ("preprocess", t.preprocess),
                            ("vision", t.vision),
                            ("prefill_batch", t.prefill),
                            ("decode_batch", t.decode),
                        ]
                    };
                    r.timing_ms = stages
                        .iter()
                        .map(|(k, v)| (k.to_string(), ms(*v)))
                        .collect();
                }
                Err(e) => r.error = Some(e.failure().to_string()),
            }
            by_key.insert(item.key.as_str(), r);
        }
        prepared
            .iter()
            .map(
                |(item, seen)| match (by_key.remove(item.key.as_str()), seen) {
                    (Some(r), _) => r,
                    (None, Err(f)) => {
                        let mut r = self.record(item);
                        r.error = Some(f.to_string());
                        r
                    }
                    (None, Ok(_)) => {
                        let mut r = self.record(item);
                        r.error = Some("the model returned no answer".into());
                        r
                    }
                },
            )
            .collect()
    }

    fn record(&self, item: &Item) -> Record {
        Record {
            key: item.key.clone(),
            id: self.ds.samples[item.sample].id.clone(),
            perturbation: item.app.map(|a| a.label()),
            severity: item.app.map_or(0, |a| a.severity),
            response: None,
            error: None,
            tokens: None,
            frames: None,
            gt_boxes: None,
            timing_ms: BTreeMap::new(),
            token_probs: None,
        }
    }

    /// Decodes and perturbs one item's images.
    fn seen(&self, item: &Item) -> Result<Seen, Failure> {
        let s = &self.ds.samples[item.sample];
        seen_images(
            s,
            item.app.as_ref(),
            self.ctx,
            self.decoded,
            &self.perturbed,
            self.swaps,
        )
        .map_err(|(stage, reason)| Failure {
            stage,
            id: Some(s.id.clone()),
            location: Some(item.condition().to_string()),
            reason,
        })
    }
}

/// A sample's images (and moved boxes) under `app`, through the run's caches.
pub(super) fn seen_images(
    s: &Sample,
    app: Option<&Application>,
    ctx: &SeedContext,
    decoded: &ImageStore,
    perturbed: &PerturbedCache,
    swaps: &Swaps,
) -> Result<Seen, (Stage, String)> {
    let decode = |img: &ImageRef| -> Result<Arc<Pixels>, (Stage, String)> {
        decoded.get(img).map_err(|e: ImageError| {
            (
                Stage::Decode,
                format!("image {}: {}", img.key, error_chain(&e)),
            )
        })
    };
    let seen = apply_to_sample(ctx, s, app, swaps, |img, change| match change {
        None => decode(img)
            .map(|p| (p, BoxMap::Identity))
            .map_err(SampleError),
        Some(app) => perturbed
            .get((img.key.clone(), app.label(), app.severity), || {
                let clean = decode(img).map_err(|(_, r)| r)?;
                perturb_image(ctx, &img.key, &clean, app)
                    .map(|p| (Arc::new(p.pixels), p.map))
                    .map_err(|e| error_chain(&e))
            })
            .map_err(|r| SampleError((Stage::Perturb, r))),
    })
    .map_err(|e: SampleError| e.0)?;
    Ok(Seen {
        gt_boxes: seen.boxes.if_changed(s),
        images: seen.images,
        frames: seen.frames,
        sample: seen.task.map(|task| Sample { task, ..s.clone() }),
    })
}

/// Why a sample's images could not be made: the stage and the reason.
struct SampleError((Stage, String));

impl From<crate::perturb::PerturbError> for SampleError {
    fn from(e: crate::perturb::PerturbError) -> Self {
        SampleError((Stage::Perturb, error_chain(&e)))
    }
}
