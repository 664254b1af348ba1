//! Periodic work: contacts whose window closed leave their agent's list, and old dedup records
//! and frames are pruned. The local server runs it every minute; on AWS a schedule does.

use tracing::info;

use super::notices::ReleaseReason;
use super::{Hub, HubError};

/// Lapsed contacts released per sweep; the rest go in the next one.
const SWEEP_BATCH: usize = 500;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub released: usize,
    pub pruned: u64,
}

impl Hub {
    pub async fn sweep(&self) -> Result<SweepReport, HubError> {
        let now = self.clock.now();
        let mut report = SweepReport::default();

        for contact in self.store.lapsed_contacts(now, SWEEP_BATCH).await? {
            if self.release(&contact, ReleaseReason::WindowClosed).await? {
                report.released += 1;
            }
        }

        let frames_before = now.plus_secs(-self.settings.frame_retention_secs);
        report.pruned = self.store.prune(now, frames_before).await?;
        if report.released > 0 || report.pruned > 0 {
            info!(
                released = report.released,
                pruned = report.pruned,
                "sweep finished"
            );
        }
        Ok(report)
    }
}
