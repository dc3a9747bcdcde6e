//! `/livez` (the process answers), `/readyz` (database reachable, schema current, not
//! shutting down; the bus is reported, not gating) and `/metrics`.

use actix_web::{HttpResponse, get, web};
use peerbridge_openapi::health::{BusHealth, Liveness, Readiness};

use crate::state::{AppState, State};
use crate::storage;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(livez).service(readyz);
}

/// The process is alive.
#[utoipa::path(tag = "health", responses((status = 200, body = Liveness)))]
#[get("/livez")]
async fn livez() -> web::Json<Liveness> {
    web::Json(Liveness {
        status: "ok".into(),
    })
}

/// Ready to serve: database reachable and schema current, not shutting down. A degraded
/// Redis bus is reported in the body and in metrics but keeps the replica ready.
#[utoipa::path(
    tag = "health",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness))
)]
#[get("/readyz")]
async fn readyz(state: State) -> HttpResponse {
    let r = readiness(&state).await;
    if r.status == "ready" {
        HttpResponse::Ok().json(r)
    } else {
        HttpResponse::ServiceUnavailable().json(r)
    }
}

/// Computes readiness and updates the matching gauges.
pub async fn readiness(state: &AppState) -> Readiness {
    let db_ok = storage::ping(&state.db).await;
    let schema = if db_ok {
        match storage::schema_is_current(&state.db).await {
            Some(true) => "current",
            Some(false) => "behind",
            None => "unknown",
        }
    } else {
        "unknown"
    };
    let bus_ok = state.bus.is_healthy();
    state.metrics.database_up.set(i64::from(db_ok));
    state.metrics.bus_degraded.set(i64::from(!bus_ok));
    let shutting_down = state.is_shutting_down();
    let ready = db_ok && schema == "current" && !shutting_down;
    Readiness {
        status: if ready { "ready" } else { "unready" }.into(),
        database: if db_ok { "ok" } else { "unreachable" }.into(),
        schema: schema.into(),
        bus: BusHealth {
            kind: state.bus.kind().into(),
            state: if bus_ok { "ok" } else { "degraded" }.into(),
        },
        shutting_down,
    }
}

/// Prometheus text exposition (not part of the API document; on a separate port when
/// `PEERBRIDGE_METRICS_BIND` is set).
pub async fn metrics(state: State) -> HttpResponse {
    state
        .metrics
        .bus_degraded
        .set(i64::from(!state.bus.is_healthy()));
    state
        .metrics
        .bus_local_only
        .set(i64::try_from(state.bus.local_only()).unwrap_or(i64::MAX));
    let (hits, misses) = state.bus.auth_cache().counts();
    let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    state.metrics.auth_cache_hits.set(gauge(hits));
    state.metrics.auth_cache_misses.set(gauge(misses));
    let (hits, misses) = state.bus.auth_cache().access_counts();
    state.metrics.access_cache_hits.set(gauge(hits));
    state.metrics.access_cache_misses.set(gauge(misses));
    state
        .metrics
        .auth_cache_forgets
        .set(gauge(state.bus.auth_cache().epoch()));
    state
        .metrics
        .escalation
        .refresh(&state.db, state.now())
        .await;
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}
