//! Schedule times (placeholder; see the helper task).
