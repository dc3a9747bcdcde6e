"""Tests of the chart check: the real chart passes, and each deliberate error, made in a
temporary copy of the chart or in the values of a case, makes it fail for that reason."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

import check_chart
from check_chart import Case, Report, Server


def run_case(chart_dir: Path, server: Server, case: Case) -> list[str]:
    report = Report()
    check_chart.check_case(chart_dir, case, server, report)
    return report.problems


def default_case(**values: Any) -> Case:
    return Case("mutated", values=values)


def existing_secret_case() -> Case:
    return next(c for c in check_chart.MATRIX if c.name == "existing-secret")


def alerts_case() -> Case:
    return next(c for c in check_chart.MATRIX if c.name == "alerts-unscoped")


def assert_fails_with(problems: list[str], *needles: str) -> None:
    assert problems, "the check passed although an error was introduced"
    text = "\n".join(problems)
    for needle in needles:
        assert needle in text, f"expected {needle!r} among the problems:\n{text}"


# ------------------------------------------------------------------ the real chart


def test_real_chart_passes_the_whole_matrix(server: Server) -> None:
    report = check_chart.run_checks(server=server)
    assert report.problems == []
    assert report.passed > 500


def test_matrix_covers_the_required_cases() -> None:
    names = {c.name for c in check_chart.MATRIX}
    assert {"default", "production", "existing-secret", "hpa", "network-policy-off"} <= names
    assert {c.name for c in check_chart.MATRIX if c.expect_alerts} >= {"production"}
    assert not next(c for c in check_chart.MATRIX if c.name == "default").expect_alerts
    assert check_chart.KUBE_VERSIONS[0].startswith("1.30")


def test_allowed_env_names_come_from_the_binary(server: Server) -> None:
    assert "PEERBRIDGE_SHUTDOWN_DRAIN_SECS" in server.env_vars
    assert "DATABASE_URL" in server.env_vars
    assert {"/livez", "/readyz"} <= server.paths


# ------------------------------------------------------------------ values and schema


def test_typo_in_a_value_override_is_rejected(chart_copy, server: Server) -> None:
    problems = run_case(chart_copy(), server, default_case(replicaCont=3))
    assert_fails_with(problems, "replicaCont")


def test_typo_in_a_nested_value_is_rejected(chart_copy, server: Server) -> None:
    problems = run_case(chart_copy(), server,
                        default_case(networkPolicy={"egress": {"postgres": {"port": 5432, "to": []}}}))
    assert_fails_with(problems, "postgres")


def test_typo_in_values_yaml_is_rejected(chart_copy, server: Server) -> None:
    chart = chart_copy(("values.yaml", "\nreplicaCount: 2\n", "\nreplicaCont: 2\n"))
    problems = run_case(chart, server, Case("default", defaults_only=True))
    assert_fails_with(problems, "replicaCont")


@pytest.mark.parametrize("values, needle", [
    ({"replicaCount": "3"}, "replicaCount"),
    ({"replicaCount": 1}, "replicaCount"),
    ({"image": {"tag": "latest"}}, "/image/tag"),
    ({"config": {"logFormat": "text"}}, "logFormat"),
    ({"ingress": {"enabled": "yes"}}, "/ingress/enabled"),
    ({"resources": {"limits": {"cpu": "lots", "memory": "1Gi"}}}, "cpu"),
    ({"alerts": {"imminentUnacknowledged": {"for": "5min"}}}, "/alerts/imminentUnacknowledged/for"),
    ({"alerts": {"realerted": {"severities": ["critical"]}}}, "/alerts/realerted/severities"),
    ({"alerts": {"ruleLabels": {"severity": "critical"}}}, "invalid propertyName 'severity'"),
    ({"alerts": {"selector": "namespace=peerbridge"}}, "/alerts/selector"),
])
def test_wrong_type_or_range_is_rejected(chart_copy, server: Server, values: dict, needle: str) -> None:
    assert_fails_with(run_case(chart_copy(), server, default_case(**values)), needle)


def test_schema_must_close_every_object(chart_copy) -> None:
    chart = chart_copy(("values.schema.json",
                        '"probe": {\n      "type": "object",\n      "additionalProperties": false,',
                        '"probe": {\n      "type": "object",'))
    report = Report()
    check_chart.check_schema_strictness(chart, report)
    assert_fails_with(report.problems, "/definitions/probe accepts unknown keys")


# ------------------------------------------------------------------ security context


@pytest.mark.parametrize("rel, old, new, needle", [
    ("templates/_helpers.tpl", "readOnlyRootFilesystem: true\n", "", "readOnlyRootFilesystem"),
    ("templates/_helpers.tpl", "allowPrivilegeEscalation: false\n", "", "allowPrivilegeEscalation"),
    ("templates/_helpers.tpl", "capabilities:\n  drop:\n    - ALL\n", "", "capabilities.drop must contain ALL"),
    ("templates/deployment.yaml",
     "      securityContext:\n        {{- include \"peerbridge.podSecurityContext\" . | nindent 8 }}\n", "",
     "pod securityContext.runAsNonRoot"),
    ("templates/migration-job.yaml",
     "          securityContext:\n            {{- include \"peerbridge.containerSecurityContext\" . | nindent 12 }}\n", "",
     "Job/peerbridge-migrate container migrate: securityContext.readOnlyRootFilesystem"),
    ("templates/deployment.yaml", "      automountServiceAccountToken: false\n", "", "automountServiceAccountToken"),
    ("templates/deployment.yaml", "      enableServiceLinks: false\n", "", "enableServiceLinks"),
    ("templates/deployment.yaml", "            - name: tmp\n              mountPath: /tmp\n", "", "/tmp must be an emptyDir"),
    ("templates/deployment.yaml", "          resources:\n            {{- toYaml .Values.resources | nindent 12 }}\n", "",
     "resources.limits.memory"),
])
def test_missing_security_setting_fails(chart_copy, server: Server, rel: str, old: str, new: str,
                                        needle: str) -> None:
    problems = run_case(chart_copy((rel, old, new)), server, Case("default", defaults_only=True))
    assert_fails_with(problems, needle)


# ------------------------------------------------------------------ probes


def test_probe_path_the_server_does_not_serve_fails(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/deployment.yaml", "path: /readyz", "path: /healthz"))
    problems = run_case(chart, server, default_case())
    assert_fails_with(problems, "readinessProbe path /healthz is not served by the server")


def test_liveness_on_the_readiness_path_fails(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/deployment.yaml",
                        "livenessProbe:\n            httpGet:\n              path: /livez",
                        "livenessProbe:\n            httpGet:\n              path: /readyz"))
    assert_fails_with(run_case(chart, server, default_case()), "livenessProbe must probe /livez")


def test_probe_on_the_metrics_port_fails(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/deployment.yaml",
                        "path: /readyz\n              port: http", "path: /readyz\n              port: metrics"))
    assert_fails_with(run_case(chart, server, default_case()), "readinessProbe must target the http port")


def test_test_hook_must_ask_readyz(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/tests/test-readyz.yaml", "/readyz\" (include", "/livez\" (include"))
    assert_fails_with(run_case(chart, server, default_case()), "the test must request /readyz")


# ------------------------------------------------------------------ environment


def test_env_var_the_server_does_not_read_fails(chart_copy, server: Server) -> None:
    problems = run_case(chart_copy(), server,
                        default_case(config={"extraEnv": {"PEERBRIDGE_NOT_A_SETTING": "1"}}))
    assert_fails_with(problems, "does not read", "PEERBRIDGE_NOT_A_SETTING")


def test_env_var_added_to_the_job_template_fails(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/migration-job.yaml",
                        "            - name: PEERBRIDGE_DATA_DIR\n",
                        "            - name: PEERBRIDGE_MIGRATION_TIMEOUT\n              value: \"60\"\n"
                        "            - name: PEERBRIDGE_DATA_DIR\n"))
    problems = run_case(chart, server, default_case())
    assert_fails_with(problems, "Job/peerbridge-migrate", "PEERBRIDGE_MIGRATION_TIMEOUT")


def test_value_the_server_rejects_fails(chart_copy, server: Server) -> None:
    problems = run_case(chart_copy(), server,
                        default_case(config={"extraEnv": {"PEERBRIDGE_INVITE_TTL_HOURS": "0"}}))
    assert_fails_with(problems, "`peerbridge config check` rejects", "PEERBRIDGE_INVITE_TTL_HOURS")


def test_credential_in_the_configmap_fails(chart_copy, server: Server) -> None:
    problems = run_case(chart_copy(), server,
                        default_case(config={"extraEnv": {"PEERBRIDGE_INDEX_KEY": "x"}}))
    assert_fails_with(problems, "credentials set in plain text", "set twice")


def test_env_names_follow_the_binary_not_a_copied_list(tmp_path: Path, chart_copy, server: Server) -> None:
    """A server that stopped reading PEERBRIDGE_LOG_LEVEL makes the chart fail."""
    fake = tmp_path / "peerbridge"
    fake.write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" = "config env-vars" ]; then "{server.binary}" config env-vars | grep -v "^PEERBRIDGE_LOG_LEVEL$"; exit 0; fi\n'
        f'exec "{server.binary}" "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    other = Server.load(fake, check_chart.DEFAULT_OPENAPI)
    assert "PEERBRIDGE_LOG_LEVEL" not in other.env_vars
    assert_fails_with(run_case(chart_copy(), other, default_case()), "PEERBRIDGE_LOG_LEVEL")


def test_metrics_listener_must_stay_separate(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/configmap.yaml",
                        '  PEERBRIDGE_METRICS_BIND: {{ printf "0.0.0.0:%v" .Values.ports.metrics | quote }}\n', ""))
    assert_fails_with(run_case(chart, server, default_case()), "PEERBRIDGE_METRICS_BIND must be set")


# ------------------------------------------------------------------ shutdown


def test_grace_period_too_short_in_values_fails(chart_copy, server: Server) -> None:
    problems = run_case(chart_copy(), server, default_case(shutdown={"terminationGracePeriodSeconds": 30}))
    assert_fails_with(problems, "terminationGracePeriodSeconds (30) must be greater")


def test_grace_period_too_short_in_template_fails(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/deployment.yaml",
                        "terminationGracePeriodSeconds: {{ .Values.shutdown.terminationGracePeriodSeconds }}",
                        "terminationGracePeriodSeconds: 30"))
    problems = run_case(chart, server, default_case())
    assert_fails_with(problems, "terminationGracePeriodSeconds (30) must exceed preStop (5) + unready delay (5) + drain (20)")


def test_missing_prestop_fails(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/deployment.yaml",
                        "          lifecycle:\n", "          x-lifecycle:\n"))
    # The unknown field is also caught by the strict Kubernetes validation.
    assert_fails_with(run_case(chart, server, default_case()), "lifecycle.preStop must sleep", "x-lifecycle")


# ------------------------------------------------------------------ secrets


def test_existing_secret_still_rendering_a_secret_fails(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/secret.yaml", "{{- if not .Values.secrets.existingSecret }}", "{{- if true }}"))
    problems = run_case(chart, server, existing_secret_case())
    assert_fails_with(problems, "existingSecret is set but the chart renders Secrets")


def test_existing_secret_with_a_stray_reference_fails(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/deployment.yaml",
                        'name: {{ include "peerbridge.secretName" $ }}',
                        'name: {{ include "peerbridge.fullname" $ }}'))
    problems = run_case(chart, server, existing_secret_case())
    assert_fails_with(problems, "every secret reference must use 'peerbridge-credentials'")


def test_credentials_in_default_values_fail(chart_copy, server: Server) -> None:
    chart = chart_copy(("values.yaml", '    databaseUrl: ""', '    databaseUrl: "postgres://pb:hunter2@db/pb"'))
    problems = run_case(chart, server, Case("default", defaults_only=True))
    assert_fails_with(problems, "default values contain credentials", "default values render credentials")


def test_migration_secret_created_after_the_job_fails(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/migration-job.yaml", 'helm.sh/hook-weight: "-10"', 'helm.sh/hook-weight: "10"'))
    assert_fails_with(run_case(chart, server, default_case()), "does not exist yet when the pre-install hook runs")


# ------------------------------------------------------------------ exposure, policy, schemas


def test_ingress_to_the_metrics_port_fails(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/ingress.yaml",
                        "                name: {{ include \"peerbridge.fullname\" $ }}\n                port:\n                  name: http",
                        "                name: {{ printf \"%s-metrics\" (include \"peerbridge.fullname\" $) }}\n"
                        "                port:\n                  name: metrics"))
    problems = run_case(chart, server, Case("ingress", values={"ingress": {"enabled": True}}, expect_ingress=True))
    assert_fails_with(problems, "must be the API (http) port")


def test_ingress_without_websocket_timeouts_fails(chart_copy, server: Server) -> None:
    problems = run_case(chart_copy(), server,
                        Case("ingress", values={"ingress": {"enabled": True, "nginxAnnotations": False}},
                             expect_ingress=True))
    assert_fails_with(problems, "proxy-read-timeout must allow long-lived WebSockets")


def test_network_policy_rule_without_ports_fails(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/networkpolicy.yaml",
                        "  ingress:\n    - ports:\n        - port: http\n          protocol: TCP\n",
                        "  ingress:\n    - from: []\n"))
    problems = run_case(chart, server, default_case())
    assert_fails_with(problems, "an ingress rule without ports opens every port", "no ingress rule for the API port")


def test_network_policy_missing_when_enabled_fails(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/networkpolicy.yaml", "{{- if .Values.networkPolicy.enabled }}", "{{- if false }}"))
    assert_fails_with(run_case(chart, server, default_case()), "expected one NetworkPolicy")


def test_object_kubernetes_rejects_fails(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/pdb.yaml", "unhealthyPodEvictionPolicy: AlwaysAllow",
                        "unhealthyPodEvictionPolicy: AlwaysAllow\n  maxUnavailabel: 2"))
    problems = run_case(chart, server, default_case())
    assert_fails_with(problems, "PodDisruptionBudget/peerbridge (k8s 1.30.0)", "PodDisruptionBudget/peerbridge (k8s 1.37.0)")


def test_hpa_case_without_autoscaler_fails(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/hpa.yaml", "{{- if .Values.autoscaling.enabled }}", "{{- if false }}"))
    problems = run_case(chart, server, next(c for c in check_chart.MATRIX if c.name == "hpa"))
    assert_fails_with(problems, "expected an HorizontalPodAutoscaler")


def test_cli_exit_status(tmp_path: Path, chart_copy) -> None:
    binary = os.environ.get("PEERBRIDGE_BIN", str(check_chart.DEFAULT_BINARY))
    good = check_chart.main(["--binary", binary, "--case", "default"])
    bad_chart = chart_copy(("templates/deployment.yaml", "path: /livez", "path: /alive"))
    bad = check_chart.main(["--binary", binary, "--case", "default", "--chart", str(bad_chart)])
    missing = check_chart.main(["--binary", str(tmp_path / "nope"), "--case", "default"])
    assert (good, bad, missing) == (0, 1, 1)


# ------------------------------------------------------------------ alert rules


def test_escalation_families_come_from_the_binary(server: Server) -> None:
    families = server.metrics.families
    assert families["peerbridge_escalation_deadline_breaches"] == "counter"
    assert families["peerbridge_escalation_time_to_acknowledge_seconds"] == "histogram"
    assert server.metrics.series["peerbridge_escalation_unalertable_flags_total"] == \
        "peerbridge_escalation_unalertable_flags"
    report = Report()
    check_chart.check_metric_table(server, report)
    assert report.problems == []


def test_default_values_render_no_prometheusrule(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/prometheusrule.yaml", "{{- if .Values.alerts.enabled }}", "{{- if true }}"))
    problems = run_case(chart, server, Case("default", defaults_only=True))
    assert_fails_with(problems, "PrometheusRule rendered although alerts are disabled")


def test_enabled_alerts_must_render(chart_copy, server: Server) -> None:
    chart = chart_copy(("templates/prometheusrule.yaml", "{{- if .Values.alerts.enabled }}", "{{- if false }}"))
    assert_fails_with(run_case(chart, server, alerts_case()), "PrometheusRule missing")


@pytest.mark.parametrize("old, new, needles", [
    # A metric the server does not export (a typo, or a family renamed in the server).
    ('printf "peerbridge_escalation_unalertable_flags_total%s"', 'printf "peerbridge_escalation_unalertable_total%s"',
     ["PeerbridgeUnalertableFlag", "metric peerbridge_escalation_unalertable_total is not exported"]),
    # A counter without its _total suffix.
    ('{{- $breaches := "peerbridge_escalation_deadline_breaches_total" }}',
     '{{- $breaches := "peerbridge_escalation_deadline_breaches" }}',
     ["metric peerbridge_escalation_deadline_breaches is not exported"]),
    # A link to a section the README does not have.
    ('(list $ "PeerbridgeFlagRealerted")', '(list $ "PeerbridgeFlagReAlerted-runbook")',
     ["PeerbridgeFlagRealerted", "no heading has the anchor 'peerbridgeflagrealerted-runbook'"]),
    # A `for` Prometheus cannot read.
    ("for: {{ $a.imminentUnacknowledged.for }}", "for: 5 minutes",
     ["PeerbridgeImminentFlagUnacknowledged", "for '5 minutes' is not a Prometheus duration"]),
    # No severity label: Alertmanager cannot route the alert to a pager or a ticket queue.
    ("          labels:\n            severity: page\n", "          labels:\n",
     ["PeerbridgeImminentFlagUnacknowledged", "labels.severity must be one of"]),
    ("severity: ticket", "severity: warning", ["PeerbridgeEscalationLadderFailing", "got 'warning'"]),
    ("            runbook_url: {{ include \"peerbridge.runbook\" (list $ \"PeerbridgeUnalertableFlag\") | quote }}\n", "",
     ["PeerbridgeUnalertableFlag", "annotations.runbook_url missing"]),
    ("- alert: PeerbridgeEscalationBreaches", "- alert: PeerbridgeEscalationLadderFailing",
     ["alert name PeerbridgeEscalationLadderFailing is not unique"]),
    ("- alert: PeerbridgeEscalationBreaches", "- record: peerbridge:breaches",
     ["no recording rules"]),
    # PromQL that does not parse.
    ("time() - max({{ $lastPass }})", "time() - max({{ $lastPass }}", ["expr does not parse as PromQL"]),
    # A label the metric does not have, and a value its label never takes.
    ('`step="overdue"`', '`stage="overdue"`',
     ["PeerbridgeAcknowledgedFlagsOverdue", "peerbridge_escalation_deadline_breaches_total has no label 'stage'"]),
    ('`step=~"escalated|realerted"`', '`step=~"escalated|re-alerted"`', ["never has the value(s) ['re-alerted']"]),
    ('`severity=~"imminent|unknown"`', '`severity="Imminent"`', ["never has the value(s) ['Imminent']"]),
    ("sum by (step, severity)", "sum by (step, sevrity)", ["sum by ['sevrity']: no metric in the aggregation"]),
    # A database-read gauge summed over replicas (counted once per replica).
    ("max by (severity) (\n              peerbridge_escalation_oldest_unacknowledged_seconds",
     "sum by (severity) (\n              peerbridge_escalation_oldest_unacknowledged_seconds",
     ["sum() over ['peerbridge_escalation_oldest_unacknowledged_seconds']"]),
    # Helm swallowed the braces of a Prometheus template.
    ("{{`{{ $value | humanizeDuration }}`}}", "{{ `{{ $value | humanizeDuration` }}", ["unbalanced"]),
])
def test_broken_alert_rule_fails(chart_copy, server: Server, old: str, new: str, needles: list[str]) -> None:
    chart = chart_copy(("templates/prometheusrule.yaml", old, new))
    assert_fails_with(run_case(chart, server, alerts_case()), *needles)


def test_runbook_section_missing_from_the_readme_fails(tmp_path: Path, chart_copy, server: Server) -> None:
    readme = tmp_path / "README.md"
    text = check_chart.DEFAULT_README.read_text()
    assert "### PeerbridgeEscalationLadderStalled\n" in text
    readme.write_text(text.replace("### PeerbridgeEscalationLadderStalled\n", "### Ladder stalled\n"))
    report = Report()
    check_chart.check_case(chart_copy(), alerts_case(), server, report, readme=readme)
    assert_fails_with(report.problems, "PeerbridgeEscalationLadderStalled",
                      "no heading has the anchor 'peerbridgeescalationladderstalled'")


def test_alert_on_a_metric_the_binary_stopped_exporting_fails(tmp_path: Path, chart_copy, server: Server) -> None:
    """The metric names follow the binary: without the ladder failure counter, its alert fails."""
    fake = tmp_path / "peerbridge"
    fake.write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" = "config metrics" ]; then "{server.binary}" config metrics | grep -v "peerbridge_escalation_ladder_failures"; exit 0; fi\n'
        f'exec "{server.binary}" "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    other = Server.load(fake, check_chart.DEFAULT_OPENAPI)
    assert "peerbridge_escalation_ladder_failures" not in other.metrics.families
    assert_fails_with(run_case(chart_copy(), other, alerts_case()),
                      "metric peerbridge_escalation_ladder_failures_total is not exported")
    report = Report()
    check_chart.check_metric_table(other, report)
    assert_fails_with(report.problems, "in the table but not exported ['peerbridge_escalation_ladder_failures']")


def test_stalled_threshold_below_the_ladder_interval_is_refused(chart_copy, server: Server) -> None:
    problems = run_case(chart_copy(), server, Case("mutated", values={
        "alerts": {"enabled": True, "ladderStalled": {"thresholdSeconds": 60}},
        "config": {"extraEnv": {"PEERBRIDGE_LADDER_INTERVAL_MS": "60000"}}}, expect_alerts=True))
    assert_fails_with(problems, "alerts.ladderStalled.thresholdSeconds (60) must be greater")


def test_monitoring_kind_without_a_structural_check_fails(chart_copy, server: Server) -> None:
    """A monitoring.coreos.com kind without a structural check of its own fails."""
    chart = chart_copy(("templates/prometheusrule.yaml", "kind: PrometheusRule", "kind: ServiceMonitor"))
    assert_fails_with(run_case(chart, server, alerts_case()),
                      "no structural check for monitoring.coreos.com/v1 ServiceMonitor", "PrometheusRule missing")
