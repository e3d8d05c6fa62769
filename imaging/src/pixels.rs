use fast_image_resize::PixelType;

/// Decoded pixels, 8 bits per channel, rows packed: 1 (gray), 3 (RGB) or 4 (RGBA) channels.
#[derive(Debug, Clone)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub buf: Vec<u8>,
}

impl Pixels {
    pub(crate) fn pixel_type(&self) -> PixelType {
        match self.channels {
            1 => PixelType::U8,
            3 => PixelType::U8x3,
            _ => PixelType::U8x4,
        }
    }
}
