//! `hf:OWNER/NAME[@REVISION]`: a model's files in the local Hugging Face cache, downloaded once.
//!
//! The cache is the one `huggingface_hub` (Python) and `hf-hub` (Rust) share:
//! `{HF_HUB_CACHE or HF_HOME/hub or ~/.cache/huggingface/hub}/models--OWNER--NAME/` with
//! `refs/REVISION` (a file holding the commit hash), `snapshots/COMMIT/FILE` (links into `blobs/`).
//! A model a user already has there, from Python or from us, is used as it is.
//!
//! The lookup is ours (small, below), the download is `hf-hub`'s: hf-hub 0.4 has no offline mode,
//! its cache lookup reads `refs/` only (so a commit hash as revision always goes to the network),
//! and it knows neither `HF_HUB_CACHE` nor `XDG_CACHE_HOME`. We resolve the revision from the cache
//! first and never build a network client when `HF_HUB_OFFLINE` is set or when the cache already
//! has every file: a model is downloaded once and read from the cache afterwards. Unlike Python we
//! do not ask the Hub whether `main` moved since; pin a revision, or delete the cache entry, to
//! update.

use crate::weights::{SAFETENSORS_FILE, SAFETENSORS_INDEX_FILE, shards_of_index};
use gc_core::ModelError;
use std::path::{Path, PathBuf};

/// The files a model needs besides its weights.
pub const CONFIG_FILE: &str = "config.json";
pub const PREPROCESSOR_FILE: &str = "preprocessor_config.json";

/// Where the cache is and whether the network may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// The hub cache directory (the one holding `models--*`).
    pub cache_dir: PathBuf,
    /// Use the cache only: a model that is not there is an error, never a download.
    pub offline: bool,
    /// The Hub's address (`HF_ENDPOINT`), `https://huggingface.co` when `None`.
    pub endpoint: Option<String>,
    /// An access token for private or gated models (`HF_TOKEN`, else the cache's `token` file,
    /// which hf-hub reads itself).
    pub token: Option<String>,
}

impl HubOptions {
    /// The settings `huggingface_hub` takes from the environment: `HF_HUB_CACHE`, `HF_HOME`,
    /// `XDG_CACHE_HOME`, `HF_HUB_OFFLINE`, `HF_ENDPOINT`, `HF_TOKEN`.
    pub fn from_env() -> HubOptions {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let cache_dir = if let Some(dir) = var("HF_HUB_CACHE") {
            PathBuf::from(dir)
        } else if let Some(home) = var("HF_HOME") {
            PathBuf::from(home).join("hub")
        } else if let Some(xdg) = var("XDG_CACHE_HOME") {
            PathBuf::from(xdg).join("huggingface").join("hub")
        } else {
            let home = var("HOME")
                .or_else(|| var("USERPROFILE"))
                .unwrap_or_default();
            PathBuf::from(home)
                .join(".cache")
                .join("huggingface")
                .join("hub")
        };
        HubOptions {
            cache_dir,
            offline: var("HF_HUB_OFFLINE").is_some_and(|v| is_true(&v)),
            endpoint: var("HF_ENDPOINT"),
            token: var("HF_TOKEN"),
        }
    }
}

/// `huggingface_hub`'s reading of a boolean environment variable.
fn is_true(v: &str) -> bool {
    matches!(v.to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE")
}

/// Splits `hf:OWNER/NAME[@REVISION]` into the repository and the revision; `None` when the text
/// does not start with `hf:`.
pub fn parse_hub_spec(spec: &str) -> Option<(String, Option<String>)> {
    let rest = spec.strip_prefix("hf:")?;
    Some(match rest.split_once('@') {
        Some((repo, rev)) => (repo.to_string(), Some(rev.to_string())),
        None => (rest.to_string(), None),
    })
}

/// Refuses repository ids and revisions that are not the Hub's, and anything that could lead
/// outside the cache directory.
fn check_names(repo: &str, revision: &str) -> Result<(), ModelError> {
    let bad = |reason: String| {
        Err(ModelError::File {
            path: format!("hf:{repo}@{revision}"),
            reason,
        })
    };
    let parts: Vec<&str> = repo.split('/').collect();
    let part_ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '-'])
            && !p.ends_with(['.', '-'])
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if parts.len() > 2
        || !parts.iter().all(|p| part_ok(p))
        || repo.contains("--")
        || repo.contains("..")
        || repo.len() > 96
    {
        return bad(format!(
            "{repo:?} is not a Hub repository id (OWNER/NAME: letters, digits, '-', '_', '.')"
        ));
    }
    if revision.is_empty()
        || revision.starts_with('/')
        || revision
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        || revision.contains('\\')
    {
        return bad(format!(
            "{revision:?} is not a revision (branch, tag or commit)"
        ));
    }
    Ok(())
}

/// `models--OWNER--NAME` inside the cache.
fn repo_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

/// The snapshot directory a revision names in the cache, if the cache knows it: `refs/REVISION`
/// holds a commit hash; a revision that is itself a commit hash names `snapshots/REVISION`.
pub fn cached_snapshot(cache: &Path, repo: &str, revision: &str) -> Option<PathBuf> {
    let dir = repo_dir(cache, repo);
    let commit = match std::fs::read_to_string(dir.join("refs").join(revision)) {
        Ok(text) => text.trim().to_string(),
        Err(_) => revision.to_string(),
    };
    if commit.is_empty() || commit.contains(['/', '\\']) || commit == ".." {
        return None;
    }
    let snapshot = dir.join("snapshots").join(commit);
    snapshot.is_dir().then_some(snapshot)
}

/// The files of a snapshot that a model needs and that are missing from it: config, preprocessor
/// config, and either `model.safetensors` or the index with all its shards.
fn missing_files(snapshot: &Path) -> Vec<String> {
    let mut missing: Vec<String> = [CONFIG_FILE, PREPROCESSOR_FILE]
        .iter()
        .filter(|f| !snapshot.join(f).is_file())
        .map(|f| f.to_string())
        .collect();
    if !snapshot.join(SAFETENSORS_FILE).is_file() {
        let index = snapshot.join(SAFETENSORS_INDEX_FILE);
        match shards_of_index(&index) {
            Ok(shards) => {
                missing.extend(shards.into_iter().filter(|s| !snapshot.join(s).is_file()))
            }
            Err(_) => missing.push(SAFETENSORS_FILE.to_string()),
        }
    }
    missing
}

/// The local directory holding `repo` at `revision` (default `main`): from the cache when it is
/// complete there, else downloaded into it (unless offline).
pub fn fetch(repo: &str, revision: Option<&str>, opts: &HubOptions) -> Result<PathBuf, ModelError> {
    let revision = revision.unwrap_or("main");
    check_names(repo, revision)?;
    let shown = format!("hf:{repo}@{revision}");
    if let Some(snapshot) = cached_snapshot(&opts.cache_dir, repo, revision) {
        let missing = missing_files(&snapshot);
        if missing.is_empty() {
            tracing::debug!(model = %shown, snapshot = %snapshot.display(), "found in the Hugging Face cache");
            return Ok(snapshot);
        }
        tracing::info!(model = %shown, ?missing, "in the cache but incomplete");
    }
    if opts.offline {
        return Err(ModelError::File {
            path: shown,
            reason: format!(
                "not in the Hugging Face cache {} (or incomplete there), and HF_HUB_OFFLINE is set: \
                 run once with network access to download it",
                opts.cache_dir.display()
            ),
        });
    }
    download(repo, revision, opts)
}

/// Downloads the model's files with hf-hub into the cache; returns the snapshot directory.
fn download(repo: &str, revision: &str, opts: &HubOptions) -> Result<PathBuf, ModelError> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};

    let shown = format!("hf:{repo}@{revision}");
    let fail = |file: &str, e: &dyn std::fmt::Display| ModelError::File {
        path: format!("{shown}/{file}"),
        reason: format!("download failed: {e}"),
    };
    let mut builder =
        ApiBuilder::from_cache(Cache::new(opts.cache_dir.clone())).with_progress(false);
    if let Some(endpoint) = &opts.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    if opts.token.is_some() {
        builder = builder.with_token(opts.token.clone());
    }
    let api = builder.build().map_err(|e| fail(CONFIG_FILE, &e))?;
    tracing::info!(model = %shown, cache = %opts.cache_dir.display(), "downloading from the Hugging Face Hub");

    // The first file fixes the commit; the others are fetched at that commit, so that a push to
    // the branch in between cannot mix two versions.
    let first = api
        .repo(Repo::with_revision(
            repo.to_string(),
            RepoType::Model,
            revision.to_string(),
        ))
        .get(CONFIG_FILE)
        .map_err(|e| fail(CONFIG_FILE, &e))?;
    let snapshot = first
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| fail(CONFIG_FILE, &"no snapshot directory"))?;
    let commit = snapshot
        .file_name()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|| revision.to_string());
    let at_commit = api.repo(Repo::with_revision(
        repo.to_string(),
        RepoType::Model,
        commit,
    ));
    at_commit
        .get(PREPROCESSOR_FILE)
        .map_err(|e| fail(PREPROCESSOR_FILE, &e))?;
    if let Err(single) = at_commit.get(SAFETENSORS_FILE) {
        // Large models are sharded: an index and its shards instead of one file.
        let index = at_commit.get(SAFETENSORS_INDEX_FILE).map_err(|_| {
            fail(
                SAFETENSORS_FILE,
                &format!("{single} (and no {SAFETENSORS_INDEX_FILE} either: gc-hf reads safetensors weights only; a repository with only pytorch_model.bin may have a safetensors conversion under refs/pr/N)"),
            )
        })?;
        for shard in shards_of_index(&index)? {
            at_commit.get(&shard).map_err(|e| fail(&shard, &e))?;
        }
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            parse_hub_spec("hf:rizvandwiki/gender-classification"),
            Some(("rizvandwiki/gender-classification".into(), None))
        );
        assert_eq!(
            parse_hub_spec("hf:a/b@refs/pr/3"),
            Some(("a/b".into(), Some("refs/pr/3".into())))
        );
        assert_eq!(parse_hub_spec("models/x"), None);
    }

    #[test]
    fn names_that_leave_the_cache_are_refused() {
        assert!(check_names("owner/name", "main").is_ok());
        assert!(check_names("owner/name.v2_x", "refs/pr/1").is_ok());
        assert!(check_names("../x", "main").is_err());
        assert!(check_names("a/b/c", "main").is_err());
        assert!(check_names("a--b/c", "main").is_err());
        assert!(check_names("a/b", "../../etc").is_err());
        assert!(check_names("a/b", "").is_err());
    }

    #[test]
    fn offline_flag_spellings() {
        for v in ["1", "true", "ON", "yes"] {
            assert!(is_true(v));
        }
        for v in ["0", "false", "off", ""] {
            assert!(!is_true(v));
        }
    }
}
