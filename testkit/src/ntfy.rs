//! A local ntfy service for tests (being written).
