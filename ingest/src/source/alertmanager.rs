//! The Alertmanager webhook receiver (`POST /api/v1/alertmanager`).
