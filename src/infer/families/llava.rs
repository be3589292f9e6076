//! LLaVA-1.5 (`model_type` `llava`): a CLIP vision tower whose patch features, projected into
//! the text embedding space, replace the `<image>` tokens of a Llama/Vicuna prompt.
//!
//! ```text
//! onnx/vision_encoder.onnx        pixel_values [images, 3, H, W] f32 -> image_features [images, tokens, hidden]
//! onnx/embed_tokens.onnx          input_ids -> inputs_embeds
//! onnx/decoder_model_merged.onnx  inputs_embeds, attention_mask, position_ids, past_key_values.* -> logits, present.*
//! ```
//!
//! Preprocessing is `CLIPImageProcessor`'s (shortest-edge resize, centre crop, rescale,
//! normalise; [`super::clip::ClipImageProcessor`]), one tile per image. As in transformers'
//! `LlavaProcessor`, every `<image>` the chat template writes becomes
//! `(H / patch) * (W / patch) + num_additional_image_tokens` copies of itself, one fewer with
//! the `default` feature-select strategy (the CLS token is dropped): `patch_size`,
//! `num_additional_image_tokens` and `vision_feature_select_strategy` come from
//! `processor_config.json`, else from `config.json`. transformers.js expands only the first
//! `<image>` and keeps the CLS row; medvqa follows the Python processor (docs/design.md §9), and
//! drops a leading CLS row itself when a vision graph returns one row more per image than the
//! processor's count.

use std::sync::Arc;

use ort::session::Session;
use ort::value::TensorRef;
use serde_json::Value;

use crate::infer::engine::{DecoderEngine, DecoderFamily, Engine, ModelOptions};
use crate::infer::error::{ModelError, SampleErrorKind};
use crate::infer::families::FamilyEntry;
use crate::infer::families::clip::ClipImageProcessor;
use crate::infer::folder::ModelFolder;
use crate::pixels::Pixels;

pub const ENTRY: FamilyEntry = FamilyEntry {
    name: "llava",
    model_types: &["llava"],
    open,
};

fn open(folder: &ModelFolder, opts: &ModelOptions) -> Result<Box<dyn Engine>, ModelError> {
    Ok(Box::new(DecoderEngine::<Llava>::open(folder, opts)?))
}

/// A sample's images, preprocessed.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    pub count: usize,
    pub height: usize,
    pub width: usize,
    /// `[count, 3, height, width]`.
    pub pixel_values: Vec<f32>,
}

/// The family.
#[derive(Debug)]
pub struct Llava {
    pub processor: ClipImageProcessor,
    /// `<image>` copies per image.
    pub image_tokens: usize,
    /// The vision graph may return the CLS row too (transformers.js-style exports).
    drop_cls: bool,
    image_token: String,
    image_token_id: u32,
}

fn token_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

impl DecoderFamily for Llava {
    type Vision = Images;
    const NAME: &'static str = "llava";

    fn open(
        folder: &ModelFolder,
        tokenizer: &tokenizers::Tokenizer,
        _opts: &ModelOptions,
    ) -> Result<Self, ModelError> {
        let (pp, pp_path) = folder.preprocessor_config()?;
        let processor = ClipImageProcessor::from_config(&pp, &pp_path, false)?;
        let Some((crop_w, crop_h)) = processor.crop.or(match processor.resize {
            Some(super::clip::Resize::Exact { width, height }) => Some((width, height)),
            _ => None,
        }) else {
            return Err(ModelError::Field {
                path: pp_path,
                field: "crop_size".into(),
                problem: "is needed: LLaVA's vision tower takes one fixed-size tile (set do_center_crop and crop_size)"
                    .into(),
            });
        };

        let cfg = &folder.config;
        let pc = folder
            .json_opt("processor_config.json")?
            .unwrap_or(Value::Null);
        let pc_path = folder.path("processor_config.json");
        let vision = cfg.get("vision_config");
        let patch = pc
            .get("patch_size")
            .and_then(Value::as_u64)
            .or_else(|| {
                vision
                    .and_then(|v| v.get("patch_size"))
                    .and_then(Value::as_u64)
            })
            .filter(|&p| p > 0)
            .ok_or_else(|| ModelError::Field {
                path: pc_path.clone(),
                field: "patch_size".into(),
                problem: "is missing here and in config.json's vision_config".into(),
            })? as usize;
        let strategy = pc
            .get("vision_feature_select_strategy")
            .or_else(|| cfg.get("vision_feature_select_strategy"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let drop = match strategy {
            "default" => 1,
            "full" => 0,
            other => {
                return Err(ModelError::Field {
                    path: pc_path,
                    field: "vision_feature_select_strategy".into(),
                    problem: format!("{other:?} is not one of \"default\", \"full\""),
                });
            }
        };
        // Processor folders written before transformers 4.47 lack it; CLIP towers add a CLS.
        let extra = pc
            .get("num_additional_image_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(1) as usize;
        let image_tokens =
            ((crop_h as usize / patch) * (crop_w as usize / patch) + extra).saturating_sub(drop);
        if image_tokens == 0 {
            return Err(ModelError::Field {
                path: pp_path,
                field: "crop_size".into(),
                problem: format!("is smaller than one {patch}px patch"),
            });
        }

        let tc = folder.tokenizer_config()?;
        let image_token = pc
            .get("image_token")
            .and_then(token_text)
            .or_else(|| tc.get("image_token").and_then(token_text))
            .unwrap_or_else(|| "<image>".to_string());
        let image_token_id = super::token_id(folder, tokenizer, &image_token, Self::NAME)?;
        let declared = cfg
            .get("image_token_index")
            .or_else(|| cfg.get("image_token_id"))
            .and_then(Value::as_u64);
        super::check_declared_id(
            folder,
            "image_token_index",
            declared,
            &image_token,
            image_token_id,
        )?;
        Ok(Llava {
            processor,
            image_tokens,
            drop_cls: drop == 1,
            image_token,
            image_token_id,
        })
    }

    fn vision_inputs(&self) -> &'static [&'static str] {
        &["pixel_values"]
    }

    fn image_placeholder(&self) -> &str {
        &self.image_token
    }

    fn image_token_id(&self) -> u32 {
        self.image_token_id
    }

    fn preprocess(&self, images: &[Arc<Pixels>]) -> Result<Images, SampleErrorKind> {
        let mut pixel_values = Vec::new();
        let mut dims = (0, 0);
        for (index, p) in images.iter().enumerate() {
            if p.width() == 0 || p.height() == 0 {
                return Err(SampleErrorKind::Image {
                    index,
                    reason: "the image is empty".into(),
                });
            }
            dims = self.processor.pixel_values(p, &mut pixel_values);
        }
        Ok(Images {
            count: images.len(),
            width: dims.0 as usize,
            height: dims.1 as usize,
            pixel_values,
        })
    }

    fn expand_prompt(&self, rendered: &str, vision: &Images) -> Result<String, SampleErrorKind> {
        let found = rendered.matches(self.image_token.as_str()).count();
        if found != vision.count {
            return Err(SampleErrorKind::Placeholders {
                found,
                images: vision.count,
                placeholder: self.image_token.clone(),
            });
        }
        Ok(rendered.replace(
            &self.image_token,
            &self.image_token.repeat(self.image_tokens),
        ))
    }

    fn encode(&self, session: &mut Session, v: &Images) -> Result<Vec<f32>, SampleErrorKind> {
        let run = |source| SampleErrorKind::Run {
            graph: "vision_encoder".into(),
            source,
        };
        let pv = TensorRef::from_array_view((
            vec![v.count as i64, 3, v.height as i64, v.width as i64],
            &v.pixel_values[..],
        ))
        .map_err(run)?;
        let out = session
            .run(ort::inputs! {"pixel_values" => pv})
            .map_err(run)?;
        let (shape, data) = out[0].try_extract_tensor::<f32>().map_err(run)?;
        let rows = shape.get(1).copied().unwrap_or(0).max(0) as usize;
        let hidden = shape.get(2).copied().unwrap_or(0).max(0) as usize;
        if shape.len() != 3 || shape[0] as usize != v.count || data.len() != v.count * rows * hidden
        {
            return Err(SampleErrorKind::Output(format!(
                "vision_encoder returned image_features of shape {shape:?} for {} images",
                v.count
            )));
        }
        if rows == self.image_tokens {
            return Ok(data.to_vec());
        }
        if self.drop_cls && rows == self.image_tokens + 1 {
            // the graph kept the CLS row the "default" strategy drops
            return Ok(data
                .chunks(rows * hidden)
                .flat_map(|img| img[hidden..].iter().copied())
                .collect());
        }
        Err(SampleErrorKind::FeatureCount {
            features: rows * v.count,
            tokens: self.image_tokens * v.count,
        })
    }
}
