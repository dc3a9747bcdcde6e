//! Every received franked message is kept with its opening and the server's stamp (sealed
//! state), so it can be quoted verifiably in an excerpt later (`escalation.rs` reads them).

use peerbridge_mls::excerpt::Stamp;
use peerbridge_mls::{Client as MlsClient, Franked};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ReceiveHook, Received};
use crate::error::Result;
use crate::http::unb64;
use crate::state;

pub(crate) fn franked_key(conv: Uuid, seq: u64) -> String {
    format!("franked/{conv}/{seq}")
}

/// A received message kept for excerpts: its exact bytes, opening and the server's stamp.
#[derive(Serialize, Deserialize)]
pub(crate) struct KeptMessage {
    pub plaintext: Vec<u8>,
    pub key: [u8; 32],
    pub commitment: [u8; 32],
    pub stamp: Option<Stamp>,
}

/// Keeps a franked message's opening with the server's stamp.
pub(crate) struct KeepFranked;

impl ReceiveHook for KeepFranked {
    fn on_decrypted(
        &self,
        mls: &mut MlsClient,
        cx: &Received<'_>,
        event: &peerbridge_mls::Event,
    ) -> Result<()> {
        let peerbridge_mls::Event::Message {
            franking: Some(f), ..
        } = event
        else {
            return Ok(());
        };
        keep(mls, cx, f)
    }
}

fn keep(mls: &mut MlsClient, cx: &Received<'_>, f: &Franked) -> Result<()> {
    let stamp = match &cx.entry.franking {
        Some(s) => Some(Stamp {
            sender: s.sender.clone(),
            seq: s.seq,
            received_at: s.received_at,
            kid: s.kid.clone(),
            signature: unb64("signature", &s.signature)?,
        }),
        None => None,
    };
    Ok(state::put(
        mls,
        &franked_key(cx.conversation, cx.entry.seq),
        &KeptMessage {
            plaintext: f.plaintext.clone(),
            key: f.key,
            commitment: f.commitment,
            stamp,
        },
    )?)
}
