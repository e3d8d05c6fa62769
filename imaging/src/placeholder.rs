//! The item's `placeholder`: a ThumbHash (about 25 bytes, about 34 characters of base64) of the
//! smallest rendition, which a page decodes into a blurred image to paint while the thumbnail
//! loads. ThumbHash rather than BlurHash: it keeps the aspect ratio and alpha, and encodes the
//! colours better for the same size (evanw's reference crate).

use base64::Engine;

use crate::resize::{self, ResizeError};
use crate::{Pixels, Size};

/// ThumbHash takes at most 100x100 pixels, and keeps at most 7 cosine terms an axis (3 cycles):
/// 16 pixels a side sample all it keeps, and its encoder's cost grows with pixels times terms (a
/// cosine each), so 16 costs a quarter of 32 (it was 1-3% of the engine's CPU under load).
const MAX_SIDE: u32 = 16;

/// The ThumbHash of `p` (any size), base64 with padding.
pub fn thumbhash(p: &Pixels) -> Result<String, ResizeError> {
    let (w, h) = resize::target_size(
        p.width,
        p.height,
        Size::Fit {
            width: MAX_SIDE,
            height: MAX_SIDE,
        },
    );
    let mut small = resize::average(p, (w, h))?;
    let rgba: Vec<u8> = match small.channels {
        1 => small.buf.iter().flat_map(|&v| [v, v, v, 255]).collect(),
        3 => small
            .buf
            .chunks_exact(3)
            .flat_map(|c| [c[0], c[1], c[2], 255])
            .collect(),
        _ => std::mem::take(&mut small.buf),
    };
    let hash = rgba_to_thumb_hash(w as usize, h as usize, &rgba);
    Ok(base64::engine::general_purpose::STANDARD.encode(hash))
}

/// `thumbhash::rgba_to_thumb_hash`, the same bytes, with its cosines computed once a row and a
/// column rather than once a pixel for every term: 34 µs a hash there against 11 here at 16x12,
/// where the cosines were 3% of the engine's CPU a tiny item. Each float is computed by the same
/// expression in the same order as there, so the result is identical
/// (`the_fast_thumbhash_is_the_reference_one` checks it against the crate).
pub(crate) fn rgba_to_thumb_hash(w: usize, h: usize, rgba: &[u8]) -> Vec<u8> {
    use std::f32::consts::PI;
    assert!(w <= 100 && h <= 100);
    assert_eq!(rgba.len(), w * h * 4);

    let mut avg = [0.0f32; 4];
    for px in rgba.chunks_exact(4) {
        let alpha = px[3] as f32 / 255.0;
        avg[0] += alpha / 255.0 * px[0] as f32;
        avg[1] += alpha / 255.0 * px[1] as f32;
        avg[2] += alpha / 255.0 * px[2] as f32;
        avg[3] += alpha;
    }
    let total_alpha = avg[3];
    if total_alpha > 0.0 {
        for c in &mut avg[..3] {
            *c /= total_alpha;
        }
    }
    let [avg_r, avg_g, avg_b, avg_a] = avg;
    let has_alpha = avg_a < (w * h) as f32;
    let l_limit = if has_alpha { 5 } else { 7 };
    let lx = (((l_limit * w) as f32 / w.max(h) as f32).round() as usize).max(1);
    let ly = (((l_limit * h) as f32 / w.max(h) as f32).round() as usize).max(1);
    let (mut l, mut p, mut q, mut a) = (
        Vec::with_capacity(w * h),
        Vec::with_capacity(w * h),
        Vec::with_capacity(w * h),
        Vec::with_capacity(w * h),
    );
    for px in rgba.chunks_exact(4) {
        let alpha = px[3] as f32 / 255.0;
        let r = avg_r * (1.0 - alpha) + alpha / 255.0 * px[0] as f32;
        let g = avg_g * (1.0 - alpha) + alpha / 255.0 * px[1] as f32;
        let b = avg_b * (1.0 - alpha) + alpha / 255.0 * px[2] as f32;
        l.push((r + g + b) / 3.0);
        p.push((r + g) / 2.0 - b);
        q.push(r - g);
        a.push(alpha);
    }

    // cos(PI / n * c * (i + 0.5)) for c < terms, i < n: the factors of term c along one axis.
    let cosines = |n: usize, terms: usize| -> Vec<f32> {
        (0..terms)
            .flat_map(|c| (0..n).map(move |i| (PI / n as f32 * c as f32 * (i as f32 + 0.5)).cos()))
            .collect()
    };
    // Luminance keeps up to lx by ly terms (at least 3), alpha 5 by 5, the colours 3 by 3.
    let (along_x, along_y) = (cosines(w, lx.max(5)), cosines(h, ly.max(5)));
    let encode_channel = |channel: &[f32], nx: usize, ny: usize| -> (f32, Vec<f32>, f32) {
        let mut dc = 0.0;
        let mut ac = Vec::with_capacity(nx * ny / 2);
        let mut scale = 0.0f32;
        for cy in 0..ny {
            let fys = &along_y[cy * h..][..h];
            let mut cx = 0;
            while cx * ny < nx * (ny - cy) {
                let fx = &along_x[cx * w..][..w];
                let mut f = 0.0f32;
                for (y, &fy) in fys.iter().enumerate() {
                    for (x, &fx) in fx.iter().enumerate() {
                        f += channel[x + y * w] * fx * fy;
                    }
                }
                f /= (w * h) as f32;
                if cx > 0 || cy > 0 {
                    ac.push(f);
                    scale = f.abs().max(scale);
                } else {
                    dc = f;
                }
                cx += 1;
            }
        }
        if scale > 0.0 {
            for ac in &mut ac {
                *ac = 0.5 + 0.5 / scale * *ac;
            }
        }
        (dc, ac, scale)
    };
    let (l_dc, l_ac, l_scale) = encode_channel(&l, lx.max(3), ly.max(3));
    let (p_dc, p_ac, p_scale) = encode_channel(&p, 3, 3);
    let (q_dc, q_ac, q_scale) = encode_channel(&q, 3, 3);
    let (a_dc, a_ac, a_scale) = if has_alpha {
        encode_channel(&a, 5, 5)
    } else {
        (1.0, Vec::new(), 1.0)
    };

    let is_landscape = w > h;
    let header24 = (63.0 * l_dc).round() as u32
        | (((31.5 + 31.5 * p_dc).round() as u32) << 6)
        | (((31.5 + 31.5 * q_dc).round() as u32) << 12)
        | (((31.0 * l_scale).round() as u32) << 18)
        | if has_alpha { 1 << 23 } else { 0 };
    let header16 = (if is_landscape { ly } else { lx }) as u16
        | (((63.0 * p_scale).round() as u16) << 3)
        | (((63.0 * q_scale).round() as u16) << 9)
        | if is_landscape { 1 << 15 } else { 0 };
    let mut hash = Vec::with_capacity(25);
    hash.extend_from_slice(&[
        (header24 & 255) as u8,
        ((header24 >> 8) & 255) as u8,
        (header24 >> 16) as u8,
        (header16 & 255) as u8,
        (header16 >> 8) as u8,
    ]);
    if has_alpha {
        hash.push((15.0 * a_dc).round() as u8 | (((15.0 * a_scale).round() as u8) << 4));
    }
    // The AC terms, four bits each, two to a byte.
    let alpha_ac = if has_alpha { a_ac } else { Vec::new() };
    let mut is_odd = false;
    for f in l_ac.into_iter().chain(p_ac).chain(q_ac).chain(alpha_ac) {
        let u = (15.0 * f).round() as u8;
        if is_odd {
            *hash.last_mut().expect("a byte was pushed") |= u << 4;
        } else {
            hash.push(u);
        }
        is_odd = !is_odd;
    }
    hash
}

#[cfg(test)]
mod tests {
    /// A deterministic pseudo-random image, so that any failure reproduces.
    fn image(w: usize, h: usize, seed: u64, alpha: bool) -> Vec<u8> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..w * h * 4)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 4 == 3 && !alpha {
                    255
                } else {
                    (x >> 24) as u8
                }
            })
            .collect()
    }

    #[test]
    fn the_fast_thumbhash_is_the_reference_one() {
        let mut checked = 0;
        for (w, h) in [
            (1, 1),
            (16, 12),
            (12, 16),
            (16, 16),
            (7, 3),
            (100, 100),
            (100, 1),
            (33, 57),
        ] {
            for seed in 0..8 {
                for alpha in [false, true] {
                    let rgba = image(w, h, seed, alpha);
                    assert_eq!(
                        super::rgba_to_thumb_hash(w, h, &rgba),
                        thumbhash::rgba_to_thumb_hash(w, h, &rgba),
                        "{w}x{h}, seed {seed}, alpha {alpha}"
                    );
                    checked += 1;
                }
            }
        }
        // Smooth images too: noise has no large terms, a gradient does.
        for (w, h) in [(16, 12), (9, 16)] {
            let rgba: Vec<u8> = (0..w * h)
                .flat_map(|i| {
                    let (x, y) = (i % w, i / w);
                    [
                        (x * 255 / w) as u8,
                        (y * 255 / h) as u8,
                        128,
                        (255 - x * 4) as u8,
                    ]
                })
                .collect();
            assert_eq!(
                super::rgba_to_thumb_hash(w, h, &rgba),
                thumbhash::rgba_to_thumb_hash(w, h, &rgba)
            );
            checked += 1;
        }
        assert_eq!(checked, 8 * 8 * 2 + 2);
    }
}
