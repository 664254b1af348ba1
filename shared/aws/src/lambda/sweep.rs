//! The scheduled sweep. An EventBridge rule invokes the `sweep` function every minute, and each
//! run does what `wxkf serve` does on its own one-minute timer. It releases contacts whose reply
//! window closed, which sends their agent a `contact_released` frame and lets the company queue
//! move up. It also prunes old dedup records and frames.
//!
//! The event's content is not used, because the sweep depends only on the clock. The handler
//! therefore takes any JSON value: a manual `aws lambda invoke` with `{}` or an EventBridge
//! Scheduler payload without the rule event's `time` and `resources` still runs the sweep
//! instead of failing to deserialize.

use lambda_runtime::Diagnostic;
use serde::Serialize;
use serde_json::Value;
use tracing::{debug, error};
use wxkf_core::hub::HubError;

use super::Runtime;
use wxkf_core::error_chain;

/// Runs the sweep for one runtime.
#[derive(Clone)]
pub struct SweepHandler {
    runtime: Runtime,
}

/// The function's result. EventBridge discards it; `sam local invoke`, `cargo lambda invoke`
/// and the console's test button show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SweepResponse {
    /// Contacts released because their window closed.
    pub released: usize,
    /// Dedup records and frames deleted.
    pub pruned: u64,
}

/// A sweep stopped by a store failure. Contacts released before the failure stay released, and
/// the next scheduled run picks up the rest.
#[derive(Debug, thiserror::Error)]
#[error("sweep failed")]
pub struct SweepFailed(#[from] HubError);

/// Lambda records the invocation as failed under this error type, which the function's
/// `Errors` metric counts.
impl From<SweepFailed> for Diagnostic {
    fn from(failure: SweepFailed) -> Self {
        Diagnostic {
            error_type: "SweepFailed".to_owned(),
            error_message: error_chain(&failure),
        }
    }
}

impl SweepHandler {
    pub fn new(runtime: Runtime) -> Self {
        Self { runtime }
    }

    /// Runs one sweep. `event` is the scheduled event, logged at debug level only.
    pub async fn sweep(&self, event: Value) -> Result<SweepResponse, SweepFailed> {
        let event_id = event.get("id").and_then(Value::as_str);
        let scheduled_at = event.get("time").and_then(Value::as_str);
        debug!(event_id, scheduled_at, "sweep started");

        match self.runtime.hub.sweep().await {
            Ok(report) => Ok(SweepResponse {
                released: report.released,
                pruned: report.pruned,
            }),
            Err(failure) => {
                let failure = SweepFailed::from(failure);
                error!(error = %error_chain(&failure), "sweep failed inside the hub");
                Err(failure)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use wxkf_core::config::Config;
    use wxkf_core::frame::Frame;
    use wxkf_core::ids::{AgentId, CompanyId, MessageId, OpenId};
    use wxkf_core::memory::{MemoryStore, RecordingPusher};
    use wxkf_core::ports::{AssignOutcome, Assignment, ContactStore, StoreError};
    use wxkf_core::time::{ManualClock, Timestamp};

    use super::*;

    const NOW: i64 = 1_796_412_612;

    fn handler(store: Arc<MemoryStore>) -> SweepHandler {
        let config = Config::from_lookup(|_| None::<String>).unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(NOW)));
        let runtime = Runtime::new(config, store, Arc::new(RecordingPusher::new()), clock);
        SweepHandler::new(runtime)
    }

    /// Puts `user` on agent `kf01`'s list with a window that closed an hour before [`NOW`].
    async fn assign_lapsed(store: &MemoryStore, user: &OpenId) {
        let company = CompanyId::parse("default").unwrap();
        let assigned_at = Timestamp::from_secs(NOW - 49 * 3600);
        let notice = Frame::system(
            &MessageId::generate(),
            &company,
            assigned_at,
            "contact_assigned",
            "assigned",
            serde_json::Map::new(),
        );
        let outcome = store
            .try_assign(Assignment {
                company,
                user: user.clone(),
                agent: AgentId::parse("kf01").unwrap(),
                name: String::new(),
                avatar: String::new(),
                now: assigned_at,
                window_closes_at: Timestamp::from_secs(NOW - 3600),
                max_contacts: 10,
                notice,
            })
            .await
            .unwrap();
        assert!(
            matches!(outcome, AssignOutcome::Assigned { .. }),
            "arranging the lapsed contact: {outcome:?}"
        );
    }

    #[tokio::test]
    async fn sweep_releases_lapsed_contact() {
        let store = Arc::new(MemoryStore::new());
        let user = OpenId::parse("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o").unwrap();
        assign_lapsed(&store, &user).await;

        let response = handler(store.clone()).sweep(json!({})).await.unwrap();

        assert_eq!(response.released, 1, "the lapsed contact is released");
        let company = CompanyId::parse("default").unwrap();
        assert_eq!(
            store.contact(&company, &user).await.unwrap(),
            None,
            "the contact record is gone after the sweep"
        );
    }

    #[tokio::test]
    async fn sweep_on_empty_store_reports_nothing() {
        let response = handler(Arc::new(MemoryStore::new()))
            .sweep(json!({"detail-type": "Scheduled Event"}))
            .await
            .unwrap();

        assert_eq!(
            response,
            SweepResponse {
                released: 0,
                pruned: 0
            }
        );
        assert_eq!(
            serde_json::to_value(response).unwrap(),
            json!({"released": 0, "pruned": 0}),
            "the response serializes to the counts"
        );
    }

    #[test]
    fn failure_becomes_diagnostic_with_cause() {
        let cause = std::io::Error::new(std::io::ErrorKind::TimedOut, "dynamodb timed out");
        let failure = SweepFailed::from(HubError::from(StoreError::unavailable(cause)));

        let diagnostic = Diagnostic::from(failure);

        assert_eq!(diagnostic.error_type, "SweepFailed");
        assert_eq!(
            diagnostic.error_message,
            "sweep failed: store is unavailable: dynamodb timed out"
        );
    }
}
