/// Decoded pixels, 8 bits per channel, rows packed: 1 (gray), 3 (RGB) or 4 (RGBA) channels.
#[derive(Debug, Clone)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub buf: Vec<u8>,
}
