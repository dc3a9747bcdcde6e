//! Building and running the application: `AppState::open` wires storage, keys, tokens and the
//! bus; `Application::build` binds the listeners (port 0 in tests) and reports the ports;
//! `Application::run` serves until a shutdown signal, then turns unready, waits, drains and
//! exits.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use actix_web::dev::{Server, ServerHandle, Service};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpMessage, HttpServer, middleware, web};
use anyhow::Context;
use tracing_actix_web::{RequestId, TracingLogger};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::tokens::TokenService;
use crate::bus::Bus;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::crypto::Keys;
use crate::state::{AppState, State};
use crate::telemetry::Metrics;
use crate::{docs, error, health, storage};

impl AppState {
    /// Connects storage (migrating when configured), loads keys and starts the bus.
    pub async fn open(config: Config, clock: SharedClock, migrate: bool) -> anyhow::Result<Self> {
        let keys = Keys::load(&config).context("loading keys")?;
        if keys.development {
            tracing::warn!(
                data_dir = %config.data_dir.display(),
                "USING DEVELOPMENT KEYS from the data directory: fine for trying Peerbridge, \
                 never for real people. Configure PEERBRIDGE_JWT_SIGNING_KEY, \
                 PEERBRIDGE_FIELD_KEYS and PEERBRIDGE_INDEX_KEY in production."
            );
        }
        let db = storage::connect(&config)
            .await
            .context("opening the database")?;
        if migrate {
            storage::migrate(&db)
                .await
                .context("migrating the database")?;
        }
        let read = storage::connect_reads(&config, &db)
            .await
            .context("opening the database for reads")?;
        let urgent = storage::connect_lane(&config, &db)
            .await
            .context("opening the database for the escalation path")?;
        let bus = match &config.redis_url {
            Some(url) => Bus::redis(url, &config.redis_channel_prefix).context("Redis bus")?,
            None => Bus::in_process(),
        };
        let tokens = TokenService::new(
            &keys,
            config.jwt_issuer.clone(),
            config.jwt_audience.clone(),
            config.access_token_ttl,
            config.refresh_token_ttl,
        );
        if keys.vapid.is_none() {
            tracing::warn!(
                "no PEERBRIDGE_VAPID_PRIVATE_KEY: Web Push subscriptions are refused \
                 (UnifiedPush endpoints still work)"
            );
        }
        let vapid = keys
            .vapid
            .as_ref()
            .map(|k| crate::notify::webpush::Vapid::new(k, &config.vapid_subject));
        let push = std::sync::Arc::new(crate::notify::push::Pusher::new(
            db.clone(),
            clock.clone(),
            config.push_allowed_hosts.clone(),
            vapid,
        ));
        let metrics = Metrics::new();
        let room = |writer: &str| {
            crate::delivery::service::Admission::new(
                config.max_waiting_writes as usize,
                metrics
                    .writer_refused
                    .get_or_create(&vec![("writer".into(), writer.into())])
                    .clone(),
            )
        };
        let messages = crate::delivery::service::GroupCommit::start(
            db.clone(),
            crate::delivery::service::Stamper {
                key: keys.signing.clone(),
                kid: keys.jwt_signing_kid.clone(),
            },
            (
                metrics.message_commits.clone(),
                metrics.messages_committed.clone(),
            ),
            room("messages"),
            urgent.turns.clone(),
        );
        let acks = crate::delivery::service::AckCommit::start(
            db.clone(),
            metrics
                .ciphertext_deleted
                .get_or_create(&vec![("reason".into(), "acknowledged".into())])
                .clone(),
            room("acks"),
            urgent.turns.clone(),
        );
        Ok(AppState {
            push,
            messages,
            acks,
            db,
            read,
            urgent,
            config,
            keys,
            tokens,
            clock,
            bus,
            metrics,
            shutting_down: AtomicBool::new(false),
            shutdown_signal: tokio::sync::watch::channel(false).0,
        })
    }
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
    metrics_server: Option<Server>,
    state: State,
}

/// Triggers the graceful shutdown sequence.
#[derive(Clone)]
pub struct ShutdownHandle {
    state: State,
    handles: Vec<ServerHandle>,
}

impl ShutdownHandle {
    /// Unready first, wait for load balancers to notice, then stop accepting and drain
    /// in-flight requests (bounded by the drain timeout), then stop.
    pub async fn shutdown(&self) {
        if self.state.shutting_down.swap(true, Ordering::SeqCst) {
            return;
        }
        self.state.metrics.shutting_down.set(1);
        tracing::info!("shutdown: readiness off, draining");
        tokio::time::sleep(self.state.config.shutdown_unready_delay).await;
        // Sockets close with 1001 so clients reconnect elsewhere, then requests drain.
        self.state.shutdown_signal.send_replace(true);
        for h in &self.handles {
            h.stop(true).await;
        }
        self.state.bus.shutdown();
        tracing::info!("shutdown: done");
    }
}

impl Application {
    /// Builds on the system clock.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Builds with a given clock (tests advance a manual one).
    pub async fn build_with_clock(
        config: Config,
        clock: SharedClock,
    ) -> anyhow::Result<Application> {
        let migrate = config.migrate_on_start;
        let state = web::Data::new(AppState::open(config, clock, migrate).await?);
        Self::from_state(state)
    }

    /// Binds the listeners for prepared state.
    pub fn from_state(state: State) -> anyhow::Result<Application> {
        let config = &state.config;
        let listener = TcpListener::bind(config.bind)
            .with_context(|| format!("binding {} (PEERBRIDGE_BIND)", config.bind))?;
        let port = listener.local_addr()?.port();
        let separate_metrics = config.metrics_bind.is_some();
        let openapi = docs::openapi();
        let max_body = config.max_body_bytes;
        let body_timeout = config.request_body_timeout;
        let drain = config.shutdown_drain.as_secs();
        let st = state.clone();
        let server = HttpServer::new(move || {
            let st = st.clone();
            let (app, _) = App::new()
                .into_utoipa_app()
                .app_data(st.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(max_body)
                        .error_handler(error::json_error),
                )
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                .configure(docs::api_routes)
                .split_for_parts();
            let app = app
                .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi.clone()))
                .service(web::redirect("/docs", "/docs/").permanent())
                .default_service(web::to(crate::webapp::serve));
            let app = if separate_metrics {
                app
            } else {
                app.route("/metrics", web::get().to(health::metrics))
            };
            app.wrap(
                middleware::DefaultHeaders::new()
                    .add((header::CACHE_CONTROL, "no-store"))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    // Nothing this server answers may be framed (the docs included).
                    .add((header::X_FRAME_OPTIONS, "DENY"))
                    .add((header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'")),
            )
            .wrap_fn(move |mut req, srv| {
                let started = Instant::now();
                let st = st.clone();
                let request_id = req.extensions().get::<RequestId>().map(|r| r.to_string());
                let method = crate::telemetry::method_label(req.method().as_str());
                if !req.head().upgrade() {
                    // Every body read is bounded: a client that announces more than it
                    // sends gets 408 instead of holding the connection.
                    let payload = req.take_payload();
                    req.set_payload(body_deadline(payload, body_timeout));
                }
                let fut = srv.call(req);
                async move {
                    let mut res = fut.await?;
                    let route = {
                        use actix_web::HttpMessage;
                        let known = res
                            .request()
                            .extensions()
                            .get::<crate::telemetry::MatchedRoute>()
                            .map(|r| r.0.clone());
                        known.unwrap_or_else(|| {
                            res.request()
                                .match_pattern()
                                .unwrap_or_else(|| "unmatched".into())
                        })
                    };
                    let status = res.status().as_u16();
                    let elapsed = started.elapsed();
                    st.metrics
                        .observe(method, &route, status, elapsed.as_secs_f64());
                    // The access log: matched route pattern (never the raw path or query),
                    // status and latency; the request id comes from the enclosing span.
                    tracing::info!(
                        http.method = %method,
                        http.route = %route,
                        http.status = status,
                        duration_ms = elapsed.as_millis() as u64,
                        "request"
                    );
                    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                        res.headers_mut()
                            .insert(header::HeaderName::from_static("x-request-id"), id);
                    }
                    Ok(res)
                }
            })
            .wrap(TracingLogger::<crate::telemetry::RootSpan>::new())
        })
        .listen(listener)?
        .disable_signals()
        .shutdown_timeout(drain)
        .run();

        let (metrics_server, metrics_port) = match state.config.metrics_bind {
            Some(addr) => {
                let l = TcpListener::bind(addr)
                    .with_context(|| format!("binding {addr} (PEERBRIDGE_METRICS_BIND)"))?;
                let p = l.local_addr()?.port();
                let st = state.clone();
                let s = HttpServer::new(move || {
                    App::new()
                        .app_data(st.clone())
                        .route("/metrics", web::get().to(health::metrics))
                })
                .listen(l)?
                .workers(1)
                .disable_signals()
                .run();
                (Some(s), Some(p))
            }
            None => (None, None),
        };
        // Ciphertext past its retention is deleted by every replica (idempotent, no lease
        // needed); the first run happens one interval after start.
        let purge_state = state.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            every.tick().await;
            loop {
                every.tick().await;
                if purge_state.is_shutting_down() {
                    break;
                }
                if let Err(e) = crate::delivery::service::purge_expired(&purge_state).await {
                    tracing::warn!(error = %e, "retention purge failed; retrying next minute");
                }
            }
        });
        // Presence: the devices with a live stream here are marked seen once per heartbeat,
        // in one statement per 500 devices (push skips message wake-ups for them).
        let presence_state = state.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(crate::delivery::stream::HEARTBEAT);
            every.tick().await;
            loop {
                every.tick().await;
                if presence_state.is_shutting_down() {
                    break;
                }
                crate::delivery::service::streams_seen(&presence_state).await;
            }
        });
        // The escalation ladder: every replica ticks, the database lease lets one act.
        let ladder_state = state.clone();
        let holder = format!("replica-{}", uuid::Uuid::new_v4());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(ladder_state.config.ladder_interval);
            loop {
                every.tick().await;
                if ladder_state.is_shutting_down() {
                    break;
                }
                // Flag wake-ups owed and not yet sent (each replica; rows are claimed).
                ladder_state.push.redeliver().await;
                if let Err(e) = crate::escalation::ladder::tick(&ladder_state, &holder).await {
                    ladder_state.metrics.escalation.ladder_failed();
                    tracing::error!(error = %e, "escalation ladder pass failed; retrying");
                }
            }
        });
        Ok(Application {
            port,
            metrics_port,
            server,
            metrics_server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    pub fn state(&self) -> State {
        self.state.clone()
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        let mut handles = vec![self.server.handle()];
        if let Some(m) = &self.metrics_server {
            handles.push(m.handle());
        }
        ShutdownHandle {
            state: self.state.clone(),
            handles,
        }
    }

    /// Serves until stopped through a [`ShutdownHandle`].
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        match self.metrics_server {
            Some(m) => {
                let (a, b) = tokio::join!(self.server, m);
                a.and(b)
            }
            None => self.server.await,
        }
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully.
    pub async fn run_with_signals(self) -> std::io::Result<()> {
        let handle = self.shutdown_handle();
        tokio::spawn(async move {
            wait_for_signal().await;
            handle.shutdown().await;
        });
        self.run_until_stopped().await
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The request body as a stream that fails with a `TimedOut` I/O error (→ 408 problem) once
/// `timeout` has passed since the request's head arrived.
fn body_deadline(
    inner: actix_web::dev::Payload,
    timeout: std::time::Duration,
) -> actix_web::dev::Payload {
    use futures_util::StreamExt;
    let sleep = Box::pin(tokio::time::sleep(timeout));
    let stream = futures_util::stream::unfold(Some((inner, sleep)), |state| async move {
        let (mut inner, mut sleep) = state?;
        tokio::select! {
            item = inner.next() => item.map(|i| (i, Some((inner, sleep)))),
            _ = &mut sleep => Some((
                Err(actix_web::error::PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "request body timed out",
                ))),
                None,
            )),
        }
    });
    actix_web::dev::Payload::Stream {
        payload: Box::pin(stream),
    }
}
