//! What the pipeline accepts as an image, decided from the bytes alone. Upload, process and the CLI
//! all ask [`sniff`]; a client's Content-Type header is never trusted.

use std::fmt;

/// The image formats the pipeline takes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaType {
    Jpeg,
    Png,
}

impl MediaType {
    pub fn content_type(self) -> &'static str {
        match self {
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
        }
    }

    /// The extension an original of this type is stored under.
    pub fn extension(self) -> &'static str {
        match self {
            MediaType::Jpeg => "jpg",
            MediaType::Png => "png",
        }
    }

    /// The name of the format, as an item's `format` says it.
    pub fn name(self) -> &'static str {
        match self {
            MediaType::Jpeg => "jpeg",
            MediaType::Png => "png",
        }
    }

    /// From a declared content type (`image/jpeg`, `image/png`), for reservations that say what
    /// they will send; the bytes are still sniffed when they arrive.
    pub fn from_content_type(content_type: &str) -> Option<MediaType> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        [MediaType::Jpeg, MediaType::Png]
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
#[error("not a JPEG or PNG image (the bytes look like {detected}); the Content-Type header is not trusted")]
pub struct NotAnImage {
    pub detected: String,
}

/// How many leading bytes [`sniff`] needs to decide.
pub const SNIFF_BYTES: usize = 64;

/// The image type, from the bytes alone. A magic number is not enough: a PNG must open with its
/// whole signature and an IHDR chunk, a JPEG with SOI followed by a marker.
pub fn sniff(bytes: &[u8]) -> Result<MediaType, NotAnImage> {
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
        assert_eq!(sniff(b"hello").unwrap_err().detected, "unknown data");
        assert_eq!(sniff(b"GIF89a......").unwrap_err().detected, "image/gif");
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
