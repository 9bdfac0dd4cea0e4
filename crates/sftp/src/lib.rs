//! The SFTP drop-box (issue 3), so far its identity layer: the server's host keys and
//! the SSH-key users whose uploads will land in `raw/<user>/` of the project's store.
//!
//! * [`hostkeys`] — Ed25519 and RSA host keys, generated once by `citybooks init`,
//!   stable across restarts, in `keys/` of the project folder.
//! * [`users`] — `users/<name>.pub` files in OpenSSH `authorized_keys` format: several
//!   keys per user (RSA, Ed25519, ECDSA); public-key authentication only.
//!
//! This crate does not touch the warehouse; the server will hand finished uploads to
//! the loader of `citybooks-warehouse`.

pub mod guard;
pub mod hostkeys;
pub mod server;
pub mod users;

pub use hostkeys::HostKeys;
pub use users::{UserError, Users};
