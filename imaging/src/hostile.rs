//! A corpus of hostile images, made on the spot (feature `hostile`): each one is small on the wire
//! and costly to a careless decoder. `tests/pipeline/memory.rs` runs them through the real
//! `uploader process` binary and the engine, and measures peak RSS against the budget.
//!
//! Over 400 lines: a corpus, one small generator per file, each saying what it does to a decoder.

use flate2::{Compress, Compression, FlushCompress};

/// One hostile file: its name, its bytes, and what it is after.
pub struct Hostile {
    pub name: &'static str,
    pub what: &'static str,
    pub bytes: Vec<u8>,
}

/// The whole corpus, in the order docs/imaging.md's table (Memory budget) lists it.
pub fn corpus() -> Vec<Hostile> {
    let h = |name, what, bytes| Hostile { name, what, bytes };
    vec![
        h(
            "thin-49000000x1.png",
            "one row of 49 million pixels: 147 MB decoded, 2.35 GB of resize coefficients",
            png_of_zeros(49_000_000, 1, 8, 2, &[]),
        ),
        h(
            "tall-1x49000000.png",
            "49 million rows of one pixel",
            png_of_zeros(1, 49_000_000, 8, 2, &[]),
        ),
        h(
            "declared-50000x50000.png",
            "a header that declares 2.5 gigapixels over a few bytes of data",
            png_declared(50_000, 50_000),
        ),
        h(
            "declared-7071x7071-cut.png",
            "50 MP declared (just under the pixel cap), data cut short after one row",
            png_declared(7071, 7071),
        ),
        h(
            "declared-65500x65500.jpg",
            "a JPEG frame header rewritten to 65500x65500",
            jpeg_declared(65_500, 65_500),
        ),
        h(
            "deep-7000x7000-16bit.png",
            "49 MP of 16-bit RGB: 294 MB at 16 bits, decoded at 8",
            png_of_zeros(7000, 7000, 16, 2, &[]),
        ),
        h(
            "rgba-7000x7000.png",
            "49 MP RGBA: resizing premultiplies a copy of the source",
            png_of_zeros(7000, 7000, 8, 6, &[]),
        ),
        h(
            "gray-alpha-5000x5000.png",
            "gray + alpha, widened to RGBA",
            png_of_zeros(5000, 5000, 8, 4, &[]),
        ),
        h(
            "iccp-4MB-of-zeros.png",
            "an iCCP chunk of 4 MB that inflates to gigabytes",
            png_of_zeros(64, 64, 8, 2, &[chunk(b"iCCP", &iccp_bomb(4 << 20))]),
        ),
        h(
            "ztxt-4MB-of-zeros.png",
            "a zTXt chunk of 4 MB that inflates to gigabytes",
            png_of_zeros(64, 64, 8, 2, &[chunk(b"zTXt", &ztxt_bomb(4 << 20))]),
        ),
        h(
            "exif-4MB.png",
            "an eXIf chunk of 4 MB",
            png_of_zeros(64, 64, 8, 2, &[chunk(b"eXIf", &big_exif(4 << 20))]),
        ),
        h(
            "exif-nul-strings.jpg",
            "EXIF whose Make and Model are 30,000 NULs each (a vector per NUL when parsed)",
            with_app1_exif(&small_jpeg(false), &nul_strings_exif()),
        ),
        h(
            "progressive-7000x7000-444.jpg",
            "progressive 4:4:4 at 49 MP: libjpeg keeps every coefficient, 294 MB, whatever the DCT scale",
            big_progressive_jpeg(7000, 7000),
        ),
        h(
            "progressive-150-scans.jpg",
            "a progressive JPEG with 150 scans",
            many_scans(&small_jpeg(true), 150),
        ),
        h(
            "gif-20000-frames.gif",
            "an animated GIF of 20,000 one-pixel frames (460 kB)",
            gif_frames(64, 64, 20_000),
        ),
        h(
            "gif-65535x65535.gif",
            "an animated GIF whose screen is 65535x65535",
            gif_frames(65_535, 65_535, 2),
        ),
        h(
            "gif-4000x4000-100-frames.gif",
            "a 16 MP GIF canvas with 100 frames: 1.6 gigapixels to composite",
            gif_frames(4000, 4000, 100),
        ),
        h(
            "apng-65535x65535.png",
            "an APNG whose canvas is 65535x65535",
            apng_frames(65_535, 65_535, 2),
        ),
        h(
            "apng-2048x2048-300-frames.png",
            "an APNG of 300 frames on a 4 MP canvas: 1.26 gigapixels",
            apng_frames(2048, 2048, 300),
        ),
        h(
            "webp-20000-frames.webp",
            "an animated WebP of 20,000 one-pixel frames",
            webp_frames(64, 64, 20_000),
        ),
        h(
            "webp-16383x16383.webp",
            "an animated WebP whose canvas is 16383x16383 (268 MP)",
            webp_frames(16_383, 16_383, 2),
        ),
        h(
            "avif-sequence-1000000-samples.avif",
            "an AVIF image sequence whose sample table declares a million samples",
            avif_sequence_declared(1_000_000),
        ),
    ]
}

/// An iPhone photo's HEIC grid: four 512x512 tiles, 35 KB (tests/fixtures, provenance beside it).
#[cfg(feature = "heic")]
const IPHONE_GRID: &[u8] = include_bytes!("../../tests/fixtures/iphone_grid_1008x756.heic");

/// A HEIC whose primary image is a `columns` x `rows` grid cropped to `size`, every cell filled
/// with the first tile of an iPhone photo (512x512, [`IPHONE_GRID`]): one tile item listed in
/// every cell, or (`distinct`) a tile item of its own in each cell, all with the same picture.
#[cfg(feature = "heic")]
pub fn heic_grid(columns: u16, rows: u16, size: (u32, u32), distinct: bool) -> Vec<u8> {
    crate::heic::grid_of_first_tile(IPHONE_GRID, columns, rows, size, distinct)
        .expect("the iPhone fixture has a grid")
}

/// The tile [`heic_grid`] repeats as a HEIC of its own (one coded picture, no grid): what each
/// cell must show.
#[cfg(feature = "heic")]
pub fn heic_tile() -> Vec<u8> {
    crate::heic::first_tile_alone(IPHONE_GRID).expect("the iPhone fixture has a grid")
}

/// An AVIF whose primary image is a `columns` x `rows` grid cropped to `size`, every cell filled
/// with one 64x64 AV1 tile (a gradient, encoded by ravif): one tile item listed in every cell, or
/// (`distinct`) a tile item of its own in each, all pointing at the same coded bytes. Also gives
/// the tile alone as an AVIF, to decode for reference.
#[cfg(feature = "avif")]
pub fn avif_grid(columns: u16, rows: u16, size: (u32, u32), distinct: bool) -> (Vec<u8>, Vec<u8>) {
    use heifer_isobmff::boxes::Property;
    use heifer_isobmff::HeifFile;

    let px: Vec<ravif::RGB8> = (0..64 * 64)
        .map(|i| ravif::RGB8::new((i % 64 * 4) as u8, (i / 64 * 4) as u8, 128))
        .collect();
    let tile = ravif::Encoder::new()
        .with_quality(90.0)
        .with_speed(10)
        .with_num_threads(Some(1))
        .encode_rgb(ravif::Img::new(&px[..], 64, 64))
        .expect("the tile encodes")
        .avif_file;
    let file = HeifFile::parse(&tile).expect("ravif's file parses");
    let data = file.item_data(file.primary_id).unwrap().to_vec();
    let av1c = file
        .item_properties(file.primary_id)
        .unwrap()
        .find_map(|p| match p {
            Property::Unknown(kind, content) if kind.0 == *b"av1C" => Some(content.clone()),
            _ => None,
        })
        .expect("an av1C");

    let cells = usize::from(columns) * usize::from(rows);
    let grid_id = 1u16;
    let tile_ids: Vec<u16> = if distinct {
        (0..cells as u16).map(|i| 2 + i).collect()
    } else {
        vec![2; cells]
    };
    let mut items = tile_ids.clone();
    items.sort_unstable();
    items.dedup();
    let full = |version: u8, flags: u32| {
        let mut b = vec![version];
        b.extend_from_slice(&flags.to_be_bytes()[1..]);
        b
    };
    let mut grid_data = vec![0, 0, (rows - 1) as u8, (columns - 1) as u8];
    grid_data.extend_from_slice(&(size.0 as u16).to_be_bytes());
    grid_data.extend_from_slice(&(size.1 as u16).to_be_bytes());
    // `mdat` holds the grid's data then the tile's; `data_at` is where `mdat`'s content starts.
    let meta = |data_at: u32| {
        let infe = |id: u16, kind: &[u8; 4], hidden: bool| {
            let mut b = full(2, u32::from(hidden));
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(kind);
            b.push(0);
            iso_box(b"infe", &b)
        };
        let mut iinf = full(0, 0);
        iinf.extend_from_slice(&((items.len() + 1) as u16).to_be_bytes());
        iinf.extend(infe(grid_id, b"grid", false));
        for &id in &items {
            iinf.extend(infe(id, b"av01", true));
        }
        let mut dimg = grid_id.to_be_bytes().to_vec();
        dimg.extend_from_slice(&(cells as u16).to_be_bytes());
        for id in &tile_ids {
            dimg.extend_from_slice(&id.to_be_bytes());
        }
        let iref = [full(0, 0), iso_box(b"dimg", &dimg)].concat();
        let ispe = |(w, h): (u32, u32)| {
            let mut b = full(0, 0);
            b.extend_from_slice(&w.to_be_bytes());
            b.extend_from_slice(&h.to_be_bytes());
            iso_box(b"ispe", &b)
        };
        // Properties 1: the tile's ispe, 2: its av1C, 3: the grid's ispe.
        let ipco = [ispe((64, 64)), iso_box(b"av1C", &av1c), ispe(size)].concat();
        let mut ipma = full(0, 0);
        ipma.extend_from_slice(&((items.len() + 1) as u32).to_be_bytes());
        ipma.extend_from_slice(&grid_id.to_be_bytes());
        ipma.extend_from_slice(&[1, 3]);
        for &id in &items {
            ipma.extend_from_slice(&id.to_be_bytes());
            ipma.extend_from_slice(&[2, 1, 0x80 | 2]);
        }
        let iprp = [iso_box(b"ipco", &ipco), iso_box(b"ipma", &ipma)].concat();
        let mut iloc = full(0, 0);
        iloc.extend_from_slice(&[0x44, 0x00]);
        iloc.extend_from_slice(&((items.len() + 1) as u16).to_be_bytes());
        let mut location = |id: u16, offset: u32, length: usize| {
            iloc.extend_from_slice(&id.to_be_bytes());
            iloc.extend_from_slice(&[0, 0, 0, 1]);
            iloc.extend_from_slice(&offset.to_be_bytes());
            iloc.extend_from_slice(&(length as u32).to_be_bytes());
        };
        location(grid_id, data_at, grid_data.len());
        for &id in &items {
            location(id, data_at + grid_data.len() as u32, data.len());
        }
        let hdlr = [
            full(0, 0),
            vec![0; 4],
            b"pict".to_vec(),
            vec![0; 12],
            vec![0],
        ]
        .concat();
        let mut pitm = full(0, 0);
        pitm.extend_from_slice(&grid_id.to_be_bytes());
        let content = [
            full(0, 0),
            iso_box(b"hdlr", &hdlr),
            iso_box(b"pitm", &pitm),
            iso_box(b"iloc", &iloc),
            iso_box(b"iinf", &iinf),
            iso_box(b"iref", &iref),
            iso_box(b"iprp", &iprp),
        ]
        .concat();
        iso_box(b"meta", &content)
    };
    let ftyp = iso_box(b"ftyp", b"avif\0\0\0\0avifmif1miaf");
    let data_at = (ftyp.len() + meta(0).len() + 8) as u32;
    let mdat = iso_box(b"mdat", &[grid_data.clone(), data.clone()].concat());
    ([ftyp, meta(data_at), mdat].concat(), tile)
}

/// An animated GIF: a `width` x `height` screen and `frames` one-pixel frames, each after a
/// graphic control extension (10 ms).
pub fn gif_frames(width: u16, height: u16, frames: u32) -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&width.to_le_bytes());
    g.extend_from_slice(&height.to_le_bytes());
    // A global colour table of two entries.
    g.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    g.extend_from_slice(&[0x21, 0xFF, 11]);
    g.extend_from_slice(b"NETSCAPE2.0");
    g.extend_from_slice(&[3, 1, 0, 0, 0]);
    for _ in 0..frames {
        g.extend_from_slice(&[0x21, 0xF9, 4, 0, 1, 0, 0, 0]);
        g.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
        // LZW minimum code size 2; one sub-block: clear, index 0, end.
        g.extend_from_slice(&[2, 2, 0x44, 0x01, 0]);
    }
    g.push(0x3B);
    g
}

/// An APNG: a `width` x `height` canvas whose default image is one row of zeros (the probe never
/// reaches it), and `frames` frame controls, each with a one-pixel frame.
pub fn apng_frames(width: u32, height: u32, frames: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(ihdr(width, height, 8, 6, false));
    let mut actl = frames.to_be_bytes().to_vec();
    actl.extend_from_slice(&0u32.to_be_bytes());
    out.extend(chunk(b"acTL", &actl));
    let fctl = |seq: u32, w: u32, h: u32| {
        let mut d = seq.to_be_bytes().to_vec();
        for v in [w, h, 0, 0] {
            d.extend_from_slice(&v.to_be_bytes());
        }
        d.extend_from_slice(&[0, 1, 0, 100, 0, 0]);
        chunk(b"fcTL", &d)
    };
    out.extend(fctl(0, width, height));
    out.extend(chunk(b"IDAT", &zlib_of_zeros(u64::from(width) * 4 + 1)));
    let mut seq = 1;
    for _ in 1..frames {
        out.extend(fctl(seq, 1, 1));
        let mut fdat = (seq + 1).to_be_bytes().to_vec();
        fdat.extend(zlib_of_zeros(5));
        out.extend(chunk(b"fdAT", &fdat));
        seq += 2;
    }
    out.extend(chunk(b"IEND", &[]));
    out
}

/// An animated WebP: a `width` x `height` canvas and `frames` frames of one lossless pixel.
pub fn webp_frames(width: u32, height: u32, frames: u32) -> Vec<u8> {
    let pixel = webp::Encoder::from_rgba(&[0, 0, 0, 255], 1, 1).encode_lossless();
    // The encoder's file is RIFF, WEBP, then the VP8L chunk: keep that chunk.
    let vp8l = pixel[12..].to_vec();
    let riff_chunk = |kind: &[u8; 4], data: &[u8]| {
        let mut c = kind.to_vec();
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(data);
        if data.len() % 2 == 1 {
            c.push(0);
        }
        c
    };
    let le24 = |v: u32| v.to_le_bytes()[..3].to_vec();
    let mut body = b"WEBP".to_vec();
    let mut vp8x = vec![0x02, 0, 0, 0]; // animation
    vp8x.extend(le24(width - 1));
    vp8x.extend(le24(height - 1));
    body.extend(riff_chunk(b"VP8X", &vp8x));
    body.extend(riff_chunk(b"ANIM", &[0, 0, 0, 0, 0, 0]));
    let mut anmf = Vec::new();
    anmf.extend(le24(0));
    anmf.extend(le24(0));
    anmf.extend(le24(0));
    anmf.extend(le24(0));
    anmf.extend(le24(10));
    anmf.push(0);
    anmf.extend_from_slice(&vp8l);
    let frame = riff_chunk(b"ANMF", &anmf);
    for _ in 0..frames {
        body.extend_from_slice(&frame);
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

/// An ISOBMFF box.
fn iso_box(kind: &[u8; 4], content: &[u8]) -> Vec<u8> {
    let mut b = ((content.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(content);
    b
}

/// An AVIF image sequence (no still item) whose track's sample table declares `samples` samples
/// of one byte each, all in one chunk.
pub fn avif_sequence_declared(samples: u32) -> Vec<u8> {
    let full = |v: u8| vec![v, 0, 0, 0];
    let mut ftyp = b"avis".to_vec();
    ftyp.extend_from_slice(&[0, 0, 0, 0]);
    ftyp.extend_from_slice(b"avismsf1iso8mif1miafMA1B");
    let hdlr = [
        full(0),
        vec![0; 4],
        b"pict".to_vec(),
        vec![0; 12],
        b"\0".to_vec(),
    ]
    .concat();
    let mut mdhd = full(0);
    mdhd.extend_from_slice(&[0; 8]);
    mdhd.extend_from_slice(&1000u32.to_be_bytes());
    mdhd.extend_from_slice(&[0; 8]);
    let mut entry = vec![0; 6];
    entry.extend_from_slice(&1u16.to_be_bytes());
    entry.extend_from_slice(&[0; 16]);
    entry.extend_from_slice(&64u16.to_be_bytes());
    entry.extend_from_slice(&64u16.to_be_bytes());
    entry.extend_from_slice(&[0; 50]);
    let stsd = [
        full(0),
        1u32.to_be_bytes().to_vec(),
        iso_box(b"av01", &entry),
    ]
    .concat();
    let stsz = [
        full(0),
        1u32.to_be_bytes().to_vec(),
        samples.to_be_bytes().to_vec(),
    ]
    .concat();
    let stsc = [
        full(0),
        1u32.to_be_bytes().to_vec(),
        1u32.to_be_bytes().to_vec(),
        samples.to_be_bytes().to_vec(),
        1u32.to_be_bytes().to_vec(),
    ]
    .concat();
    let stco = [
        full(0),
        1u32.to_be_bytes().to_vec(),
        0u32.to_be_bytes().to_vec(),
    ]
    .concat();
    let stts = [
        full(0),
        1u32.to_be_bytes().to_vec(),
        samples.to_be_bytes().to_vec(),
        40u32.to_be_bytes().to_vec(),
    ]
    .concat();
    let stbl = [
        iso_box(b"stsd", &stsd),
        iso_box(b"stts", &stts),
        iso_box(b"stsc", &stsc),
        iso_box(b"stsz", &stsz),
        iso_box(b"stco", &stco),
    ]
    .concat();
    let minf = iso_box(b"minf", &iso_box(b"stbl", &stbl));
    let mdia = iso_box(
        b"mdia",
        &[iso_box(b"mdhd", &mdhd), iso_box(b"hdlr", &hdlr), minf].concat(),
    );
    let moov = iso_box(b"moov", &iso_box(b"trak", &mdia));
    [iso_box(b"ftyp", &ftyp), moov].concat()
}

fn crc(kind: &[u8], data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(kind);
    h.update(data);
    h.finalize()
}

/// A PNG chunk: length, type, data, CRC.
pub fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc(kind, data).to_be_bytes());
    out
}

/// IHDR for `width` x `height` at `depth` bits, colour type `color`.
pub fn ihdr(width: u32, height: u32, depth: u8, color: u8, interlaced: bool) -> Vec<u8> {
    let mut d = width.to_be_bytes().to_vec();
    d.extend_from_slice(&height.to_be_bytes());
    d.extend_from_slice(&[depth, color, 0, 0, u8::from(interlaced)]);
    chunk(b"IHDR", &d)
}

/// zlib of `n` zero bytes, made without ever holding or compressing them all: one block of a MiB
/// of zeros is compressed after a sync flush (byte-aligned, and since its matches reach back
/// only into zeros it can follow itself), repeated, and the stream ends with its true Adler-32.
pub fn zlib_of_zeros(n: u64) -> Vec<u8> {
    const BLOCK: usize = 1 << 20;
    let zeros = vec![0u8; BLOCK];
    let mut c = Compress::new(Compression::best(), true);
    let mut pass = |input: &[u8], flush| {
        let mut out = Vec::with_capacity(input.len() / 64 + 1024);
        c.compress_vec(input, &mut out, flush)
            .expect("deflating zeros");
        out
    };
    let blocks = n / BLOCK as u64;
    let tail = (n % BLOCK as u64) as usize;
    let mut out = Vec::new();
    if blocks > 0 {
        out.extend(pass(&zeros, FlushCompress::Sync));
    }
    if blocks > 1 {
        let again = pass(&zeros, FlushCompress::Sync);
        for _ in 1..blocks {
            out.extend_from_slice(&again);
        }
    }
    let mut end = pass(&zeros[..tail], FlushCompress::Finish);
    // The compressor's checksum covers only what it saw; zeros leave a = 1 and b = n mod 65521.
    let adler = ((n % 65521) as u32) << 16 | 1;
    let at = end.len() - 4;
    end[at..].copy_from_slice(&adler.to_be_bytes());
    out.extend(end);
    out
}

fn samples(color: u8) -> u64 {
    match color {
        0 | 3 => 1,
        2 => 3,
        4 => 2,
        _ => 4,
    }
}

/// A whole PNG of zeros (black, or transparent) with `extra` chunks before its data.
pub fn png_of_zeros(width: u32, height: u32, depth: u8, color: u8, extra: &[Vec<u8>]) -> Vec<u8> {
    let row = (u64::from(width) * samples(color) * u64::from(depth)).div_ceil(8) + 1;
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(ihdr(width, height, depth, color, false));
    for c in extra {
        out.extend_from_slice(c);
    }
    out.extend(chunk(b"IDAT", &zlib_of_zeros(row * u64::from(height))));
    out.extend(chunk(b"IEND", &[]));
    out
}

/// A PNG whose header declares `width` x `height` RGB and whose data holds one row.
fn png_declared(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(ihdr(width, height, 8, 2, false));
    out.extend(chunk(b"IDAT", &zlib_of_zeros(u64::from(width) * 3 + 1)));
    out.extend(chunk(b"IEND", &[]));
    out
}

/// zlib of zeros about `compressed` bytes long (deflate packs zeros about 1000 to 1).
fn zeros_compressed_to(compressed: u64) -> Vec<u8> {
    zlib_of_zeros(compressed * 1000)
}

fn iccp_bomb(compressed: u64) -> Vec<u8> {
    let mut d = b"bomb\0\0".to_vec();
    d.extend(zeros_compressed_to(compressed));
    d
}

fn ztxt_bomb(compressed: u64) -> Vec<u8> {
    let mut d = b"Comment\0\0".to_vec();
    d.extend(zeros_compressed_to(compressed));
    d
}

/// A big-endian TIFF of one IFD of `entries` (tag, type, count, value-or-offset), with `data`
/// after it (offsets count from the TIFF start).
fn tiff(entries: &[(u16, u16, u32, u32)], data: &[u8]) -> Vec<u8> {
    let mut t = b"MM\0\x2a\0\0\0\x08".to_vec();
    t.extend_from_slice(&(entries.len() as u16).to_be_bytes());
    for &(tag, kind, count, value) in entries {
        t.extend_from_slice(&tag.to_be_bytes());
        t.extend_from_slice(&kind.to_be_bytes());
        t.extend_from_slice(&count.to_be_bytes());
        t.extend_from_slice(&value.to_be_bytes());
    }
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(data);
    t
}

/// 4 MB of EXIF: one undefined-type entry over all of it.
fn big_exif(len: usize) -> Vec<u8> {
    let header = 8 + 2 + 12 + 4;
    tiff(
        &[(0x927C, 7, (len - header) as u32, header as u32)],
        &vec![0u8; len - header],
    )
}

/// Make and Model as 30,000 NULs each (ASCII type 2), sharing the same bytes.
fn nul_strings_exif() -> Vec<u8> {
    let header = 8 + 2 + 2 * 12 + 4;
    tiff(
        &[
            (0x010F, 2, 30_000, header as u32),
            (0x0110, 2, 30_000, header as u32),
        ],
        &vec![0u8; 30_000],
    )
}

/// `jpeg` with an APP1 EXIF segment holding `tiff`.
pub fn with_app1_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend(app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn compress(
    width: usize,
    height: usize,
    progressive: bool,
    subsamp: turbojpeg::Subsamp,
) -> Vec<u8> {
    // A smooth gradient, so the file stays small.
    let mut pixels = vec![0u8; width * height * 3];
    for (i, px) in pixels.chunks_exact_mut(3).enumerate() {
        let (x, y) = (i % width, i / width);
        px.copy_from_slice(&[(x * 255 / width) as u8, (y * 255 / height) as u8, 96]);
    }
    let mut c = turbojpeg::Compressor::new().expect("a compressor");
    c.set_quality(30).expect("quality");
    c.set_subsamp(subsamp).expect("subsampling");
    c.set_progressive(progressive).expect("progressive");
    c.compress_to_vec(turbojpeg::Image {
        pixels: pixels.as_slice(),
        width,
        pitch: width * 3,
        height,
        format: turbojpeg::PixelFormat::RGB,
    })
    .expect("a JPEG")
}

/// A 320x240 JPEG, baseline or progressive.
pub fn small_jpeg(progressive: bool) -> Vec<u8> {
    compress(320, 240, progressive, turbojpeg::Subsamp::Sub2x2)
}

fn big_progressive_jpeg(width: usize, height: usize) -> Vec<u8> {
    compress(width, height, true, turbojpeg::Subsamp::None)
}

/// A small JPEG whose frame header declares `width` x `height`.
fn jpeg_declared(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = small_jpeg(false);
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline frame header");
    bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    bytes
}

/// `jpeg` with its last scan repeated until it has `scans` scans.
fn many_scans(jpeg: &[u8], scans: usize) -> Vec<u8> {
    let last = jpeg
        .windows(2)
        .rposition(|w| w == [0xFF, 0xDA])
        .expect("a scan");
    let eoi = jpeg.len() - 2;
    let have = jpeg.windows(2).filter(|w| *w == [0xFF, 0xDA]).count();
    let mut out = jpeg[..eoi].to_vec();
    for _ in have..scans {
        out.extend_from_slice(&jpeg[last..eoi]);
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}
