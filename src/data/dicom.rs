//! DICOM images through the safe decode path (issue 16).
//!
//! A file is DICOM when its bytes say so (`DICM` at offset 128), never by its extension. The
//! header is read first and `Rows` × `Columns` checked against the pixel budget before any
//! pixel is decoded; a multi-frame object gives its first frame. Grey images become 8-bit
//! the way the standard displays them (PS3.3 C.11), which is also what pydicom's
//! `apply_modality_lut` then `apply_voi_lut` compute:
//!
//! 1. **Modality LUT**: stored values × Rescale Slope + Rescale Intercept (1 and 0 when
//!    absent), after the decoder's sign extension of `Bits Stored`.
//! 2. **VOI**: the first VOI LUT Sequence item if there is one; else the first Window
//!    Center/Width with its VOI LUT Function (`LINEAR`, the default; `LINEAR_EXACT`;
//!    `SIGMOID`); else the frame's own minimum and maximum (min–max). [`Window::None`]
//!    (always min–max) and [`Window::Fixed`] override it (`--dicom-window none|C,W`,
//!    `dataset.dicom_window`).
//! 3. The VOI output range is mapped to 0–255 and rounded half away from zero.
//! 4. **MONOCHROME1** is inverted (255 − v), so bone is bright as in MONOCHROME2.
//!
//! Colour images are kept as 8-bit RGB, with no windowing (the JPEG decoders turn YBR into RGB).
//! Pixel data in a transfer syntax the pure-Rust decoders do not cover is a failure of its
//! sample that names the transfer syntax.

use dicom_object::{OpenFileOptions, Tag};
use dicom_pixeldata::{
    ConvertOptions, DecodedPixelData, ModalityLutOption, PixelDecoder, VoiLutFunction,
};

use crate::pixels::Pixels;
use crate::sample::ImageError;

/// Where the `DICM` magic sits: after the 128-byte preamble.
const MAGIC_AT: usize = 128;

const ROWS: Tag = Tag(0x0028, 0x0010);
const COLUMNS: Tag = Tag(0x0028, 0x0011);
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);

/// Whether `bytes` are a DICOM Part 10 file.
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(MAGIC_AT..MAGIC_AT + 4) == Some(b"DICM")
}

/// How grey values become 8-bit.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Window {
    /// The file's own VOI LUT, else its first window, else min–max.
    #[default]
    Auto,
    /// Min–max over the frame, whatever the file says.
    None,
    /// This window (`center`, `width`, linear), after the modality LUT.
    Fixed { center: f64, width: f64 },
}

impl std::str::FromStr for Window {
    type Err = String;

    /// `auto`, `none`, or `CENTER,WIDTH` (`40,400`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Window::Auto),
            "none" => Ok(Window::None),
            cw => {
                let bad = || {
                    format!(
                        "DICOM window {cw:?} is not one of: auto, none, CENTER,WIDTH (e.g. 40,400)"
                    )
                };
                let (c, w) = cw.split_once(',').ok_or_else(bad)?;
                let center: f64 = c.trim().parse().map_err(|_| bad())?;
                let width: f64 = w.trim().parse().map_err(|_| bad())?;
                if !center.is_finite() || !width.is_finite() || width < 1.0 {
                    return Err(format!(
                        "DICOM window {cw:?}: the width must be a number of at least 1"
                    ));
                }
                Ok(Window::Fixed { center, width })
            }
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Window::Auto => f.write_str("auto"),
            Window::None => f.write_str("none"),
            Window::Fixed { center, width } => write!(f, "{center},{width}"),
        }
    }
}

impl Window {
    pub fn is_auto(&self) -> bool {
        *self == Window::Auto
    }
}

impl serde::Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn decode_error(what: &str, message: impl std::fmt::Display) -> ImageError {
    ImageError::Decode {
        what: what.to_string(),
        message: format!("DICOM: {message}"),
    }
}

/// Runs a call into the DICOM crates, turning a panic on malformed input into an error (as
/// for the `parquet` crate, `crate::data::hf`): a damaged file fails its sample, never the run.
fn guarded<T>(what: &str, call: impl FnOnce() -> Result<T, ImageError>) -> Result<T, ImageError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|p| {
        let why = crate::failure::panic_message(p.as_ref());
        Err(decode_error(
            what,
            format!("the decoder failed on malformed input ({why})"),
        ))
    })
}

fn open(
    bytes: &[u8],
    what: &str,
    header_only: bool,
) -> Result<dicom_object::DefaultDicomObject, ImageError> {
    let body = bytes
        .get(MAGIC_AT..)
        .ok_or_else(|| decode_error(what, "the file is shorter than its preamble"))?;
    check_lengths(body, header_only).map_err(|e| decode_error(what, e))?;
    let mut opts = OpenFileOptions::new().read_preamble(dicom_object::file::ReadPreamble::Never);
    if header_only {
        opts = opts.read_until(PIXEL_DATA);
    }
    opts.from_reader(body)
        .map_err(|e| decode_error(what, format!("cannot read the file: {e}")))
}

/// Walks every element header of the file (the meta group, then the data set, into
/// sequences and items) and refuses one whose declared length is more than the bytes left.
///
/// dicom-parser allocates and zero-fills a value's declared length before reading it, so
/// without this a 1 KB file declaring a 2.5 GB element made medvqa touch 2.5 GB (found by
/// the `decode` fuzz target; `fuzz/regressions/decode/`). Lengths are checked against the
/// bytes that are there: after inflating for the deflate transfer syntax (bounded), in the
/// first 1 MiB up to Pixel Data when only the header is read.
fn check_lengths(body: &[u8], header_only: bool) -> Result<(), String> {
    let mut s = Scan {
        b: body,
        at: 4, // "DICM"
        explicit: true,
        header_only,
        rle: false,
    };
    // dicom-object reads the meta group as elements of any group until it has read the
    // bytes its Group Length (0002,0000) states, and the data set starts where that stops;
    // both are checked the same way here (the fifth and seventh DICOM fuzz findings had a
    // data set element, then a 2 GB string, read as meta).
    let group_length = match (s.u16_at(4), s.u16_at(6), body.get(8..10), s.u16_at(10)) {
        (Some(0x0002), Some(0x0000), Some(b"UL"), Some(4)) => s.u32_at(12),
        _ => None,
    };
    let (ts, data_at) = match group_length {
        Some(g) => s.meta(16, g)?,
        None => (s.walk(true)?, s.at),
    };
    // dicom-object looks the UID up with any padding or whitespace trimmed, a newline too
    // (the ninth DICOM fuzz finding: an RLE file whose UID ended in '\n' escaped the RLE
    // checks below, and the decoder allocated 4 GB for its segment table).
    let ts = ts.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let rest = &body[data_at.min(body.len())..];
    match ts {
        "1.2.840.10008.1.2" => Scan::new(rest, false, header_only).walk(false).map(drop),
        "1.2.840.10008.1.2.2" => Err(format!(
            "transfer syntax {ts} (explicit VR big endian, retired) is not supported"
        )),
        "1.2.840.10008.1.2.1.99" => {
            use std::io::Read;
            // A deflated data set may inflate to at most this much (a 64-megapixel 16-bit
            // image and its header fit).
            const INFLATE_CAP: u64 = 160 << 20;
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(rest)
                .take(INFLATE_CAP + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("cannot inflate the deflated data set: {e}"))?;
            if out.len() as u64 > INFLATE_CAP {
                return Err(format!(
                    "the deflated data set inflates to more than {INFLATE_CAP} bytes"
                ));
            }
            Scan::new(&out, true, header_only).walk(false).map(drop)
        }
        "1.2.840.10008.1.2.5" => {
            let mut s = Scan::new(rest, true, header_only);
            s.rle = true;
            s.walk(false).map(drop)
        }
        _ => Scan::new(rest, true, header_only).walk(false).map(drop),
    }
}

/// As dicom-parser reads explicit VR (PS3.5 7.1.2): these VRs have a 2-byte length; every
/// other one, an unknown VR included, 2 reserved bytes and a 4-byte one.
const SHORT_LENGTH: [&[u8]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];

struct Scan<'a> {
    b: &'a [u8],
    at: usize,
    explicit: bool,
    header_only: bool,
    /// RLE Lossless: each frame's fragment opens with its segment count, which the decoder
    /// allocates a table for before reading (the standard allows at most 15).
    rle: bool,
}

impl Scan<'_> {
    fn new(b: &[u8], explicit: bool, header_only: bool) -> Scan<'_> {
        Scan {
            b,
            at: 0,
            explicit,
            header_only,
            rle: false,
        }
    }

    fn u16_at(&self, i: usize) -> Option<u16> {
        Some(u16::from_le_bytes(self.b.get(i..i + 2)?.try_into().ok()?))
    }

    fn u32_at(&self, i: usize) -> Option<u32> {
        Some(u32::from_le_bytes(self.b.get(i..i + 4)?.try_into().ok()?))
    }

    /// The meta group as dicom-object reads it: from `at`, elements of any group, each
    /// value read whole (no descent into sequences), until `group_length` bytes are read.
    /// Returns the Transfer Syntax UID and where the data set starts.
    fn meta(&mut self, at: usize, group_length: u32) -> Result<(String, usize), String> {
        let mut ts = String::new();
        let (mut at, mut read) = (at, 0u64);
        while read < u64::from(group_length) {
            let (Some(group), Some(elem)) = (self.u16_at(at), self.u16_at(at + 2)) else {
                break;
            };
            let vr = self.b.get(at + 4..at + 6).unwrap_or(b"  ");
            let (len, header) = if SHORT_LENGTH.contains(&vr) {
                (self.u16_at(at + 6).map(u32::from), 8)
            } else {
                (self.u32_at(at + 8), 12)
            };
            let Some(len) = len else { break };
            if len == 0xFFFF_FFFF {
                break; // the parser refuses an undefined length here
            }
            at += header;
            let left = self.b.len().saturating_sub(at);
            if len as usize > left {
                return Err(format!(
                    "meta element ({group:04X},{elem:04X}) declares {len} bytes, but only {left} follow"
                ));
            }
            if (group, elem) == (0x0002, 0x0010) {
                ts = String::from_utf8_lossy(&self.b[at..at + len as usize]).into_owned();
            }
            at += len as usize;
            read += (header + len as usize) as u64;
        }
        Ok((ts, at))
    }

    /// Walks elements to the end (or, for the meta group, while the group is 0002),
    /// returning the Transfer Syntax UID when it passes it. Truncation ends the walk: the
    /// parser reports it; only lengths that would make it allocate past the file are
    /// refused here.
    fn walk(&mut self, meta: bool) -> Result<String, String> {
        const UNDEFINED: u32 = 0xFFFF_FFFF;
        let mut ts = String::new();
        // Inside encapsulated Pixel Data, items are fragments of bytes, not elements.
        let mut fragments = false;
        let mut fragment = 0usize;
        let (mut value_unit, mut vr_name) = (1usize, String::new());
        // The sequences and items open here: where each ends (`None`: at its delimiter).
        // The parser reads an item header only inside a sequence; at the top level it reads
        // (FFFE,E000) as an element whose value it skips.
        let mut open: Vec<Option<usize>> = Vec::new();
        while let (Some(group), Some(elem)) = (self.u16_at(self.at), self.u16_at(self.at + 2)) {
            while matches!(open.last(), Some(Some(end)) if self.at >= *end) {
                open.pop();
            }
            if meta && group != 0x0002 {
                break;
            }
            let tag = (group, elem);
            if self.header_only && tag == (0x7FE0, 0x0010) {
                break;
            }
            let (len, header, is_sq) = if group == 0xFFFE {
                (self.u32_at(self.at + 4), 8, false)
            } else if self.explicit {
                let vr = self.b.get(self.at + 4..self.at + 6).unwrap_or(b"  ");
                value_unit = unit_of(vr);
                vr_name = String::from_utf8_lossy(vr).into_owned();
                if SHORT_LENGTH.contains(&vr) {
                    (self.u16_at(self.at + 6).map(u32::from), 8, false)
                } else {
                    (self.u32_at(self.at + 8), 12, vr == b"SQ")
                }
            } else {
                let vr = implicit_vr(Tag(group, elem));
                value_unit = unit_of(&vr);
                vr_name = String::from_utf8_lossy(&vr).into_owned();
                (self.u32_at(self.at + 4), 8, false)
            };
            let Some(len) = len else { break };
            if group != 0xFFFE && len != UNDEFINED && !(len as usize).is_multiple_of(value_unit) {
                // dicom-parser reads whole values only (`len / unit` of them) and then
                // reads the next header from the left-over bytes, out of step with the
                // file: a 1 KB file then declared a 4 GB element (fuzz/regressions/decode/).
                return Err(format!(
                    "element ({group:04X},{elem:04X}) with VR {vr_name} declares {len} bytes, \
                     not a whole number of its {value_unit}-byte values"
                ));
            }
            self.at += header;
            let left = self.b.len().saturating_sub(self.at);
            match tag {
                // A delimiter has no value. dicom-parser reads one outside a sequence as an
                // element and allocates its length (the eighth DICOM fuzz finding: 800 MB).
                (0xFFFE, 0xE0DD) | (0xFFFE, 0xE00D) if len != 0 => {
                    return Err(format!(
                        "delimiter ({group:04X},{elem:04X}) declares {len} bytes; a delimiter has none"
                    ));
                }
                (0xFFFE, 0xE0DD) if fragments => fragments = false,
                (0xFFFE, 0xE0DD) | (0xFFFE, 0xE00D) => {
                    open.pop();
                }
                _ if len == UNDEFINED => {
                    // A sequence, an item, or encapsulated Pixel Data: its content follows.
                    if tag == (0x7FE0, 0x0010) {
                        fragments = true;
                        fragment = 0;
                    } else {
                        open.push(None);
                    }
                }
                _ if len as usize > left => {
                    return Err(format!(
                        "element ({group:04X},{elem:04X}) declares {len} bytes, but only {left} follow"
                    ));
                }
                // An item of a sequence: its elements follow.
                (0xFFFE, 0xE000) if !fragments && !open.is_empty() => {
                    open.push(Some(self.at + len as usize));
                }
                (0xFFFE, 0xE000) if fragments => {
                    // A fragment of encapsulated pixel data; the first is the offset table.
                    if self.rle && fragment > 0 {
                        let segments = self.u32_at(self.at).unwrap_or(0);
                        if segments > 15 {
                            return Err(format!(
                                "an RLE frame declares {segments} segments; the standard allows at most 15"
                            ));
                        }
                    }
                    fragment += 1;
                    self.at += len as usize;
                }
                _ if is_sq
                    || (!self.explicit
                        && self.b.get(self.at..self.at + 4) == Some(&[0xFE, 0xFF, 0x00, 0xE0])) =>
                {
                    // A sequence of defined length: walk into its items.
                    open.push(Some(self.at + len as usize));
                }
                _ => {
                    if tag == (0x0002, 0x0010) {
                        ts = String::from_utf8_lossy(&self.b[self.at..self.at + len as usize])
                            .into_owned();
                    }
                    self.at += len as usize;
                }
            }
        }
        Ok(ts)
    }
}

/// The VR dicom-parser gives an element in Implicit VR Little Endian: the data
/// dictionary's (relaxed), OW for Pixel Data and Overlay Data, UN when the tag is unknown.
fn implicit_vr(tag: Tag) -> [u8; 2] {
    use dicom_core::DataDictionary as _;
    use dicom_core::dictionary::DataDictionaryEntry as _;
    if tag == PIXEL_DATA || (tag.0 >> 8 == 0x60 && tag.1 == 0x3000) {
        return *b"OW";
    }
    dicom_object::StandardDataDictionary
        .by_tag(tag)
        .map_or(*b"UN", |entry| entry.vr().relaxed().to_bytes())
}

/// The size of one value of a binary VR (PS3.5 6.2); 1 for strings and bytes, whose
/// values the parser reads whole.
fn unit_of(vr: &[u8]) -> usize {
    match vr {
        b"AT" | b"FL" | b"OF" | b"OL" | b"SL" | b"UL" => 4,
        b"FD" | b"OD" | b"OV" | b"SV" | b"UV" => 8,
        b"OW" | b"SS" | b"US" => 2,
        _ => 1,
    }
}

fn int_of(
    obj: &dicom_object::DefaultDicomObject,
    tag: Tag,
    name: &str,
    what: &str,
) -> Result<u32, ImageError> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .ok_or_else(|| decode_error(what, format!("no {name} element")))?
        .to_int::<u32>()
        .map_err(|e| decode_error(what, format!("{name}: {e}")))
}

/// `(width, height)` from the header (`Columns`, `Rows`), without touching the pixel data.
pub fn dimensions(bytes: &[u8], what: &str) -> Result<(u32, u32), ImageError> {
    guarded(what, || {
        let obj = open(bytes, what, true)?;
        Ok((
            int_of(&obj, COLUMNS, "Columns", what)?,
            int_of(&obj, ROWS, "Rows", what)?,
        ))
    })
}

/// Decodes the first frame to 8-bit pixels, after checking its size with `check_budget`.
pub fn decode(
    bytes: &[u8],
    what: &str,
    window: Window,
    check_budget: impl FnOnce(u32, u32) -> Result<(), ImageError>,
) -> Result<Pixels, ImageError> {
    guarded(what, || {
        let obj = open(bytes, what, false)?;
        let (w, h) = (
            int_of(&obj, COLUMNS, "Columns", what)?,
            int_of(&obj, ROWS, "Rows", what)?,
        );
        check_budget(w, h)?;
        if obj.element_opt(PIXEL_DATA).ok().flatten().is_none() {
            return Err(decode_error(what, "the file has no Pixel Data element"));
        }
        let ts = obj
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        let px = obj.decode_pixel_data_frame(0).map_err(|e| {
            decode_error(
                what,
                format!("cannot decode pixel data in transfer syntax {ts}: {e}"),
            )
        })?;
        if (px.columns(), px.rows()) != (w, h) {
            return Err(decode_error(
                what,
                "the decoded frame does not match Rows and Columns",
            ));
        }
        if px.samples_per_pixel() == 1 {
            grey(&px, what, window)
        } else {
            colour(&px, what)
        }
    })
}

/// Three 8-bit samples per pixel, as RGB. The JPEG decoders hand back RGB; other colour
/// encodings (YBR stored natively, palette colour, 16-bit colour) are refused by name.
fn colour(px: &DecodedPixelData<'_>, what: &str) -> Result<Pixels, ImageError> {
    let pi = px.photometric_interpretation().to_string();
    if px.samples_per_pixel() != 3 || px.bits_allocated() != 8 || pi != "RGB" {
        return Err(decode_error(
            what,
            format!(
                "colour pixel data as {pi} with {} samples of {} bits is not supported (RGB, 8 bits is)",
                px.samples_per_pixel(),
                px.bits_allocated()
            ),
        ));
    }
    let rgb: Vec<u8> = px
        .to_vec_frame_with_options(
            0,
            &ConvertOptions::new().with_modality_lut(ModalityLutOption::None),
        )
        .map_err(|e| decode_error(what, format!("cannot read the samples: {e}")))?;
    let img = image::RgbImage::from_raw(px.columns(), px.rows(), rgb)
        .ok_or_else(|| decode_error(what, "the frame has fewer samples than Rows × Columns × 3"))?;
    Ok(Pixels::from_dynamic(image::DynamicImage::ImageRgb8(img)))
}

/// How a value in the modality-LUT output maps into [0, 1].
enum Voi {
    Lut {
        first: f64,
        data: Vec<f64>,
        max: f64,
    },
    /// PS3.3 C.11.2.1.2. pydicom maps the window onto the modality LUT's output range and
    /// back; the fraction of that range is what is left, so it is computed directly.
    Window {
        center: f64,
        width: f64,
        function: VoiLutFunction,
    },
    MinMax {
        lo: f64,
        hi: f64,
    },
}

impl Voi {
    fn unit(&self, x: f64) -> f64 {
        match self {
            Voi::Lut { first, data, max } => {
                let i = (x - first).clamp(0.0, (data.len() - 1) as f64) as usize;
                data[i] / max
            }
            Voi::Window {
                center,
                width,
                function,
            } => {
                let (c, w) = match function {
                    VoiLutFunction::Sigmoid => {
                        return 1.0 / (1.0 + (-4.0 * (x - center) / width).exp());
                    }
                    VoiLutFunction::LinearExact => (*center, *width),
                    _ => (center - 0.5, width - 1.0),
                };
                if x <= c - w / 2.0 {
                    0.0
                } else if x > c + w / 2.0 {
                    1.0
                } else {
                    (x - c) / w + 0.5
                }
            }
            Voi::MinMax { lo, hi } => {
                if hi > lo {
                    (x - lo) / (hi - lo)
                } else {
                    0.0
                }
            }
        }
    }
}

fn grey(px: &DecodedPixelData<'_>, what: &str, window: Window) -> Result<Pixels, ImageError> {
    let raw: Vec<f64> = px
        .to_vec_frame_with_options(
            0,
            &ConvertOptions::new().with_modality_lut(ModalityLutOption::None),
        )
        .map_err(|e| decode_error(what, format!("cannot read the samples: {e}")))?;
    let rescale = px
        .rescale()
        .ok()
        .and_then(|r| r.first().copied())
        .unwrap_or(dicom_pixeldata::Rescale::new(1.0, 0.0));
    let mut values = raw;
    for v in &mut values {
        *v = *v * rescale.slope + rescale.intercept;
    }
    let min_max = || {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Voi::MinMax { lo, hi }
    };
    let voi = match window {
        Window::None => min_max(),
        Window::Fixed { center, width } => Voi::Window {
            center,
            width,
            function: VoiLutFunction::Linear,
        },
        Window::Auto => {
            let lut = px.voi_lut_sequence().ok().flatten().and_then(|s| s.first());
            let win = px.window().ok().flatten().and_then(|s| s.first());
            let function = px
                .voi_lut_function()
                .ok()
                .flatten()
                .and_then(|f| f.first().copied())
                .unwrap_or(VoiLutFunction::Linear);
            match (lut, win) {
                (Some(l), _) if !l.data.is_empty() => Voi::Lut {
                    first: f64::from(l.min_pixel_value),
                    data: l.data.iter().map(|&v| f64::from(v)).collect(),
                    max: (2f64.powi(i32::from(l.bits_stored)) - 1.0).max(1.0),
                },
                (_, Some(w))
                    if w.width > 0.0 && (function != VoiLutFunction::Linear || w.width >= 1.0) =>
                {
                    Voi::Window {
                        center: w.center,
                        width: w.width,
                        function,
                    }
                }
                _ => min_max(),
            }
        }
    };
    let invert =
        px.photometric_interpretation() == &dicom_pixeldata::PhotometricInterpretation::Monochrome1;
    let out: Vec<u8> = values
        .iter()
        .map(|&x| {
            let v = (voi.unit(x).clamp(0.0, 1.0) * 255.0).round() as u8;
            if invert { 255 - v } else { v }
        })
        .collect();
    let img = image::GrayImage::from_raw(px.columns(), px.rows(), out)
        .ok_or_else(|| decode_error(what, "the frame has fewer samples than Rows × Columns"))?;
    Ok(Pixels::from_dynamic(image::DynamicImage::ImageLuma8(img)))
}
