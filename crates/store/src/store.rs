//! The object store behind a project: a local folder or S3, through `object_store`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::{AsyncRead, AsyncReadExt};
use url::Url;

use crate::config::StoreConfig;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store URL {url:?}: {message}")]
    BadUrl { url: String, message: String },
    #[error("store {store}: {source}")]
    ObjectStore {
        store: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Size of one part of a multipart upload (S3 needs at least 5 MiB).
const PART_SIZE: usize = 8 << 20;

/// An S3 client for `bucket`: the standard AWS variables, overridden by `options` (keys
/// of `object_store`'s `AmazonS3ConfigKey`, as [`Store::storage_options`] gives them). The
/// one way citybooks builds an S3 client, for its own files and for Delta's.
pub fn s3_client(
    bucket: &str,
    options: &HashMap<String, String>,
) -> object_store::Result<object_store::aws::AmazonS3> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for (k, v) in options {
        builder = builder.with_config(k.parse()?, v);
    }
    builder.build()
}

/// A project's object store, rooted at its URL.
#[derive(Debug, Clone)]
pub struct Store {
    root: Url,
    local_dir: Option<PathBuf>,
    inner: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    options: HashMap<String, String>,
}

impl Store {
    /// Connects to the store the configuration names. `local_dir` is the resolved folder
    /// of a local store (None for S3).
    pub fn open(config: &StoreConfig, local_dir: Option<PathBuf>) -> Result<Store, StoreError> {
        let bad = |message: String| StoreError::BadUrl {
            url: config.url.clone(),
            message,
        };
        match local_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
                let dir = dir.canonicalize().map_err(|source| StoreError::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
                let root = Url::from_directory_path(&dir)
                    .map_err(|_| bad(format!("{} is not an absolute folder", dir.display())))?;
                let inner = LocalFileSystem::new_with_prefix(&dir).map_err(|source| {
                    StoreError::ObjectStore {
                        store: root.to_string(),
                        source,
                    }
                })?;
                Ok(Store {
                    root,
                    local_dir: Some(dir),
                    inner: Arc::new(inner),
                    prefix: ObjectPath::default(),
                    options: HashMap::new(),
                })
            }
            None => {
                let mut root = Url::parse(&config.url).map_err(|e| bad(e.to_string()))?;
                if root.scheme() != "s3" {
                    return Err(bad(format!(
                        "scheme {:?} is not supported: use a folder or s3://bucket/prefix",
                        root.scheme()
                    )));
                }
                let bucket = root
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| bad("no bucket".into()))?
                    .to_string();
                if !root.path().ends_with('/') {
                    let p = format!("{}/", root.path());
                    root.set_path(&p);
                }
                let prefix = ObjectPath::from(root.path().trim_matches('/'));
                let mut options = HashMap::new();
                let mut set = |k: &str, v: Option<&str>| {
                    if let Some(v) = v {
                        options.insert(k.to_string(), v.to_string());
                    }
                };
                set("aws_endpoint", config.endpoint.as_deref());
                set("aws_region", config.region.as_deref());
                set("aws_access_key_id", config.access_key_id.as_deref());
                set("aws_secret_access_key", config.secret_access_key.as_deref());
                if config.allow_http {
                    set("aws_allow_http", Some("true"));
                }
                let inner =
                    s3_client(&bucket, &options).map_err(|source| StoreError::ObjectStore {
                        store: root.to_string(),
                        source,
                    })?;
                Ok(Store {
                    root,
                    local_dir: None,
                    inner: Arc::new(inner),
                    prefix,
                    options,
                })
            }
        }
    }

    /// The store's root URL (`file:///.../store/` or `s3://bucket/prefix/`).
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The URL of `rel` inside the store (a folder when `rel` ends with `/`).
    pub fn url(&self, rel: &str) -> Url {
        // The root always ends with '/', so join appends.
        self.root.join(rel).unwrap_or_else(|_| self.root.clone())
    }

    /// `s3://bucket/` of an S3 store (None for a local folder): where a query engine
    /// registers [`Store::object_store`] to read the store's files by their URLs.
    pub fn bucket_url(&self) -> Option<Url> {
        if self.local_dir.is_some() {
            return None;
        }
        Url::parse(&format!("s3://{}/", self.root.host_str()?)).ok()
    }

    /// Options Delta Lake needs to reach the store (S3 endpoint, keys, ...).
    pub fn storage_options(&self) -> HashMap<String, String> {
        self.options.clone()
    }

    /// The local folder of a local store.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.local_dir.as_deref()
    }

    /// The object path of `rel` inside the store.
    pub fn path(&self, rel: &str) -> ObjectPath {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }

    /// The underlying `object_store`.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.clone()
    }

    fn err(&self, source: object_store::Error) -> StoreError {
        StoreError::ObjectStore {
            store: self.root.to_string(),
            source,
        }
    }

    /// The part size of a multipart upload: [`PART_SIZE`] on S3; 1 MiB on a local store,
    /// where a part is a write to the staged file, so a live upload touches it at least
    /// every MiB (see [`Store::remove_stale_parts`]).
    pub fn part_size(&self) -> usize {
        if self.local_dir.is_some() {
            1 << 20
        } else {
            PART_SIZE
        }
    }

    /// Streams `reader` to `rel` (multipart on S3); `on_chunk` sees every chunk (for a
    /// content hash). The object appears only once the whole upload has succeeded; on
    /// error the upload is aborted and nothing is visible. Returns the bytes written.
    pub async fn put_stream<R: AsyncRead + Unpin>(
        &self,
        rel: &str,
        mut reader: R,
        mut on_chunk: impl FnMut(&[u8]),
    ) -> Result<u64, StoreError> {
        let path = self.path(rel);
        let upload = self
            .inner
            .put_multipart(&path)
            .await
            .map_err(|e| self.err(e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size());
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(source) => {
                    let _ = writer.abort().await;
                    return Err(StoreError::Io {
                        path: rel.to_string(),
                        source,
                    });
                }
            };
            on_chunk(&buf[..n]);
            if let Err(e) = writer.wait_for_capacity(4).await {
                return Err(self.err(e));
            }
            writer.write(&buf[..n]);
            total += n as u64;
        }
        writer.finish().await.map_err(|e| self.err(e))?;
        Ok(total)
    }

    /// Copies a local file to `rel`, all or nothing. On a local store this is a kernel
    /// copy to a temporary name then a rename; elsewhere a streamed multipart upload.
    pub async fn put_file(&self, rel: &str, source: &std::path::Path) -> Result<u64, StoreError> {
        let io = |path: &std::path::Path| {
            let path = path.display().to_string();
            move |source| StoreError::Io { path, source }
        };
        if let Some(dir) = &self.local_dir {
            let dest = dir.join(rel);
            if let Some(parent) = dest.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(io(parent))?;
            }
            let partial = dest.with_file_name(format!(
                ".{}.partial-{}",
                dest.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                std::process::id()
            ));
            let copied = tokio::fs::copy(source, &partial).await;
            let bytes = match copied {
                Ok(n) => n,
                Err(e) => {
                    let _ = tokio::fs::remove_file(&partial).await;
                    return Err(io(source)(e));
                }
            };
            tokio::fs::rename(&partial, &dest)
                .await
                .map_err(io(&dest))?;
            return Ok(bytes);
        }
        let file = tokio::fs::File::open(source).await.map_err(io(source))?;
        self.put_stream(rel, file, |_| {}).await
    }

    /// A blocking reader of `rel`; call it from a blocking thread (`spawn_blocking`),
    /// never from an async task.
    pub fn blocking_reader(&self, rel: &str) -> Result<Box<dyn std::io::Read + Send>, StoreError> {
        if let Some(dir) = &self.local_dir {
            let file = dir.join(rel);
            let f = std::fs::File::open(&file).map_err(|source| StoreError::Io {
                path: file.display().to_string(),
                source,
            })?;
            return Ok(Box::new(f));
        }
        let handle = tokio::runtime::Handle::current();
        let path = self.path(rel);
        let result = handle
            .block_on(self.inner.get(&path))
            .map_err(|e| self.err(e))?;
        let stream = result.into_stream().map_err(std::io::Error::other);
        let reader = tokio_util::io::StreamReader::new(stream);
        Ok(Box::new(tokio_util::io::SyncIoBridge::new_with_handle(
            reader, handle,
        )))
    }

    /// The whole content of a (small) object.
    pub async fn get(&self, rel: &str) -> Result<bytes::Bytes, StoreError> {
        let got = self
            .inner
            .get(&self.path(rel))
            .await
            .map_err(|e| self.err(e))?;
        got.bytes().await.map_err(|e| self.err(e))
    }

    /// The bytes `range` of `rel` (one ranged GET on S3, a seek and read locally).
    pub async fn get_range(
        &self,
        rel: &str,
        range: std::ops::Range<u64>,
    ) -> Result<bytes::Bytes, StoreError> {
        self.inner
            .get_range(&self.path(rel), range)
            .await
            .map_err(|e| self.err(e))
    }

    /// Whether `rel` exists.
    pub async fn exists(&self, rel: &str) -> Result<bool, StoreError> {
        match self.inner.head(&self.path(rel)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Makes the folder `rel` on a local store (object stores need no folders).
    pub fn ensure_dir(&self, rel: &str) -> Result<(), StoreError> {
        if let Some(dir) = &self.local_dir {
            let path = dir.join(rel);
            std::fs::create_dir_all(&path).map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
        }
        Ok(())
    }

    /// The size of `rel` in bytes.
    pub async fn size(&self, rel: &str) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .head(&self.path(rel))
            .await
            .map_err(|e| self.err(e))?
            .size)
    }

    /// The store-relative path of `url` when it lies inside this store
    /// (`s3://bucket/prefix/raw/a.csv` -> `raw/a.csv`).
    pub fn relative(&self, url: &str) -> Option<String> {
        url.strip_prefix(self.root.as_str()).map(|r| r.to_string())
    }

    /// An async reader of an S3 object outside this store, reached with this store's
    /// endpoint and credentials (`citybooks load s3://other-bucket/file.csv`).
    pub async fn foreign_reader(
        &self,
        url: &str,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>, StoreError> {
        let bad = |message: String| StoreError::BadUrl {
            url: url.to_string(),
            message,
        };
        let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if parsed.scheme() != "s3" {
            return Err(bad(
                "only s3:// objects and local files can be loaded".into()
            ));
        }
        let bucket = parsed.host_str().ok_or_else(|| bad("no bucket".into()))?;
        let store = s3_client(bucket, &self.options).map_err(|source| StoreError::ObjectStore {
            store: url.to_string(),
            source,
        })?;
        let path = ObjectPath::from(parsed.path().trim_start_matches('/'));
        let got = store
            .get(&path)
            .await
            .map_err(|source| StoreError::ObjectStore {
                store: url.to_string(),
                source,
            })?;
        let stream = got.into_stream().map_err(std::io::Error::other);
        Ok(Box::new(tokio_util::io::StreamReader::new(stream)))
    }

    /// Deletes `rel` (no error if it is gone already).
    pub async fn delete(&self, rel: &str) -> Result<(), StoreError> {
        match self.inner.delete(&self.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Lists every object under `rel/` as paths relative to the store root.
    pub async fn list(&self, rel: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let prefix = self.path(rel);
        let objects: Vec<_> = self
            .inner
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.err(e))?;
        let strip = self.prefix.as_ref().len();
        Ok(objects
            .into_iter()
            .map(|m| {
                let p = m.location.as_ref();
                (
                    p[strip.min(p.len())..].trim_start_matches('/').to_string(),
                    m.size,
                )
            })
            .collect())
    }

    /// Removes the parts of multipart uploads under `rel/` that nobody finished and
    /// nobody touched for `older_than`: what a process killed in the middle of an
    /// upload leaves in a local store (object_store stages an upload of `name` in
    /// `name#N` beside it, and publishes it by a rename). They were never visible —
    /// listings, reads and loads skip them — so this reclaims only disk. An upload in
    /// flight writes its part at every part it completes (the SFTP drop-box's parts are
    /// 1 MiB on a local store), so `older_than` must be longer than a live upload takes
    /// for one part: the SFTP idle timeout (600 s: a link of 14 kbit/s). Returns how many
    /// went. On S3 nothing:
    /// an unfinished multipart upload there is invisible too, and a bucket lifecycle
    /// rule (`AbortIncompleteMultipartUpload`) reclaims it.
    pub fn remove_stale_parts(&self, rel: &str, older_than: std::time::Duration) -> usize {
        let Some(dir) = &self.local_dir else {
            return 0;
        };
        let is_part = |name: &str| {
            name.rsplit_once('#').is_some_and(|(stem, n)| {
                !stem.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
            })
        };
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        let mut stack = vec![dir.join(rel)];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                let stale = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_some_and(|age| age >= older_than);
                if stale
                    && is_part(&entry.file_name().to_string_lossy())
                    && std::fs::remove_file(&path).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Deletes every object under `rel/`; returns how many.
    pub async fn delete_prefix(&self, rel: &str) -> Result<usize, StoreError> {
        let objects = self.list(rel).await?;
        for (p, _) in &objects {
            self.delete(p).await?;
        }
        Ok(objects.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_parts_of_unfinished_uploads_go_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let config = StoreConfig::default();
        let store = Store::open(&config, Some(tmp.path().to_path_buf())).unwrap();
        let home = tmp.path().join("raw/alice/sub");
        std::fs::create_dir_all(&home).unwrap();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let make = |name: &str, old: bool| {
            let f = std::fs::File::create(home.join(name)).unwrap();
            if old {
                f.set_modified(hour_ago).unwrap();
            }
        };
        make("week.csv#1", true); // a killed upload's part: goes
        make("fresh.csv#2", false); // an upload in flight: stays
        make("c#d.csv", true); // a name with a '#': stays
        make("ledger.csv", true);
        make("#7", true); // no name before the '#': not a part
        let removed = store.remove_stale_parts("raw", std::time::Duration::from_secs(600));
        assert_eq!(removed, 1);
        let mut left: Vec<String> = std::fs::read_dir(&home)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["#7", "c#d.csv", "fresh.csv#2", "ledger.csv"]);
    }

    #[tokio::test]
    async fn put_stream_publishes_only_complete_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::default(), Some(dir.path().join("store"))).unwrap();
        let data = vec![7u8; 3 << 20];
        let mut seen = 0usize;
        let n = store
            .put_stream("raw/a/b.csv", &data[..], |c| seen += c.len())
            .await
            .unwrap();
        assert_eq!((n, seen), (data.len() as u64, data.len()));
        assert!(store.exists("raw/a/b.csv").await.unwrap());
        assert_eq!(
            store.list("raw").await.unwrap(),
            vec![("raw/a/b.csv".to_string(), data.len() as u64)]
        );

        struct Failing(usize);
        impl AsyncRead for Failing {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                if self.0 == 0 {
                    return std::task::Poll::Ready(Err(std::io::Error::other("cut")));
                }
                self.0 -= 1;
                buf.put_slice(&[1u8; 1024]);
                std::task::Poll::Ready(Ok(()))
            }
        }
        let err = store
            .put_stream("raw/a/c.csv", Failing(10), |_| {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("raw/a/c.csv"), "{err}");
        assert!(!store.exists("raw/a/c.csv").await.unwrap());
        assert_eq!(store.delete_prefix("raw").await.unwrap(), 1);
    }
}
