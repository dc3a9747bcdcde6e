//! Structured JSON logs (with the request id from `tracing-actix-web`) and Prometheus
//! metrics. Log fields are ids and codes; never message content, ciphertext, names, phone
//! numbers or tokens (handlers use `skip_all`, and error bodies never echo input values).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

type Labels = Vec<(String, String)>;

/// The root span of every request: method (folded), matched route pattern and request id.
/// Unlike the default builder it records no raw target (query values such as a token in
/// `?access_token=` would land in every log line of the request), no user agent or client
/// address, and no debug dump of errors.
pub struct RootSpan;

/// The route pattern the root span found, kept for the access log and metrics (finding it
/// walks the route table, once per request is enough).
#[derive(Clone)]
pub struct MatchedRoute(pub String);

impl tracing_actix_web::RootSpanBuilder for RootSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage;
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        request.extensions_mut().insert(MatchedRoute(route.clone()));
        let request_id = request
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(|r| r.to_string())
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            http.method = method_label(request.method().as_str()),
            http.route = %route,
            request_id = %request_id,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        _span: tracing::Span,
        _outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        // The access log line (status, latency) is written by the request middleware.
    }
}

/// The HTTP method as a label: one of the standard methods, else `other` (every distinct
/// token a client sends would otherwise be a new series).
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides `level`. The server logs to stdout;
/// command-line tools log to stderr so their stdout stays machine-readable.
///
/// actix-http's connection dispatcher logs requests its parser refuses (a malformed header,
/// 431) at ERROR before any route or middleware sees them, so any client could write error
/// lines at will. Those lines are counted (`peerbridge_http_protocol_errors`) and kept out of
/// the log unless `RUST_LOG` names `actix_http` explicitly.
pub fn init_logging(json: bool, level: &str, to_stderr: bool) {
    use tracing_subscriber::Layer as _;
    let explicit = std::env::var("RUST_LOG").is_ok_and(|v| v.contains("actix_http"));
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},sqlx=warn,sea_orm=warn")));
    let quiet_protocol =
        tracing_subscriber::filter::filter_fn(move |m| explicit || !is_protocol_error(m));
    let registry = tracing_subscriber::registry()
        .with(ProtocolErrors)
        .with(filter);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer(to_stderr))
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .flatten_event(true)
                    .with_filter(quiet_protocol),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer(to_stderr))
                    .with_filter(quiet_protocol),
            )
            .try_init()
    };
    // Already installed (tests build several apps in one process): keep the first.
    let _ = result;
}

/// Requests refused by the HTTP parser before routing, since start (all replicas' metrics
/// add up; each process has one).
static PROTOCOL_ERRORS: std::sync::LazyLock<Counter> = std::sync::LazyLock::new(Counter::default);

fn is_protocol_error(m: &tracing::Metadata<'_>) -> bool {
    *m.level() == tracing::Level::ERROR && m.target().starts_with("actix_http::h1")
}

/// Counts `is_protocol_error` events that pass the level filter (every level up to ERROR).
struct ProtocolErrors;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ProtocolErrors {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if is_protocol_error(event.metadata()) {
            PROTOCOL_ERRORS.inc();
        }
    }
}

fn writer(to_stderr: bool) -> tracing_subscriber::fmt::writer::BoxMakeWriter {
    if to_stderr {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr)
    } else {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout)
    }
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<Labels, Counter>,
    pub http_duration: Family<Labels, Histogram>,
    pub auth_failures: Counter,
    pub rate_limited: Counter,
    pub bus_degraded: Gauge,
    pub bus_local_only: Gauge,
    /// The authorisation cache since start: answers from memory, database reads, and how
    /// often it was emptied by a revocation, an access change or a resumed bus.
    pub auth_cache_hits: Gauge,
    pub auth_cache_misses: Gauge,
    pub auth_cache_forgets: Gauge,
    pub access_cache_hits: Gauge,
    pub access_cache_misses: Gauge,
    pub database_up: Gauge,
    pub shutting_down: Gauge,
    pub ciphertext_deleted: Family<Labels, Counter>,
    /// Group commit: transactions that appended application messages, and the messages.
    pub message_commits: Counter,
    pub messages_committed: Counter,
    /// Requests refused with 503 because their writer's waiting room was full, by writer
    /// (`messages`, `acks`).
    pub writer_refused: Family<Labels, Counter>,
    pub escalation: crate::escalation::metrics::EscalationMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("peerbridge");
        let http_requests = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            http_requests.clone(),
        );
        let http_duration = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            http_duration.clone(),
        );
        let auth_failures = Counter::default();
        registry.register(
            "auth_failures",
            "Failed authentication attempts (bad token, password, TOTP or signature)",
            auth_failures.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "auth_rate_limited",
            "Authentication attempts refused with 429",
            rate_limited.clone(),
        );
        let bus_degraded = Gauge::default();
        registry.register(
            "bus_degraded",
            "1 while the Redis bus is unreachable (fan-out falls back to polling)",
            bus_degraded.clone(),
        );
        let bus_local_only = Gauge::default();
        registry.register(
            "bus_publishes_local_only",
            "Publishes since start that reached only this replica (Redis down or the publish \
             queue full); other replicas' devices resync when the bus returns",
            bus_local_only.clone(),
        );
        let auth_cache_hits = Gauge::default();
        registry.register(
            "auth_cache_hits",
            "Requests since start whose device and account were known from the last few seconds",
            auth_cache_hits.clone(),
        );
        let auth_cache_misses = Gauge::default();
        registry.register(
            "auth_cache_misses",
            "Requests since start whose device and account were read from the database",
            auth_cache_misses.clone(),
        );
        let auth_cache_forgets = Gauge::default();
        registry.register(
            "auth_cache_forgets",
            "Times since start the authorisation cache was emptied (a device revoked, a role \
             or account status changed, a session ended, a supervision, introduction or \
             conversation membership changed, the bus resumed)",
            auth_cache_forgets.clone(),
        );
        let access_cache_hits = Gauge::default();
        registry.register(
            "access_cache_hits",
            "Look-ups since start of a conversation's visibility or members answered from the \
             last few seconds",
            access_cache_hits.clone(),
        );
        let access_cache_misses = Gauge::default();
        registry.register(
            "access_cache_misses",
            "Look-ups since start of a conversation's visibility or members read from the \
             database",
            access_cache_misses.clone(),
        );
        let database_up = Gauge::default();
        registry.register(
            "database_up",
            "1 when the database answered the last readiness check",
            database_up.clone(),
        );
        let shutting_down = Gauge::default();
        registry.register(
            "shutting_down",
            "1 once graceful shutdown has begun",
            shutting_down.clone(),
        );
        registry.register(
            "http_protocol_errors",
            "HTTP/1 connection errors actix-http reports before routing (a malformed request \
             line or header, headers too large, a broken stream); a refused request gets a \
             bare 400/431. Counted here instead of logged at ERROR",
            PROTOCOL_ERRORS.clone(),
        );
        let ciphertext_deleted = Family::<Labels, Counter>::default();
        registry.register(
            "ciphertext_deleted",
            "Stored ciphertexts deleted, by reason (acknowledged, retention)",
            ciphertext_deleted.clone(),
        );
        let message_commits = Counter::default();
        registry.register(
            "message_commits",
            "Transactions that appended application messages (group commit: many sends share \
             one)",
            message_commits.clone(),
        );
        let messages_committed = Counter::default();
        registry.register(
            "messages_committed",
            "Application messages appended to conversation logs",
            messages_committed.clone(),
        );
        let writer_refused = Family::<Labels, Counter>::default();
        registry.register(
            "writer_refused",
            "Requests refused with 503 and Retry-After because as many as allowed were already \
             waiting for their writer (messages, acks); the clients send them again",
            writer_refused.clone(),
        );
        let escalation = crate::escalation::metrics::EscalationMetrics::register(&mut registry);
        Metrics {
            registry,
            writer_refused,
            message_commits,
            messages_committed,
            escalation,
            ciphertext_deleted,
            http_requests,
            http_duration,
            auth_failures,
            rate_limited,
            bus_degraded,
            bus_local_only,
            auth_cache_hits,
            auth_cache_misses,
            auth_cache_forgets,
            access_cache_hits,
            access_cache_misses,
            database_up,
            shutting_down,
        }
    }

    /// Every family this server exports, each with a series (families without one are left
    /// out of an exposition): what `peerbridge config metrics` prints for alert rules to be
    /// checked against. The sample values mean nothing.
    pub fn catalogue() -> String {
        let m = Metrics::new();
        m.observe("GET", "/v1/example", 200, 0.0);
        let _ = m
            .ciphertext_deleted
            .get_or_create(&vec![("reason".into(), "acknowledged".into())]);
        m.escalation.sample_waiting();
        m.render()
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Records one finished request. `route` is the matched pattern, never the raw path
    /// (paths carry ids); `method` goes through [`method_label`], so no label value is
    /// chosen by the client.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        self.http_requests
            .get_or_create(&vec![
                ("method".into(), method.into()),
                ("route".into(), route.into()),
                ("status".into(), status.to_string()),
            ])
            .inc();
        self.http_duration
            .get_or_create(&vec![
                ("method".into(), method.into()),
                ("route".into(), route.into()),
            ])
            .observe(seconds);
    }
}
