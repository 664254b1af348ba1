//! Placeholder until the WeChat codec lands.
