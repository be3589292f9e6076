//! Instruments in the scope's view (snares, forceps, clips), and the overlays every
//! frame carries: the field-of-view mask, burned-in text and the green position box.

use super::*;

/// Kinds of instrument that leave the working channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstrumentKind {
    Forceps,
    Snare,
    Catheter,
}

impl InstrumentKind {
    pub const ALL: [InstrumentKind; 3] = [
        InstrumentKind::Forceps,
        InstrumentKind::Snare,
        InstrumentKind::Catheter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            InstrumentKind::Forceps => "forceps",
            InstrumentKind::Snare => "snare",
            InstrumentKind::Catheter => "catheter",
        }
    }
}

/// An instrument in image pixels: a shaded tube from outside the field of view toward
/// `aim`, of which the first `extend` pixels are out of the channel.
#[derive(Debug, Clone)]
pub struct Instrument {
    pub kind: InstrumentKind,
    pub entry: Pt,
    pub aim: Pt,
    pub bend: f32,
    pub extend: f32,
    pub w0: f32,
    pub w1: f32,
}

impl Instrument {
    fn path(&self) -> Vec<Pt> {
        let (dx, dy) = (self.aim.0 - self.entry.0, self.aim.1 - self.entry.1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        let l = self.extend;
        let ctrl = (
            self.entry.0 + ux * l * 0.5 - uy * self.bend * l,
            self.entry.1 + uy * l * 0.5 + ux * self.bend * l,
        );
        let tip = (self.entry.0 + ux * l, self.entry.1 + uy * l);
        (0..=16)
            .map(|k| {
                let t = k as f32 / 16.0;
                let a = (1.0 - t) * (1.0 - t);
                let b = 2.0 * (1.0 - t) * t;
                let cc = t * t;
                (
                    a * self.entry.0 + b * ctrl.0 + cc * tip.0,
                    a * self.entry.1 + b * ctrl.1 + cc * tip.1,
                )
            })
            .collect()
    }

    /// Draws the instrument and returns its mask.
    pub fn draw(&self, c: &mut Canvas) -> GrayImage {
        let path = self.path();
        let mut mask = GrayImage::new(W, H);
        let seglen: Vec<f32> = path
            .windows(2)
            .map(|w| ((w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sqrt())
            .collect();
        let total: f32 = seglen.iter().sum::<f32>().max(1.0);
        let reach = self.w0.max(self.w1) / 2.0 + 2.0;
        let xs = path.iter().map(|p| p.0);
        let ys = path.iter().map(|p| p.1);
        let x0 = (xs.clone().fold(f32::INFINITY, f32::min) - reach).max(0.0) as u32;
        let x1 = ((xs.fold(f32::NEG_INFINITY, f32::max) + reach).max(0.0) as u32).min(W);
        let y0 = (ys.clone().fold(f32::INFINITY, f32::min) - reach).max(0.0) as u32;
        let y1 = ((ys.fold(f32::NEG_INFINITY, f32::max) + reach).max(0.0) as u32).min(H);
        let body = self.body_colour();
        for y in y0..y1 {
            for x in x0..x1 {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let mut best = (f32::INFINITY, 0.0f32, 0.0f32);
                let mut acc = 0.0f32;
                for (k, w) in path.windows(2).enumerate() {
                    let (ax, ay) = w[0];
                    let (bx, by) = (w[1].0 - ax, w[1].1 - ay);
                    let l2 = (bx * bx + by * by).max(1e-6);
                    let t = (((px - ax) * bx + (py - ay) * by) / l2).clamp(0.0, 1.0);
                    let (qx, qy) = (ax + t * bx - px, ay + t * by - py);
                    let d = (qx * qx + qy * qy).sqrt();
                    if d < best.0 {
                        let side = (bx * (py - ay) - by * (px - ax)).signum();
                        best = (d, (acc + t * seglen[k]) / total, side);
                    }
                    acc += seglen[k];
                }
                let (d, t, side) = best;
                let hw = (self.w0 + (self.w1 - self.w0) * t) / 2.0;
                let cover = (hw - d + 0.5).clamp(0.0, 1.0);
                if cover <= 0.0 {
                    continue;
                }
                if d <= hw {
                    mask.put_pixel(x, y, image::Luma([255]));
                }
                let u = (d / hw).min(1.0) * side;
                let n = (1.0 - u * u).max(0.0).sqrt();
                let spec = (-((u + 0.35) / 0.12).powi(2)).exp();
                let along = t * total;
                let bands = match self.kind {
                    InstrumentKind::Forceps => 0.82 + 0.18 * (along / 3.0).sin().abs(),
                    InstrumentKind::Snare => 1.0,
                    InstrumentKind::Catheter => {
                        if (along / 14.0).fract() < 0.12 {
                            1.25
                        } else {
                            1.0
                        }
                    }
                };
                let i = ((y * W + x) * 3) as usize;
                for (k, v) in c.data[i..i + 3].iter_mut().enumerate() {
                    let target = body[k] * (0.35 + 0.65 * n) * bands + 150.0 * spec;
                    *v += (target - *v) * cover;
                }
            }
        }
        let tip = *path.last().unwrap_or(&self.entry);
        let prev = path[path.len().saturating_sub(2)];
        let dir = (tip.1 - prev.1).atan2(tip.0 - prev.0);
        let mut extra = Canvas::new(W, H, &[0.0]);
        match self.kind {
            InstrumentKind::Snare => {
                let r = self.w1 * 1.9;
                let centre = (tip.0 + dir.cos() * r * 0.95, tip.1 + dir.sin() * r * 0.95);
                let loop_pts: Vec<Pt> = (0..=40)
                    .map(|k| {
                        let a = k as f32 / 40.0 * std::f32::consts::TAU;
                        let (lx, ly) = (a.cos() * r, a.sin() * r * 0.62);
                        let (s, cc) = dir.sin_cos();
                        (centre.0 + lx * cc - ly * s, centre.1 + lx * s + ly * cc)
                    })
                    .collect();
                c.polyline(&loop_pts, 1.8, &[215.0, 218.0, 222.0], 1.0);
                extra.polyline(&loop_pts, 1.8, &[1.0], 1.0);
            }
            InstrumentKind::Forceps => {
                for sgn in [-1.0f32, 1.0] {
                    let a = dir + sgn * 0.38;
                    let len = self.w1 * 0.9;
                    let e = Ellipse {
                        cx: tip.0 + a.cos() * len * 0.8,
                        cy: tip.1 + a.sin() * len * 0.8,
                        rx: len * 0.75,
                        ry: self.w1 * 0.28,
                        angle: a,
                    };
                    c.fill_ellipse(e, &[190.0, 192.0, 198.0], 1.0, 1.0);
                    c.fill_ellipse(
                        Ellipse {
                            rx: e.rx * 0.5,
                            ry: e.ry * 0.45,
                            ..e
                        },
                        &[245.0, 245.0, 250.0],
                        0.8,
                        1.0,
                    );
                    extra.fill_ellipse(e, &[1.0], 1.0, 1.0);
                }
            }
            InstrumentKind::Catheter => {
                let end = (
                    tip.0 + dir.cos() * self.w1 * 0.9,
                    tip.1 + dir.sin() * self.w1 * 0.9,
                );
                c.line(tip, end, 2.2, &[200.0, 205.0, 210.0], 1.0);
                extra.line(tip, end, 2.2, &[1.0], 1.0);
            }
        }
        for (i, v) in extra.data.iter().enumerate() {
            if *v >= 0.5 {
                mask.as_mut()[i] = 255;
            }
        }
        mask
    }

    fn body_colour(&self) -> [f32; 3] {
        match self.kind {
            InstrumentKind::Forceps => [150.0, 155.0, 168.0],
            InstrumentKind::Snare => [218.0, 226.0, 236.0],
            InstrumentKind::Catheter => [70.0, 125.0, 205.0],
        }
    }
}

/// The octagonal field of view of an endoscopy processor: 1 inside, 0 outside,
/// antialiased.
pub fn fov_coverage(x: f32, y: f32) -> f32 {
    let (w, h) = (W as f32, H as f32);
    let m = 1.0;
    let cut = 0.17 * h;
    let r2 = std::f32::consts::FRAC_1_SQRT_2;
    let (l, r, t, b) = (x - m, w - m - x, y - m, h - m - y);
    let d = l
        .min(r)
        .min(t)
        .min(b)
        .min((l + t - cut) * r2)
        .min((r + t - cut) * r2)
        .min((l + b - cut) * r2)
        .min((r + b - cut) * r2);
    (d + 0.5).clamp(0.0, 1.0)
}

/// The field-of-view mask.
pub fn fov_mask() -> GrayImage {
    mask_from_fn(W, H, |x, y| {
        fov_coverage(x as f32 + 0.5, y as f32 + 0.5) >= 0.5
    })
}

/// Blackens everything outside the field of view and darkens its rim a little, as the
/// scope's optics do.
pub fn apply_fov(c: &mut Canvas) {
    let (cx, cy) = (W as f32 / 2.0, H as f32 / 2.0);
    let rmax = (cx * cx + cy * cy).sqrt();
    for y in 0..H {
        for x in 0..W {
            let (xf, yf) = (x as f32 + 0.5, y as f32 + 0.5);
            let cov = fov_coverage(xf, yf);
            let r = ((xf - cx).powi(2) + (yf - cy).powi(2)).sqrt() / rmax;
            let vig = 1.0 - 0.3 * r * r * r;
            let i = ((y * W + x) * 3) as usize;
            for k in 0..3 {
                c.data[i + k] = c.data[i + k] * vig * cov + 4.0 * (1.0 - cov);
            }
        }
    }
}

/// Burned-in processor text, top-left corner at (x, y), one line per entry; returns the mask
/// of the glyph pixels.
pub fn draw_text(c: &mut Canvas, x: i64, y: i64, lines: &[String]) -> GrayImage {
    let mut m = Canvas::new(W, H, &[0.0]);
    for (k, line) in lines.iter().enumerate() {
        let ly = y + k as i64 * 11;
        c.text(x, ly, line, 1, &[236.0, 236.0, 236.0], 1.0);
        c.text(x + 1, ly, line, 1, &[236.0, 236.0, 236.0], 1.0);
        m.text(x, ly, line, 1, &[1.0], 1.0);
        m.text(x + 1, ly, line, 1, &[1.0], 1.0);
    }
    mask_from_fn(W, H, |px, py| m.get(px, py, 0) >= 0.5)
}

/// The size of a text block of `lines` in pixels.
pub fn text_size(lines: &[String]) -> (u32, u32) {
    let w = lines
        .iter()
        .map(|l| crate::draw::text_width(l, 1) + 1)
        .max()
        .unwrap_or(0);
    (w, (lines.len() as u32 * 11).saturating_sub(4))
}

/// Side of the position-map box in the lower-left corner.
pub const GREEN_BOX: u32 = 104;

/// The small position-map box that many Kvasir frames carry in their lower-left corner: a
/// green frame around a drawing of the scope's path. Returns its mask (the whole box).
pub fn draw_green_box<R: Rng>(rng: &mut R, c: &mut Canvas) -> GrayImage {
    let g = GREEN_BOX as i64;
    let (x0, y0) = (0i64, H as i64 - g);
    c.fill_rect(x0, y0, x0 + g, y0 + g, &[6.0, 14.0, 8.0], 1.0);
    c.stroke_rect([x0, y0, x0 + g, y0 + g], 3, &[40.0, 185.0, 60.0], 1.0);
    let gf = g as f32;
    let (ox, oy) = (x0 as f32, y0 as f32);
    let j = |rng: &mut R| rng.random_range(-0.04..0.04f32) * gf;
    let ctrl: Vec<Pt> = [
        (0.30, 0.88),
        (0.25, 0.62),
        (0.22, 0.32),
        (0.45, 0.20),
        (0.72, 0.26),
        (0.76, 0.52),
        (0.55, 0.60),
        (0.45, 0.45),
    ]
    .iter()
    .map(|&(u, v)| (ox + u * gf + j(rng), oy + v * gf + j(rng)))
    .collect();
    let curve = crate::data::phantom::common::spline(&ctrl, false, 8);
    let n = curve.len().max(2);
    for (k, w) in curve.windows(2).enumerate() {
        let t = k as f32 / (n - 1) as f32;
        let col = [235.0 - 120.0 * t, 230.0 - 40.0 * t, 120.0 + 110.0 * t];
        c.line(w[0], w[1], 3.2, &col, 1.0);
    }
    c.text(x0 + 7, y0 + 7, "UPD", 1, &[40.0, 185.0, 60.0], 1.0);
    mask_from_fn(W, H, |x, y| {
        (x as i64) >= x0 && (x as i64) < x0 + g && (y as i64) >= y0 && (y as i64) < y0 + g
    })
}

/// Whether a shape of radius `reach_px` centred at image point `p` lies inside the field of
/// view with `margin` pixels to spare.
pub fn inside_fov(p: Pt, reach_px: f32, margin: f32) -> bool {
    let samples = 24;
    fov_coverage(p.0, p.1) >= 1.0
        && (0..samples).all(|k| {
            let a = k as f32 / samples as f32 * std::f32::consts::TAU;
            let r = reach_px + margin;
            fov_coverage(p.0 + a.cos() * r, p.1 + a.sin() * r) >= 1.0
        })
}

/// Whether a shape of world radius `reach` at a world point comes near the dark lumen.
pub fn near_lumen(scene: &Scene, wx: f32, wy: f32, reach: f32) -> bool {
    scene.lumen_distance(wx, wy) < 1.7 + reach / (scene.lumen_r * scene.lumen_aspect)
}
