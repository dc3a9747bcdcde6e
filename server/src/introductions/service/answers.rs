//! The party side: a service user's or peer's own introductions and their answers.

use super::proposals::{Action, act};
use super::{as_party, party_of, party_view};
use crate::auth::extract::Principal;
use crate::error::ApiResult;
use crate::introductions::entities::introduction;
use crate::state::AppState;
use peerbridge_openapi::introductions::PartyIntroduction;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

pub async fn mine(state: &AppState, p: &Principal) -> ApiResult<Vec<PartyIntroduction>> {
    let now = state.now();
    let rows = introduction::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(introduction::Column::ServiceUserId.eq(p.user_id))
                .add(introduction::Column::PeerId.eq(p.user_id)),
        )
        .order_by_desc(introduction::Column::CreatedAt)
        .all(&state.db)
        .await?;
    let mut out = Vec::new();
    for r in rows {
        if let Some(me) = party_of(&r, p.user_id) {
            out.push(party_view(&state.db, r, me, now).await?);
        }
    }
    Ok(out)
}

pub async fn get_mine(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<PartyIntroduction> {
    let (i, me) = as_party(&state.db, p, id).await?;
    party_view(&state.db, i, me, state.now()).await
}

pub async fn party_act(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    action: Action,
) -> ApiResult<PartyIntroduction> {
    let (_, me) = as_party(&state.db, p, id).await?;
    let i = act(state, p, id, action, Some(me)).await?;
    party_view(&state.db, i, me, state.now()).await
}
