//! Small raster drawing kit: a float canvas with antialiased shapes, blurs, fractal noise,
//! text in a real TrueType font ([`truetype`]) and a built-in 5×7 bitmap font.
//!
//! Phantom sets, burned-in text perturbations and contact sheets draw with it. Everything is
//! plain arithmetic on the inputs, with no global state, so the same calls always give the
//! same pixels. Values are 0–255 floats per channel until [`Canvas::to_pixels`] rounds them.
//!
//! Why not imageproc for the shapes: imageproc draws hard-edged or 1-pixel antialiased
//! shapes onto 8-bit images, while the phantoms need soft-edged, sub-pixel ellipses,
//! polygons and thick lines accumulated on a float canvas (coverage, feathering, several
//! passes before rounding once). imageproc does the text: [`truetype`] rasterises Noto Mono
//! (SIL OFL 1.1, `assets/fonts/`) through `imageproc::drawing::draw_text_mut` and ab_glyph,
//! for the burned-in-text perturbation and the contact sheets' labels. The phantoms keep the
//! bitmap font: the reference VLM was trained on phantom images drawn with it, and a new
//! font would change what it sees.

use image::{GrayImage, RgbImage};
use rand::{Rng, RngExt};

use crate::pixels::Pixels;

/// An ellipse centred at (cx, cy) with radii (rx, ry), rotated by `angle` radians.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ellipse {
    pub cx: f32,
    pub cy: f32,
    pub rx: f32,
    pub ry: f32,
    pub angle: f32,
}

impl Ellipse {
    /// An axis-aligned ellipse.
    pub fn new(cx: f32, cy: f32, rx: f32, ry: f32) -> Ellipse {
        Ellipse {
            cx,
            cy,
            rx,
            ry,
            angle: 0.0,
        }
    }

    /// A circle.
    pub fn circle(cx: f32, cy: f32, r: f32) -> Ellipse {
        Ellipse::new(cx, cy, r, r)
    }

    pub fn rotated(self, angle: f32) -> Ellipse {
        Ellipse { angle, ..self }
    }
}

/// A 1- or 3-channel float image, row-major, channels interleaved.
#[derive(Debug, Clone, PartialEq)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub channels: usize,
    pub data: Vec<f32>,
}

impl Canvas {
    /// A canvas filled with `color` (1 or 3 values).
    pub fn new(width: u32, height: u32, color: &[f32]) -> Canvas {
        let channels = color.len().clamp(1, 3);
        let mut data = Vec::with_capacity(width as usize * height as usize * channels);
        for _ in 0..(width as usize * height as usize) {
            data.extend_from_slice(&color[..channels]);
        }
        Canvas {
            width,
            height,
            channels,
            data,
        }
    }

    pub fn from_pixels(p: &Pixels) -> Canvas {
        Canvas {
            width: p.width(),
            height: p.height(),
            channels: p.channels(),
            data: p.as_raw().iter().map(|&v| v as f32).collect(),
        }
    }

    /// Rounds and clamps to 8 bits.
    pub fn to_pixels(&self) -> Pixels {
        let bytes: Vec<u8> = self
            .data
            .iter()
            .map(|&v| v.round().clamp(0.0, 255.0) as u8)
            .collect();
        let (w, h) = (self.width, self.height);
        if self.channels == 1 {
            Pixels::Gray(GrayImage::from_raw(w, h, bytes).unwrap_or_else(|| GrayImage::new(w, h)))
        } else {
            Pixels::Rgb(RgbImage::from_raw(w, h, bytes).unwrap_or_else(|| RgbImage::new(w, h)))
        }
    }

    #[inline]
    fn idx(&self, x: u32, y: u32) -> usize {
        (y as usize * self.width as usize + x as usize) * self.channels
    }

    /// Mixes `color` into pixel (x, y) with weight `alpha` in [0, 1].
    #[inline]
    pub fn blend(&mut self, x: u32, y: u32, color: &[f32], alpha: f32) {
        if x >= self.width || y >= self.height || alpha <= 0.0 {
            return;
        }
        let a = alpha.min(1.0);
        let i = self.idx(x, y);
        for c in 0..self.channels {
            let v = color[c.min(color.len() - 1)];
            self.data[i + c] += (v - self.data[i + c]) * a;
        }
    }

    /// Adds `delta` (per channel) times `weight` to pixel (x, y).
    #[inline]
    pub fn add(&mut self, x: u32, y: u32, delta: &[f32], weight: f32) {
        if x >= self.width || y >= self.height {
            return;
        }
        let i = self.idx(x, y);
        for c in 0..self.channels {
            self.data[i + c] += delta[c.min(delta.len() - 1)] * weight;
        }
    }

    pub fn get(&self, x: u32, y: u32, c: usize) -> f32 {
        self.data[self.idx(x, y) + c.min(self.channels - 1)]
    }

    /// Visits every pixel inside the clipped bounding box of the ellipse (grown by `margin`),
    /// passing the pixel coordinates and the normalised radius, 1 on the rim.
    fn for_ellipse(
        &mut self,
        e: Ellipse,
        margin: f32,
        mut f: impl FnMut(&mut Canvas, u32, u32, f32),
    ) {
        let Ellipse {
            cx,
            cy,
            rx,
            ry,
            angle,
        } = e;
        let (rx, ry) = (rx.max(0.5), ry.max(0.5));
        let reach = rx.max(ry) + margin + 1.0;
        let (x0, x1) = clip(cx - reach, cx + reach, self.width);
        let (y0, y1) = clip(cy - reach, cy + reach, self.height);
        let (s, c) = angle.sin_cos();
        for y in y0..y1 {
            for x in x0..x1 {
                let dx = x as f32 + 0.5 - cx;
                let dy = y as f32 + 0.5 - cy;
                let u = (dx * c + dy * s) / rx;
                let v = (-dx * s + dy * c) / ry;
                f(self, x, y, (u * u + v * v).sqrt());
            }
        }
    }

    /// A filled, antialiased ellipse; `soft` widens the edge ramp (pixels).
    pub fn fill_ellipse(&mut self, e: Ellipse, color: &[f32], alpha: f32, soft: f32) {
        let ramp = soft.max(0.7);
        let scale = e.rx.min(e.ry).max(0.5);
        self.for_ellipse(e, ramp, |cv, x, y, r| {
            let d = (r - 1.0) * scale;
            let cover = (0.5 - d / ramp).clamp(0.0, 1.0);
            cv.blend(x, y, color, alpha * cover);
        });
    }

    /// Adds a Gaussian bump `delta * exp(-r²/2)`, where the ellipse's radii are the sigmas,
    /// out to three sigmas.
    pub fn add_gaussian(&mut self, sigma: Ellipse, delta: &[f32]) {
        let reach = Ellipse {
            rx: 3.0 * sigma.rx,
            ry: 3.0 * sigma.ry,
            ..sigma
        };
        self.for_ellipse(reach, 0.0, |cv, x, y, r| {
            let r3 = r * 3.0;
            if r3 <= 3.0 {
                cv.add(x, y, delta, (-0.5 * r3 * r3).exp());
            }
        });
    }

    /// An antialiased line segment of the given width.
    pub fn line(
        &mut self,
        (x0, y0): (f32, f32),
        (x1, y1): (f32, f32),
        width: f32,
        color: &[f32],
        alpha: f32,
    ) {
        let half = width.max(0.5) / 2.0;
        let (bx0, bx1) = clip(x0.min(x1) - half - 1.0, x0.max(x1) + half + 1.0, self.width);
        let (by0, by1) = clip(
            y0.min(y1) - half - 1.0,
            y0.max(y1) + half + 1.0,
            self.height,
        );
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len2 = (dx * dx + dy * dy).max(1e-6);
        for y in by0..by1 {
            for x in bx0..bx1 {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let t = (((px - x0) * dx + (py - y0) * dy) / len2).clamp(0.0, 1.0);
                let (qx, qy) = (x0 + t * dx - px, y0 + t * dy - py);
                let d = (qx * qx + qy * qy).sqrt() - half;
                let cover = (0.5 - d).clamp(0.0, 1.0);
                self.blend(x, y, color, alpha * cover);
            }
        }
    }

    /// A polyline through `points`.
    pub fn polyline(&mut self, points: &[(f32, f32)], width: f32, color: &[f32], alpha: f32) {
        for w in points.windows(2) {
            self.line(w[0], w[1], width, color, alpha);
        }
    }

    /// A filled axis-aligned rectangle over pixel columns x0..x1 and rows y0..y1.
    pub fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, color: &[f32], alpha: f32) {
        let cx = |v: i64| v.clamp(0, self.width as i64) as u32;
        let cy = |v: i64| v.clamp(0, self.height as i64) as u32;
        let (xa, xb, ya, yb) = (cx(x0), cx(x1), cy(y0), cy(y1));
        for y in ya..yb {
            for x in xa..xb {
                self.blend(x, y, color, alpha);
            }
        }
    }

    /// A rectangle outline `thickness` pixels wide, over `[x0, y0, x1, y1]`.
    pub fn stroke_rect(
        &mut self,
        [x0, y0, x1, y1]: [i64; 4],
        thickness: i64,
        color: &[f32],
        alpha: f32,
    ) {
        let t = thickness.max(1);
        self.fill_rect(x0, y0, x1, y0 + t, color, alpha);
        self.fill_rect(x0, y1 - t, x1, y1, color, alpha);
        self.fill_rect(x0, y0 + t, x0 + t, y1 - t, color, alpha);
        self.fill_rect(x1 - t, y0 + t, x1, y1 - t, color, alpha);
    }

    /// Text in the built-in 5×7 font, each font pixel drawn as a `scale`×`scale` block, top
    /// left at (x, y). Lowercase prints as uppercase; unknown characters print as `?`.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: u32, color: &[f32], alpha: f32) {
        let s = scale.max(1) as i64;
        let mut pen = x;
        for ch in text.chars() {
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0b10000 >> col) != 0 {
                        let px = pen + col as i64 * s;
                        let py = y + r as i64 * s;
                        self.fill_rect(px, py, px + s, py + s, color, alpha);
                    }
                }
            }
            pen += 6 * s;
        }
    }

    /// Separable box blur with radius `r`, repeated `passes` times (3 passes ≈ Gaussian).
    /// Edges clamp.
    pub fn box_blur(&mut self, r: u32, passes: u32) {
        if r == 0 {
            return;
        }
        let (w, h, ch) = (self.width as usize, self.height as usize, self.channels);
        let mut tmp = vec![0.0f32; self.data.len()];
        for _ in 0..passes {
            blur_1d(&self.data, &mut tmp, w, h, ch, r as usize, true);
            blur_1d(&tmp, &mut self.data, w, h, ch, r as usize, false);
        }
    }

    /// Multiplies every channel by a radial falloff: 1 at the centre, `edge` at the corners.
    pub fn vignette(&mut self, edge: f32, power: f32) {
        let (cx, cy) = (self.width as f32 / 2.0, self.height as f32 / 2.0);
        let rmax = (cx * cx + cy * cy).sqrt();
        for y in 0..self.height {
            for x in 0..self.width {
                let dx = x as f32 + 0.5 - cx;
                let dy = y as f32 + 0.5 - cy;
                let r = ((dx * dx + dy * dy).sqrt() / rmax).min(1.0);
                let f = 1.0 - (1.0 - edge) * r.powf(power);
                let i = self.idx(x, y);
                for c in 0..self.channels {
                    self.data[i + c] *= f;
                }
            }
        }
    }
}

fn clip(lo: f32, hi: f32, n: u32) -> (u32, u32) {
    let a = lo.floor().max(0.0) as i64;
    let b = (hi.ceil() as i64).min(n as i64);
    (
        a.clamp(0, n as i64) as u32,
        b.max(a).clamp(0, n as i64) as u32,
    )
}

fn blur_1d(
    src: &[f32],
    dst: &mut [f32],
    w: usize,
    h: usize,
    ch: usize,
    r: usize,
    horizontal: bool,
) {
    let (outer, inner) = if horizontal { (h, w) } else { (w, h) };
    let at = |o: usize, i: usize| {
        if horizontal {
            (o * w + i) * ch
        } else {
            (i * w + o) * ch
        }
    };
    let norm = 1.0 / (2 * r + 1) as f32;
    for o in 0..outer {
        for c in 0..ch {
            let mut acc = 0.0f32;
            for k in 0..=(2 * r) {
                let i = (k as isize - r as isize).clamp(0, inner as isize - 1) as usize;
                acc += src[at(o, i) + c];
            }
            for i in 0..inner {
                dst[at(o, i) + c] = acc * norm;
                let add = (i + r + 1).min(inner - 1);
                let sub = (i as isize - r as isize).max(0) as usize;
                acc += src[at(o, add) + c] - src[at(o, sub) + c];
            }
        }
    }
}

/// Fractal value noise in [0, 1], `octaves` layers starting at `cell` pixels per lattice
/// cell, each half the size and half the weight of the last. Drawn from `rng`, so the same
/// seed gives the same field.
pub fn fractal_noise<R: Rng>(
    width: u32,
    height: u32,
    cell: f32,
    octaves: u32,
    rng: &mut R,
) -> Vec<f32> {
    let (w, h) = (width as usize, height as usize);
    let mut out = vec![0.0f32; w * h];
    let mut amp = 1.0f32;
    let mut total = 0.0f32;
    let mut size = cell.max(1.0);
    for _ in 0..octaves.max(1) {
        let gw = (w as f32 / size).ceil() as usize + 2;
        let gh = (h as f32 / size).ceil() as usize + 2;
        let lattice: Vec<f32> = (0..gw * gh).map(|_| rng.random::<f32>()).collect();
        for y in 0..h {
            let fy = y as f32 / size;
            let (y0, ty) = (fy.floor() as usize, smooth(fy.fract()));
            for x in 0..w {
                let fx = x as f32 / size;
                let (x0, tx) = (fx.floor() as usize, smooth(fx.fract()));
                let v00 = lattice[y0 * gw + x0];
                let v10 = lattice[y0 * gw + x0 + 1];
                let v01 = lattice[(y0 + 1) * gw + x0];
                let v11 = lattice[(y0 + 1) * gw + x0 + 1];
                let top = v00 + (v10 - v00) * tx;
                let bot = v01 + (v11 - v01) * tx;
                out[y * w + x] += amp * (top + (bot - top) * ty);
            }
        }
        total += amp;
        amp *= 0.5;
        size = (size / 2.0).max(1.0);
    }
    for v in &mut out {
        *v /= total;
    }
    out
}

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

/// The shipped font: Noto Mono Regular (SIL Open Font License 1.1, `assets/fonts/OFL.txt`).
const FONT_BYTES: &[u8] = include_bytes!("../assets/fonts/NotoMono-Regular.ttf");

/// The parsed font; `None` only if the embedded bytes were not a font (a test checks they are).
fn font() -> Option<&'static ab_glyph::FontRef<'static>> {
    static FONT: std::sync::OnceLock<Option<ab_glyph::FontRef<'static>>> =
        std::sync::OnceLock::new();
    FONT.get_or_init(|| ab_glyph::FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
}

/// `text` in the shipped TrueType font at `px` pixels per em, as a 1-channel coverage canvas
/// (0 background, 255 ink) exactly as large as the text. Rasterised by imageproc through
/// ab_glyph, which is pure integer and float arithmetic on the outlines, so the same call gives
/// the same pixels everywhere. Falls back to the bitmap font if the embedded font cannot be
/// read, which a test rules out.
pub fn truetype(text: &str, px: f32) -> Canvas {
    let Some(font) = font() else {
        let scale = ((px / 10.0).round() as u32).max(1);
        let mut c = Canvas::new(text_width(text, scale).max(1), text_height(scale), &[0.0]);
        c.text(0, 0, text, scale, &[255.0], 1.0);
        return c;
    };
    let scale = ab_glyph::PxScale::from(px.max(1.0));
    let (w, h) = (
        text_width_px(font, scale, text),
        line_height_px(font, scale),
    );
    let mut img = GrayImage::new(w, h);
    imageproc::drawing::draw_text_mut(&mut img, image::Luma([255u8]), 0, 0, scale, font, text);
    Canvas {
        width: img.width(),
        height: img.height(),
        channels: 1,
        data: img.as_raw().iter().map(|&v| v as f32).collect(),
    }
}

/// The width [`truetype`] gives `text`, without drawing it.
pub fn truetype_width(text: &str, px: f32) -> u32 {
    match font() {
        Some(font) => text_width_px(font, ab_glyph::PxScale::from(px.max(1.0)), text),
        None => truetype(text, px).width,
    }
}

/// The height of every [`truetype`] canvas at `px`: the font's full line, descenders
/// included, without drawing anything.
pub fn truetype_line_height(px: f32) -> u32 {
    match font() {
        Some(font) => line_height_px(font, ab_glyph::PxScale::from(px.max(1.0))),
        None => truetype("0", px).height,
    }
}

fn text_width_px(font: &ab_glyph::FontRef<'static>, scale: ab_glyph::PxScale, text: &str) -> u32 {
    imageproc::drawing::text_size(scale, font, text).0.max(1) + 1
}

/// The full line height (text_size stops at the lowest ink of the text's own glyphs, which
/// cuts a `g` drawn below it).
fn line_height_px(font: &ab_glyph::FontRef<'static>, scale: ab_glyph::PxScale) -> u32 {
    let scaled = ab_glyph::Font::as_scaled(font, scale);
    let h = ab_glyph::ScaleFont::ascent(&scaled) - ab_glyph::ScaleFont::descent(&scaled);
    (h.ceil() as u32).max(1)
}

impl Canvas {
    /// Paints `color` through a 1-channel coverage `mask` (0–255) placed at `(x, y)`, scaled
    /// by `alpha`; parts outside the canvas are cut off.
    pub fn paint_mask(&mut self, mask: &Canvas, x: i64, y: i64, color: &[f32], alpha: f32) {
        for my in 0..mask.height {
            let cy = y + my as i64;
            if cy < 0 || cy >= self.height as i64 {
                continue;
            }
            for mx in 0..mask.width {
                let cx = x + mx as i64;
                if cx < 0 || cx >= self.width as i64 {
                    continue;
                }
                let a = mask.get(mx, my, 0) / 255.0 * alpha;
                if a > 0.0 {
                    self.blend(cx as u32, cy as u32, color, a);
                }
            }
        }
    }
}

/// Width in pixels of `text` at `scale` in the built-in font.
pub fn text_width(text: &str, scale: u32) -> u32 {
    (text.chars().count() as u32 * 6).saturating_sub(1) * scale.max(1)
}

/// Height in pixels of one line at `scale`.
pub fn text_height(scale: u32) -> u32 {
    7 * scale.max(1)
}

/// The 5×7 glyph of `c`: seven rows, five bits each, most significant bit leftmost.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        ' ' => [0; 7],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '/' => [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '[' => [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E],
        ']' => [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        '*' => [0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00],
        '!' => [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        '\'' => [0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn ellipse_covers_its_centre_and_not_its_outside() {
        let mut c = Canvas::new(40, 40, &[0.0]);
        c.fill_ellipse(Ellipse::new(20.0, 20.0, 8.0, 4.0), &[200.0], 1.0, 1.0);
        assert_eq!(c.get(20, 20, 0), 200.0);
        assert_eq!(c.get(20, 30, 0), 0.0);
        assert_eq!(c.get(35, 20, 0), 0.0);
    }

    #[test]
    fn text_marks_pixels_inside_its_extent_only() {
        let mut c = Canvas::new(60, 20, &[0.0]);
        c.text(2, 3, "R 12", 2, &[255.0], 1.0);
        let w = text_width("R 12", 2) as i64;
        let mut inside = 0;
        for y in 0..20u32 {
            for x in 0..60u32 {
                if c.get(x, y, 0) > 0.0 {
                    assert!((2..2 + w).contains(&(x as i64)) && (3..3 + 14).contains(&(y as i64)));
                    inside += 1;
                }
            }
        }
        assert!(inside > 40);
    }

    #[test]
    fn box_blur_keeps_a_flat_image_flat_and_its_mean() {
        let mut c = Canvas::new(16, 9, &[10.0, 20.0, 30.0]);
        c.box_blur(3, 3);
        assert!(
            c.data
                .iter()
                .enumerate()
                .all(|(i, &v)| (v - [10.0, 20.0, 30.0][i % 3]).abs() < 1e-3)
        );
    }

    #[test]
    fn noise_is_a_function_of_the_seed() {
        let a = fractal_noise(32, 16, 8.0, 3, &mut ChaCha8Rng::seed_from_u64(1));
        let b = fractal_noise(32, 16, 8.0, 3, &mut ChaCha8Rng::seed_from_u64(1));
        let c = fractal_noise(32, 16, 8.0, 3, &mut ChaCha8Rng::seed_from_u64(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn the_shipped_font_loads_and_draws_ink_the_same_way_every_time() {
        assert!(
            font().is_some(),
            "assets/fonts/NotoMono-Regular.ttf is not a font"
        );
        let a = truetype("ID 1234567", 20.0);
        assert!(
            a.width > a.height && a.height >= 14,
            "{}x{}",
            a.width,
            a.height
        );
        let ink = a.data.iter().filter(|&&v| v > 128.0).count();
        assert!(ink > 50, "{ink} inked pixels");
        // Antialiased: some coverage is partial.
        assert!(a.data.iter().any(|&v| v > 0.0 && v < 255.0));
        assert_eq!(a, truetype("ID 1234567", 20.0));
        let mut c = Canvas::new(a.width + 4, a.height + 4, &[0.0]);
        c.paint_mask(&a, 2, 2, &[200.0], 1.0);
        assert_eq!(c.get(0, 0, 0), 0.0);
        assert!(c.data.iter().any(|&v| v > 150.0));
    }
}
