//! What the pipeline accepts as an image, decided from the bytes alone. Upload, process and the CLI
//! all ask [`sniff`]; a client's Content-Type header is never trusted.

use std::fmt;

/// The image formats the pipeline takes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaType {
    Jpeg,
    Png,
    /// HEIF with HEVC images: the iPhone's default. Decoded when the `heic` feature is built.
    Heic,
}

impl MediaType {
    pub fn content_type(self) -> &'static str {
        match self {
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
            MediaType::Heic => "image/heic",
        }
    }

    /// The extension an original of this type is stored under.
    pub fn extension(self) -> &'static str {
        match self {
            MediaType::Jpeg => "jpg",
            MediaType::Png => "png",
            MediaType::Heic => "heic",
        }
    }

    /// The name of the format, as an item's `format` says it.
    pub fn name(self) -> &'static str {
        match self {
            MediaType::Jpeg => "jpeg",
            MediaType::Png => "png",
            MediaType::Heic => "heic",
        }
    }

    /// From a declared content type (`image/jpeg`, `image/png`), for reservations that say what
    /// they will send; the bytes are still sniffed when they arrive.
    pub fn from_content_type(content_type: &str) -> Option<MediaType> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("image/heif") {
            return Some(MediaType::Heic);
        }
        [MediaType::Jpeg, MediaType::Png, MediaType::Heic]
            .into_iter()
            .find(|m| m.content_type().eq_ignore_ascii_case(essence))
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes are not an image the pipeline takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a JPEG, PNG or HEIC image (the bytes look like {detected}); the Content-Type header is not trusted")]
pub struct NotAnImage {
    pub detected: String,
}

/// How many leading bytes [`sniff`] needs to decide.
pub const SNIFF_BYTES: usize = 64;

/// HEIF brands whose images are HEVC-coded (ISO/IEC 23008-12): as a major brand, or as a
/// compatible brand of a generic `mif1`/`msf1` file.
const HEVC_BRANDS: [&[u8; 4]; 6] = [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"];

/// A HEIF file with HEVC images: an `ftyp` box first, whose major brand, or whose compatible brands
/// under a generic `mif1`/`msf1` major brand, name HEVC. AVIF (`avif`) is HEIF too, but AV1.
fn is_heic(bytes: &[u8]) -> bool {
    let Some(size) = bytes
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return false;
    };
    let size = size as usize;
    if bytes.get(4..8) != Some(b"ftyp") || !(16..=4096).contains(&size) || bytes.len() < size {
        return false;
    }
    let major = &bytes[8..12];
    let compatible = bytes[16..size].chunks_exact(4);
    HEVC_BRANDS.iter().any(|b| major == *b)
        || ((major == b"mif1" || major == b"msf1")
            && compatible
                .into_iter()
                .any(|c| HEVC_BRANDS.iter().any(|b| c == *b)))
}

/// A JPEG whose SOI is followed by junk before its first marker, which libjpeg skips ("extraneous
/// bytes before marker") and decodes: SOI, then a marker (FF C0 to FF FE) within the first
/// [`SNIFF_BYTES`].
fn is_jpeg_with_junk_after_soi(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8])
        && bytes.get(2).is_some_and(|&b| b != 0xFF)
        && bytes[2..bytes.len().min(SNIFF_BYTES)]
            .windows(2)
            .any(|w| w[0] == 0xFF && w[1] >= 0xC0 && w[1] != 0xFF)
}

/// The image type, from the bytes alone. A magic number is not enough: a PNG must open with its
/// whole signature and an IHDR chunk, a JPEG with SOI followed by a marker (after junk libjpeg
/// skips, at most), a HEIC with a whole `ftyp` box that names HEVC.
pub fn sniff(bytes: &[u8]) -> Result<MediaType, NotAnImage> {
    if is_heic(bytes) {
        return Ok(MediaType::Heic);
    }
    if is_jpeg_with_junk_after_soi(bytes) {
        return Ok(MediaType::Jpeg);
    }
    let detected = infer::get(bytes).map(|t| t.mime_type());
    match detected {
        Some("image/jpeg")
            if bytes.len() >= 4 && bytes[..3] == [0xFF, 0xD8, 0xFF] && bytes[3] >= 0xC0 =>
        {
            Ok(MediaType::Jpeg)
        }
        Some("image/png")
            if bytes.len() >= 16
                && bytes[..8] == *b"\x89PNG\r\n\x1a\n"
                && &bytes[12..16] == b"IHDR" =>
        {
            Ok(MediaType::Png)
        }
        Some(t @ ("image/jpeg" | "image/png")) => Err(NotAnImage {
            detected: format!("a cut-short {t} header"),
        }),
        Some(t) => Err(NotAnImage {
            detected: t.to_owned(),
        }),
        None => Err(NotAnImage {
            detected: "unknown data".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_alone_are_not_images() {
        assert_eq!(
            sniff(b"\x89PNG").unwrap_err().detected,
            "a cut-short image/png header"
        );
        assert!(sniff(&[0xFF, 0xD8, 0xFF]).is_err());
        // SOI and junk with no marker after it is not a JPEG either.
        assert!(sniff(&[0xFF, 0xD8, 0x00, 0xE0, 0x00, 0x10, 0x4A, 0x46]).is_err());
        assert_eq!(sniff(b"hello").unwrap_err().detected, "unknown data");
        assert_eq!(sniff(b"GIF89a......").unwrap_err().detected, "image/gif");
    }

    #[test]
    fn heic_is_told_from_its_ftyp_brands_and_avif_is_not_heic() {
        let ftyp = |major: &[u8; 4], compatible: &[&[u8; 4]]| {
            let size = 16 + 4 * compatible.len();
            let mut b = (size as u32).to_be_bytes().to_vec();
            b.extend_from_slice(b"ftyp");
            b.extend_from_slice(major);
            b.extend_from_slice(&[0, 0, 0, 0]);
            for c in compatible {
                b.extend_from_slice(*c);
            }
            b.extend_from_slice(&[0; 32]);
            b
        };
        assert_eq!(
            sniff(&ftyp(b"heic", &[b"mif1", b"heic"])),
            Ok(MediaType::Heic)
        );
        assert_eq!(
            sniff(&ftyp(b"mif1", &[b"mif1", b"heic"])),
            Ok(MediaType::Heic)
        );
        assert!(sniff(&ftyp(b"avif", &[b"mif1", b"avif"])).is_err());
        assert!(sniff(&ftyp(b"mif1", &[b"mif1", b"avif"])).is_err());
        // A cut-short box is not an image.
        assert!(sniff(&ftyp(b"heic", &[b"heic"])[..18]).is_err());
        assert_eq!(
            MediaType::from_content_type("image/heif"),
            Some(MediaType::Heic)
        );
    }

    #[test]
    fn declared_types_are_matched_without_parameters_or_case() {
        assert_eq!(
            MediaType::from_content_type("Image/JPEG; charset=binary"),
            Some(MediaType::Jpeg)
        );
        assert_eq!(MediaType::from_content_type("image/gif"), None);
    }
}
