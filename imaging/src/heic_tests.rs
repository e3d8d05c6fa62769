//! HEIC grids: each distinct tile is decoded once (counted by `formats::decodes`, on this test's
//! thread), the image is heifer's to the byte, and the work a file declares is bounded.

use crate::colour;
use crate::formats::decodes;
use crate::heic::{self, Route};
use crate::hostile::{heic_grid, heic_tile};
use crate::probe::probe;
use crate::{decode, render, Settings};

fn fixture(path: &str) -> Vec<u8> {
    let path = format!("{}/../tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// heifer's own decode of `bytes`, which decodes a grid's tiles again for every cell.
fn heifers(bytes: &[u8]) -> heifer::Image<u8> {
    let options = heifer::Options {
        max_threads: 1,
        max_pixels: 0,
    };
    heifer::decode_rgba8(bytes, &options).unwrap()
}

fn route(bytes: &[u8]) -> Route {
    heic::route(&heifer::heifer_isobmff::HeifFile::parse(bytes).unwrap())
}

/// Ours, with the tile decodes it took.
fn ours(bytes: &[u8]) -> (heifer::Image<u8>, u64) {
    let before = decodes::so_far();
    let image = heic::decode_rgba8(bytes, 1 << 28).unwrap();
    (image, decodes::so_far() - before)
}

#[test]
fn a_grid_listing_one_tile_169_times_decodes_it_once_and_shows_it_in_every_cell() {
    let bytes = heic_grid(13, 13, (6656, 6656), false);
    assert!(bytes.len() < 40_000, "{} bytes", bytes.len());
    let header = probe(&bytes, &Settings::default()).unwrap();
    assert_eq!((header.width, header.height), (6656, 6656));
    // The work counted is the one tile's, the canvas is what is assembled.
    assert_eq!(header.heic_coded_pixels, 512 * 512);
    assert_eq!(header.heic_largest_picture, 6656 * 6656);

    let before = decodes::so_far();
    let source = colour::source(&header).source;
    let pixels = decode::decode(&bytes, &header, &source).unwrap();
    assert_eq!(decodes::so_far() - before, 1, "tile decodes");

    // Every cell is the tile, as heifer decodes it on its own (one coded picture, no grid).
    let tile = heifers(&heic_tile());
    assert_eq!((tile.width, tile.height), (512, 512));
    let tile_rgb: Vec<u8> = tile
        .data
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    assert_eq!(
        (pixels.width, pixels.height, pixels.channels),
        (6656, 6656, 3)
    );
    let stride = 6656 * 3;
    for cell in 0..169 {
        let (x0, y0) = ((cell % 13) * 512, (cell / 13) * 512);
        for y in 0..512 {
            let at = (y0 + y) * stride + x0 * 3;
            assert!(
                pixels.buf[at..at + 512 * 3] == tile_rgb[y * 512 * 3..(y + 1) * 512 * 3],
                "cell {cell}, row {y} is not the tile"
            );
        }
    }
}

#[test]
fn a_grid_cut_by_its_canvas_is_heifers_image_to_the_byte() {
    // 3x2 cells of 512 on a 1300x900 canvas: the right column and bottom row are cropped, and
    // their edge pixels are converted as heifer converts them.
    for distinct in [false, true] {
        let bytes = heic_grid(3, 2, (1300, 900), distinct);
        assert!(matches!(route(&bytes), Route::Grid { .. }));
        let (image, decoded) = ours(&bytes);
        assert_eq!(
            decoded,
            if distinct { 6 } else { 1 },
            "distinct: {distinct}"
        );
        let reference = heifers(&bytes);
        assert_eq!((image.width, image.height), (1300, 900));
        assert!(
            image == reference,
            "distinct: {distinct}: not heifer's image"
        );
    }
}

#[test]
fn every_heic_fixture_decodes_as_heifer_decodes_it() {
    for (path, grid) in [
        // An iPhone photo: four 512x512 tiles, cropped to 1008x756.
        ("iphone_grid_1008x756.heic", true),
        // A 10-bit grid with a grid of alpha tiles, its tiles larger than the image.
        ("pillow-heif/RGBA_10__29x100.heif", true),
        // One coded picture cropped by `clap`: heifer's decode.
        ("libheif/rainbow-451x461.heic", false),
    ] {
        let bytes = fixture(path);
        assert_eq!(matches!(route(&bytes), Route::Grid { .. }), grid, "{path}");
        let (image, _) = ours(&bytes);
        assert!(image == heifers(&bytes), "{path}: not heifer's image");
    }
}

#[test]
fn a_grid_of_distinct_tiles_over_the_decode_budget_is_refused_before_any_decode() {
    // Four 512x512 tiles for a 513x513 image: a million pixels to decode for a quarter of that.
    let settings = Settings {
        max_pixels: 300_000,
        ..Settings::default()
    };
    let distinct = heic_grid(2, 2, (513, 513), true);
    let before = decodes::so_far();
    let err = probe(&distinct, &settings).err().expect("refused");
    assert!(
        err.to_string().contains(
            "HEIC decodes 4 coded pictures of 1048576 pixels in all for a 513x513 image, over \
             the budget of 600000 pixels of decoding"
        ),
        "{err}"
    );
    let err = render(&distinct, &settings).err().expect("refused");
    assert!(err.to_string().contains("pixels of decoding"), "{err}");
    assert_eq!(decodes::so_far(), before, "decoded before refusing");

    // The same grid listing one tile four times is one decode, within the budget.
    let repeated = heic_grid(2, 2, (513, 513), false);
    let header = probe(&repeated, &settings).unwrap();
    assert_eq!(header.heic_coded_pixels, 512 * 512);
    let rendered = render(&repeated, &settings).unwrap();
    assert_eq!((rendered.width, rendered.height), (513, 513));
    assert_eq!(decodes::so_far() - before, 1);
}
