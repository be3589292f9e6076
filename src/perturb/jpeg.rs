//! JPEG compression: a real encode at the table's quality, decoded back, with ImageNet-C's
//! qualities. Baseline JPEG with 4:2:0 chroma subsampling, as libjpeg, PIL and OpenCV write
//! at these qualities. The encoder is `jpeg-encoder` built without its SIMD feature (one
//! code path, so the bytes are the same on every CPU); the decoder is `zune-jpeg`, whose
//! SIMD and scalar paths give identical samples (tested below). The round trip is a pure
//! function of the pixels and the quality.

use jpeg_encoder::{ColorType, EncodingError};
use rand_chacha::ChaCha8Rng;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;
use zune_jpeg::errors::DecodeErrors;

use super::raster::with_data;
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

/// Why a JPEG round trip failed.
#[derive(Debug, thiserror::Error)]
pub enum JpegError {
    #[error("{width}x{height} is larger than JPEG's 65535x65535")]
    TooLarge { width: u32, height: u32 },
    #[error("encoding failed")]
    Encode(#[source] EncodingError),
    #[error("decoding failed")]
    Decode(#[source] DecodeErrors),
    #[error("the decoder returned {got} samples, {want} expected")]
    Size { got: usize, want: usize },
}

/// Encodes at `quality` and decodes again, keeping gray gray.
pub fn round_trip(p: &Pixels, quality: u8) -> Result<Pixels, ApplyError> {
    round_trip_with(p, quality, true).map_err(ApplyError::Jpeg)
}

/// [`round_trip`], with the decoder's platform SIMD paths on or off.
fn round_trip_with(p: &Pixels, quality: u8, simd: bool) -> Result<Pixels, JpegError> {
    let (width, height) = p.dimensions();
    let (Ok(w), Ok(h)) = (u16::try_from(width), u16::try_from(height)) else {
        return Err(JpegError::TooLarge { width, height });
    };
    let (color, space) = if p.is_gray() {
        (ColorType::Luma, ColorSpace::Luma)
    } else {
        (ColorType::Rgb, ColorSpace::RGB)
    };
    let raw = p.as_raw();
    let mut buf = Vec::with_capacity(raw.len() / 4);
    // Quality below 90 selects 4:2:0 subsampling.
    jpeg_encoder::Encoder::new(&mut buf, quality)
        .encode(raw, w, h, color)
        .map_err(JpegError::Encode)?;
    let options = DecoderOptions::default()
        .set_max_width(usize::from(u16::MAX))
        .set_max_height(usize::from(u16::MAX))
        .set_use_unsafe(simd)
        .jpeg_set_out_colorspace(space);
    let data = JpegDecoder::new_with_options(ZCursor::new(&buf), options)
        .decode()
        .map_err(JpegError::Decode)?;
    if data.len() != raw.len() {
        return Err(JpegError::Size {
            got: data.len(),
            want: raw.len(),
        });
    }
    Ok(with_data(p, data))
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
    fn the_decoder_simd_and_scalar_paths_agree() {
        for img in [
            testimg::rgb(67, 45, 0),
            testimg::gray(64, 33, 1),
            testimg::rgb(512, 512, 2),
        ] {
            for q in QUALITY {
                let fast = round_trip_with(&img, q, true).unwrap();
                let plain = round_trip_with(&img, q, false).unwrap();
                assert!(fast == plain, "quality {q}: SIMD and scalar decodes differ");
            }
        }
    }

    #[test]
    fn gray_stays_gray() {
        let img = testimg::gray(33, 17, 0);
        let out = round_trip(&img, 10).unwrap();
        assert!(out.is_gray());
        assert_eq!(out.dimensions(), (33, 17));
    }
}
