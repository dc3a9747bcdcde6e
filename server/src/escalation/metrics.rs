//! The escalation figures an operator alerts on: flags waiting per level, severity and
//! status and the oldest unacknowledged one (read from the database when scraped, so every
//! replica reports the same; alert on `max`), deadline breaches by step, time to
//! acknowledge, flags nobody could be alerted about, and the ladder job's health.

//!
//! Kept free of the application state (telemetry owns these figures and the state owns
//! telemetry): callers pass the database and the time.

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::entities::flag;

type Labels = Vec<(String, String)>;

#[derive(Clone)]
pub struct EscalationMetrics {
    waiting: Family<Labels, Gauge>,
    oldest_unacknowledged: Family<Labels, Gauge>,
    breaches: Family<Labels, Counter>,
    time_to_acknowledge: Family<Labels, Histogram>,
    unalertable: Counter,
    ladder_last_pass: Gauge,
    ladder_failures: Counter,
}

impl EscalationMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = EscalationMetrics {
            waiting: Family::default(),
            oldest_unacknowledged: Family::default(),
            breaches: Family::default(),
            time_to_acknowledge: Family::new_with_constructor(|| {
                // 15 s to about 8.5 h.
                Histogram::new(exponential_buckets(15.0, 2.0, 12))
            }),
            unalertable: Counter::default(),
            ladder_last_pass: Gauge::default(),
            ladder_failures: Counter::default(),
        };
        // Every series an alert reads exists from the start at 0: `increase()` cannot see a
        // series whose first sample is already 1, and a family with no series is not even
        // listed in the exposition.
        for severity in SEVERITIES {
            for step in STEPS {
                let _ = m.breaches.get_or_create(&vec![
                    ("step".into(), step.into()),
                    ("severity".into(), severity.into()),
                ]);
            }
            let _ = m
                .time_to_acknowledge
                .get_or_create(&vec![("severity".into(), severity.into())]);
            let _ = m
                .oldest_unacknowledged
                .get_or_create(&vec![("severity".into(), severity.into())]);
        }
        registry.register(
            "escalation_flags",
            "Flags not yet resolved, by status (open, acknowledged), ladder level and severity \
             (from the database at scrape time: the same on every replica)",
            m.waiting.clone(),
        );
        registry.register(
            "escalation_oldest_unacknowledged_seconds",
            "Age of the oldest open (unacknowledged) flag, by severity; 0 when none",
            m.oldest_unacknowledged.clone(),
        );
        registry.register(
            "escalation_deadline_breaches",
            "Flags past their deadline, by the ladder's step (escalated, realerted at the top \
             level, overdue: acknowledged but not resolved in time) and severity",
            m.breaches.clone(),
        );
        registry.register(
            "escalation_time_to_acknowledge_seconds",
            "From raising to the first acknowledgement (or resolution), by severity",
            m.time_to_acknowledge.clone(),
        );
        registry.register(
            "escalation_unalertable_flags",
            "Flags stored when nobody at any level of their clinic could be alerted",
            m.unalertable.clone(),
        );
        registry.register(
            "escalation_ladder_last_pass_timestamp_seconds",
            "Unix time of this replica's last completed ladder pass (only the lease holder \
             passes: alert on the max over replicas)",
            m.ladder_last_pass.clone(),
        );
        registry.register(
            "escalation_ladder_failures",
            "Ladder passes that failed (database errors); the job retries at its interval",
            m.ladder_failures.clone(),
        );
        m
    }

    pub fn ladder_pass(&self, now: DateTime<Utc>) {
        self.ladder_last_pass.set(now.timestamp());
    }

    pub fn ladder_failed(&self) {
        self.ladder_failures.inc();
    }

    /// A ladder step (`escalated`, `realerted`, `overdue`) on a flag of `severity`.
    pub fn breach(&self, step: &'static str, severity: &str) {
        self.breaches
            .get_or_create(&vec![
                ("step".into(), step.into()),
                ("severity".into(), label(severity)),
            ])
            .inc();
    }

    pub fn unalertable(&self) {
        self.unalertable.inc();
    }

    /// One series in the family that only has series while flags wait (for the catalogue of
    /// metric names, never on a serving replica).
    pub fn sample_waiting(&self) {
        let _ = self.waiting.get_or_create(&vec![
            ("status".into(), "open".into()),
            ("level".into(), "0".into()),
            ("severity".into(), "imminent".into()),
        ]);
    }
}

const SEVERITIES: [&str; 4] = ["imminent", "urgent", "concerning", "routine"];
const STEPS: [&str; 3] = ["escalated", "realerted", "overdue"];

/// A stored severity as a label: one of the four names, else `unknown` (a corrupt row must
/// not mint series).
fn label(severity: &str) -> String {
    match severity {
        "imminent" | "urgent" | "concerning" | "routine" => severity.into(),
        _ => "unknown".into(),
    }
}

impl EscalationMetrics {
    /// Records the time a flag waited for its first acknowledgement.
    pub fn acknowledged(&self, f: &flag::Model, now: DateTime<Utc>) {
        let waited = (now - f.created_at).num_milliseconds().max(0) as f64 / 1000.0;
        self.time_to_acknowledge
            .get_or_create(&vec![("severity".into(), label(&f.severity))])
            .observe(waited);
    }

    /// Reads the waiting flags into the gauges (when `/metrics` is scraped).
    pub async fn refresh(&self, db: &impl ConnectionTrait, now: DateTime<Utc>) {
        let rows = match flag::Entity::find()
            .filter(flag::Column::Status.is_in(["open", "acknowledged"]))
            .all(db)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "escalation metrics: flags unreadable");
                return;
            }
        };
        self.waiting.clear();
        self.oldest_unacknowledged.clear();
        for severity in SEVERITIES {
            self.oldest_unacknowledged
                .get_or_create(&vec![("severity".into(), severity.into())])
                .set(0);
        }
        for f in rows {
            self.waiting
                .get_or_create(&vec![
                    ("status".into(), f.status.clone()),
                    ("level".into(), f.level.clamp(0, 3).to_string()),
                    ("severity".into(), label(&f.severity)),
                ])
                .inc();
            if f.status == "open" {
                let age = (now - f.created_at).num_seconds().max(0);
                let g = self
                    .oldest_unacknowledged
                    .get_or_create(&vec![("severity".into(), label(&f.severity))]);
                if age > g.get() {
                    g.set(age);
                }
            }
        }
    }
}
