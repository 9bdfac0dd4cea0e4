//! One upload in progress: a multipart upload into the store that is published under
//! its name only by [`Upload::finish`] (the client's close). Writes must come in order
//! and within the user's limits; one that does not aborts the upload at once, so the
//! client's following close cannot publish a truncated file.

use object_store::WriteMultipart;

use crate::server::Limits;

/// An open upload of one SFTP session.
pub(crate) struct Upload {
    /// The store path it will be published under.
    pub path: String,
    /// In a Mutex only to make the session `Sync`; it is reached through `&mut`.
    writer: std::sync::Mutex<WriteMultipart>,
    /// Bytes received so far.
    pub written: u64,
    /// Most bytes this upload may take: the file limit, or what is left of the quota.
    limit: u64,
}

impl Upload {
    pub fn new(path: String, writer: WriteMultipart, limit: u64) -> Self {
        Upload {
            path,
            writer: std::sync::Mutex::new(writer),
            written: 0,
            limit,
        }
    }

    /// Why a write of `len` bytes at `offset` cannot be taken (the upload must then be
    /// aborted), or `None` when it can.
    pub fn refusal(&self, offset: u64, len: usize, limits: Limits) -> Option<String> {
        if self.written + len as u64 > self.limit {
            return Some(format!(
                "upload refused: over the limit (a file at most {} MiB, a home at most {} MiB)",
                limits.max_file_bytes >> 20,
                limits.quota_bytes >> 20
            ));
        }
        (offset != self.written).then(|| {
            format!(
                "write at offset {offset}, expected {}: uploads must be sequential (no resume)",
                self.written
            )
        })
    }

    /// Takes the next bytes, waiting while the store is busy with earlier parts.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), object_store::Error> {
        let writer = self.writer.get_mut().map_err(poisoned)?;
        writer.wait_for_capacity(4).await?;
        writer.write(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// Publishes the upload under its name.
    pub async fn finish(self) -> Result<(), object_store::Error> {
        self.writer.into_inner().map_err(poisoned)?.finish().await?;
        Ok(())
    }

    /// Drops the parts written so far: nothing is published.
    pub async fn abort(self) {
        if let Ok(writer) = self.writer.into_inner() {
            let _ = writer.abort().await;
        }
    }

    /// [`Upload::abort`] from where nothing can be awaited (a session being dropped).
    pub fn abort_later(self) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(self.abort());
        }
    }
}

fn poisoned<T>(_: T) -> object_store::Error {
    object_store::Error::Generic {
        store: "upload",
        source: "the upload's state is poisoned".into(),
    }
}
