//! citybooks-warehouse
