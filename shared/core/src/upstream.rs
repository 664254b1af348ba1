//! Placeholder until the JSON route parser lands.
