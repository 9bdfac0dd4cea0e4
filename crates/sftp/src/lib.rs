//! The SFTP drop-box: finance staff upload the Controller's CSV exports with their SSH
//! keys into `raw/<user>/` of the project's store.
//!
//! * [`hostkeys`] — Ed25519 and RSA host keys, generated once by `citybooks init`,
//!   stable across restarts, in `keys/` of the project folder.
//! * [`users`] — `users/<name>.pub` files in OpenSSH `authorized_keys` format: several
//!   keys per user (RSA, Ed25519, ECDSA); public-key authentication only.
//! * [`server`] — the SSH server: logins, bans, sessions per user, the [`server::DropBox`]
//!   the connections share.
//! * `session` — the SFTP subsystem of one session; `upload` — one upload in progress,
//!   published only on close.
//! * [`run`] — the drop-box as one server ([`SftpServer`]): built from the project
//!   folder and `[sftp]`, run until a shutdown, then a grace period for open uploads.
//! * [`paths`] — every client path normalised inside the user's home (the jail).
//! * [`guard`] — the audit log (typed events) and the ban of failing addresses.
//!
//! This crate does not touch the warehouse: finished uploads ([`server::Uploaded`]) go
//! to a [`server::LoadUpload`], which citybooks-serve implements with the loader of
//! citybooks-warehouse.

pub mod guard;
pub mod hostkeys;
pub mod paths;
pub mod run;
pub mod server;
mod session;
mod upload;
pub mod users;

pub use hostkeys::HostKeys;
pub use run::{SftpServer, StartError, HOST_KEYS_DIR, USERS_DIR};
pub use users::{UserError, Users};
