//! Fuzzing the decode entry point with real photos damaged at random: flipped bytes, cut short,
//! spliced, header bytes overwritten. Every input gives renditions within their boxes or an
//! ImageError, never a panic. `make test` runs a bounded number of cases; `make fuzz` many more
//! (PROPTEST_CASES).

use imaging::{render, Settings, Size};
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[derive(Debug, Clone)]
enum Damage {
    Flip { at: usize, mask: u8 },
    Cut { at: usize },
    Overwrite { at: usize, bytes: Vec<u8> },
    Splice { at: usize, len: usize, from: usize },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        any::<usize>().prop_map(|at| Damage::Cut { at }),
        // The first kilobyte holds the headers (SOF, IHDR, EXIF): hit it often.
        (0usize..1024, prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Damage::Overwrite { at, bytes }),
        (any::<usize>(), 1usize..4096, any::<usize>()).prop_map(|(at, len, from)| Damage::Splice {
            at,
            len,
            from
        }),
    ]
}

fn apply(mut bytes: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for d in damages {
        if bytes.is_empty() {
            break;
        }
        let n = bytes.len();
        match d {
            Damage::Flip { at, mask } => bytes[at % n] ^= mask,
            Damage::Cut { at } => bytes.truncate(at % n),
            Damage::Overwrite { at, bytes: b } => {
                for (i, v) in b.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(at + i) {
                        *slot = *v;
                    }
                }
            }
            Damage::Splice { at, len, from } => {
                let from = from % n;
                let chunk: Vec<u8> = bytes[from..(from + len).min(n)].to_vec();
                let at = at % n;
                bytes.splice(at..at, chunk);
            }
        }
    }
    bytes
}

proptest! {
    #[test]
    fn damaged_photos_render_or_fail_cleanly(
        photo in prop::sample::select(vec!["FreshFlower.jpg", "GreenMeadow.jpg", "Aqua.jpg", "Spring.png"]),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let settings = Settings::default();
        let bytes = apply(fixture(photo), &damages);
        if let Ok(rendered) = render(&bytes, &settings) {
            prop_assert_eq!(rendered.renditions.len(), settings.renditions.len());
            for out in &rendered.renditions {
                let img = image::load_from_memory(&out.bytes).unwrap();
                let (bw, bh) = match out.spec.size {
                    Size::Fit { width, height } => (width, height),
                    Size::Width(width) => (width, u32::MAX),
                };
                prop_assert!(img.width() <= bw && img.height() <= bh, "{}: {}x{}", out.spec.name, img.width(), img.height());
            }
        }
    }
}
