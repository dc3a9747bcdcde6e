//! The on-device risk detector: a received text that reads as a risk disclosure is followed
//! by a `RiskSuggested` event (a suggestion to the peer; nothing leaves the device).

use peerbridge_mls::Client as MlsClient;
use peerbridge_mls::detector::{RiskCategory, SeverityHint, assess};

use super::{ReceiveHook, Received};
use crate::error::Result;
use crate::events::Event;

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
        if let Some(s) = assess(body) {
            follow.push(Event::RiskSuggested {
                conversation: cx.conversation,
                seq: cx.entry.seq,
                category: match s.category {
                    RiskCategory::SuicideRisk => "suicide_risk",
                    RiskCategory::SelfHarm => "self_harm",
                }
                .into(),
                severity: match s.severity_hint {
                    SeverityHint::Imminent => "imminent",
                    SeverityHint::Urgent => "urgent",
                    SeverityHint::Concerning => "concerning",
                }
                .into(),
            });
        }
        Ok(())
    }
}
