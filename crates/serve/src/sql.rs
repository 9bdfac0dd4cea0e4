//! The PostgreSQL wire protocol server, started from `[sql]`.

use std::sync::Arc;

use anyhow::Result;
use citybooks_server::{Live, PgServer};
use tokio::net::TcpListener;

use crate::{shown_host, DemoLogin, Shared, Task};

/// Starts the PostgreSQL wire protocol on `listener` and says how to connect (with the
/// demo's login, a ready psql command line); the task ends at `shutdown`.
pub fn start(
    shared: &Shared,
    live: &Arc<Live>,
    listener: TcpListener,
    demo: Option<&DemoLogin>,
) -> Result<Task> {
    let server = PgServer::from_config(shared.project, live.clone(), shared.metrics.clone())?;
    let tls_note = if server.tls() { ", TLS" } else { "" };
    let addr = listener.local_addr()?;
    let (host, port) = (shown_host(addr), addr.port());
    println!("citybooks SQL (PostgreSQL protocol{tls_note}) listening on {addr}");
    match demo {
        Some(login) => println!(
            "  psql: PGPASSWORD={} psql -h {host} -p {port} -U {} -d citybooks",
            login.password, login.user
        ),
        None => println!(
            "  connect with: psql -h {host} -p {port} -U USER -d citybooks   (users: citybooks sql-user add USER)"
        ),
    }
    let shutdown = shared.shutdown.clone().cancelled_owned();
    Ok(tokio::spawn(async move {
        server.serve(listener, shutdown).await;
        Ok(())
    }))
}

/// A password of 20 letters and digits (the demo's SQL user gets a fresh one).
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..20)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}
