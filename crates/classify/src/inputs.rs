//! Turning what the user typed (files, folders, `-` for a list on stdin) into an ordered list of image
//! paths, keeping every problem as an item of its own so that one bad path never stops a batch.

use std::io::BufRead;
use std::path::{Path, PathBuf};

/// One input, in the order given: a path to classify, or the reason it cannot be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    /// Set when the path is known to be unusable before decoding.
    pub problem: Option<String>,
}

/// Files a folder walk picks up (by extension, case-insensitive); anything else in a folder is not an
/// image the user asked about.
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"];

pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Expands `args`. A folder without `recursive` becomes a problem item; `-` reads one path per line
/// from `stdin`.
pub fn expand(args: &[PathBuf], recursive: bool, stdin: &mut dyn BufRead) -> Vec<Input> {
    let mut out = Vec::new();
    for arg in args {
        if arg.as_os_str() == "-" {
            read_list(stdin, recursive, &mut out);
        } else {
            push_path(arg, recursive, &mut out);
        }
    }
    out
}

/// Reads a list of paths, one per line (a folder too, with `recursive`), as if each were an
/// argument. Lines are bytes, not text: a name that is not UTF-8 is a path like any other (one
/// such line used to end the list silently). A read error ends the list as a problem item.
fn read_list(stdin: &mut dyn BufRead, recursive: bool, out: &mut Vec<Input>) {
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                let name = line.strip_suffix(b"\n").unwrap_or(&line);
                let name = name.strip_suffix(b"\r").unwrap_or(name);
                if !name.is_empty() {
                    push_path(&path_from_bytes(name), recursive, out);
                }
            }
            Err(e) => {
                out.push(Input {
                    path: PathBuf::from("-"),
                    problem: Some(format!("cannot read the list of paths on stdin: {e}")),
                });
                return;
            }
        }
    }
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

/// Elsewhere paths are not bytes; a name that is not UTF-8 keeps its bytes shown as U+FFFD and
/// fails as a missing file, named.
#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// A file name or path as text: bytes that are not UTF-8 written `\xNN` and a backslash `\\`
/// (as `ls -b` writes them), so that two names stay two (in sort's index, which a resumed run
/// matches photos by, and in predict's output, where a name can be mapped back to its file).
/// `to_string_lossy` would make names differing in such bytes both `\u{FFFD}`; without the
/// doubled backslash, a file named `a\xff.jpg` in so many letters was taken for `a` + byte 0xFF.
#[cfg(unix)]
pub fn path_text(name: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        for part in chunk.valid().split_inclusive('\\') {
            out.push_str(part);
            if part.ends_with('\\') {
                out.push('\\');
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(not(unix))]
pub fn path_text(name: &std::ffi::OsStr) -> String {
    name.to_string_lossy().into_owned()
}

/// [`path_text`] for a line of text output: control characters written `\xNN` (`\u{NN}` above
/// ASCII) too. A newline in a file name would otherwise split a result over two lines, and an
/// escape sequence would reach the terminal. JSON output escapes them by itself and keeps
/// [`path_text`].
pub fn path_shown(name: &std::ffi::OsStr) -> String {
    let text = path_text(name);
    if !text.chars().any(char::is_control) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

pub use gc_dataset::source::skip_link_loop;

/// Why a folder walk could not use an entry, in the words `decode` uses for a file given alone.
pub fn walk_error_reason(err: &walkdir::Error) -> String {
    match err.io_error() {
        Some(io) if io.kind() == std::io::ErrorKind::NotFound => {
            "no such file (a symbolic link to nothing?)".into()
        }
        Some(io) if io.kind() == std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        Some(io) => io.to_string(),
        None => err.to_string(),
    }
}

/// A file as it is; a folder's images with `recursive`, else the folder as a problem.
fn push_path(arg: &Path, recursive: bool, out: &mut Vec<Input>) {
    if !arg.is_dir() {
        out.push(Input {
            path: arg.to_path_buf(),
            problem: None,
        });
        return;
    }
    if !recursive {
        out.push(Input {
            path: arg.to_path_buf(),
            problem: Some("is a directory (use --recursive to classify the images in it)".into()),
        });
        return;
    }
    let mut found = 0;
    for entry in walkdir::WalkDir::new(arg)
        .follow_links(true)
        .sort_by_file_name()
    {
        match entry {
            Ok(e) if e.file_type().is_file() && has_image_extension(e.path()) => {
                found += 1;
                out.push(Input {
                    path: e.into_path(),
                    problem: None,
                });
            }
            Ok(_) => {}
            Err(err) if skip_link_loop(&err) => {}
            Err(err) => out.push(Input {
                path: err
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| arg.to_path_buf()),
                problem: Some(walk_error_reason(&err)),
            }),
        }
    }
    if found == 0 {
        tracing::warn!("{}: no image files found", arg.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_names_keep_to_one_line_and_out_of_the_terminal() {
        use std::ffi::OsStr;
        assert_eq!(path_shown(OsStr::new("photo é.jpg")), "photo é.jpg");
        assert_eq!(
            path_shown(OsStr::new("a\nb\tc\u{1b}[31m\u{7f}\u{85}.jpg")),
            "a\\x0ab\\x09c\\x1b[31m\\x7f\\u{85}.jpg"
        );
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            assert_eq!(
                path_shown(OsStr::from_bytes(b"x\xff\n.jpg")),
                "x\\xff\\x0a.jpg"
            );
            // The name `x\xff.jpg` in so many letters is not the byte 0xFF.
            assert_eq!(path_text(OsStr::new(r"x\xff.jpg")), r"x\\xff.jpg");
            assert_eq!(path_text(OsStr::new(r"\\a\")), r"\\\\a\\");
        }
    }

    #[test]
    fn folders_need_recursive_and_stdin_lists_paths() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("b.jpg"), b"x").unwrap();
        std::fs::write(sub.join("a.PNG"), b"x").unwrap();
        std::fs::write(sub.join("notes.txt"), b"x").unwrap();

        let flat = expand(std::slice::from_ref(&sub), false, &mut &b""[..]);
        assert_eq!(flat.len(), 1);
        assert!(flat[0].problem.as_ref().unwrap().contains("--recursive"));

        let deep = expand(std::slice::from_ref(&sub), true, &mut &b""[..]);
        let names: Vec<_> = deep
            .iter()
            .map(|i| i.path.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a.PNG", "b.jpg"]);

        let list = format!("{}\n\n/nope.jpg\n", sub.join("b.jpg").display());
        let from_stdin = expand(&[PathBuf::from("-")], false, &mut list.as_bytes());
        assert_eq!(from_stdin.len(), 2);
        assert_eq!(from_stdin[1].path, PathBuf::from("/nope.jpg"));

        // A folder listed on stdin is opened like one given as an argument.
        let list = format!("{}\n", sub.display());
        let listed = expand(&[PathBuf::from("-")], true, &mut list.as_bytes());
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed.iter().all(|i| i.problem.is_none()));
        let listed = expand(&[PathBuf::from("-")], false, &mut list.as_bytes());
        assert!(listed[0].problem.as_ref().unwrap().contains("--recursive"));

        // A name that is not UTF-8 and the lines after it are read; a read error is named.
        #[cfg(unix)]
        {
            let list = b"a.jpg\r\ncaf\xe9.jpg\nz.jpg\n";
            let read = expand(&[PathBuf::from("-")], false, &mut &list[..]);
            let names: Vec<_> = read.iter().map(|i| i.path.as_os_str().len()).collect();
            assert_eq!(names, [5, 8, 5], "{read:?}");
            use std::os::unix::ffi::OsStrExt;
            assert_eq!(read[1].path.as_os_str().as_bytes(), b"caf\xe9.jpg");
        }
        struct Broken;
        impl std::io::Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(21))
            }
        }
        let mut broken = std::io::BufReader::new(Broken);
        let read = expand(&[PathBuf::from("-")], false, &mut broken);
        assert_eq!(read.len(), 1);
        assert!(
            read[0].problem.as_ref().unwrap().contains("stdin"),
            "{read:?}"
        );

        // A link to nothing, met in a folder, is named as a file given alone would be.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("gone.jpg", sub.join("c.jpg")).unwrap();
            let deep = expand(std::slice::from_ref(&sub), true, &mut &b""[..]);
            let broken = deep.iter().find(|i| i.path.ends_with("c.jpg")).unwrap();
            assert_eq!(
                broken.problem.as_deref(),
                Some("no such file (a symbolic link to nothing?)")
            );

            // A link to a folder above (here the folder itself) is skipped, not a failed image.
            std::os::unix::fs::symlink(".", sub.join("self")).unwrap();
            let deep = expand(std::slice::from_ref(&sub), true, &mut &b""[..]);
            assert_eq!(deep.len(), 3, "{deep:?}");
            assert!(deep.iter().all(|i| !i.path.ends_with("self")), "{deep:?}");
        }
    }
}
