//! The colonoscopy scene shared by `phantom:endoscopy` and `phantom:frames`.
//!
//! A [`Scene`] is a colon seen down its axis, in world pixels: a dark lumen, haustral folds
//! as partial rings around it, light that falls off with depth, mucosal texture and
//! vessels, polyps as lit domes and specular highlights. A [`View`] maps image pixels to
//! world pixels (a similarity transform), so a clip's frames are the same scene seen with a
//! slightly moving camera; everything but the textures is evaluated analytically, so
//! zooming in stays sharp. Things fixed to the camera (an instrument leaving the working
//! channel, the processor's overlays) are drawn in image pixels afterwards.
//!
//! Masks come from the same geometry as the pixels: a polyp's mask is its outline mapped
//! into the image, clipped to the field of view and to whatever is drawn over it.

use image::GrayImage;
use rand::{Rng, RngExt};

use super::common::{mask_from_fn, sample_bilinear, smoothstep};
use crate::draw::{Canvas, Ellipse, fractal_noise};

/// Image size of both colonoscopy sets (Kvasir frames are wider than tall).
pub const W: u32 = 448;
pub const H: u32 = 384;

const TABLE: usize = 64;
const LIGHT_STEPS: usize = 4096;
const RHO_MAX: f32 = 64.0;
const TONE_STEPS: usize = 2048;
const TONE_MAX: f32 = 2.0;
type Pt = (f32, f32);

/// A smooth periodic function of angle, from `knots` random values.
fn angular_table<R: Rng>(rng: &mut R, knots: usize) -> [f32; TABLE] {
    let vals: Vec<f32> = (0..knots).map(|_| rng.random::<f32>()).collect();
    let mut t = [0.0f32; TABLE];
    for (i, v) in t.iter_mut().enumerate() {
        let f = i as f32 / TABLE as f32 * knots as f32;
        let k = f.floor() as usize;
        let a = vals[k % knots];
        let b = vals[(k + 1) % knots];
        let w = 0.5 - 0.5 * (std::f32::consts::PI * f.fract()).cos();
        *v = a + (b - a) * w;
    }
    t
}

/// A position in the angular tables, computed once per pixel for all of them.
#[derive(Clone, Copy)]
struct Angle {
    i: usize,
    j: usize,
    t: f32,
}

impl Angle {
    fn of(theta: f32) -> Angle {
        let mut f = theta * (TABLE as f32 / std::f32::consts::TAU);
        if f < 0.0 {
            f += TABLE as f32;
        }
        if !(0.0..TABLE as f32).contains(&f) {
            f = f.rem_euclid(TABLE as f32);
        }
        let i = (f as usize).min(TABLE - 1);
        Angle {
            i,
            j: (i + 1) % TABLE,
            t: f - i as f32,
        }
    }

    fn get(self, table: &[f32; TABLE]) -> f32 {
        table[self.i] + (table[self.j] - table[self.i]) * self.t
    }
}

#[derive(Debug, Clone)]
struct Fold {
    /// Log of the crest radius, in lumen radii.
    log_r: f32,
    width: f32,
    strength: f32,
    arc: [f32; TABLE],
    wobble: [f32; TABLE],
}

/// Polyp colours, as the questions name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolypColour {
    Red,
    Pink,
    White,
}

impl PolypColour {
    pub const ALL: [PolypColour; 3] = [PolypColour::Red, PolypColour::Pink, PolypColour::White];

    pub fn name(self) -> &'static str {
        match self {
            PolypColour::Red => "red",
            PolypColour::Pink => "pink",
            PolypColour::White => "white",
        }
    }

    fn rgb(self) -> [f32; 3] {
        match self {
            PolypColour::Red => [196.0, 62.0, 56.0],
            PolypColour::Pink => [240.0, 158.0, 152.0],
            PolypColour::White => [234.0, 212.0, 194.0],
        }
    }
}

/// A polyp: a lit dome with a lobed outline, in world pixels.
#[derive(Debug, Clone)]
pub struct Polyp {
    pub cx: f32,
    pub cy: f32,
    /// Radius along its own x axis.
    pub r: f32,
    aspect: f32,
    angle: f32,
    lobes: [f32; TABLE],
    pub colour: PolypColour,
}

impl Polyp {
    pub fn new<R: Rng>(rng: &mut R, cx: f32, cy: f32, r: f32, colour: PolypColour) -> Polyp {
        let raw = angular_table(rng, 6);
        let mut lobes = [0.0f32; TABLE];
        let amp = rng.random_range(0.04..0.14f32);
        for (l, v) in lobes.iter_mut().zip(raw) {
            *l = amp * (v - 0.5) * 2.0;
        }
        Polyp {
            cx,
            cy,
            r,
            aspect: rng.random_range(0.75..1.0f32),
            angle: rng.random_range(0.0..std::f32::consts::PI),
            lobes,
            colour,
        }
    }

    /// Normalised radius of a world point: below 1 inside the outline.
    fn q(&self, wx: f32, wy: f32) -> f32 {
        let (s, c) = self.angle.sin_cos();
        let (dx, dy) = (wx - self.cx, wy - self.cy);
        let u = (dx * c + dy * s) / self.r;
        let v = (-dx * s + dy * c) / (self.r * self.aspect);
        let d = (u * u + v * v).sqrt();
        let phi = v.atan2(u);
        d / (1.0 + Angle::of(phi).get(&self.lobes))
    }

    /// The farthest the outline reaches from the centre, in world pixels.
    pub fn reach(&self) -> f32 {
        let m = self.lobes.iter().fold(0.0f32, |a, &b| a.max(b));
        self.r * (1.0 + m)
    }

    /// Area of the outline in world pixels.
    pub fn area(&self) -> f64 {
        let sum: f64 = self.lobes.iter().map(|l| (1.0 + *l as f64).powi(2)).sum();
        let dphi = std::f64::consts::TAU / TABLE as f64;
        0.5 * sum * dphi * (self.r as f64).powi(2) * self.aspect as f64
    }

    /// Scales the polyp so that its outline's horizontal extent in an unrotated view at
    /// `scale` world pixels per image pixel is `width` image pixels.
    pub fn fit_width(&mut self, width: f32, scale: f32) {
        let (s, c) = self.angle.sin_cos();
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for i in 0..TABLE {
            let phi = i as f32 / TABLE as f32 * std::f32::consts::TAU;
            let rr = 1.0 + self.lobes[i];
            let (u, v) = (phi.cos() * rr, phi.sin() * rr * self.aspect);
            let x = u * c - v * s;
            lo = lo.min(x);
            hi = hi.max(x);
        }
        self.r = width * scale / (hi - lo).max(0.1);
    }
}

#[derive(Debug, Clone)]
struct Spot {
    x: f32,
    y: f32,
    rx: f32,
    ry: f32,
    angle: f32,
    strength: f32,
}

/// A colon segment seen down its axis, in world pixels.
#[derive(Debug, Clone)]
pub struct Scene {
    pub width: u32,
    pub height: u32,
    pub lumen: Pt,
    pub lumen_r: f32,
    lumen_aspect: f32,
    lumen_angle: f32,
    falloff: f32,
    folds: Vec<Fold>,
    base: [f32; 3],
    gamma: [f32; 3],
    /// Light reaching the wall against lumen distance, tabulated (see [`Scene::light_at`]).
    light: Vec<f32>,
    /// Wall colour against brightness, tabulated (see [`Scene::tone_at`]).
    tone: Vec<[f32; 3]>,
    texture: Vec<f32>,
    fine: Vec<f32>,
    vessels: Vec<f32>,
    pub polyps: Vec<Polyp>,
    spots: Vec<Spot>,
}

/// Image pixel → world pixel: `w = centre + scale · R(angle) · (p − image centre)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub cx: f32,
    pub cy: f32,
    pub scale: f32,
    pub angle: f32,
}

impl View {
    /// The view that shows a `W`×`H` world as it is.
    pub fn identity() -> View {
        View {
            cx: W as f32 / 2.0,
            cy: H as f32 / 2.0,
            scale: 1.0,
            angle: 0.0,
        }
    }

    fn to_world(self, x: f32, y: f32) -> Pt {
        let (s, c) = self.angle.sin_cos();
        let (dx, dy) = (x - W as f32 / 2.0, y - H as f32 / 2.0);
        (
            self.cx + self.scale * (dx * c - dy * s),
            self.cy + self.scale * (dx * s + dy * c),
        )
    }

    pub fn to_image(self, wx: f32, wy: f32) -> Pt {
        let (s, c) = self.angle.sin_cos();
        let (dx, dy) = ((wx - self.cx) / self.scale, (wy - self.cy) / self.scale);
        (
            W as f32 / 2.0 + dx * c + dy * s,
            H as f32 / 2.0 - dx * s + dy * c,
        )
    }
}

impl Scene {
    /// A random colon segment on a `width`×`height` world whose lumen lies near `lumen`.
    pub fn random<R: Rng>(rng: &mut R, width: u32, height: u32, lumen: Pt) -> Scene {
        let q = rng.random_range(1.4..1.65f32);
        let mut folds = Vec::new();
        let mut r = rng.random_range(1.15..1.5f32);
        for _ in 0..8 {
            folds.push(Fold {
                log_r: r.ln(),
                width: rng.random_range(0.16..0.3f32),
                strength: rng.random_range(0.35..0.8f32),
                arc: angular_table(rng, 5),
                wobble: angular_table(rng, 7),
            });
            r *= q * rng.random_range(0.9..1.1f32);
        }
        let hue = rng.random_range(-1.0..1.0f32);
        let base = [
            222.0 + 10.0 * rng.random_range(-1.0..1.0f32),
            112.0 + 14.0 * hue,
            96.0 + 8.0 * hue,
        ];
        let mut vessels = Canvas::new(width, height, &[0.0]);
        let n_trees = (width * height / 9000) as usize;
        for _ in 0..n_trees {
            let mut p = (
                rng.random_range(0.0..width as f32),
                rng.random_range(0.0..height as f32),
            );
            let mut dir = rng.random_range(0.0..std::f32::consts::TAU);
            let w = rng.random_range(0.7..1.6f32);
            let mut pts = vec![p];
            for _ in 0..rng.random_range(6..14) {
                dir += rng.random_range(-0.6..0.6f32);
                let step = rng.random_range(5.0..12.0f32);
                p = (p.0 + dir.cos() * step, p.1 + dir.sin() * step);
                pts.push(p);
            }
            vessels.polyline(&pts, w, &[1.0], 0.6);
        }
        vessels.box_blur(1, 1);
        let texture = fractal_noise(width, height, 40.0, 3, rng);
        let fine = fractal_noise(width, height, 3.0, 1, rng);
        let mut scene = Scene {
            width,
            height,
            lumen: (
                lumen.0 + rng.random_range(-8.0..8.0f32),
                lumen.1 + rng.random_range(-8.0..8.0f32),
            ),
            lumen_r: rng.random_range(0.05..0.085f32) * W as f32,
            lumen_aspect: rng.random_range(0.7..1.0f32),
            lumen_angle: rng.random_range(0.0..std::f32::consts::PI),
            falloff: rng.random_range(2.2..3.4f32),
            folds,
            base,
            gamma: [0.85, 1.3, 1.45],
            light: Vec::new(),
            tone: Vec::new(),
            texture,
            fine,
            vessels: vessels.data,
            polyps: Vec::new(),
            spots: Vec::new(),
        };
        let falloff = scene.falloff;
        scene.light = (0..=LIGHT_STEPS)
            .map(|i| {
                let rho = i as f32 / LIGHT_STEPS as f32 * RHO_MAX;
                let depth = ((rho - 0.55).max(0.0) / falloff).powf(1.4);
                1.0 - (-depth).exp()
            })
            .collect();
        scene.tone = (0..=TONE_STEPS)
            .map(|i| {
                let b = (i as f32 / TONE_STEPS as f32 * TONE_MAX).max(1e-4);
                std::array::from_fn(|k| scene.base[k] * b.powf(scene.gamma[k]))
            })
            .collect();
        scene.place_spots(rng);
        scene
    }

    /// `1 - exp(-((rho - 0.55)⁺ / falloff)^1.4)`, linearly interpolated from a table.
    fn light_at(&self, rho: f32) -> f32 {
        let f = (rho / RHO_MAX).clamp(0.0, 1.0) * LIGHT_STEPS as f32;
        let i = (f as usize).min(LIGHT_STEPS - 1);
        let t = f - i as f32;
        self.light[i] + (self.light[i + 1] - self.light[i]) * t
    }

    /// `base · bright^gamma` per channel, linearly interpolated from a table.
    fn tone_at(&self, bright: f32) -> [f32; 3] {
        let f = (bright / TONE_MAX).clamp(0.0, 1.0) * TONE_STEPS as f32;
        let i = (f as usize).min(TONE_STEPS - 1);
        let t = f - i as f32;
        let (a, b) = (self.tone[i], self.tone[i + 1]);
        [
            a[0] + (b[0] - a[0]) * t,
            a[1] + (b[1] - a[1]) * t,
            a[2] + (b[2] - a[2]) * t,
        ]
    }

    /// Normalised lumen distance of a world point: below 1 inside the dark lumen.
    pub fn lumen_distance(&self, wx: f32, wy: f32) -> f32 {
        let (s, c) = self.lumen_angle.sin_cos();
        let (dx, dy) = (wx - self.lumen.0, wy - self.lumen.1);
        let a = dx * c + dy * s;
        let b = (-dx * s + dy * c) / self.lumen_aspect;
        (a * a + b * b).sqrt() / self.lumen_r
    }

    /// Wall brightness factor and how close the point is to a lit fold crest.
    fn wall(&self, wx: f32, wy: f32) -> (f32, f32) {
        let (s, c) = self.lumen_angle.sin_cos();
        let (dx, dy) = (wx - self.lumen.0, wy - self.lumen.1);
        let a = dx * c + dy * s;
        let b = (-dx * s + dy * c) / self.lumen_aspect;
        let rho = ((a * a + b * b).sqrt() / self.lumen_r).max(1e-3);
        let theta = b.atan2(a);
        let mut bright = self.light_at(rho);
        let lr = rho.ln();
        let mut shade = 0.0f32;
        let mut crest = 0.0f32;
        let at = Angle::of(theta);
        for f in &self.folds {
            // The wobble moves a crest by at most 0.06; farther folds cannot touch this pixel.
            let near = lr - f.log_r;
            if near < -0.19 || near > f.width + 0.07 {
                continue;
            }
            let amp = smoothstep(0.35, 0.65, at.get(&f.arc));
            if amp <= 0.0 {
                continue;
            }
            let sd = near - 0.12 * (at.get(&f.wobble) - 0.5);
            if sd > -0.12 && sd < 0.0 {
                let t = 1.0 + sd / 0.12;
                shade -= amp * f.strength * 0.6 * t * t;
            } else if sd >= 0.0 && sd < f.width {
                let t = 1.0 - sd / f.width;
                shade += amp * f.strength * 0.55 * t * t;
                crest = crest.max(amp * t.powi(4));
            }
        }
        bright *= (1.0 + shade).max(0.08);
        (bright, crest)
    }

    fn place_spots<R: Rng>(&mut self, rng: &mut R) {
        let mut tries = 0;
        let want = rng.random_range(25..60);
        while self.spots.len() < want && tries < 3000 {
            tries += 1;
            let x = rng.random_range(0.0..self.width as f32);
            let y = rng.random_range(0.0..self.height as f32);
            let (b, crest) = self.wall(x, y);
            let keep = (crest > 0.55 && b > 0.3) || (b > 0.85 && rng.random_bool(0.05));
            if !keep {
                continue;
            }
            let tangent = (y - self.lumen.1).atan2(x - self.lumen.0) + std::f32::consts::FRAC_PI_2;
            let n = if rng.random_bool(0.3) {
                rng.random_range(2..5)
            } else {
                1
            };
            for _ in 0..n {
                let size = rng.random_range(0.8..3.2f32) * b.max(0.4);
                self.spots.push(Spot {
                    x: x + rng.random_range(-6.0..6.0f32),
                    y: y + rng.random_range(-6.0..6.0f32),
                    rx: size * rng.random_range(1.2..2.6f32),
                    ry: size,
                    angle: tangent,
                    strength: rng.random_range(0.7..1.0f32),
                });
            }
        }
    }

    /// Adds a polyp and its highlights.
    pub fn add_polyp<R: Rng>(&mut self, rng: &mut R, p: Polyp) {
        let n = rng.random_range(1..4);
        for _ in 0..n {
            let size = (p.r * rng.random_range(0.05..0.12f32)).max(1.0);
            self.spots.push(Spot {
                x: p.cx + p.r * rng.random_range(-0.45..0.2f32),
                y: p.cy + p.r * rng.random_range(-0.5..0.1f32),
                rx: size * rng.random_range(1.0..2.0f32),
                ry: size,
                angle: rng.random_range(0.0..std::f32::consts::PI),
                strength: rng.random_range(0.85..1.0f32),
            });
        }
        self.polyps.push(p);
    }

    /// The polyps' masks through `view`, without drawing anything.
    pub fn render_masks(&self, view: &View) -> Vec<GrayImage> {
        let masks: Vec<GrayImage> = self
            .polyps
            .iter()
            .map(|p| {
                let (ix, iy) = view.to_image(p.cx, p.cy);
                let r = p.reach() / view.scale + 2.0;
                let mut m = GrayImage::new(W, H);
                let (x0, x1) = ((ix - r).max(0.0) as u32, ((ix + r).max(0.0) as u32).min(W));
                let (y0, y1) = ((iy - r).max(0.0) as u32, ((iy + r).max(0.0) as u32).min(H));
                for y in y0..y1 {
                    for x in x0..x1 {
                        let (wx, wy) = view.to_world(x as f32 + 0.5, y as f32 + 0.5);
                        if p.q(wx, wy) <= 1.0 {
                            m.put_pixel(x, y, image::Luma([255]));
                        }
                    }
                }
                m
            })
            .collect();
        masks
    }

    /// Renders the scene through `view`; returns the image and one mask per polyp (not yet
    /// clipped to the field of view or to overlays).
    pub fn render(&self, view: &View) -> (Canvas, Vec<GrayImage>) {
        let mut c = Canvas::new(W, H, &[0.0, 0.0, 0.0]);
        let (tw, th) = (self.width as usize, self.height as usize);
        let polyp_boxes: Vec<[f32; 4]> = self
            .polyps
            .iter()
            .map(|p| {
                let (ix, iy) = view.to_image(p.cx, p.cy);
                let r = p.reach() / view.scale * 1.35 + 2.0;
                [ix - r, iy - r, ix + r, iy + r]
            })
            .collect();
        let mut masks: Vec<GrayImage> = self.polyps.iter().map(|_| GrayImage::new(W, H)).collect();
        for y in 0..H {
            for x in 0..W {
                let (xf, yf) = (x as f32 + 0.5, y as f32 + 0.5);
                let (wx, wy) = view.to_world(xf, yf);
                let (mut bright, _) = self.wall(wx, wy);
                let tex = sample_bilinear(&self.texture, tw, th, wx, wy);
                let fine = sample_bilinear(&self.fine, tw, th, wx, wy);
                let ves = sample_bilinear(&self.vessels, tw, th, wx, wy).min(1.0);
                bright *= 0.84 + 0.3 * tex + 0.05 * (fine - 0.5);
                let mut rgb = self.tone_at(bright);
                let vd = ves * bright.min(1.0);
                rgb[0] *= 1.0 - 0.12 * vd;
                rgb[1] *= 1.0 - 0.45 * vd;
                rgb[2] *= 1.0 - 0.35 * vd;
                for (pi, p) in self.polyps.iter().enumerate() {
                    let bx = polyp_boxes[pi];
                    if xf < bx[0] || xf > bx[2] || yf < bx[1] || yf > bx[3] {
                        continue;
                    }
                    let q = p.q(wx, wy);
                    let px_r = p.r / view.scale;
                    if (1.0..1.35).contains(&q) {
                        // A soft shadow where the dome meets the wall, deeper on the
                        // side that faces away from the light at the view centre.
                        let (ix, iy) = view.to_image(p.cx, p.cy);
                        let (ax, ay) = (ix - W as f32 / 2.0, iy - H as f32 / 2.0);
                        let (bx, by) = (xf - ix, yf - iy);
                        let na = (ax * ax + ay * ay).sqrt().max(1.0);
                        let nb = (bx * bx + by * by).sqrt().max(1.0);
                        let away = 0.5 + 0.5 * (ax * bx + ay * by) / (na * nb);
                        let t = 1.0 - (q - 1.0) / 0.35;
                        for v in &mut rgb {
                            *v *= 1.0 - (0.15 + 0.35 * away) * t * t;
                        }
                    }
                    let cover = ((1.0 - q) * px_r + 0.5).clamp(0.0, 1.0);
                    if cover <= 0.0 {
                        continue;
                    }
                    if q <= 1.0 {
                        masks[pi].put_pixel(x, y, image::Luma([255]));
                    }
                    let h = (1.0 - q.min(1.0).powi(2)).sqrt();
                    let (lb, _) = self.wall(p.cx, p.cy);
                    let light = (lb * 1.25 + 0.25).min(1.1);
                    let shade = (0.5 + 0.5 * h.powf(0.5)) * light * (0.88 + 0.24 * tex);
                    let grain = 0.9 + 0.18 * fine;
                    let col = p.colour.rgb();
                    for k in 0..3 {
                        let v = col[k] * (shade * grain).min(1.2).powf(self.gamma[k]);
                        let v = v * (1.0 - [0.1, 0.35, 0.3][k] * ves * 0.6);
                        rgb[k] += (v - rgb[k]) * cover;
                    }
                }
                let i = ((y * W + x) * 3) as usize;
                c.data[i..i + 3].copy_from_slice(&rgb);
            }
        }
        for s in &self.spots {
            let (ix, iy) = view.to_image(s.x, s.y);
            if ix < -10.0 || iy < -10.0 || ix > W as f32 + 10.0 || iy > H as f32 + 10.0 {
                continue;
            }
            let e = Ellipse {
                cx: ix,
                cy: iy,
                rx: s.rx / view.scale,
                ry: s.ry / view.scale,
                angle: s.angle - view.angle,
            };
            c.add_gaussian(
                Ellipse {
                    rx: e.rx * 1.6,
                    ry: e.ry * 1.6,
                    ..e
                },
                &[60.0 * s.strength, 55.0 * s.strength, 55.0 * s.strength],
            );
            c.fill_ellipse(e, &[255.0, 255.0, 252.0], s.strength, 0.8);
        }
        (c, masks)
    }
}

mod overlay;

pub use overlay::*;
