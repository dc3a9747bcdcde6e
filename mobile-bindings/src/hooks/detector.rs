//! The on-device risk detector as the apps see it: [`suggest_risk`] (the one mapping of the
//! client core's detector to the contract's category and severity, used by the UniFFI and
//! browser exports), and the receive hook that follows a received text reading as a risk
//! disclosure with a `RiskSuggested` event (a suggestion to the peer; nothing leaves the
//! device).

use peerbridge_mls::Client as MlsClient;
use peerbridge_mls::detector::{self, SeverityHint};
use peerbridge_openapi::escalation::{RiskCategory, Severity};

use super::{ReceiveHook, Received};
use crate::error::Result;
use crate::events::Event;

/// What the on-device detector suggests for a text (only a suggestion; a person decides).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema, uniffi::Record)]
pub struct RiskSuggestion {
    pub category: RiskCategory,
    pub severity: Severity,
    /// 0–1: 1.0 imminent, 0.8 urgent, 0.5 concerning.
    pub score: f32,
}

/// Reads `text` with the on-device risk detector (bokmål, nynorsk, English). Nothing
/// leaves the device.
pub fn suggest_risk(text: &str) -> Option<RiskSuggestion> {
    detector::assess(text).map(|s| RiskSuggestion {
        category: match s.category {
            detector::RiskCategory::SuicideRisk => RiskCategory::SuicideRisk,
            detector::RiskCategory::SelfHarm => RiskCategory::SelfHarm,
        },
        severity: match s.severity_hint {
            SeverityHint::Imminent => Severity::Imminent,
            SeverityHint::Urgent => Severity::Urgent,
            SeverityHint::Concerning => Severity::Concerning,
        },
        score: s.score,
    })
}

/// The contract's spelling of a value (`suicide_risk`, `imminent`), for string fields.
fn wire(v: impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(crate) struct SuggestRisk;

impl ReceiveHook for SuggestRisk {
    fn on_event(
        &self,
        _mls: &mut MlsClient,
        cx: &Received<'_>,
        event: &Event,
        follow: &mut Vec<Event>,
    ) -> Result<()> {
        let Event::Text { body, .. } = event else {
            return Ok(());
        };
        if let Some(s) = suggest_risk(body) {
            follow.push(Event::RiskSuggested {
                conversation: cx.conversation,
                seq: cx.entry.seq,
                category: wire(s.category),
                severity: wire(s.severity),
            });
        }
        Ok(())
    }
}
