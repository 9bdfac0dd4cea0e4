//! Delta Lake's handlers for `s3://` tables, on the store's own S3 client.
//!
//! deltalake's `s3` feature brings the AWS SDK (credential chain, STS, SSO) only to
//! build an `object_store` S3 client, which [`citybooks_store::s3_client`] already
//! builds for the store's raw files. Registering that client for `s3://` gives Delta
//! the same endpoint, keys and region as every other read and write of the store, and
//! keeps the SDK out of the build. Commits use Delta's default log store: a new log
//! entry is written with a conditional put (`If-None-Match: *`), which S3 and
//! S3-compatible servers honour; the store's writer lease already keeps to one writer.

use std::sync::{Arc, Once};

use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::{
    default_logstore, logstore_factories, object_store_factories, LogStore, LogStoreFactory,
    ObjectStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake::{DeltaResult, DeltaTableError};
use url::Url;

/// Builds the S3 client of a table's bucket from the options the table was opened with.
struct S3Stores;

impl ObjectStoreFactory for S3Stores {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| DeltaTableError::InvalidTableLocation(url.to_string()))?;
        let store = citybooks_store::s3_client(bucket, &config.raw)?;
        Ok((Arc::new(store), Path::from_url_path(url.path())?))
    }
}

/// Delta's default log store (commits by conditional put).
struct S3LogStores;

impl LogStoreFactory for S3LogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// Registers the handlers for `s3://` (once per process; later calls do nothing).
pub(crate) fn register() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        let url = Url::parse("s3://").expect("a scheme-only URL parses");
        object_store_factories().insert(url.clone(), Arc::new(S3Stores));
        logstore_factories().insert(url, Arc::new(S3LogStores));
    });
}
