//! A project folder: `citybooks.toml` plus (by default) the local store beside it.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};
use crate::store::{Store, StoreError};

/// The name of a project's configuration file.
pub const CONFIG_FILE: &str = "citybooks.toml";

/// Why a project cannot be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("{dir} is not a citybooks project (no {CONFIG_FILE}); create one with `citybooks init {dir}` or point --project / CITYBOOKS_PROJECT at one")]
    NotAProject { dir: String },
    #[error("{dir} is already a citybooks project ({CONFIG_FILE} exists); use it, or pick another folder")]
    AlreadyAProject { dir: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ProjectError + '_ {
    move |source| ProjectError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// An opened project.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project folder (absolute).
    pub dir: PathBuf,
    pub config: Config,
}

impl Project {
    /// Creates a project in `dir` (made if missing): a commented `citybooks.toml` and,
    /// for a local store, the store folder.
    pub fn init(dir: &Path) -> Result<Project, ProjectError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let file = dir.join(CONFIG_FILE);
        if file.exists() {
            return Err(ProjectError::AlreadyAProject {
                dir: dir.display().to_string(),
            });
        }
        std::fs::write(&file, Config::commented_default()).map_err(io_err(&file))?;
        let project = Project::open(dir)?;
        if let Some(local) = project.local_store_dir() {
            std::fs::create_dir_all(&local).map_err(io_err(&local))?;
        }
        Ok(project)
    }

    /// Opens the project in `dir`, applying `CITYBOOKS_*` overrides from the environment.
    pub fn open(dir: &Path) -> Result<Project, ProjectError> {
        let file = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ProjectError::NotAProject {
                    dir: dir.display().to_string(),
                })
            }
            Err(e) => return Err(io_err(&file)(e)),
        };
        let config = Config::parse(&file, &text, std::env::vars())?;
        let dir = std::path::absolute(dir).map_err(io_err(dir))?;
        Ok(Project { dir, config })
    }

    /// The local store folder, when the store is not S3.
    pub fn local_store_dir(&self) -> Option<PathBuf> {
        let url = self.config.store.url.as_str();
        if url.contains("://") && !url.starts_with("file://") {
            return None;
        }
        let path = Path::new(url.strip_prefix("file://").unwrap_or(url));
        Some(if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        })
    }

    /// Connects to the project's store.
    pub fn store(&self) -> Result<Store, ProjectError> {
        Ok(Store::open(&self.config.store, self.local_store_dir())?)
    }
}
