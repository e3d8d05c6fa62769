//! HEIC: the primary item, its grid or coded picture, every picture the decoder makes on the way,
//! and what the decode will cost.

use super::*;

/// A HEIC's primary image: its size as displayed (the decoder applies `irot` itself, so the EXIF
/// orientation, which says the same, is not applied again), EXIF and ICC profile. The decoded
/// image is RGBA at 8 bits; the decoder's own buffers (a frame of 16-bit samples per tile in
/// flight, the assembled 4:2:0 planes) are counted at 8 bytes a pixel of the largest picture it
/// decodes: a grid's tiles and a coded picture can be larger than the image shown (a grid crops
/// its tiles, `clap` crops a picture), so that is read from each coded picture's SPS.
#[cfg(feature = "heic")]
pub(super) fn probe_heic(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    use heifer::heifer_isobmff::{boxes::Property, HeifFile};
    let file = HeifFile::parse(bytes).map_err(ImageError::decode)?;
    let id = file.primary_id;
    let (mut size, mut quarter_turns) = (None, 0);
    for p in file.item_properties(id).map_err(ImageError::decode)? {
        match p {
            Property::ImageSize { width, height } => size = Some((*width, *height)),
            Property::Rotation(r) => quarter_turns = *r,
            _ => {}
        }
    }
    let (w, h) = size.ok_or_else(|| ImageError::decode("HEIC primary image has no size (ispe)"))?;
    let (width, height) = if quarter_turns % 2 == 1 {
        (h, w)
    } else {
        (w, h)
    };
    check_pixels(width, height, settings)?;
    let route = crate::heic::route(&file);
    let mut pictures = pictures::Pictures::new(route);
    pictures.visit(&file, id, 0)?;
    let largest = pictures.largest.max(u64::from(width) * u64::from(height));
    if largest > settings.max_pixels {
        return Err(ImageError::decode(format!(
            "HEIC codes a picture of {largest} pixels (over the budget of {} pixels) for a \
             {width}x{height} image",
            settings.max_pixels
        )));
    }
    if pictures.coded > settings.max_coded_pixels() {
        return Err(ImageError::decode(format!(
            "HEIC decodes {} coded pictures of {} pixels in all for a {width}x{height} image, \
             over the budget of {} pixels of decoding (twice the pixel budget)",
            pictures.pictures,
            pictures.coded,
            settings.max_coded_pixels()
        )));
    }
    let mut warnings = Vec::new();
    let exif_block = match file.exif(id) {
        Ok(exif) => exif,
        Err(e) => {
            warnings.push(format!("EXIF unreadable ({e}); skipped"));
            None
        }
    };
    let exif = read_exif(exif_block.as_deref(), &mut warnings);
    let icc = usable_icc(file.icc_profile(id), &mut warnings);
    let targets = stored_targets(width, height, Orientation::NoTransforms, settings);
    let (w64, h64) = (u64::from(width), u64::from(height));
    // RGBA out of the decoder, RGB after dropping an opaque alpha, and the decoder's buffers.
    let decode = budget::pixels(w64, h64, 4 + 3) + largest * 8 + 8 * MIB;
    let metadata =
        exif_cost(exif_block.as_deref()) + icc.as_ref().map_or(0, |p| p.len() as u64 * 2);
    let renditions = renditions_cost((width, height), 4, &targets, settings);
    let estimate = Estimate {
        original: bytes.len() as u64,
        metadata,
        decode,
        colour: colour_cost(icc.as_deref(), (w64, h64), 4),
        rendition: renditions,
        fixed: 4 * MIB,
    };
    Ok(Header {
        format: MediaType::Heic,
        width,
        height,
        orientation: Orientation::NoTransforms,
        exif,
        targets,
        jpeg: None,
        png: None,
        icc,
        estimate,
        animation: None,
        warnings,
        heic_largest_picture: largest,
        heic_coded_pixels: pictures.coded,
        model: colour::Model::Rgb,
    })
}

/// The pictures a HEIC decode makes, read from the container without decoding any: what
/// [`crate::heic`] decodes on its route, a grid's distinct tiles once each when it assembles the
/// grid, every reference again when heifer decodes.
#[cfg(feature = "heic")]
mod pictures {
    use heifer::heifer_hevc_dec::nal::NalUnit;
    use heifer::heifer_hevc_dec::params::ParameterSets;
    use heifer::heifer_isobmff::{HeifFile, ItemId};

    use crate::heic::{self, Route};
    use crate::ImageError;

    /// Derived images nest no deeper in heifer (its `MAX_DEPTH`).
    const MAX_DEPTH: u32 = 4;
    /// Items looked at, at most: a 256x256 grid of tiles is already absurd, and a file that
    /// references more is refused.
    const MAX_ITEMS: usize = 1 << 16;

    pub struct Pictures {
        /// Pixels of the largest picture decoded or assembled (a coded picture's SPS size, or a
        /// derived image's canvas).
        pub largest: u64,
        /// Pixels of every coded picture decoded, summed.
        pub coded: u64,
        /// Coded pictures decoded.
        pub pictures: u64,
        /// Whether grids are assembled from their distinct tiles ([`Route::Grid`]).
        distinct_tiles: bool,
        items: usize,
    }

    impl Pictures {
        pub fn new(route: Route) -> Pictures {
            Pictures {
                largest: 0,
                coded: 0,
                pictures: 0,
                distinct_tiles: matches!(route, Route::Grid { .. }),
                items: 0,
            }
        }

        /// `id`, what it is derived from, and its alpha plane.
        pub fn visit(
            &mut self,
            file: &HeifFile<'_>,
            id: ItemId,
            depth: u32,
        ) -> Result<(), ImageError> {
            self.items += 1;
            if self.items > MAX_ITEMS {
                return Err(ImageError::decode(format!(
                    "HEIC image references more than {MAX_ITEMS} pictures"
                )));
            }
            if depth > MAX_DEPTH {
                return Ok(()); // heifer refuses these itself
            }
            let canvas = file
                .image_size(id)
                .map_err(ImageError::decode)?
                .map_or(0, |(w, h)| u64::from(w) * u64::from(h));
            self.largest = self.largest.max(canvas);
            match &file.item(id).map_err(ImageError::decode)?.item_type.0 {
                b"hvc1" | b"hev1" => {
                    let coded = coded_pixels(file, id).map_err(ImageError::decode)?;
                    self.largest = self.largest.max(coded);
                    self.coded = self.coded.saturating_add(coded);
                    self.pictures += 1;
                }
                b"grid" => {
                    let grid = file.grid(id).map_err(ImageError::decode)?;
                    let out = u64::from(grid.output_width) * u64::from(grid.output_height);
                    self.largest = self.largest.max(out);
                    let tiles = file.referenced_items(id, b"dimg");
                    if self.distinct_tiles {
                        self.visit_all(file, &heic::distinct(tiles), depth)?;
                    } else {
                        self.visit_all(file, tiles, depth)?;
                    }
                }
                _ => self.visit_all(file, file.referenced_items(id, b"dimg"), depth)?,
            }
            // heifer decodes one alpha plane of an image, and no other auxiliary image.
            match heic::alpha_of(file, id) {
                Some(alpha) => self.visit(file, alpha, depth + 1),
                None => Ok(()),
            }
        }

        fn visit_all(
            &mut self,
            file: &HeifFile<'_>,
            ids: &[ItemId],
            depth: u32,
        ) -> Result<(), ImageError> {
            ids.iter().try_for_each(|&i| self.visit(file, i, depth + 1))
        }
    }

    /// A coded picture's size as its SPS gives it (the decoder's limit is on that, and it can
    /// exceed `ispe` by the encoder's padding); else `ispe` rounded up to whole 64-pixel blocks.
    fn coded_pixels(file: &HeifFile<'_>, id: ItemId) -> Result<u64, heifer::heifer_isobmff::Error> {
        let mut sets = ParameterSets::default();
        if let Some(config) = file.hevc_config(id)? {
            for nal in &config.nal_units {
                if let Ok(nal) = NalUnit::parse(nal) {
                    let _ = sets.add(&nal);
                }
            }
        }
        let sps = sets.sps.iter().flatten().map(|sps| {
            u64::from(sps.pic_width_in_luma_samples) * u64::from(sps.pic_height_in_luma_samples)
        });
        Ok(match sps.max() {
            Some(pixels) => pixels,
            None => file.image_size(id)?.map_or(0, |(w, h)| {
                u64::from(w.next_multiple_of(64)) * u64::from(h.next_multiple_of(64))
            }),
        })
    }
}

#[cfg(not(feature = "heic"))]
pub(super) fn probe_heic(_: &[u8], _: &Settings) -> Result<Header, ImageError> {
    Err(ImageError::decode(
        "HEIC input needs the `heic` feature, which this build was made without",
    ))
}
