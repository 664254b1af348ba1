//! Placeholder until the in-memory adapters land.
