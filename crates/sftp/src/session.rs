//! The SFTP subsystem of one session, jailed in the user's home `raw/<user>/` (seen as
//! `/`): listings, downloads, uploads ([`Upload`]), and the few changes a drop-box
//! needs (remove, mkdir, rmdir, rename). Every file operation is audited once, in
//! [`Sftp::audited`]; a `.csv` upload, once published, is handed to the loader's queue.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;

use crate::guard::{Event, Operation, Outcome};
use crate::paths::{jail, writable, DIR_MARKER};
use crate::server::{DropBox, Uploaded};
use crate::upload::Upload;

/// An open file or directory of one SFTP session.
enum Open {
    Read { path: String, size: u64 },
    Write(Upload),
    Dir { entries: Option<Vec<File>> },
}

/// The SFTP subsystem of one session, jailed in `raw/<user>/`.
pub(crate) struct Sftp {
    dropbox: Arc<DropBox>,
    user: String,
    peer: Option<SocketAddr>,
    handles: HashMap<String, Open>,
    next: u64,
}

fn status(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

pub(crate) fn fail(code: StatusCode, message: impl Into<String>) -> StatusReply {
    StatusReply::new(code).with_message(message)
}

fn store_err(e: object_store::Error) -> StatusReply {
    match e {
        object_store::Error::NotFound { .. } => fail(StatusCode::NoSuchFile, "no such file"),
        other => fail(StatusCode::Failure, other.to_string()),
    }
}

fn dir_attrs() -> FileAttributes {
    let mut a = FileAttributes::empty();
    a.set_dir(true);
    a.permissions = Some(a.permissions.unwrap_or(0) | 0o755);
    a
}

fn file_attrs(size: u64, modified: i64) -> FileAttributes {
    let mut a = FileAttributes::empty();
    a.set_regular(true);
    a.permissions = Some(a.permissions.unwrap_or(0) | 0o644);
    a.size = Some(size);
    a.mtime = Some(modified.max(0) as u32);
    a.atime = a.mtime;
    a
}

/// Attributes of a store path: a file, or a folder (the home, or a prefix with objects).
async fn attrs(
    store: Arc<dyn ObjectStore>,
    path: object_store::path::Path,
    is_home: bool,
) -> Result<FileAttributes, StatusReply> {
    match store.head(&path).await {
        Ok(meta) => return Ok(file_attrs(meta.size, meta.last_modified.timestamp())),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(store_err(e)),
    }
    let listed = store
        .list_with_delimiter(Some(&path))
        .await
        .map_err(store_err)?;
    if is_home || !listed.objects.is_empty() || !listed.common_prefixes.is_empty() {
        return Ok(dir_attrs());
    }
    Err(fail(StatusCode::NoSuchFile, "no such file or folder"))
}

impl Drop for Sftp {
    /// A session that ends with uploads still open (client killed, connection lost)
    /// aborts them: nothing is published under their names.
    fn drop(&mut self) {
        if let Ok(mut open) = self.dropbox.sessions.lock() {
            if let Some(n) = open.get_mut(&self.user) {
                *n = n.saturating_sub(1);
            }
        }
        let uploads: Vec<Upload> = self
            .handles
            .drain()
            .filter_map(|(_, open)| match open {
                Open::Write(upload) => Some(upload),
                _ => None,
            })
            .collect();
        for upload in uploads {
            tracing::warn!(user = %self.user, path = upload.path, bytes = upload.written, "upload aborted: the session ended before close");
            self.aborted(&upload, "session ended before close");
            upload.abort_later();
        }
    }
}

impl Sftp {
    pub(crate) fn new(dropbox: Arc<DropBox>, user: String, peer: Option<SocketAddr>) -> Self {
        Sftp {
            dropbox,
            user,
            peer,
            handles: HashMap::new(),
            next: 0,
        }
    }

    /// Records a file operation in the audit log and returns its result.
    fn audited<T>(
        &self,
        operation: Operation,
        path: &str,
        bytes: u64,
        result: Result<T, StatusReply>,
    ) -> Result<T, StatusReply> {
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Failed {
                status: format!("{:?}", e.status_code),
                message: e.error_message.clone().unwrap_or_default(),
            },
        };
        self.record(operation, path, bytes, outcome);
        result
    }

    /// Records that `upload` was not published, and why.
    fn aborted(&self, upload: &Upload, why: &str) {
        self.record(
            Operation::Upload,
            &upload.path,
            upload.written,
            Outcome::Aborted(why.to_string()),
        );
    }

    fn record(&self, operation: Operation, path: &str, bytes: u64, outcome: Outcome) {
        self.dropbox.audit.record(Event {
            user: &self.user,
            client: self.peer,
            operation,
            path,
            bytes,
            outcome,
        });
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        self.dropbox.store.object_store()
    }

    /// Store path (relative to the store root) of a client path.
    fn rel(&self, path: &str) -> Result<String, StatusReply> {
        let inner = jail(path)?;
        if inner.split('/').any(|p| p == DIR_MARKER) {
            return Err(fail(StatusCode::PermissionDenied, "reserved name"));
        }
        Ok(if inner.is_empty() {
            format!("raw/{}", self.user)
        } else {
            format!("raw/{}/{inner}", self.user)
        })
    }

    fn handle(&mut self, open: Open) -> String {
        self.next += 1;
        let h = format!("h{}", self.next);
        self.handles.insert(h.clone(), open);
        h
    }

    /// A listing of folder `path`, as a handle to read it from.
    async fn list(&mut self, path: &str) -> Result<String, StatusReply> {
        let rel = self.rel(path)?;
        let listed = self
            .store()
            .list_with_delimiter(Some(&self.dropbox.store.path(&rel)))
            .await
            .map_err(store_err)?;
        let mut files = vec![File::new(".", dir_attrs()), File::new("..", dir_attrs())];
        for p in listed.common_prefixes {
            if let Some(name) = p.filename() {
                files.push(File::new(name, dir_attrs()));
            }
        }
        for o in listed.objects {
            if let Some(name) = o.location.filename().filter(|n| *n != DIR_MARKER) {
                files.push(File::new(
                    name,
                    file_attrs(o.size, o.last_modified.timestamp()),
                ));
            }
        }
        Ok(self.handle(Open::Dir {
            entries: Some(files),
        }))
    }

    /// Opens `filename` to read, or to write as a new [`Upload`] within the user's
    /// limits.
    async fn open_file(&mut self, filename: &str, flags: OpenFlags) -> Result<String, StatusReply> {
        let rel = self.rel(filename)?;
        if rel.matches('/').count() < 2 {
            return Err(fail(StatusCode::Failure, "that is your home folder"));
        }
        let path = self.dropbox.store.path(&rel);
        if !flags.contains(OpenFlags::WRITE) {
            let meta = self.store().head(&path).await.map_err(store_err)?;
            return Ok(self.handle(Open::Read {
                path: rel,
                size: meta.size,
            }));
        }
        writable(filename)?;
        // What the home holds now, less the file being replaced, against the quota.
        let home = self.dropbox.store.path(&format!("raw/{}", self.user));
        let objects: Vec<_> = futures::TryStreamExt::try_collect(self.store().list(Some(&home)))
            .await
            .map_err(store_err)?;
        let used: u64 = objects
            .iter()
            .filter(|o| o.location != path)
            .map(|o| o.size)
            .sum();
        let limits = self.dropbox.limits;
        let limit = limits
            .max_file_bytes
            .min(limits.quota_bytes.saturating_sub(used));
        let parts = self.store().put_multipart(&path).await.map_err(store_err)?;
        let writer = WriteMultipart::new_with_chunk_size(parts, self.dropbox.store.part_size());
        Ok(self.handle(Open::Write(Upload::new(rel, writer, limit))))
    }

    async fn remove_file(&self, filename: &str) -> Result<(), StatusReply> {
        let path = self.dropbox.store.path(&self.rel(filename)?);
        self.store().head(&path).await.map_err(store_err)?;
        self.store().delete(&path).await.map_err(store_err)
    }

    async fn make_dir(&self, path: &str) -> Result<(), StatusReply> {
        let rel = self.rel(path)?;
        let marker = self.dropbox.store.path(&format!("{rel}/{DIR_MARKER}"));
        self.store()
            .put(&marker, bytes::Bytes::new().into())
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn remove_dir(&self, path: &str) -> Result<(), StatusReply> {
        let rel = self.rel(path)?;
        let prefix = self.dropbox.store.path(&rel);
        let listed = self
            .store()
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(store_err)?;
        let others = listed
            .objects
            .iter()
            .filter(|o| o.location.filename() != Some(DIR_MARKER))
            .count();
        if others > 0 || !listed.common_prefixes.is_empty() {
            return Err(fail(StatusCode::Failure, "folder is not empty"));
        }
        if listed.objects.is_empty() {
            return Err(fail(StatusCode::NoSuchFile, "no such folder"));
        }
        let marker = self.dropbox.store.path(&format!("{rel}/{DIR_MARKER}"));
        self.store().delete(&marker).await.map_err(store_err)?;
        // A local store keeps the emptied folder on disk, where listings would still see it.
        if let Some(dir) = self.dropbox.store.local_dir() {
            let _ = std::fs::remove_dir(dir.join(&rel));
        }
        Ok(())
    }

    async fn rename_file(&self, oldpath: &str, newpath: &str) -> Result<(), StatusReply> {
        writable(newpath)?;
        let (from, to) = (self.rel(oldpath)?, self.rel(newpath)?);
        let (from, to) = (self.dropbox.store.path(&from), self.dropbox.store.path(&to));
        // SFTP v3 rename refuses an existing target. Not every S3-compatible store offers
        // copy-if-not-exists, so check, then copy and delete.
        match self.store().head(&to).await {
            Ok(_) => return Err(fail(StatusCode::Failure, format!("{newpath} exists"))),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_err(e)),
        }
        self.store().head(&from).await.map_err(store_err)?;
        self.store().rename(&from, &to).await.map_err(store_err)
    }

    /// Publishes a finished upload and hands a `.csv` to the loader's queue.
    async fn publish(&self, upload: Upload) -> Result<(), StatusReply> {
        let (path, written) = (upload.path.clone(), upload.written);
        let finished = upload.finish().await.map_err(store_err);
        self.audited(Operation::Upload, &path, written, finished)?;
        tracing::info!(user = %self.user, path, bytes = written, "upload complete");
        if path.to_ascii_lowercase().ends_with(".csv") {
            let _ = self.dropbox.uploads.send(Uploaded {
                user: self.user.clone(),
                path,
            });
        }
        Ok(())
    }
}

impl russh_sftp::server::Handler for Sftp {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        fail(StatusCode::OpUnsupported, "not supported by citybooks")
    }

    async fn init(
        &mut self,
        _version: u32,
        _ext: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let inner = jail(&path)?;
        Ok(Name {
            id,
            files: vec![File::dummy(format!("/{inner}"))],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let rel = self.rel(&path)?;
        let is_home = rel.matches('/').count() == 1;
        let attrs = attrs(self.store(), self.dropbox.store.path(&rel), is_home).await?;
        Ok(Attrs { id, attrs })
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let attrs = match self.handles.get(&handle) {
            Some(Open::Read { size, .. }) => file_attrs(*size, 0),
            Some(Open::Write(upload)) => file_attrs(upload.written, 0),
            Some(Open::Dir { .. }) => dir_attrs(),
            None => return Err(fail(StatusCode::Failure, "unknown handle")),
        };
        Ok(Attrs { id, attrs })
    }

    /// Attributes are not kept (clients set modes after a `put`): accepted without
    /// effect, for paths inside the home only.
    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        self.rel(&path)?;
        Ok(status(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        _handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        Ok(status(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let handle = self.list(&path).await;
        let handle = self.audited(Operation::List, &path, 0, handle)?;
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        match self.handles.get_mut(&handle) {
            Some(Open::Dir { entries }) => match entries.take() {
                Some(files) => Ok(Name { id, files }),
                None => Err(StatusReply::new(StatusCode::Eof)),
            },
            _ => Err(fail(StatusCode::Failure, "not a folder handle")),
        }
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        flags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let handle = self.open_file(&filename, flags).await;
        let handle = self.audited(Operation::Open, &filename, 0, handle)?;
        Ok(Handle { id, handle })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let Some(Open::Write(upload)) = self.handles.get_mut(&handle) else {
            return Err(fail(StatusCode::Failure, "not a file opened for writing"));
        };
        if let Some(why) = upload.refusal(offset, data.len(), self.dropbox.limits) {
            if let Some(Open::Write(upload)) = self.handles.remove(&handle) {
                self.aborted(&upload, &why);
                upload.abort().await;
            }
            return Err(fail(StatusCode::Failure, why));
        }
        upload.write(&data).await.map_err(store_err)?;
        Ok(status(id))
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let (rel, size) = match self.handles.get(&handle) {
            Some(Open::Read { path, size }) => (path.clone(), *size),
            _ => return Err(fail(StatusCode::Failure, "not a file opened for reading")),
        };
        if offset >= size {
            return Err(StatusReply::new(StatusCode::Eof));
        }
        let end = (offset + u64::from(len)).min(size);
        let bytes = self
            .store()
            .get_range(&self.dropbox.store.path(&rel), offset..end)
            .await
            .map_err(store_err)?;
        Ok(Data {
            id,
            data: bytes.to_vec(),
        })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            Some(Open::Write(upload)) => self.publish(upload).await?,
            Some(Open::Read { path, size }) => {
                self.audited(Operation::Download, &path, size, Ok(()))?
            }
            Some(Open::Dir { .. }) => {}
            None => return Err(fail(StatusCode::Failure, "unknown handle")),
        }
        Ok(status(id))
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let removed = self.remove_file(&filename).await;
        self.audited(Operation::Remove, &filename, 0, removed)?;
        Ok(status(id))
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let made = self.make_dir(&path).await;
        self.audited(Operation::Mkdir, &path, 0, made)?;
        Ok(status(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        let removed = self.remove_dir(&path).await;
        self.audited(Operation::Rmdir, &path, 0, removed)?;
        Ok(status(id))
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        let renamed = self.rename_file(&oldpath, &newpath).await;
        self.audited(
            Operation::Rename,
            &format!("{oldpath} -> {newpath}"),
            0,
            renamed,
        )?;
        Ok(status(id))
    }
}
