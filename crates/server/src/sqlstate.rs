//! The SQLSTATE codes citybooks answers with on the PostgreSQL wire, by the names of
//! PostgreSQL's own table (Appendix A of its manual), so a client's error handling —
//! psycopg's exception classes, JDBC's `getSQLState()` — sees what PostgreSQL would
//! send.

/// 25006 `read_only_sql_transaction`: a statement that would change the warehouse.
pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
/// 28000 `invalid_authorization_specification`: e.g. a plain connection where TLS is
/// required.
pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
/// 42601 `syntax_error`: text that does not parse.
pub const SYNTAX_ERROR: &str = "42601";
/// 53000 `insufficient_resources`: no query slot came free in time.
pub const INSUFFICIENT_RESOURCES: &str = "53000";
/// 53200 `out_of_memory`: a query past its memory.
pub const OUT_OF_MEMORY: &str = "53200";
/// 57014 `query_canceled`: a cancel request or the statement timeout.
pub const QUERY_CANCELED: &str = "57014";
/// 58000 `system_error`: the warehouse cannot be read.
pub const SYSTEM_ERROR: &str = "58000";
