//! citybooks-query
