//! Controls: conditions that take the image away, to measure how much a model's answers
//! depend on it at all. A model that answers as well with a blank image did not look.
//!
//! - `blank-image`: every image replaced by a uniform mid-grey image (value 128 in every
//!   channel) of the same size and channel count, so the prompt, the image-token count and
//!   the preprocessing are unchanged and only the content is gone.
//!
//! A control removes what the ground-truth boxes point at, so boxes are not scored under it
//! ([`super::View::boxes`] gives none).

use rand_chacha::ChaCha8Rng;

use super::{ANY, Apply, ApplyError, Family, Perturbation, Perturbed};
use crate::pixels::Pixels;

/// The grey level of the blank image.
pub const BLANK_LEVEL: u8 = 128;

pub const BLANK: Perturbation = Perturbation {
    name: "blank-image",
    family: Family::Control,
    summary: "control: every image replaced by uniform mid-grey of the same size (boxes not scored)",
    modalities: ANY,
    levels: 1,
    seeded: false,
    geometric: false,
    parameter: "grey level",
    table: |_| BLANK_LEVEL.to_string(),
    apply: Apply::Image(blank),
};

fn blank(p: &Pixels, _severity: u8, _rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let (w, h) = p.dimensions();
    let pixels = match p {
        Pixels::Gray(_) => Pixels::Gray(image::GrayImage::from_pixel(
            w,
            h,
            image::Luma([BLANK_LEVEL]),
        )),
        Pixels::Rgb(_) => Pixels::Rgb(image::RgbImage::from_pixel(
            w,
            h,
            image::Rgb([BLANK_LEVEL; 3]),
        )),
    };
    Ok(Perturbed::photometric(pixels))
}
