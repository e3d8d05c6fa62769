//! HEIC decoding by `heifer` (pure Rust), except for how a grid is assembled: here each distinct
//! tile item is decoded once and put into every cell that lists it. heifer decodes a tile again
//! for each cell, so a 35 KB file whose grid lists one 512x512 tile 169 times cost 169 HEVC
//! decodes; here it costs one, and the canvas is filled by copying.
//!
//! [`route`] says which decode a file takes, and the probe counts the work by the same answer
//! (`Header::heic_coded_pixels`): a grid of plain tiles (coded pictures without transforms or
//! alpha of their own, as every camera writes them) is assembled here, with its alpha plane when
//! that is a plain picture or such a grid; anything else (a single picture, `iovl`, `iden`, tiles
//! with transforms) is heifer's decode, which decodes every reference again and is counted so.
//! The output is heifer's to the byte: the same colour conversion of each tile, cropped at the
//! canvas's edge as heifer crops it, the same alpha and transforms.

use heifer::color::{frame_to_rgba_into, frame_to_rgba_sized, ColorParams};
use heifer::heifer_hevc_dec::decoder::{decode_picture, DecodeOptions};
use heifer::heifer_hevc_dec::recon::Frame;
use heifer::heifer_isobmff::boxes::{ColorInfo, Property};
use heifer::heifer_isobmff::{HeifFile, ItemId};
use heifer::{Error, Image};

pub(crate) use crate::formats::distinct;

/// The auxiliary types heifer takes as an alpha plane.
const ALPHA_URNS: [&str; 2] = [
    "urn:mpeg:hevc:2015:auxid:1",
    "urn:mpeg:mpegB:cicp:systems:auxiliary:alpha",
];

/// Which decode the primary image takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// A grid of plain tiles, assembled here: each distinct tile decoded once.
    Grid { grid: ItemId, alpha: Option<ItemId> },
    /// heifer's own decode.
    Heifer,
}

/// The route of `file`'s primary image.
pub(crate) fn route(file: &HeifFile<'_>) -> Route {
    let grid = file.primary_id;
    if !is_plain_grid(file, grid) || has_transforms(file, grid).is_none() {
        return Route::Heifer;
    }
    match alpha_of(file, grid) {
        None => Route::Grid { grid, alpha: None },
        Some(alpha)
            if (is_plain_picture(file, alpha) || is_plain_grid(file, alpha))
                && has_transforms(file, alpha) == Some(false)
                && alpha_of(file, alpha).is_none() =>
        {
            Route::Grid {
                grid,
                alpha: Some(alpha),
            }
        }
        Some(_) => Route::Heifer,
    }
}

/// The alpha plane heifer decodes for `id`: the first auxiliary image of type alpha.
pub(crate) fn alpha_of(file: &HeifFile<'_>, id: ItemId) -> Option<ItemId> {
    file.referencing_items(id, b"auxl")
        .into_iter()
        .find(|&aux| {
            file.item_properties(aux).is_ok_and(|mut ps| {
                ps.any(
                    |p| matches!(p, Property::AuxiliaryType(t) if ALPHA_URNS.contains(&t.as_str())),
                )
            })
        })
}

/// Whether `id` has `clap`, `irot` or `imir` (`None` when its properties cannot be read).
fn has_transforms(file: &HeifFile<'_>, id: ItemId) -> Option<bool> {
    let mut properties = file.item_properties(id).ok()?;
    Some(properties.any(|p| {
        matches!(
            p,
            Property::CleanAperture { .. } | Property::Rotation(_) | Property::Mirror(_)
        )
    }))
}

/// A coded picture decoded as it is: `hvc1` with its size and configuration, no transforms and
/// no alpha plane.
fn is_plain_picture(file: &HeifFile<'_>, id: ItemId) -> bool {
    file.item(id).is_ok_and(|i| i.item_type.0 == *b"hvc1")
        && file.image_size(id).is_ok_and(|s| s.is_some())
        && file.hevc_config(id).is_ok_and(|c| c.is_some())
        && has_transforms(file, id) == Some(false)
        && file.referencing_items(id, b"auxl").is_empty()
}

/// A grid of as many plain pictures as its cells, all of one size.
fn is_plain_grid(file: &HeifFile<'_>, id: ItemId) -> bool {
    let (Ok(item), Ok(grid)) = (file.item(id), file.grid(id)) else {
        return false;
    };
    let tiles = file.referenced_items(id, b"dimg");
    let size = tiles
        .first()
        .and_then(|&t| file.image_size(t).ok().flatten());
    item.item_type.0 == *b"grid"
        && !tiles.is_empty()
        && tiles.len() == usize::from(grid.rows) * usize::from(grid.columns)
        && distinct(tiles)
            .iter()
            .all(|&t| is_plain_picture(file, t) && file.image_size(t).ok().flatten() == size)
}

/// The primary image at 8 bits, as `heifer::decode_rgba8` gives it. `max_pixels` bounds every
/// picture decoded or assembled (the probe's largest).
pub(crate) fn decode_rgba8(bytes: &[u8], max_pixels: u64) -> Result<Image<u8>, Error> {
    let file = HeifFile::parse(bytes)?;
    let Route::Grid { grid, alpha } = route(&file) else {
        let options = heifer::Options {
            max_threads: 1,
            max_pixels,
        };
        return heifer::decode_rgba8(bytes, &options);
    };
    let mut image = assemble(&file, grid, max_pixels)?;
    if let Some(alpha) = alpha {
        let plane = if is_plain_picture(&file, alpha) {
            let frame = decode_tile(&file, alpha, max_pixels)?;
            let (w, h) = file.image_size(alpha)?.unwrap_or((0, 0));
            frame_to_rgba_sized(&frame, color_params(&file, alpha, &frame)?, w, h)
        } else {
            assemble(&file, alpha, max_pixels)?
        };
        attach_alpha(&mut image, &plane)?;
    }
    // Transformative properties in association order, as heifer applies them.
    for property in file.item_properties(grid)? {
        image = match *property {
            Property::CleanAperture {
                width,
                height,
                horiz_offset,
                vert_offset,
            } => clean_aperture(&image, width, height, horiz_offset, vert_offset)?,
            Property::Rotation(0) => image,
            Property::Rotation(q) => image.rotate_ccw(q),
            Property::Mirror(top_bottom) => image.mirror(top_bottom),
            _ => image,
        };
    }
    Ok(image)
}

/// A grid of plain tiles on its canvas: each distinct tile decoded once, converted once at its
/// full size for the cells it fills whole, and converted again from the same picture, cropped,
/// for a cell the canvas's edge cuts (as heifer converts it, so the edge pixels match).
fn assemble(file: &HeifFile<'_>, id: ItemId, max_pixels: u64) -> Result<Image<u8>, Error> {
    let grid = file.grid(id)?;
    let tiles = file.referenced_items(id, b"dimg");
    let (tw, th) = file
        .image_size(tiles[0])?
        .ok_or(Error::Invalid("grid tile has no size"))?;
    let (cw, ch) = (grid.output_width, grid.output_height);
    let canvas_pixels = u64::from(cw) * u64::from(ch);
    let tile_pixels = u64::from(tw) * u64::from(th);
    if canvas_pixels == 0 || canvas_pixels > max_pixels {
        return Err(Error::Invalid("image size is zero or too large"));
    }
    if tile_pixels == 0 || tile_pixels > max_pixels {
        return Err(Error::Invalid("grid tile has an invalid size"));
    }
    let mut canvas = Image::<u8>::filled_samples(cw, ch, 8, [0; 4]);
    let columns = usize::from(grid.columns);
    let stride = cw as usize * 4;
    // Cells by tile: the cells of one tile follow each other.
    let mut cells: Vec<usize> = (0..tiles.len()).collect();
    cells.sort_by_key(|&i| tiles[i]);
    for group in cells.chunk_by(|&a, &b| tiles[a] == tiles[b]) {
        let tile = tiles[group[0]];
        let frame = decode_tile(file, tile, max_pixels)?;
        if frame.widths[0] < tw || frame.heights[0] < th {
            return Err(Error::Invalid(
                "grid tiles have different sizes or bit depths",
            ));
        }
        let params = color_params(file, tile, &frame)?;
        let mut whole: Option<Image<u8>> = None;
        for &cell in group {
            let x0 = (cell % columns) as u64 * u64::from(tw);
            let y0 = (cell / columns) as u64 * u64::from(th);
            if x0 >= u64::from(cw) || y0 >= u64::from(ch) {
                continue; // a cell past the canvas shows nothing
            }
            let (x0, y0) = (x0 as usize, y0 as usize);
            let w = (tw as usize).min(cw as usize - x0);
            let h = (th as usize).min(ch as usize - y0);
            let mut rows: Vec<&mut [u8]> = canvas
                .data
                .chunks_exact_mut(stride)
                .skip(y0)
                .take(h)
                .map(|row| &mut row[x0 * 4..(x0 + w) * 4])
                .collect();
            if (w, h) == (tw as usize, th as usize) {
                let whole =
                    whole.get_or_insert_with(|| frame_to_rgba_sized(&frame, params, tw, th));
                for (dst, src) in rows.iter_mut().zip(whole.data.chunks_exact(w * 4)) {
                    dst.copy_from_slice(src);
                }
            } else {
                frame_to_rgba_into(&frame, params, &mut rows, w, h);
            }
        }
    }
    Ok(canvas)
}

/// One coded picture, decoded.
fn decode_tile(file: &HeifFile<'_>, id: ItemId, max_pixels: u64) -> Result<Frame, Error> {
    let options = DecodeOptions {
        max_pixels,
        ..Default::default()
    };
    let frame = decode_picture(&file.hevc_bitstream(id)?, options)?;
    crate::formats::decodes::count();
    Ok(frame)
}

/// An item's colour parameters: its `colr` (nclx) if it has one, else its stream's.
fn color_params(file: &HeifFile<'_>, id: ItemId, frame: &Frame) -> Result<ColorParams, Error> {
    Ok(file
        .item_properties(id)?
        .find_map(|p| match p {
            Property::Color(ColorInfo::Nclx {
                matrix, full_range, ..
            }) => Some(ColorParams {
                matrix: *matrix,
                full_range: *full_range,
            }),
            _ => None,
        })
        .unwrap_or_else(|| ColorParams::from_frame(frame)))
}

/// The first channel of `alpha` as the alpha of `image` (both at 8 bits).
fn attach_alpha(image: &mut Image<u8>, alpha: &Image<u8>) -> Result<(), Error> {
    if alpha.width < image.width || alpha.height < image.height {
        return Err(Error::Unsupported(
            "alpha plane smaller than the image".into(),
        ));
    }
    let (w, aw) = (image.width as usize, alpha.width as usize);
    for (row, alpha_row) in image
        .data
        .chunks_exact_mut(w * 4)
        .zip(alpha.data.chunks_exact(aw * 4))
    {
        for (px, a) in row.chunks_exact_mut(4).zip(alpha_row.chunks_exact(4)) {
            px[3] = a[0];
        }
    }
    image.has_alpha = true;
    Ok(())
}

/// A `clap` crop, centred as ISO/IEC 14496-12 says (and heifer computes it).
fn clean_aperture(
    img: &Image<u8>,
    width: (u32, u32),
    height: (u32, u32),
    horiz: (i32, u32),
    vert: (i32, u32),
) -> Result<Image<u8>, Error> {
    if width.1 == 0 || height.1 == 0 || horiz.1 == 0 || vert.1 == 0 {
        return Err(Error::Invalid("clap with a zero denominator"));
    }
    let cw = f64::from(width.0) / f64::from(width.1);
    let ch = f64::from(height.0) / f64::from(height.1);
    let cx = f64::from(horiz.0) / f64::from(horiz.1) + (f64::from(img.width) - 1.0) / 2.0;
    let cy = f64::from(vert.0) / f64::from(vert.1) + (f64::from(img.height) - 1.0) / 2.0;
    let left = (cx - (cw - 1.0) / 2.0).round().max(0.0) as u32;
    let top = (cy - (ch - 1.0) / 2.0).round().max(0.0) as u32;
    Ok(img.crop(left, top, cw.round() as u32, ch.round() as u32))
}

/// The first tile of `source`'s primary grid: its size, configuration, colour and NAL units.
struct Tile {
    size: (u32, u32),
    config: heifer::heifer_isobmff::boxes::HevcConfig,
    color: Option<ColorInfo>,
    slices: Vec<Vec<u8>>,
}

fn first_tile(source: &[u8]) -> Result<Tile, Error> {
    let file = HeifFile::parse(source)?;
    let tile = *file
        .referenced_items(file.primary_id, b"dimg")
        .first()
        .ok_or(Error::Invalid("the primary image is not a grid"))?;
    let size = file
        .image_size(tile)?
        .ok_or(Error::Invalid("grid tile has no size"))?;
    let config = file
        .hevc_config(tile)?
        .ok_or(Error::Invalid("grid tile has no hvcC"))?
        .clone();
    let color = file.item_properties(tile)?.find_map(|p| match p {
        Property::Color(c @ ColorInfo::Nclx { .. }) => Some(c.clone()),
        _ => None,
    });
    // The item's NAL units, each after its length.
    let data = file.item_data(tile)?;
    let length_bytes = usize::from(config.nal_length_size);
    let mut slices = Vec::new();
    let mut rest = &data[..];
    while rest.len() > length_bytes {
        let len = rest[..length_bytes]
            .iter()
            .fold(0usize, |n, &b| n << 8 | usize::from(b));
        let nal = rest
            .get(length_bytes..length_bytes + len)
            .ok_or(Error::Invalid("a NAL unit past the item's end"))?;
        slices.push(nal.to_vec());
        rest = &rest[length_bytes + len..];
    }
    Ok(Tile {
        size,
        config,
        color,
        slices,
    })
}

/// A HEIC whose primary image is a `columns` x `rows` grid cropped to `size`, every cell filled
/// with the first tile of `source`'s grid: one tile item listed in every cell, or (`distinct`) a
/// tile item of its own in each cell, all of the same picture. The engine's cost model is
/// calibrated on one (a small canvas-heavy grid); the hostile corpus has the 169-cell one.
pub fn grid_of_first_tile(
    source: &[u8],
    columns: u16,
    rows: u16,
    size: (u32, u32),
    distinct: bool,
) -> Result<Vec<u8>, Error> {
    use heifer::heifer_isobmff::writer::{HeifWriter, ImageSpec};

    let tile = first_tile(source)?;
    let spec = ImageSpec {
        color: tile.color,
        hidden: true,
        ..ImageSpec::new(tile.size.0, tile.size.1, tile.config, &tile.slices)
    };
    let mut writer = HeifWriter::new();
    let cells = usize::from(columns) * usize::from(rows);
    let tiles: Vec<ItemId> = if distinct {
        (0..cells).map(|_| writer.add_image(&spec)).collect()
    } else {
        vec![writer.add_image(&spec); cells]
    };
    writer.add_grid(rows, columns, size.0, size.1, &tiles, None, None);
    Ok(writer.finish())
}

/// The first tile of `source`'s grid as a HEIC of its own: one coded picture, no grid.
pub fn first_tile_alone(source: &[u8]) -> Result<Vec<u8>, Error> {
    use heifer::heifer_isobmff::writer::{HeifWriter, ImageSpec};

    let tile = first_tile(source)?;
    let mut writer = HeifWriter::new();
    writer.add_image(&ImageSpec {
        color: tile.color,
        ..ImageSpec::new(tile.size.0, tile.size.1, tile.config, &tile.slices)
    });
    Ok(writer.finish())
}
