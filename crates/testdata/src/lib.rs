//! The tests and benchmarks read real data and models from `shared/` beside the repository
//! (`../shared/` from its root), never from copies in it. This crate finds that folder once for
//! all of them, wherever the workspace is checked out (a CI clone, a worktree).

use std::path::PathBuf;

/// `shared/` beside the repository: the first folder above this crate that holds `shared/data`
/// and `shared/models`. Panics with what is missing, since no test can run without it.
pub fn shared_dir() -> PathBuf {
    // Where the running test's crate is, as cargo tells the test at run time, before where this
    // crate was compiled: cargo reuses a compiled crate across checkouts of the same workspace
    // when its sources are older than the build (one shared target directory), and the
    // compile-time path then names the other checkout.
    let here = crate_dir(env!("CARGO_MANIFEST_DIR"));
    let dir = here
        .ancestors()
        .map(|a| a.join("shared"))
        .find(|d| d.join("data").is_dir() && d.join("models").is_dir())
        .unwrap_or_else(|| {
            panic!(
                "no shared/ with data/ and models/ above {}: the tests and benchmarks need the \
                 UTKFace archives, models and photos in ../shared/ beside the repository",
                here.display()
            )
        });
    dir.canonicalize().unwrap_or(dir)
}

/// The folder of the running test's or benchmark's crate, for its fixtures and scripts: cargo's
/// run-time `CARGO_MANIFEST_DIR` (see [`shared_dir`] for why it comes first), else `compiled`,
/// the caller's `env!("CARGO_MANIFEST_DIR")`.
pub fn crate_dir(compiled: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(compiled), PathBuf::from)
}

/// `shared/REL`, which must exist (`data/utkface-aligned-64px.tar.gz`, `models/detect/...`,
/// `photos/group-6-people.jpg`).
pub fn shared(rel: &str) -> PathBuf {
    let path = shared_dir().join(rel);
    assert!(
        path.exists(),
        "{} is missing: the tests and benchmarks read it from ../shared/",
        path.display()
    );
    path
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shared_folder_is_found_and_a_missing_file_is_named() {
        assert!(super::shared("data").is_dir());
        let err =
            std::panic::catch_unwind(|| super::shared("data/no-such-archive.tar.gz")).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("no-such-archive.tar.gz is missing"), "{msg}");
    }
}
