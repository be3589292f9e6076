//! The model-family registry: `config.json`'s `model_type` picks one entry.
//!
//! Adding a family is one file here plus one line in [`FAMILIES`]. A decoder family
//! implements [`super::engine::DecoderFamily`] and opens with
//! [`super::engine::DecoderEngine`]; any other shape implements [`super::engine::Engine`].

pub mod clip;
pub mod idefics3;
pub mod llava;
pub mod qwen2_vl;

use super::engine::{Engine, ModelOptions};
use super::error::ModelError;
use super::folder::ModelFolder;

/// Opens a family's engine on a folder.
pub type OpenFn = fn(&ModelFolder, &ModelOptions) -> Result<Box<dyn Engine>, ModelError>;

/// One registered family.
#[derive(Debug, Clone, Copy)]
pub struct FamilyEntry {
    /// The family's name (also its file name).
    pub name: &'static str,
    /// The `model_type` values it runs.
    pub model_types: &'static [&'static str],
    pub open: OpenFn,
}

/// Every family medvqa runs.
pub const FAMILIES: &[FamilyEntry] = &[idefics3::ENTRY, llava::ENTRY, qwen2_vl::ENTRY, clip::ENTRY];

/// The family for a `model_type`.
pub fn for_model_type(model_type: &str) -> Option<&'static FamilyEntry> {
    FAMILIES
        .iter()
        .find(|f| f.model_types.contains(&model_type))
}

/// Every supported `model_type`, sorted.
pub fn known_model_types() -> Vec<String> {
    let mut v: Vec<String> = FAMILIES
        .iter()
        .flat_map(|f| f.model_types.iter().map(|s| s.to_string()))
        .collect();
    v.sort();
    v
}

/// The id `tokenizer.json` gives `token`, or an error naming the file and the family.
pub(crate) fn token_id(
    folder: &ModelFolder,
    tokenizer: &tokenizers::Tokenizer,
    token: &str,
    family: &str,
) -> Result<u32, ModelError> {
    tokenizer
        .token_to_id(token)
        .ok_or_else(|| ModelError::MissingToken {
            path: folder.path("tokenizer.json"),
            token: token.to_string(),
            family: family.into(),
        })
}

/// Refuses a model whose `config.json` declares (under `field`) an image token id other
/// than the one the tokenizer gives `token`.
pub(crate) fn check_declared_id(
    folder: &ModelFolder,
    field: &str,
    declared: Option<u64>,
    token: &str,
    id: u32,
) -> Result<(), ModelError> {
    match declared {
        Some(d) if d != id as u64 => Err(ModelError::Field {
            path: folder.path("config.json"),
            field: field.into(),
            problem: format!("is {d}, but tokenizer.json gives {token:?} the id {id}"),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_model_types_are_unique() {
        let mut names: Vec<_> = FAMILIES.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len());
        let types = known_model_types();
        let mut dedup = types.clone();
        dedup.dedup();
        assert_eq!(types, dedup, "a model_type is claimed by two families");
        for f in FAMILIES {
            assert!(!f.model_types.is_empty(), "{} runs no model_type", f.name);
            for t in f.model_types {
                assert_eq!(for_model_type(t).map(|e| e.name), Some(f.name));
            }
        }
        assert!(for_model_type("not-a-model").is_none());
    }
}
