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
    let small = resize::average(p, (w, h))?;
    let rgba: Vec<u8> = match small.channels {
        1 => small.buf.iter().flat_map(|&v| [v, v, v, 255]).collect(),
        3 => small
            .buf
            .chunks_exact(3)
            .flat_map(|c| [c[0], c[1], c[2], 255])
            .collect(),
        _ => small.buf,
    };
    let hash = thumbhash::rgba_to_thumb_hash(w as usize, h as usize, &rgba);
    Ok(base64::engine::general_purpose::STANDARD.encode(hash))
}
