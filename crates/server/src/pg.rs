//! The PostgreSQL wire protocol (`citybooks serve`, port 5439) over the warehouse's
//! DataFusion session, for psql, drivers and BI tools.
//!
//! `datafusion-postgres` answers the protocol and emulates `pg_catalog`; citybooks
//! wraps it with what a shared warehouse needs and the crate's default handlers lack:
//! - SCRAM-SHA-256 password authentication against [`SqlUsers`];
//! - TLS that fails closed: a certificate that cannot be loaded stops the server
//!   ([`tls_acceptor`]), and `tls_required` refuses clients that do not use it;
//! - a read-only gate ([`ReadOnlyGate`]) in front of the engine: queries, `SHOW`,
//!   `EXPLAIN`, transactions, cursors and `SET` of client settings pass; DDL, DML,
//!   `COPY` and `SET` of engine settings are refused (SQLSTATE 25006);
//! - a statement timeout and cancel (psql's Ctrl-C) that also cover the streaming of
//!   the result, where DataFusion does most of its work (SQLSTATE 57014);
//! - new loads visible to the next statement without a restart ([`Live`]);
//! - a session per connection with its own memory pool, and a slot among
//!   `[sql] max_concurrent_queries` per statement ([`citybooks_query::budget`]): a
//!   query past its memory fails with SQLSTATE 53200, a statement that waited too
//!   long for a slot with 53000.

use std::fmt::Debug;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;

use citybooks_query::ReadOnly;

use crate::sqlstate;
use bytes::Bytes;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::arrow_pg::datatypes::df;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::{DfSessionService, Parser, QueryHook};
use futures::{Sink, Stream, StreamExt};
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, StartupHandler};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::Format;
use pgwire::api::portal::Portal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{QueryResponse, Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, PgWireServerHandlers, METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::data::DataRow;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::process_socket;
use pgwire::types::format::FormatOptions;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::live::Live;
use crate::metrics::Metrics;
use crate::sqlusers::{Md5Challenge, SqlUsers, ITERATIONS};
use citybooks_store::config::PasswordAuth;
use pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use pgwire::api::auth::md5pass::Md5PasswordAuthStartupHandler;
use pgwire::api::auth::Password;

/// Settings of the PostgreSQL server.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Longest a statement may run.
    pub statement_timeout: Duration,
    /// Most connections at once.
    pub max_connections: usize,
    /// Refuse clients that do not use TLS.
    pub tls_required: bool,
    /// How clients prove their password.
    pub password_auth: PasswordAuth,
}

/// A problem that stops the PostgreSQL server from starting.
#[derive(Debug, thiserror::Error)]
pub enum PgServerError {
    #[error("TLS: {path}: {message}")]
    Tls { path: String, message: String },
    #[error(
        "TLS: tls_required is set but no certificate is configured ([sql] tls_cert and tls_key)"
    )]
    TlsRequiredWithoutCertificate,
    #[error("[sql] password_auth = \"cleartext\" sends passwords as they are: it needs TLS for every client (set tls_cert, tls_key and tls_required = true), or use \"scram\" or \"md5\"")]
    CleartextWithoutTls,
}

/// Loads a TLS certificate chain and its private key (PEM). Any problem is an error:
/// the server never falls back to plain text because a certificate is bad.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, PgServerError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls_err = |path: &Path, message: String| PgServerError::Tls {
        path: path.display().to_string(),
        message,
    };
    let read = |path: &Path| std::fs::read(path).map_err(|e| tls_err(path, e.to_string()));
    let cert_pem = read(cert)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(cert, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "no certificate in the file".into()));
    }
    let key_pem = read(key)?;
    let private_key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| tls_err(key, format!("not a PEM private key: {e}")))?
        .ok_or_else(|| tls_err(key, "no private key in the file".into()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(|e| {
            tls_err(
                cert,
                format!("certificate and key do not work together: {e}"),
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The PostgreSQL server: shared state of every connection.
pub struct PgServer {
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    max_connections: usize,
}

struct Shared {
    /// Itself, for the guards that clean up after a connection.
    this: Weak<Shared>,
    live: Arc<Live>,
    hooks: Vec<Arc<dyn QueryHook>>,
    users: Arc<SqlUsers>,
    manager: Arc<ConnectionManager>,
    /// The running statement of each connection (by backend pid): its secret key and
    /// the token a cancel request fires.
    running: Mutex<std::collections::HashMap<i32, (Bytes, CancellationToken)>>,
    options: PgOptions,
    metrics: Arc<Metrics>,
}

impl PgServer {
    /// A server over `live`, authenticating against `users`. With `tls`, clients may
    /// (or with `tls_required` must) use TLS.
    pub fn new(
        live: Arc<Live>,
        users: SqlUsers,
        tls: Option<TlsAcceptor>,
        options: PgOptions,
        metrics: Arc<Metrics>,
    ) -> Result<PgServer, PgServerError> {
        if options.tls_required && tls.is_none() {
            return Err(PgServerError::TlsRequiredWithoutCertificate);
        }
        if options.password_auth == PasswordAuth::Cleartext && !options.tls_required {
            return Err(PgServerError::CleartextWithoutTls);
        }
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(ReadOnlyGate),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        Ok(PgServer {
            max_connections: options.max_connections.max(1),
            shared: Arc::new_cyclic(|this| Shared {
                this: this.clone(),
                live,
                hooks,
                users: Arc::new(users),
                manager: Arc::new(ConnectionManager::new()),
                running: Mutex::new(Default::default()),
                options,
                metrics,
            }),
            tls,
        })
    }

    /// The server `[sql]` of `project` describes: its users, TLS files (relative to the
    /// project folder) and limits.
    pub fn from_config(
        project: &citybooks_store::Project,
        live: Arc<Live>,
        metrics: Arc<Metrics>,
    ) -> Result<PgServer, PgServerError> {
        let cfg = &project.config.sql;
        // Both files or neither: the configuration checked that.
        let tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(cert), Some(key)) => Some(tls_acceptor(
                &project.dir.join(cert),
                &project.dir.join(key),
            )?),
            _ => None,
        };
        let options = PgOptions {
            statement_timeout: Duration::from_secs(cfg.statement_timeout_secs),
            max_connections: cfg.max_connections,
            tls_required: cfg.tls_required,
            password_auth: cfg.password_auth,
        };
        PgServer::new(live, SqlUsers::of_project(project), tls, options, metrics)
    }

    /// Whether clients can use TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Accepts connections on `listener` until `shutdown` completes.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let limiter = Arc::new(Semaphore::new(self.max_connections));
        tokio::pin!(shutdown);
        loop {
            let (socket, addr) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("SQL: accept failed: {e}");
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(permit) = limiter.clone().try_acquire_owned() else {
                tracing::warn!(%addr, "SQL: connection refused: max_connections ({}) reached", self.max_connections);
                continue;
            };
            let handlers = match Connection::new(self.shared.clone()) {
                Ok(handlers) => Arc::new(handlers),
                Err(e) => {
                    tracing::warn!(%addr, "SQL: connection refused: {e}");
                    continue;
                }
            };
            let tls = self.tls.clone();
            tokio::spawn(async move {
                if let Err(e) = process_socket(socket, tls, handlers).await {
                    tracing::debug!(%addr, "SQL connection ended: {e}");
                }
                drop(permit);
            });
        }
    }
}

/// The handlers of one connection: its own SCRAM state machine and session (with its
/// own memory pool and settings), the shared rest.
struct Connection {
    shared: Arc<Shared>,
    startup: Arc<Startup>,
    session: Arc<Session>,
}

/// One connection's statements: datafusion-postgres over the connection's session.
struct Session {
    shared: Arc<Shared>,
    service: DfSessionService,
    parser: Arc<OneStatement>,
}

/// datafusion-postgres' parser for the extended protocol, which plans the first
/// statement of a Parse message and drops the others without a word: here several
/// statements are an error, as in PostgreSQL ("cannot insert multiple commands into
/// a prepared statement"), and text that does not parse is 42601.
struct OneStatement {
    inner: Arc<Parser>,
    counter: datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser,
}

#[async_trait]
impl pgwire::api::stmt::QueryParser for OneStatement {
    type Statement = <Parser as pgwire::api::stmt::QueryParser>::Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<pgwire::api::Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let statements = self.counter.parse(sql).map_err(|e| {
            user_error(
                "ERROR",
                sqlstate::SYNTAX_ERROR,
                format!("sql parser error: {e}"),
            )
        })?;
        if statements.len() > 1 {
            return Err(user_error(
                "ERROR",
                sqlstate::SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement".into(),
            ));
        }
        self.inner
            .parse_sql(client, sql, types)
            .await
            .map_err(classified)
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<pgwire::api::Type>> {
        self.inner.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<pgwire::api::results::FieldInfo>> {
        self.inner.get_result_schema(stmt, column_format)
    }
}

impl Connection {
    fn new(shared: Arc<Shared>) -> datafusion::error::Result<Connection> {
        let ctx = shared.live.budget().session(&shared.live.session())?;
        let service = DfSessionService::new_with_hooks(Arc::new(ctx), shared.hooks.clone());
        let session = Arc::new(Session {
            shared: shared.clone(),
            parser: Arc::new(OneStatement {
                inner: service.query_parser(),
                counter: Default::default(),
            }),
            service,
        });
        let parameters = || {
            let mut p = DefaultServerParameterProvider::default();
            p.default_transaction_read_only = true;
            p.is_superuser = false;
            p.search_path = "report".into();
            p.server_version = crate::pgcompat::SERVER_VERSION.into();
            p
        };
        let method = match shared.options.password_auth {
            PasswordAuth::Scram => {
                let mut scram = ScramAuth::new(shared.users.clone() as Arc<dyn AuthSource>);
                scram.set_iterations(ITERATIONS);
                Method::Scram(
                    SASLAuthStartupHandler::new(Arc::new(parameters()))
                        .with_scram(scram)
                        .with_connection_manager(shared.manager.clone()),
                )
            }
            PasswordAuth::Md5 => Method::Md5(
                Md5PasswordAuthStartupHandler::new(
                    Arc::new(Md5Challenge((*shared.users).clone())),
                    Arc::new(parameters()),
                )
                .with_connection_manager(shared.manager.clone()),
            ),
            PasswordAuth::Cleartext => {
                let verified = Arc::new(Verified::default());
                Method::Cleartext(
                    CleartextPasswordAuthStartupHandler::new(
                        VerifiedSource(verified.clone()),
                        parameters(),
                    )
                    .with_connection_manager(shared.manager.clone()),
                    verified,
                )
            }
        };
        Ok(Connection {
            startup: Arc::new(Startup {
                shared: shared.clone(),
                method,
            }),
            shared,
            session,
        })
    }
}

/// A cleartext password this connection's startup checked against the user's SCRAM
/// verifier: what pgwire's cleartext handler then compares the message with.
#[derive(Debug, Default)]
struct Verified(Mutex<Option<String>>);

/// [`Verified`], as pgwire's cleartext handler holds its password source.
#[derive(Debug, Clone)]
struct VerifiedSource(Arc<Verified>);

#[async_trait]
impl AuthSource for VerifiedSource {
    async fn get_password(&self, login: &pgwire::api::auth::LoginInfo) -> PgWireResult<Password> {
        match self.0 .0.lock().expect("verified password").take() {
            Some(p) => Ok(Password::new(None, p.into_bytes())),
            None => Err(PgWireError::InvalidPassword(
                login.user().unwrap_or_default().to_string(),
            )),
        }
    }
}

/// The password method of a connection's startup.
enum Method {
    Scram(SASLAuthStartupHandler<DefaultServerParameterProvider>),
    Md5(Md5PasswordAuthStartupHandler<Md5Challenge, DefaultServerParameterProvider>),
    Cleartext(
        CleartextPasswordAuthStartupHandler<VerifiedSource, DefaultServerParameterProvider>,
        Arc<Verified>,
    ),
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.session.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.session.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.shared.clone()
    }
}

struct Startup {
    shared: Arc<Shared>,
    method: Method,
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if matches!(message, PgWireFrontendMessage::Startup(_))
            && self.shared.options.tls_required
            && !client.is_secure()
        {
            return Err(user_error(
                "FATAL",
                sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                "citybooks accepts only TLS connections here: connect with sslmode=require".into(),
            ));
        }
        let result = match &self.method {
            Method::Scram(h) => h.on_startup(client, message).await,
            Method::Md5(h) => h.on_startup(client, message).await,
            Method::Cleartext(h, verified) => {
                let message = match message {
                    PgWireFrontendMessage::PasswordMessageFamily(family) => {
                        let given = family.into_password()?;
                        let user = client
                            .metadata()
                            .get(METADATA_USER)
                            .cloned()
                            .unwrap_or_default();
                        if self.shared.users.check_password(&user, &given.password) {
                            *verified.0.lock().expect("verified password") =
                                Some(given.password.clone());
                        }
                        PgWireFrontendMessage::PasswordMessageFamily(
                            pgwire::messages::startup::PasswordMessageFamily::Password(given),
                        )
                    }
                    other => other,
                };
                h.on_startup(client, message).await
            }
        };
        match result {
            // pgwire's SCRAM check does not know the user's name; PostgreSQL says it.
            Err(PgWireError::InvalidPassword(name)) => {
                let user = match name.is_empty() {
                    true => client
                        .metadata()
                        .get(METADATA_USER)
                        .cloned()
                        .unwrap_or_default(),
                    false => name,
                };
                tracing::warn!(client = %client.socket_addr(), %user, "SQL login failed: wrong password or no such user");
                self.shared
                    .metrics
                    .inc("citybooks_sql_login_failures_total", &[]);
                Err(PgWireError::InvalidPassword(user))
            }
            Err(e) => {
                tracing::warn!(client = %client.socket_addr(), "SQL login failed: {e}");
                self.shared
                    .metrics
                    .inc("citybooks_sql_login_failures_total", &[]);
                Err(e)
            }
            ok => ok,
        }
    }
}

fn user_error(severity: &str, code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        severity.to_string(),
        code.to_string(),
        message,
    )))
}

/// What stops a running statement: a cancel request or the timeout.
type Stop = Pin<Box<dyn Future<Output = PgWireError> + Send>>;

fn stop(token: CancellationToken, timeout: Duration, held: &Held) -> Stop {
    let memory = held.watch.stopped.clone();
    let stop_mib = held.stop_mib;
    Box::pin(async move {
        tokio::select! {
            () = token.cancelled() => user_error(
        "ERROR", sqlstate::QUERY_CANCELED, "canceling statement due to user request".into()),
            () = memory.cancelled() => user_error(
        "ERROR", sqlstate::OUT_OF_MEMORY,
                citybooks_query::budget::stopped_for_memory(stop_mib),
            ),
            () = tokio::time::sleep(timeout) => user_error(
        "ERROR", sqlstate::QUERY_CANCELED,
                format!("canceling statement due to statement timeout ({} ms)", timeout.as_millis()),
            ),
        }
    })
}

/// An engine error as PostgreSQL names it: a query past its memory is 53200
/// (out_of_memory), text that does not parse 42601 (syntax_error); anything else is
/// left as it is.
fn classified(e: PgWireError) -> PgWireError {
    use datafusion::error::DataFusionError;
    use datafusion::sql::sqlparser::parser::ParserError;
    let PgWireError::ApiError(inner) = &e else {
        return e;
    };
    if let Some(df) = inner.downcast_ref::<DataFusionError>() {
        if citybooks_query::budget::out_of_memory(df) {
            let text = df.find_root().to_string();
            let text = text.strip_prefix("Resources exhausted: ").unwrap_or(&text);
            return user_error(
                "ERROR",
                sqlstate::OUT_OF_MEMORY,
                format!("out of memory: {text}"),
            );
        }
        if matches!(df.find_root(), DataFusionError::SQL(..)) {
            return user_error("ERROR", sqlstate::SYNTAX_ERROR, df.find_root().to_string());
        }
    }
    if inner.is::<ParserError>() {
        return user_error(
            "ERROR",
            sqlstate::SYNTAX_ERROR,
            format!("sql parser error: {inner}"),
        );
    }
    e
}

/// What a statement holds until its last row: its slot among the queries running at
/// once, and its place under the memory watchdog.
struct Held {
    _slot: tokio::sync::OwnedSemaphorePermit,
    watch: citybooks_query::budget::Watch,
    stop_mib: usize,
}

type Slot = Arc<Held>;

/// Ends `rows` with the stop's error as soon as it fires; keeps `slot` until the rows
/// end.
fn guarded(mut response: QueryResponse, mut stop: Stop, slot: Slot) -> QueryResponse {
    let rows = std::mem::replace(&mut response.data_rows, Box::pin(futures::stream::empty()));
    let guarded = futures::stream::unfold(
        Some((rows, stop_placeholder(&mut stop), slot)),
        |state| async move {
            let (mut rows, mut stop, slot) = state?;
            tokio::select! {
                item = rows.next() => item.map(|item| (item.map_err(classified), Some((rows, stop, slot)))),
                err = &mut stop => Some((Err(err), None)),
            }
        },
    );
    response.data_rows =
        Box::pin(guarded) as Pin<Box<dyn Stream<Item = PgWireResult<DataRow>> + Send>>;
    response
}

fn stop_placeholder(stop: &mut Stop) -> Stop {
    std::mem::replace(stop, Box::pin(std::future::pending()))
}

/// Removes a connection's entry of [`Shared::running`] when the connection ends.
struct RunningGuard {
    pid: i32,
    shared: Weak<Shared>,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            if let Ok(mut running) = shared.running.lock() {
                running.remove(&self.pid);
            }
        }
    }
}

impl Shared {
    /// Starts a statement: picks up new loads, registers a cancel token, and returns
    /// the statement's stop signal and timeout.
    async fn begin<C: ClientInfo>(
        &self,
        client: &C,
    ) -> PgWireResult<(CancellationToken, Duration, Slot)> {
        self.live.context().await.map_err(|e| {
            user_error(
                "ERROR",
                sqlstate::SYSTEM_ERROR,
                format!("the warehouse cannot be read: {e}"),
            )
        })?;
        let (pid, secret) = client.pid_and_secret_key();
        let token = CancellationToken::new();
        self.running
            .lock()
            .expect("running statements")
            .insert(pid, (secret.to_bytes(), token.clone()));
        let weak = self.this.clone();
        client
            .session_extensions()
            .get_or_insert_with(move || RunningGuard { pid, shared: weak });
        // A client may ask for less time with SET statement_timeout, never for more.
        let asked = client
            .metadata()
            .get("statement_timeout_ms")
            .and_then(|ms| ms.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        let timeout = asked.map_or(self.options.statement_timeout, |t| {
            t.min(self.options.statement_timeout)
        });
        self.metrics.inc("citybooks_sql_statements_total", &[]);
        let budget = self.live.budget();
        let slot = budget.slot().await.map_err(|e| {
            self.metrics.inc("citybooks_sql_errors_total", &[]);
            user_error("ERROR", sqlstate::INSUFFICIENT_RESOURCES, e.to_string())
        })?;
        Ok((
            token,
            timeout,
            Arc::new(Held {
                _slot: slot,
                watch: budget.watch(),
                stop_mib: budget.memory_stop_mib(),
            }),
        ))
    }
}

#[async_trait]
impl SimpleQueryHandler for Session {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (token, timeout, slot) = self.shared.begin(client).await?;
        let mut stopper = stop(token.clone(), timeout, &slot);
        let responses = tokio::select! {
            r = SimpleQueryHandler::do_query(&self.service, client, query) => r.map_err(classified),
            e = &mut stopper => Err(e),
        };
        let responses = responses.inspect_err(|e| self.shared.count_error(e))?;
        Ok(responses
            .into_iter()
            .map(|r| match r {
                Response::Query(q) => Response::Query(guarded(
                    q,
                    stop(token.clone(), timeout, &slot),
                    slot.clone(),
                )),
                other => other,
            })
            .collect())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Session {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = OneStatement;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (token, timeout, slot) = self.shared.begin(client).await?;
        let mut stopper = stop(token.clone(), timeout, &slot);
        let response = tokio::select! {
            r = ExtendedQueryHandler::do_query(&self.service, client, portal, max_rows) => r.map_err(classified),
            e = &mut stopper => Err(e),
        };
        let response = response.inspect_err(|e| self.shared.count_error(e))?;
        Ok(match response {
            Response::Query(q) => Response::Query(guarded(q, stopper, slot)),
            other => other,
        })
    }
}

#[async_trait]
impl CancelHandler for Shared {
    async fn on_cancel_request(&self, request: CancelRequest) {
        // pgwire's own cancel covers planning; the token also covers streaming.
        self.manager.cancel(request.pid, &request.secret_key).await;
        let running = self.running.lock().expect("running statements");
        if let Some((secret, token)) = running.get(&request.pid) {
            if *secret == request.secret_key.to_bytes() {
                tracing::info!(pid = request.pid, "SQL: statement cancelled by the client");
                token.cancel();
            }
        }
    }
}

impl Shared {
    fn count_error(&self, e: &PgWireError) {
        tracing::debug!("SQL statement failed: {e}");
        self.metrics.inc("citybooks_sql_errors_total", &[]);
    }
}

/// The read-only gate: refuses statements that would change anything, before
/// datafusion-postgres' own hooks and the engine see them.
pub struct ReadOnlyGate;

/// `SET` variables a client may change: they only affect how this connection's
/// results are formatted or named.
const CLIENT_SETTINGS: &[&str] = &[
    "statement_timeout",
    "datestyle",
    "bytea_output",
    "intervalstyle",
    "application_name",
    "extra_float_digits",
    "search_path",
    "client_encoding",
    "client_min_messages",
    "standard_conforming_strings",
    "timezone",
    "time zone",
    "lc_messages",
];

impl ReadOnlyGate {
    /// Refuses `statement` if it would change anything; returns its plan when it
    /// plans here. A statement that does not plan is left to the later hooks and the
    /// engine, unless it is a `substitute` (then its planning error is the answer).
    async fn check(
        statement: &Statement,
        ctx: &SessionContext,
        substitute: bool,
    ) -> PgWireResult<Option<LogicalPlan>> {
        match statement {
            Statement::Set(set) => {
                let allowed = match set {
                    Set::SingleAssignment { variable, .. } => CLIENT_SETTINGS
                        .contains(&variable.to_string().to_ascii_lowercase().as_str()),
                    Set::SetTimeZone { .. }
                    | Set::SetNames { .. }
                    | Set::SetNamesDefault { .. } => true,
                    _ => false,
                };
                if allowed {
                    Ok(None)
                } else {
                    Err(read_only(ReadOnly::new(format!(
                        "`{statement}` would change the engine's settings; a client may only set {}",
                        CLIENT_SETTINGS.join(", ")
                    ))))
                }
            }
            Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ShowFunctions { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. } => Ok(None),
            // Whatever else is not a query — CREATE FUNCTION, GRANT, VACUUM, ... even
            // when DataFusion could not plan it — is refused here, with 25006.
            other if !substitute && !citybooks_query::is_query(other) => {
                Err(read_only(ReadOnly::new(format!(
                    "`{}` is not a query",
                    citybooks_query::statement_kind(other)
                ))))
            }
            _ => {
                // Plan it exactly as datafusion-postgres will run it (its SQL text,
                // through DataFusion's own parser, which also knows COPY ... TO). A
                // statement that cannot be planned here cannot run there either: the
                // engine reports its own error.
                let plan = match ctx
                    .state()
                    .create_logical_plan(&statement.to_string())
                    .await
                {
                    Ok(plan) => plan,
                    Err(e) if substitute => return Err(PgWireError::ApiError(Box::new(e))),
                    Err(_) => return Ok(None),
                };
                citybooks_query::verify_read_only(&plan).map_err(read_only)?;
                Ok(Some(plan))
            }
        }
    }
}

/// The gate's refusal as PostgreSQL names it: SQLSTATE 25006.
fn read_only(refusal: ReadOnly) -> PgWireError {
    user_error(
        "ERROR",
        sqlstate::READ_ONLY_SQL_TRANSACTION,
        refusal.to_string(),
    )
}

/// The login of a connection.
fn login(client: &(impl ClientInfo + ?Sized)) -> String {
    client
        .metadata()
        .get(METADATA_USER)
        .cloned()
        .unwrap_or_default()
}

/// The statement to plan in place of `statement`, if PostgreSQL's form of it is one
/// DataFusion cannot plan (see [`crate::pgcompat`]), or it asks for a setting of ours.
fn substitute(statement: &Statement, login: &str) -> Option<Statement> {
    if let Statement::ShowVariable { variable } = statement {
        let name = variable
            .iter()
            .map(|i| i.value.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(" ");
        let value = match name.as_str() {
            "server_version" => crate::pgcompat::SERVER_VERSION,
            "server_version_num" => crate::pgcompat::SERVER_VERSION_NUM,
            _ => return None,
        };
        let sql = format!("select '{value}' as {name}");
        return datafusion::sql::sqlparser::parser::Parser::parse_sql(
            &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
            &sql,
        )
        .ok()?
        .pop();
    }
    crate::pgcompat::rewrite(statement, login)
}

/// A plan that returns nothing, for statements answered with a tag only.
fn no_rows() -> LogicalPlan {
    LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(datafusion::common::DFSchema::empty()),
    })
}

#[async_trait]
impl QueryHook for ReadOnlyGate {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Some(tag) = crate::pgcompat::is_savepoint(statement) {
            return Some(Ok(Response::Execution(Tag::new(tag))));
        }
        if let Statement::Deallocate { name, .. } = statement {
            // psycopg 3 deallocates the statements it prepared when its cache is full.
            if !name.value.eq_ignore_ascii_case("all") {
                client.portal_store().rm_statement(&name.value);
            }
            return Some(Ok(Response::Execution(Tag::new("DEALLOCATE"))));
        }
        let substitute = substitute(statement, &login(client));
        let statement = substitute.as_ref().unwrap_or(statement);
        match ReadOnlyGate::check(statement, ctx, substitute.is_some()).await {
            Err(e) => Some(Err(e)),
            Ok(Some(plan)) if substitute.is_some() => Some(run(plan, ctx, client).await),
            Ok(_) => None,
        }
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if crate::pgcompat::is_savepoint(statement).is_some()
            || matches!(statement, Statement::Deallocate { .. })
        {
            return Some(Ok(no_rows()));
        }
        let substitute = substitute(statement, &login(client));
        let statement = substitute.as_ref().unwrap_or(statement);
        match ReadOnlyGate::check(statement, ctx, substitute.is_some()).await {
            Err(e) => Some(Err(e)),
            // Statements for later hooks (SET, SHOW, ...) are planned by them.
            Ok(None) => None,
            Ok(Some(plan)) => Some(Ok(plan)),
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let tag = match statement {
            Statement::Deallocate { .. } => Some("DEALLOCATE"),
            other => crate::pgcompat::is_savepoint(other),
        };
        tag.map(|tag| Ok(Response::Execution(Tag::new(tag))))
    }
}

/// Runs `plan` and encodes its rows as a simple query's text result.
async fn run(
    plan: LogicalPlan,
    ctx: &SessionContext,
    client: &mut dyn HookClient,
) -> PgWireResult<Response> {
    let df = ctx
        .execute_logical_plan(plan)
        .await
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let format = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    let response = df::encode_dataframe(df, &Format::UnifiedText, Some(format)).await?;
    Ok(Response::Query(response))
}
