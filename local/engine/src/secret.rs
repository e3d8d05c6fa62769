//! The engine's own secret: 32 random bytes in `DATA_DIR/secret.key` (mode 0600), made on first
//! start and kept, so cursors (and signed URLs) outlive a restart. It never leaves the data dir.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;

const LEN: usize = 32;

/// Reads the data dir's secret, making it first if there is none.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<[u8; LEN]> {
    let path = data_dir.join("secret.key");
    let mut key = [0u8; LEN];
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            file.write_all(&key)?;
            file.sync_all()?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mut file = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let mut read = Vec::new();
            file.read_to_end(&mut read)?;
            anyhow::ensure!(
                read.len() == LEN,
                "{} is not a {LEN}-byte key; remove it to make a new one",
                path.display()
            );
            key.copy_from_slice(&read);
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}
