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

/// Turns a (small) rendition upright.
pub fn orient(p: Pixels, o: Orientation) -> Pixels {
    use Orientation::*;
    if o == NoTransforms {
        return p;
    }
    let (w, h, c) = (p.width as usize, p.height as usize, usize::from(p.channels));
    let (out_w, out_h) = if o.swaps_axes() { (h, w) } else { (w, h) };
    // For each pixel (x, y) of the upright image, the stored pixel it shows.
    let source = |x: usize, y: usize| -> (usize, usize) {
        match o {
            NoTransforms => (x, y),
            FlipHorizontal => (w - 1 - x, y),
            Rotate180 => (w - 1 - x, h - 1 - y),
            FlipVertical => (x, h - 1 - y),
            Rotate90FlipH => (y, x),
            Rotate90 => (y, h - 1 - x),
            Rotate270FlipH => (w - 1 - y, h - 1 - x),
            Rotate270 => (w - 1 - y, x),
        }
    };
    let mut buf = Vec::with_capacity(p.buf.len());
    for y in 0..out_h {
        for x in 0..out_w {
            let (sx, sy) = source(x, y);
            let at = (sy * w + sx) * c;
            buf.extend_from_slice(&p.buf[at..at + c]);
        }
    }
    Pixels {
        width: out_w as u32,
        height: out_h as u32,
        channels: p.channels,
        buf,
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
