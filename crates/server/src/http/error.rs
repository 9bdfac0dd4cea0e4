//! Errors of the HTTP API: `{"error": "..."}` with the status a client can act on.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use citybooks_query::QueryError;
use serde_json::json;

use crate::explore::ViewError;

/// An error answered as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let status = match &e {
            QueryError::ReadOnly(_) => StatusCode::FORBIDDEN,
            QueryError::Engine(e) if citybooks_query::engine::cluster_unreachable(e) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            QueryError::Engine(e) if citybooks_query::budget::out_of_memory(e) => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            QueryError::Engine(_) => StatusCode::BAD_REQUEST,
            QueryError::Warehouse(_) | QueryError::Output(_) | QueryError::Config(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<citybooks_warehouse::WarehouseError> for ApiError {
    fn from(e: citybooks_warehouse::WarehouseError) -> Self {
        use citybooks_warehouse::WarehouseError::{NoSuchLine, NoSuchLoad};
        match e {
            NoSuchLoad(_) | NoSuchLine { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            e => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the warehouse cannot be read: {e}"),
            ),
        }
    }
}

impl From<ViewError> for ApiError {
    fn from(e: ViewError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
    }
}
