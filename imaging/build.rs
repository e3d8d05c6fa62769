//! Compiles `src/jpeg_memory.c`, libjpeg's memory functions (why: that file's comment), and
//! `src/jpeg_decode.c`, the JPEG decode, against the headers of the libjpeg-turbo that
//! turbojpeg-sys builds. `src/jpeg_memory.rs` makes sure it
//! is linked.
fn main() {
    println!("cargo:rerun-if-changed=src/jpeg_memory.c");
    println!("cargo:rerun-if-changed=src/jpeg_decode.c");
    let include = std::env::var("DEP_TURBOJPEG_INCLUDE")
        .expect("turbojpeg-sys reports libjpeg-turbo's include directory");
    let mut build = cc::Build::new();
    for dir in include.split(',') {
        build.include(dir);
    }
    build
        .file("src/jpeg_memory.c")
        .file("src/jpeg_decode.c")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("jpeg_memory");
}
