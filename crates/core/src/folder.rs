//! What a folder the user names for our output already holds, for the commands that write only
//! into a new or empty one (`train`, `eval`, `compare`).

use std::path::Path;

/// Files a file browser leaves in any folder it shows (`.DS_Store` as soon as the folder is
/// opened in Finder): not the user's data, and no reason to refuse the folder.
pub const OS_LITTER: [&str; 3] = [".DS_Store", "Thumbs.db", "desktop.ini"];

/// The names in `dir`, sorted, leaving out [`OS_LITTER`]; `None` if `dir` does not exist. A
/// path that is not a folder is an error of kind `NotADirectory`.
pub fn entries(dir: &Path) -> std::io::Result<Option<Vec<String>>> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(_) if dir.exists() && !dir.is_dir() => {
            return Err(std::io::ErrorKind::NotADirectory.into());
        }
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in read {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !OS_LITTER.contains(&name.as_str()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(Some(names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn litter_is_left_out_and_files_are_not_folders() {
        let dir = std::env::temp_dir().join(format!("gc-core-folder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(entries(&dir).unwrap(), None);
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(entries(&dir).unwrap(), Some(vec![]));
        std::fs::write(dir.join(".DS_Store"), b"").unwrap();
        assert_eq!(entries(&dir).unwrap(), Some(vec![]));
        std::fs::write(dir.join("b"), b"").unwrap();
        std::fs::write(dir.join("a"), b"").unwrap();
        assert_eq!(entries(&dir).unwrap(), Some(vec!["a".into(), "b".into()]));
        let err = entries(&dir.join("a")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotADirectory);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
