//! citybooks-store
