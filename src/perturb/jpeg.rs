//! JPEG compression: a real encode at the table's quality, decoded back, with ImageNet-C's
//! qualities. The encoder and decoder are the `image` crate's, whose output is a pure
//! function of the pixels and quality, so the round trip is deterministic.

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageFormat};
use rand_chacha::ChaCha8Rng;

use super::{ANY, Apply, ApplyError, Family, Perturbation, Perturbed};
use crate::pixels::Pixels;

/// Encoder quality (ImageNet-C `jpeg_compression`).
const QUALITY: [u8; 5] = [25, 18, 15, 10, 7];

fn at(severity: u8) -> u8 {
    QUALITY[(severity.clamp(1, 5) - 1) as usize]
}

pub const JPEG: Perturbation = Perturbation {
    name: "jpeg",
    family: Family::Compression,
    summary: "JPEG compression artefacts: encode at low quality and decode (ImageNet-C)",
    modalities: ANY,
    levels: 5,
    seeded: false,
    geometric: false,
    parameter: "encoder quality",
    table: |s| format!("{}", at(s)),
    apply: Apply::Image(jpeg),
};

fn jpeg(p: &Pixels, s: u8, _rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    Ok(Perturbed::photometric(round_trip(p, at(s))?))
}

/// Encodes at `quality` and decodes again, keeping gray gray.
pub fn round_trip(p: &Pixels, quality: u8) -> Result<Pixels, ApplyError> {
    let (w, h) = p.dimensions();
    let color = if p.is_gray() {
        ExtendedColorType::L8
    } else {
        ExtendedColorType::Rgb8
    };
    let mut buf = Vec::with_capacity(p.as_raw().len() / 4);
    JpegEncoder::new_with_quality(&mut buf, quality)
        .encode(p.as_raw(), w, h, color)
        .map_err(ApplyError::Jpeg)?;
    let img =
        image::load_from_memory_with_format(&buf, ImageFormat::Jpeg).map_err(ApplyError::Jpeg)?;
    let out = Pixels::from_dynamic(img);
    // A decoder that widened gray to colour would change the channel count; keep the kind.
    Ok(match (p, out) {
        (Pixels::Gray(_), Pixels::Rgb(rgb)) => {
            Pixels::Gray(image::DynamicImage::ImageRgb8(rgb).to_luma8())
        }
        (_, o) => o,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perturb::{mean_abs_diff, testimg};

    #[test]
    fn lower_quality_loses_more() {
        let img = testimg::rgb(64, 64, 0);
        let d25 = mean_abs_diff(&img, &round_trip(&img, 25).unwrap());
        let d7 = mean_abs_diff(&img, &round_trip(&img, 7).unwrap());
        assert!(d7 > d25 && d25 > 0.5, "{d25} {d7}");
    }

    #[test]
    fn gray_stays_gray() {
        let img = testimg::gray(33, 17, 0);
        let out = round_trip(&img, 10).unwrap();
        assert!(out.is_gray());
        assert_eq!(out.dimensions(), (33, 17));
    }
}
