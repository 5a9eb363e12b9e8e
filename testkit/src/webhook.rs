//! A local webhook service for tests (being written).
