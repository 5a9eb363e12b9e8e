//! A local slack service for tests (being written).
