//! The OpenAPI document, collected from the handlers by utoipa-actix-web, and the route
//! table it is collected from (one list, so the served API and the document cannot drift).

use actix_web::App;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Peerbridge API",
        description = "Clinic-run, end-to-end encrypted peer-support messaging. Errors are \
                       application/problem+json with a stable `code`.",
        license(name = "AGPL-3.0-only", identifier = "AGPL-3.0-only")
    ),
    components(schemas(peerbridge_openapi::ErrorCode, peerbridge_openapi::Problem)),
    modifiers(&BearerAuth)
)]
struct BaseDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every documented route.
pub fn api_routes(cfg: &mut ServiceConfig) {
    crate::health::configure(cfg);
    crate::clinics::routes::configure(cfg);
    crate::accounts::routes::configure(cfg);
    crate::auth::routes::configure(cfg);
}

/// The document as served at `/openapi.json` and committed as `openapi/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut base = BaseDoc::openapi();
    base.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let (_, api) = App::new()
        .into_utoipa_app()
        .openapi(base)
        .configure(api_routes)
        .split_for_parts();
    api
}

/// Pretty JSON with a trailing newline, exactly as committed.
pub fn openapi_json() -> String {
    let mut s = openapi().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}
