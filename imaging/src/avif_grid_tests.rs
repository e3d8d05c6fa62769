//! AVIF grids: each distinct tile is decoded once (counted by `formats::decodes`), every cell
//! shows it, and the work a file declares is bounded.

use crate::formats::decodes;
use crate::hostile::avif_grid;
use crate::probe::probe;
use crate::{decode, render, Settings};

#[test]
fn an_avif_grid_listing_one_tile_169_times_decodes_it_once_and_shows_it_in_every_cell() {
    let (bytes, tile) = avif_grid(13, 13, (13 * 64, 13 * 64), false);
    let settings = Settings::default();
    let header = probe(&bytes, &settings).unwrap();
    assert_eq!((header.width, header.height), (832, 832));
    let source = crate::colour::source(&header).source;
    let before = decodes::so_far();
    let pixels = decode::decode(&bytes, &header, &source).unwrap();
    assert_eq!(decodes::so_far() - before, 1, "tile decodes");

    let tile_header = probe(&tile, &settings).unwrap();
    let tile = decode::decode(&tile, &tile_header, &source).unwrap();
    assert_eq!((tile.width, tile.height), (64, 64));
    assert_eq!(pixels.channels, tile.channels);
    let ch = usize::from(tile.channels);
    let (stride, row) = (832 * ch, 64 * ch);
    for cell in 0..169 {
        let (x0, y0) = ((cell % 13) * 64, (cell / 13) * 64);
        for y in 0..64 {
            let at = (y0 + y) * stride + x0 * ch;
            assert!(
                pixels.buf[at..at + row] == tile.buf[y * row..(y + 1) * row],
                "cell {cell}, row {y} is not the tile"
            );
        }
    }
    // A tile item of its own in each cell: a decode each, the same image.
    let (distinct, _) = avif_grid(13, 13, (13 * 64, 13 * 64), true);
    let header = probe(&distinct, &settings).unwrap();
    let before = decodes::so_far();
    let again = decode::decode(&distinct, &header, &source).unwrap();
    assert_eq!(decodes::so_far() - before, 169, "tile decodes");
    assert!(again.buf == pixels.buf);
}

#[test]
fn an_avif_grid_of_distinct_tiles_over_the_decode_budget_is_refused_before_any_decode() {
    // Four 64x64 tiles for a 65x65 image: 16,384 pixels to decode for 4,225.
    let settings = Settings {
        max_pixels: 5_000,
        ..Settings::default()
    };
    let (distinct, _) = avif_grid(2, 2, (65, 65), true);
    let before = decodes::so_far();
    let err = render(&distinct, &settings).err().expect("refused");
    assert!(
        err.to_string().contains(
            "16384 pixels of AV1 pictures to decode for a 65x65 image, over the budget of 10000 \
             pixels of decoding"
        ),
        "{err}"
    );
    assert_eq!(decodes::so_far(), before, "decoded before refusing");
    let (repeated, _) = avif_grid(2, 2, (65, 65), false);
    let rendered = render(&repeated, &settings).unwrap();
    assert_eq!((rendered.width, rendered.height), (65, 65));
    assert_eq!(decodes::so_far() - before, 1);
}
