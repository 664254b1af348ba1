//! wxkf-bench: speed benchmarks of the wxkf hub. They print figures and assert nothing about
//! speed; `BENCHMARKS.md` at the repository root records the figures and how to reproduce them.
//!
//! # Layout
//!
//! - [`corpus`]: reads the hand-written corpus of WeChat message XML.
//! - [`render`]: message XML to the JSON frame an agent receives, built as the hub builds it.
//! - [`stats`]: medians and percentiles.
//! - `src/bin/xml_frame.rs`: conversion time per message, compared with wechatpy by
//!   `scripts/bench-xml.sh`.
//! - `src/bin/load.rs`: a bounded load run against a separate `wxkf serve` process over
//!   loopback.

pub mod corpus;
pub mod render;
pub mod stats;
