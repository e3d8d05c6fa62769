//! The EXIF orientation, and turning a (small) rendition upright by it.
//!
//! Written here rather than taken from `image` (whose `apply_orientation` the tests compare this
//! with, orientation by orientation): an enum and eight pixel mappings were all this crate used of
//! it, and `image` sat on the critical path of the first `make run` build.

use crate::Pixels;

/// How the stored pixels are turned to be shown upright: the EXIF Orientation tag (TIFF 274),
/// named as in `image::metadata::Orientation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    /// 1
    NoTransforms,
    /// 2
    FlipHorizontal,
    /// 3
    Rotate180,
    /// 4
    FlipVertical,
    /// 5: a quarter turn clockwise, then mirrored left to right (a transpose).
    Rotate90FlipH,
    /// 6: a quarter turn clockwise.
    Rotate90,
    /// 7: three quarters clockwise, then mirrored left to right.
    Rotate270FlipH,
    /// 8: three quarters clockwise.
    Rotate270,
}

impl Orientation {
    /// The tag's value, 1 to 8; anything else is `None`.
    pub fn from_exif(value: u8) -> Option<Self> {
        use Orientation::*;
        Some(match value {
            1 => NoTransforms,
            2 => FlipHorizontal,
            3 => Rotate180,
            4 => FlipVertical,
            5 => Rotate90FlipH,
            6 => Rotate90,
            7 => Rotate270FlipH,
            8 => Rotate270,
            _ => return None,
        })
    }

    /// Orientations 5 to 8 turn the image a quarter: displayed width is stored height.
    pub fn swaps_axes(self) -> bool {
        use Orientation::*;
        matches!(self, Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH)
    }
}

/// Turns a (small) rendition upright, into a kept buffer; the one it was in is kept in turn.
pub fn orient(p: Pixels, o: Orientation) -> Pixels {
    if o == Orientation::NoTransforms {
        return p;
    }
    let (width, height) = if o.swaps_axes() {
        (p.height, p.width)
    } else {
        (p.width, p.height)
    };
    let mut buf = crate::pixels::buffer(p.buf.len());
    turn_rows(&p.buf, 0, (p.width, p.height), p.channels, &mut buf, o);
    Pixels {
        width,
        height,
        channels: p.channels,
        buf,
    }
}

/// Copies `rows`, whole rows of a stored image of `w` x `h` pixels of `channels` bytes from row
/// `top` down, to where they show in `upright`, the image turned by `o`.
pub(crate) fn turn_rows(
    rows: &[u8],
    top: u32,
    (w, h): (u32, u32),
    channels: u8,
    upright: &mut [u8],
    o: Orientation,
) {
    let at = (top as usize, w as usize, h as usize);
    match channels {
        1 => turn::<1>(rows, at, upright, o),
        3 => turn::<3>(rows, at, upright, o),
        _ => turn::<4>(rows, at, upright, o),
    }
}

/// [`turn_rows`] for pixels of `C` bytes. A stored row goes down an upright column for a quarter
/// turn: the rows are taken a column of pixels at a time, so that each upright row gets a run of
/// neighbouring pixels at once.
fn turn<const C: usize>(
    rows: &[u8],
    (top, w, h): (usize, usize, usize),
    upright: &mut [u8],
    o: Orientation,
) {
    use Orientation::*;
    let (rows, _) = rows.as_chunks::<C>();
    let (upright, _) = upright.as_chunks_mut::<C>();
    let (sw, sh) = (w as isize, h as isize);
    // Stored pixel (x, y) shows at `first + x * along + y * down` of the upright image.
    let (first, along, down) = match o {
        NoTransforms => (0, 1, sw),
        FlipHorizontal => (sw - 1, -1, sw),
        Rotate180 => ((sh - 1) * sw + sw - 1, -1, -sw),
        FlipVertical => ((sh - 1) * sw, 1, -sw),
        Rotate90FlipH => (0, sh, 1),
        Rotate90 => (sh - 1, sh, -1),
        Rotate270FlipH => ((sw - 1) * sh + sh - 1, -sh, -1),
        Rotate270 => ((sw - 1) * sh, -sh, 1),
    };
    let count = rows.len() / w;
    if !o.swaps_axes() {
        for y in 0..count {
            let start = first + (top + y) as isize * down;
            let source = &rows[y * w..(y + 1) * w];
            if along == 1 {
                upright[start as usize..start as usize + w].copy_from_slice(source);
            } else {
                let row = &mut upright[(start - sw + 1) as usize..=start as usize];
                for (to, from) in row.iter_mut().rev().zip(source) {
                    *to = *from;
                }
            }
        }
        return;
    }
    // A stored column of the band lands on a run of one upright row, forwards or backwards.
    for x in 0..w {
        let start = first + x as isize * along + top as isize * down;
        let column = rows[x..].iter().step_by(w);
        if down == 1 {
            let run = &mut upright[start as usize..start as usize + count];
            for (to, from) in run.iter_mut().zip(column) {
                *to = *from;
            }
        } else {
            let run = &mut upright[(start + 1) as usize - count..=start as usize];
            for (to, from) in run.iter_mut().rev().zip(column) {
                *to = *from;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every orientation, on gray, RGB and RGBA images of an odd size, against `image`'s own
    /// `apply_orientation` for the same EXIF value.
    #[test]
    fn each_orientation_turns_pixels_as_image_does() {
        for value in 1..=8u8 {
            let ours = Orientation::from_exif(value).unwrap();
            let theirs = image::metadata::Orientation::from_exif(value).unwrap();
            for channels in [1u8, 3, 4] {
                let (w, h) = (5u32, 3u32);
                let buf: Vec<u8> = (0..w * h * u32::from(channels)).map(|i| i as u8).collect();
                let mut expected = match channels {
                    1 => image::DynamicImage::ImageLuma8(
                        image::GrayImage::from_raw(w, h, buf.clone()).unwrap(),
                    ),
                    3 => image::DynamicImage::ImageRgb8(
                        image::RgbImage::from_raw(w, h, buf.clone()).unwrap(),
                    ),
                    _ => image::DynamicImage::ImageRgba8(
                        image::RgbaImage::from_raw(w, h, buf.clone()).unwrap(),
                    ),
                };
                expected.apply_orientation(theirs);
                let got = orient(
                    Pixels {
                        width: w,
                        height: h,
                        channels,
                        buf,
                    },
                    ours,
                );
                assert_eq!(
                    (got.width, got.height),
                    (expected.width(), expected.height()),
                    "orientation {value}, {channels} channels"
                );
                assert_eq!(
                    got.buf,
                    expected.into_bytes(),
                    "orientation {value}, {channels} channels"
                );
            }
        }
        assert_eq!(Orientation::from_exif(0), None);
        assert_eq!(Orientation::from_exif(9), None);
    }
}
