//! The counterpart's identity card, kept when it arrives after both consented to reveal
//! (`introductions.rs` shows it).

use peerbridge_mls::Client as MlsClient;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ReceiveHook, Received};
use crate::error::Result;
use crate::events::Event;
use crate::http::unb64;
use crate::state;

/// What the user chose to show when both consent to reveal. Every field is optional.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, uniffi::Record,
)]
pub struct IdentityCard {
    pub first_name: Option<String>,
    pub phone: Option<String>,
    /// A small photo (at most 40 KiB).
    pub photo: Option<Vec<u8>>,
}

pub(crate) fn card_received_key(intro: Uuid) -> String {
    format!("card-received/{intro}")
}

/// Keeps the identity card the other party sent in an introduction.
pub(crate) struct KeepIdentityCard;

impl ReceiveHook for KeepIdentityCard {
    fn on_event(
        &self,
        mls: &mut MlsClient,
        cx: &Received<'_>,
        event: &Event,
        _follow: &mut Vec<Event>,
    ) -> Result<()> {
        if let (
            Some(intro),
            Event::IdentityCard {
                first_name,
                phone,
                photo,
                sender,
                ..
            },
        ) = (cx.introduction, event)
            && !sender.is_me
        {
            let card = IdentityCard {
                first_name: first_name.clone(),
                phone: phone.clone(),
                photo: photo.as_deref().and_then(|p| unb64("photo", p).ok()),
            };
            state::put(mls, &card_received_key(intro), &card)?;
        }
        Ok(())
    }
}
