//! The first `n` images of a UTKFace archive written into a folder, for the benchmarks that time
//! whole-folder runs (included with `#[path]` by those that need it: it brings tar and flate2).

use std::io::Read;
use std::path::Path;

/// Writes the first `n` images of the `.tar.gz` at `archive` into `dir`; returns how many.
pub fn extract(archive: &Path, dir: &Path, n: usize) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut written = 0;
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let is_image = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("png"));
        if !entry.header().entry_type().is_file() || !is_image {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        std::fs::write(dir.join(path.file_name().unwrap()), bytes).unwrap();
        written += 1;
        if written == n {
            break;
        }
    }
    written
}
