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
    /// WebP: lossy (VP8), lossless (VP8L), with alpha, animated.
    Webp,
    Gif,
    /// HEIF with AV1 images (`avif`), or an AV1 image sequence (`avis`).
    Avif,
    Tiff,
    /// A PNG with an animation control chunk (`acTL`) before its image data.
    Apng,
    /// JPEG XL, as a bare codestream or in its container.
    Jxl,
}

impl MediaType {
    /// Every type, in the order the error message names them.
    pub const ALL: [MediaType; 9] = [
        MediaType::Jpeg,
        MediaType::Png,
        MediaType::Heic,
        MediaType::Webp,
        MediaType::Gif,
        MediaType::Avif,
        MediaType::Tiff,
        MediaType::Apng,
        MediaType::Jxl,
    ];

    pub fn content_type(self) -> &'static str {
        match self {
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
            MediaType::Heic => "image/heic",
            MediaType::Webp => "image/webp",
            MediaType::Gif => "image/gif",
            MediaType::Avif => "image/avif",
            MediaType::Tiff => "image/tiff",
            MediaType::Apng => "image/apng",
            MediaType::Jxl => "image/jxl",
        }
    }

    /// The extension an original of this type is stored under.
    pub fn extension(self) -> &'static str {
        match self {
            MediaType::Jpeg => "jpg",
            MediaType::Tiff => "tif",
            other => other.name(),
        }
    }

    /// Every file-name extension this type goes by (lower case), the stored one first: the
    /// bucket's drop-in rules and the page's file picker list these.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            MediaType::Jpeg => &["jpg", "jpeg"],
            MediaType::Png => &["png"],
            MediaType::Heic => &["heic", "heif"],
            MediaType::Webp => &["webp"],
            MediaType::Gif => &["gif"],
            MediaType::Avif => &["avif"],
            MediaType::Tiff => &["tif", "tiff"],
            MediaType::Apng => &["apng"],
            MediaType::Jxl => &["jxl"],
        }
    }

    /// The name of the format, as an item's `format` says it.
    pub fn name(self) -> &'static str {
        match self {
            MediaType::Jpeg => "jpeg",
            MediaType::Png => "png",
            MediaType::Heic => "heic",
            MediaType::Webp => "webp",
            MediaType::Gif => "gif",
            MediaType::Avif => "avif",
            MediaType::Tiff => "tiff",
            MediaType::Apng => "apng",
            MediaType::Jxl => "jxl",
        }
    }

    /// From a declared content type (`image/jpeg`, `image/png`), for reservations that say what
    /// they will send; the bytes are still sniffed when they arrive.
    pub fn from_content_type(content_type: &str) -> Option<MediaType> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let aliases = [
            ("image/heif", MediaType::Heic),
            ("image/heic-sequence", MediaType::Heic),
            ("image/heif-sequence", MediaType::Heic),
            ("image/avif-sequence", MediaType::Avif),
            ("image/vnd.mozilla.apng", MediaType::Apng),
            ("image/tiff-fx", MediaType::Tiff),
        ];
        if let Some((_, m)) = aliases
            .iter()
            .find(|(alias, _)| alias.eq_ignore_ascii_case(essence))
        {
            return Some(*m);
        }
        MediaType::ALL
            .into_iter()
            .find(|m| m.content_type().eq_ignore_ascii_case(essence))
    }
}

/// The content types taken, as error messages list them: "image/jpeg, image/png, ...".
pub fn accepted_content_types() -> String {
    MediaType::ALL
        .iter()
        .map(|m| m.content_type())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes are not an image the pipeline takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not an image this pipeline takes (JPEG, PNG, HEIC, WebP, GIF, AVIF, TIFF, APNG or JPEG XL); \
     the bytes look like {detected}; the Content-Type header is not trusted"
)]
pub struct NotAnImage {
    pub detected: String,
}

/// How many leading bytes [`sniff`] needs to decide.
pub const SNIFF_BYTES: usize = 64;

/// HEIF brands whose images are HEVC-coded (ISO/IEC 23008-12): as a major brand, or as a
/// compatible brand of a generic `mif1`/`msf1` file.
const HEVC_BRANDS: [&[u8; 4]; 6] = [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"];
/// AVIF brands (AV1 Image File Format): a still image, or an image sequence.
const AV1_BRANDS: [&[u8; 4]; 2] = [b"avif", b"avis"];

/// A whole `ftyp` box first: its major brand and its compatible brands.
fn ftyp(bytes: &[u8]) -> Option<(&[u8], std::slice::ChunksExact<'_, u8>)> {
    let size = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    if bytes.get(4..8) != Some(b"ftyp") || !(16..=4096).contains(&size) || bytes.len() < size {
        return None;
    }
    Some((&bytes[8..12], bytes[16..size].chunks_exact(4)))
}

/// A HEIF file whose images are coded with one of `brands`: named as the major brand, or as a
/// compatible brand under a generic `mif1`/`msf1` major brand.
fn is_heif_of(bytes: &[u8], brands: &[&[u8; 4]]) -> bool {
    let Some((major, mut compatible)) = ftyp(bytes) else {
        return false;
    };
    brands.iter().any(|b| major == *b)
        || ((major == b"mif1" || major == b"msf1")
            && compatible.any(|c| brands.iter().any(|b| c == *b)))
}

/// A PNG's chunks from the signature on, as far as `bytes` go: `acTL` before `IDAT` makes it an
/// APNG (the chunk must come before the image data).
fn png_is_animated(bytes: &[u8]) -> bool {
    let mut at = 8;
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        match &head[4..8] {
            b"acTL" => return true,
            b"IDAT" | b"IEND" => return false,
            _ => at = at.saturating_add(12).saturating_add(len),
        }
    }
    false
}

/// A WebP: a RIFF header whose form type is `WEBP`, then a `VP8 `, `VP8L` or `VP8X` chunk.
fn is_webp(bytes: &[u8]) -> bool {
    bytes.len() >= 16
        && &bytes[..4] == b"RIFF"
        && &bytes[8..12] == b"WEBP"
        && matches!(&bytes[12..16], b"VP8 " | b"VP8L" | b"VP8X")
}

/// A GIF: its signature and a whole logical screen descriptor.
fn is_gif(bytes: &[u8]) -> bool {
    bytes.len() >= 13 && (bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a"))
}

/// A TIFF: a byte-order mark, the magic number 42 (43 for BigTIFF) in that order, and room for
/// the first directory's offset.
fn is_tiff(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && matches!(&bytes[..4], b"II*\0" | b"MM\0*" | b"II+\0" | b"MM\0+")
}

/// A JPEG XL: a bare codestream (FF 0A), or the container's signature box.
fn is_jxl(bytes: &[u8]) -> bool {
    const CONTAINER: &[u8; 12] = b"\0\0\0\x0cJXL \r\n\x87\n";
    (bytes.len() >= 3 && bytes[..2] == [0xFF, 0x0A]) || bytes.starts_with(CONTAINER)
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
/// skips, at most), a HEIC or AVIF with a whole `ftyp` box that names HEVC or AV1, a WebP with a
/// RIFF header and an image chunk.
pub fn sniff(bytes: &[u8]) -> Result<MediaType, NotAnImage> {
    if is_heif_of(bytes, &HEVC_BRANDS) {
        return Ok(MediaType::Heic);
    }
    if is_heif_of(bytes, &AV1_BRANDS) {
        return Ok(MediaType::Avif);
    }
    if is_webp(bytes) {
        return Ok(MediaType::Webp);
    }
    if is_gif(bytes) {
        return Ok(MediaType::Gif);
    }
    if is_tiff(bytes) {
        return Ok(MediaType::Tiff);
    }
    if is_jxl(bytes) {
        return Ok(MediaType::Jxl);
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
            Ok(if png_is_animated(bytes) {
                MediaType::Apng
            } else {
                MediaType::Png
            })
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
        // A GIF signature without its screen descriptor.
        assert!(sniff(b"GIF89a......").is_err());
        assert!(sniff(b"RIFF\0\0\0\0WEBP").is_err());
        assert!(sniff(b"RIFF\0\0\0\0WAVEfmt ").is_err());
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
        assert_eq!(
            sniff(&ftyp(b"avif", &[b"mif1", b"avif"])),
            Ok(MediaType::Avif)
        );
        assert_eq!(
            sniff(&ftyp(b"mif1", &[b"mif1", b"avif"])),
            Ok(MediaType::Avif)
        );
        assert_eq!(
            sniff(&ftyp(b"avis", &[b"avis", b"msf1"])),
            Ok(MediaType::Avif)
        );
        assert!(sniff(&ftyp(b"mp42", &[b"isom"])).is_err());
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
        assert_eq!(
            MediaType::from_content_type("image/gif"),
            Some(MediaType::Gif)
        );
        assert_eq!(MediaType::from_content_type("image/bmp"), None);
        for m in MediaType::ALL {
            assert_eq!(MediaType::from_content_type(m.content_type()), Some(m));
            assert_eq!(m.extensions()[0], m.extension());
        }
    }

    #[test]
    fn each_format_is_told_from_its_first_bytes() {
        let png = |extra: &[u8]| {
            let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
            b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0, 0, 0, 0]);
            b.extend_from_slice(extra);
            b
        };
        let actl = b"\0\0\0\x08acTL\0\0\0\x02\0\0\0\0\0\0\0\0";
        let idat = b"\0\0\0\0IDAT\0\0\0\0";
        for (bytes, want) in [
            (png(idat), MediaType::Png),
            (png(actl), MediaType::Apng),
            (
                [&idat[..], &actl[..]].concat().pipe(|rest| png(&rest)),
                MediaType::Png,
            ),
            (
                b"RIFF\x24\0\0\0WEBPVP8L\x18\0\0\0".to_vec(),
                MediaType::Webp,
            ),
            (
                b"RIFF\x24\0\0\0WEBPVP8X\x0a\0\0\0".to_vec(),
                MediaType::Webp,
            ),
            (b"GIF87a\x01\0\x01\0\0\0\0".to_vec(), MediaType::Gif),
            (b"II*\0\x08\0\0\0".to_vec(), MediaType::Tiff),
            (b"MM\0*\0\0\0\x08".to_vec(), MediaType::Tiff),
            (b"\xff\x0a\xfa".to_vec(), MediaType::Jxl),
            (
                b"\0\0\0\x0cJXL \r\n\x87\n\0\0\0\x14ftypjxl ".to_vec(),
                MediaType::Jxl,
            ),
        ] {
            assert_eq!(sniff(&bytes), Ok(want), "{bytes:?}");
        }
    }

    trait Pipe: Sized {
        fn pipe<R>(self, f: impl FnOnce(Self) -> R) -> R {
            f(self)
        }
    }
    impl<T> Pipe for T {}
}
