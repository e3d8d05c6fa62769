//! The EXIF the item keeps, and the orientation the renditions are turned by.

use std::collections::BTreeMap;

use crate::orientation::Orientation;

/// The EXIF Orientation tag (1..=8), or none.
pub fn orientation(exif: &exif::Exif) -> Orientation {
    exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .and_then(|v| u8::try_from(v).ok())
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms)
}

/// The most characters an EXIF text field keeps on the item: camera makes and models are short, and
/// an item (and a page of them) must stay far under DynamoDB's 400 KB and Lambda's 6 MB response.
pub const MAX_EXIF_TEXT: usize = 64;

/// `text` cut to [`MAX_EXIF_TEXT`] characters (on a character boundary).
fn capped(text: &str) -> String {
    match text.char_indices().nth(MAX_EXIF_TEXT) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// The EXIF fields the item keeps: `make`, `model`, `taken_at`, `orientation`; text fields at most
/// [`MAX_EXIF_TEXT`] characters.
pub fn exif_subset(exif: &exif::Exif) -> BTreeMap<String, String> {
    let ascii = |tag: exif::Tag| -> Option<String> {
        match &exif.get_field(tag, exif::In::PRIMARY)?.value {
            exif::Value::Ascii(parts) => {
                let text = String::from_utf8_lossy(parts.first()?);
                let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
                (!text.is_empty()).then(|| capped(text))
            }
            _ => None,
        }
    };
    let taken_at = [exif::Tag::DateTimeOriginal, exif::Tag::DateTime]
        .into_iter()
        .find_map(|tag| {
            let field = exif.get_field(tag, exif::In::PRIMARY)?;
            let exif::Value::Ascii(parts) = &field.value else {
                return None;
            };
            let t = exif::DateTime::from_ascii(parts.first()?).ok()?;
            Some(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year, t.month, t.day, t.hour, t.minute, t.second
            ))
        });
    let orientation = exif
        .get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .filter(|v| (1..=8).contains(v))
        .map(|v| v.to_string());
    [
        ("make", ascii(exif::Tag::Make)),
        ("model", ascii(exif::Tag::Model)),
        ("taken_at", taken_at),
        ("orientation", orientation),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_owned(), v?)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_are_cut_to_the_cap_on_a_character_boundary() {
        assert_eq!(capped("Canon"), "Canon");
        let long = "é".repeat(10_000);
        let cut = capped(&long);
        assert_eq!(cut.chars().count(), MAX_EXIF_TEXT);
        assert!(long.starts_with(&cut));
    }
}
