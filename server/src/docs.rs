//! The OpenAPI document, collected from the handlers by utoipa-actix-web, and the route
//! table it is collected from (one list, so the served API and the document cannot drift).

use std::sync::OnceLock;

use actix_web::App;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response, ResponseBuilder};
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
    components(schemas(
        peerbridge_openapi::ErrorCode,
        peerbridge_openapi::Problem,
        peerbridge_openapi::delivery::Notice
    )),
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
    crate::supervision::routes::configure(cfg);
    crate::delivery::routes::configure(cfg);
    crate::introductions::routes::configure(cfg);
    crate::escalation::routes::configure(cfg);
}

/// The document as served at `/openapi.json` and committed as `openapi/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut base = BaseDoc::openapi();
    base.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let (_, mut api) = App::new()
        .into_utoipa_app()
        .openapi(base)
        .configure(api_routes)
        .split_for_parts();
    standard_responses(&mut api);
    api
}

fn problem_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build(),
    )
}

fn default_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "204" => "No content",
        "400" => {
            "Malformed body or parameter (`malformed_body`, `invalid_parameter`, or the \
                  endpoint's own code such as `invite_invalid`)"
        }
        "401" => "Not authenticated, or credentials wrong",
        "408" => "The body did not arrive in time (`request_timeout`)",
        "403" => "The caller's role or clinic does not allow this",
        "404" => "Not found, or not visible to the caller",
        "409" => "Conflicts with the current state",
        "413" => "Body too large (`payload_too_large`)",
        "415" => "Body is not `application/json` (`unsupported_media_type`)",
        "422" => "A value is out of range or badly formed (`validation_failed`, with `field`)",
        "429" => "Too many attempts (`rate_limited`); retry after `Retry-After` seconds",
        "500" => "Unexpected error (`internal`); `x-request-id` finds it in the server log",
        "503" => "Not ready, or too busy (`unavailable`); retry after `Retry-After` seconds",
        _ => "See the problem code",
    }
}

/// Every operation documents the errors every request can meet (malformed input, missing
/// authentication, internal failure) and every response has a description, so the document
/// tells clients the whole truth without repeating it on each handler.
fn standard_responses(api: &mut utoipa::openapi::OpenApi) {
    for (path, item) in api.paths.paths.iter_mut() {
        let ops = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let has_body = op.request_body.is_some();
            let has_query = op.parameters.as_ref().is_some_and(|ps| {
                ps.iter()
                    .any(|p| {
                        matches!(p, RefOr::T(p) if matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query))
                    })
            });
            let has_params = path.contains('{') || has_query;
            let secured = op.security.is_some();
            let responses = &mut op.responses.responses;
            let mut add = |status: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem_response(default_description(status)));
            };
            if has_body || has_params {
                add("400");
            }
            if has_body || has_query {
                add("422");
            }
            if has_body {
                add("408");
                add("413");
                add("415");
            }
            if secured {
                add("401");
            }
            if path.starts_with("/v1/") {
                add("500");
            }
            for (status, resp) in responses.iter_mut() {
                if let RefOr::T(r) = resp
                    && r.description.is_empty()
                {
                    r.description = default_description(status).to_owned();
                }
            }
        }
    }
}

/// Methods the document allows on a concrete path (e.g. `/v1/clinics/<uuid>`), for 405s.
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    static TABLE: OnceLock<Vec<(Vec<String>, Vec<&'static str>)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t: Vec<(Vec<String>, Vec<&'static str>)> = openapi()
            .paths
            .paths
            .iter()
            .map(|(p, item)| {
                let mut methods = Vec::new();
                for (m, op) in [
                    ("GET", &item.get),
                    ("POST", &item.post),
                    ("PUT", &item.put),
                    ("DELETE", &item.delete),
                    ("PATCH", &item.patch),
                ] {
                    if op.is_some() {
                        methods.push(m);
                    }
                }
                (p.split('/').map(str::to_owned).collect(), methods)
            })
            .collect();
        t.push((vec!["".into(), "metrics".into()], vec!["GET"]));
        t.push((vec!["".into(), "openapi.json".into()], vec!["GET"]));
        t
    });
    let segs: Vec<&str> = path.split('/').collect();
    for (pattern, methods) in table {
        if pattern.len() == segs.len()
            && pattern
                .iter()
                .zip(&segs)
                .all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()))
        {
            return methods.clone();
        }
    }
    Vec::new()
}

/// Pretty JSON with a trailing newline, exactly as committed.
pub fn openapi_json() -> String {
    let mut s = openapi().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}

/// Anything no route matched: 405 with `Allow` when the path exists under other methods,
/// 404 otherwise.
pub async fn not_found(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError as _;
    use actix_web::http::header::{self, HeaderValue};
    let allowed = allowed_methods(req.path());
    // A documented method that still fell through is not served here (e.g. `/metrics` moved
    // to its own listener): that is a 404, not a 405.
    if allowed.is_empty() || allowed.contains(&req.method().as_str()) {
        return crate::error::ApiError::not_found()
            .detail("no such endpoint")
            .error_response();
    }
    let mut resp = crate::error::ApiError::new(peerbridge_openapi::ErrorCode::MethodNotAllowed)
        .detail(format!("this path allows {}", allowed.join(", ")))
        .error_response();
    if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    resp
}
