#!/usr/bin/env python3
"""Checks the Peerbridge Helm chart without a cluster and without a helm binary.

For each case of a values matrix it
  1. lints the chart strictly with Helm's own linter (Helm's Go SDK through the PyPI
     package helm-python-sdk: values.schema.json is enforced here, so a typo'd or
     mistyped value fails),
  2. renders it with the same SDK,
  3. validates every rendered object with kubernetes-validate in strict mode (unknown
     fields are errors) for the oldest and the newest supported Kubernetes version,
  4. asserts the properties an operator relies on: restricted pod security, probes on
     paths the server really serves (openapi/openapi.json), environment variables the
     server really reads (`peerbridge config env-vars`), settings the server accepts
     (`peerbridge config check`), a grace period longer than preStop + unready delay +
     drain, the metrics port kept off the Ingress, NetworkPolicy shape, secrets only by
     reference, existingSecret handling and credential-free defaults,
  5. checks the PrometheusRule (alerts.enabled): its structure (kubernetes-validate has no
     schema for CRDs), every expr parsed as PromQL (promql-parser), every peerbridge_*
     metric one the server exports (`peerbridge config metrics`) with label names and
     values the metric has, database-read gauges never summed over replicas, and every
     runbook link an existing section of deploy/README.md.

Usage: check_chart.py [--chart DIR] [--binary PATH] [--openapi FILE] [--readme FILE]
                      [--case NAME ...]
Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import helm_python as helm
import kubernetes_validate
import promql_parser
import yaml
from kubernetes_validate import utils as kv_utils

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "deploy" / "helm" / "peerbridge"
DEFAULT_BINARY = REPO_ROOT / "target" / "debug" / "peerbridge"
DEFAULT_OPENAPI = REPO_ROOT / "openapi" / "openapi.json"
DEFAULT_README = REPO_ROOT / "deploy" / "README.md"

# Oldest and newest Kubernetes the chart supports (Chart.yaml kubeVersion: >=1.30).
KUBE_VERSIONS = ("1.30.0", "1.37.0")

RELEASE = "peerbridge"
NAMESPACE = "peerbridge"
EXISTING_SECRET = "peerbridge-credentials"

# Environment variables that carry credentials: they may only come from a Secret.
SECRET_ENV = re.compile(r"^(PEERBRIDGE_)?(DATABASE_URL|REDIS_URL)$|_KEYS?$")

# kubernetes-validate re-reads its (large) schema files on every call; cache them.
kv_utils.schema_contents = functools.lru_cache(maxsize=None)(kv_utils.schema_contents)


# --------------------------------------------------------------------------- inputs


class CheckError(Exception):
    """The checker itself cannot run (missing binary, unreadable file...)."""


def server_env_vars(binary: Path) -> set[str]:
    """Every environment variable the server reads, as the binary itself reports it."""
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise CheckError(
            f"server binary {binary} not found: build it with "
            "`cargo build -p peerbridge-server --bin peerbridge` or set PEERBRIDGE_BIN"
        )
    out = subprocess.run(
        [str(binary), "config", "env-vars"],
        capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"},
    )
    if out.returncode != 0:
        raise CheckError(f"`{binary} config env-vars` failed: {out.stderr.strip()}")
    names = {line.strip() for line in out.stdout.splitlines() if line.strip()}
    if "PEERBRIDGE_BIND" not in names:
        raise CheckError(f"`{binary} config env-vars` printed no PEERBRIDGE_BIND: {out.stdout!r}")
    return names


def openapi_paths(openapi: Path, binary: Path) -> set[str]:
    """Paths of the API document kept in the repository (or printed by the binary)."""
    if openapi.is_file():
        doc = json.loads(openapi.read_text())
    else:
        print(f"note: {openapi} missing; using `{binary} openapi` instead", file=sys.stderr)
        out = subprocess.run([str(binary), "openapi"], capture_output=True, text=True,
                             timeout=30, env={"PATH": "/usr/bin:/bin"})
        if out.returncode != 0:
            raise CheckError(f"`{binary} openapi` failed: {out.stderr.strip()}")
        doc = json.loads(out.stdout)
    paths = set(doc.get("paths", {}))
    if not paths:
        raise CheckError("the OpenAPI document has no paths")
    return paths


def generated_secrets(binary: Path) -> dict[str, str]:
    """Syntactically valid credentials for `config check` (fresh keys, fake URLs)."""
    out = subprocess.run([str(binary), "admin", "gen-keys"], capture_output=True, text=True,
                         timeout=30, env={"PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        raise CheckError(f"`{binary} admin gen-keys` failed: {out.stderr.strip()}")
    values: dict[str, str] = {}
    for line in out.stdout.splitlines():
        m = re.search(r"PEERBRIDGE_JWT_VERIFY_KEYS after the next rotation: (\S+)", line)
        if m:
            values["PEERBRIDGE_JWT_VERIFY_KEYS"] = m.group(1)
        elif "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            values[k.strip()] = v.strip()
    # Tolerate a changed gen-keys format: `config check` validates settings, not keys.
    values.setdefault("PEERBRIDGE_JWT_SIGNING_KID", "k1")
    values.setdefault("PEERBRIDGE_JWT_SIGNING_KEY", "A" * 43)
    values.setdefault("PEERBRIDGE_FIELD_KEYS", "f1:" + "A" * 43)
    values.setdefault("PEERBRIDGE_INDEX_KEY", "A" * 43)
    values["PEERBRIDGE_FIELD_KEY_ACTIVE"] = values["PEERBRIDGE_FIELD_KEYS"].split(":", 1)[0]
    values["DATABASE_URL"] = "postgres://peerbridge:not-a-password@db.invalid:5432/peerbridge"
    values["REDIS_URL"] = "redis://redis.invalid:6379"
    return values


# Sample names of a metric family by its TYPE in the text exposition.
SERIES_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


@dataclass
class Metrics:
    """The server's metric families (`peerbridge config metrics`)."""

    families: dict[str, str]                 # family -> TYPE
    series: dict[str, str]                   # sample name -> family
    sample_labels: dict[str, set[str]]       # family -> label names seen in samples


def parse_exposition(text: str) -> Metrics:
    families: dict[str, str] = {}
    sample_labels: dict[str, set[str]] = {}
    samples: list[tuple[str, set[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 4:
                families[parts[2]] = parts[3]
        elif line and not line.startswith("#"):
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?", line)
            if m:
                samples.append((m.group(1), set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))))
    series: dict[str, str] = {}
    for family, kind in families.items():
        for suffix in SERIES_SUFFIXES.get(kind, ("",)):
            series[family + suffix] = family
    for name, labels in samples:
        family = series.get(name)
        if family is not None:
            sample_labels.setdefault(family, set()).update(labels - {"le", "quantile"})
    return Metrics(families, series, sample_labels)


def server_metrics(binary: Path) -> Metrics:
    """The metric families a fresh server registers, as the binary itself prints them."""
    out = subprocess.run([str(binary), "config", "metrics"], capture_output=True, text=True,
                         timeout=30, env={"PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        raise CheckError(f"`{binary} config metrics` failed: {out.stderr.strip()}")
    metrics = parse_exposition(out.stdout)
    if "peerbridge_database_up" not in metrics.families:
        raise CheckError(f"`{binary} config metrics` printed no peerbridge_database_up family: "
                         f"{out.stdout[:200]!r}")
    return metrics


@dataclass
class Server:
    """What the checks need to know about the server, taken from the server itself."""

    binary: Path
    env_vars: set[str]
    paths: set[str]
    secrets: dict[str, str]
    metrics: Metrics

    @classmethod
    def load(cls, binary: Path, openapi: Path) -> "Server":
        return cls(binary, server_env_vars(binary), openapi_paths(openapi, binary),
                   generated_secrets(binary), server_metrics(binary))


# --------------------------------------------------------------------------- matrix


def fake_secret_values() -> dict[str, str]:
    """Obviously fake values for the "secret values" case (never real credentials)."""
    b64 = "A" * 43
    return {
        "databaseUrl": "postgres://peerbridge:fake@db.invalid:5432/peerbridge",
        "redisUrl": "redis://redis.invalid:6379",
        "jwtSigningKey": b64,
        "jwtSigningKid": "k1",
        "jwtVerifyKeys": f"k0:{b64}",
        "fieldKeys": f"f1:{b64}",
        "fieldKeyActive": "f1",
        "indexKey": b64,
    }


@dataclass
class Case:
    name: str
    values_files: list[str] = field(default_factory=list)  # relative to the chart
    values: dict[str, Any] = field(default_factory=dict)
    # What the case is expected to render, for the case-specific assertions.
    expect_existing_secret: str = ""
    expect_hpa: bool = False
    expect_network_policy: bool = True
    expect_ingress: bool = False
    expect_alerts: bool = False
    defaults_only: bool = False
    # The case supplies every credential through secrets.values.
    complete_secrets: bool = False


MATRIX: list[Case] = [
    Case("default", defaults_only=True),
    Case("production", values_files=["values-production.yaml"],
         expect_existing_secret=EXISTING_SECRET, expect_hpa=True, expect_ingress=True,
         expect_alerts=True),
    # The alerts without the namespace matcher (a Prometheus per installation), paging on
    # imminent re-alerts only, with a longer ladder interval.
    Case("alerts-unscoped",
         values={"alerts": {"enabled": True, "selector": "", "labels": {"prometheus": "clinic"},
                            "realerted": {"severities": ["imminent"], "window": "30m"},
                            "ladderStalled": {"thresholdSeconds": 180, "for": "2m"}},
                 "config": {"extraEnv": {"PEERBRIDGE_LADDER_INTERVAL_MS": "60000"}}},
         expect_alerts=True),
    Case("existing-secret", values={"secrets": {"existingSecret": EXISTING_SECRET}},
         expect_existing_secret=EXISTING_SECRET),
    Case("hpa", values={"autoscaling": {"enabled": True}}, expect_hpa=True),
    Case("network-policy-off", values={"networkPolicy": {"enabled": False}},
         expect_network_policy=False),
    Case("secret-values-and-ingress",
         values={"secrets": {"values": fake_secret_values()},
                 "ingress": {"enabled": True, "className": "nginx",
                             "tls": [{"secretName": "pb-tls", "hosts": ["peerbridge.example.org"]}]},
                 "networkPolicy": {"apiFrom": [{"namespaceSelector": {"matchLabels": {
                     "kubernetes.io/metadata.name": "ingress-nginx"}}}]}},
         expect_ingress=True),
]


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def case_values(chart_dir: Path, case: Case) -> dict[str, Any]:
    """The user-supplied values of a case, as `-f file ... --set ...` would give them."""
    values: dict[str, Any] = {}
    for name in case.values_files:
        # Helm's own YAML parser, so the values read exactly as `helm -f` reads them.
        values = deep_merge(values, helm.values_from_yaml((chart_dir / name).read_text()))
    return deep_merge(values, case.values)


# --------------------------------------------------------------------------- helpers


class Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.passed = 0

    def check(self, ok: bool, where: str, message: str) -> bool:
        if ok:
            self.passed += 1
        else:
            self.problems.append(f"{where}: {message}")
        return ok

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")


def dig(obj: Any, *keys: Any, default: Any = None) -> Any:
    for k in keys:
        if isinstance(obj, dict) and k in obj:
            obj = obj[k]
        elif isinstance(obj, list) and isinstance(k, int) and -len(obj) <= k < len(obj):
            obj = obj[k]
        else:
            return default
    return obj


def name_of(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{dig(doc, 'metadata', 'name')}"


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels and matchExpressions)."""
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, vals = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def hooks_of(doc: dict[str, Any]) -> set[str]:
    raw = dig(doc, "metadata", "annotations", "helm.sh/hook", default="") or ""
    return {h.strip() for h in raw.split(",") if h.strip()}


def pod_spec_of(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(pod metadata, pod spec) of a workload, or None."""
    kind = doc.get("kind")
    if kind == "Pod":
        return doc.get("metadata") or {}, doc.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        tpl = dig(doc, "spec", "template", default={})
        return tpl.get("metadata") or {}, tpl.get("spec") or {}
    if kind == "CronJob":
        tpl = dig(doc, "spec", "jobTemplate", "spec", "template", default={})
        return tpl.get("metadata") or {}, tpl.get("spec") or {}
    return None


def port_number(container: dict[str, Any], port: Any) -> int | None:
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    if isinstance(port, str) and port.isdigit():
        return int(port)
    return None


def bind_port(value: str | None) -> int | None:
    if not value or ":" not in value:
        return None
    try:
        return int(value.rsplit(":", 1)[1])
    except ValueError:
        return None


# --------------------------------------------------------------------------- rendering


@dataclass
class Rendered:
    docs: list[dict[str, Any]]
    notes: str
    values: dict[str, Any]  # merged values (chart defaults + case)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d.get("kind") == kind]

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        for d in self.of_kind(kind):
            if dig(d, "metadata", "name") == name:
                return d
        return None


def lint(chart_dir: Path, values: dict[str, Any], report: Report, where: str) -> None:
    for version in KUBE_VERSIONS:
        result = helm.lint(str(chart_dir), values, strict=True, namespace=NAMESPACE,
                           kube_version=f"v{version}")
        bad = [m for m in result.get("messages", []) if m.get("severity", 0) >= 2]
        errors = list(result.get("errors") or [])
        detail = "; ".join(
            [f"{m.get('path')}: {str(m.get('error')).strip()}" for m in bad]
            + [str(e).strip() for e in errors if not any(str(e).strip() in str(m.get("error")) for m in bad)]
        )
        report.check(not bad and not errors, f"{where} lint (k8s {version})",
                     f"helm lint --strict failed: {detail}")


def render(chart_dir: Path, values: dict[str, Any], report: Report, where: str) -> Rendered | None:
    try:
        with helm.Chart.load(str(chart_dir)) as chart:
            merged = chart.merge_values(values)
            manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except helm.HelmError as exc:
        report.fail(f"{where} render", str(exc).strip())
        return None
    docs: list[dict[str, Any]] = []
    notes = ""
    for path in sorted(manifests):
        text = manifests[path]
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        try:
            for doc in yaml.safe_load_all(text):
                if doc is None:
                    continue
                if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                    report.fail(f"{where} {path}", "rendered something that is not a Kubernetes object")
                    continue
                docs.append(doc)
        except yaml.YAMLError as exc:
            report.fail(f"{where} {path}", f"rendered invalid YAML: {exc}")
    report.check(bool(docs), f"{where} render", "rendered no objects")
    return Rendered(docs, notes, merged)


# Custom resources kubernetes-validate has no schema for, and the check that validates
# their structure instead.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "PrometheusRule"): "check_alerts"}


def validate_kubernetes(rendered: Rendered, report: Report, where: str) -> None:
    for version in KUBE_VERSIONS:
        for doc in rendered.docs:
            if str(doc.get("apiVersion", "")).startswith("monitoring.coreos.com/"):
                # No schema in kubernetes-validate: validated structurally by check_alerts.
                report.check((doc.get("apiVersion"), doc.get("kind")) in CUSTOM_KINDS,
                             f"{where} {name_of(doc)}",
                             f"no structural check for {doc.get('apiVersion')} {doc.get('kind')}: "
                             "add one to check_chart.py (CUSTOM_KINDS)")
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
                report.passed += 1
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                report.fail(f"{where} {name_of(doc)} (k8s {version})", f"invalid at {path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                report.fail(f"{where} {name_of(doc)} (k8s {version})", exc.message)


# --------------------------------------------------------------------------- assertions


def check_pod_security(doc: dict[str, Any], report: Report, where: str) -> None:
    meta_spec = pod_spec_of(doc)
    if meta_spec is None:
        return
    _, spec = meta_spec
    w = f"{where} {name_of(doc)}"
    psc = spec.get("securityContext") or {}
    report.check(psc.get("runAsNonRoot") is True, w, "pod securityContext.runAsNonRoot must be true")
    report.check(dig(psc, "seccompProfile", "type") == "RuntimeDefault", w,
                 "pod securityContext.seccompProfile.type must be RuntimeDefault")
    report.check(psc.get("runAsUser", 1) != 0, w, "pod must not run as uid 0")
    report.check(spec.get("automountServiceAccountToken") is False, w,
                 "automountServiceAccountToken must be false")
    report.check(spec.get("enableServiceLinks") is False, w,
                 "enableServiceLinks must be false (service env vars like PEERBRIDGE_PORT break the server)")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        report.check(not spec.get(key), w, f"{key} must not be set")
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for v in volumes.values():
        report.check("hostPath" not in v, w, f"volume {v.get('name')} uses hostPath")
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    report.check(bool(containers), w, "no containers")
    for c in containers:
        cw = f"{w} container {c.get('name')}"
        sc = c.get("securityContext") or {}
        report.check(sc.get("allowPrivilegeEscalation") is False, cw,
                     "securityContext.allowPrivilegeEscalation must be false")
        report.check(sc.get("readOnlyRootFilesystem") is True, cw,
                     "securityContext.readOnlyRootFilesystem must be true")
        report.check(sc.get("privileged") is not True, cw, "must not be privileged")
        drop = dig(sc, "capabilities", "drop", default=[]) or []
        report.check("ALL" in drop, cw, "securityContext.capabilities.drop must contain ALL")
        report.check(not dig(sc, "capabilities", "add"), cw, "must not add capabilities")
        report.check(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, cw, "runAsNonRoot must be true")
        report.check(sc.get("runAsUser", psc.get("runAsUser", 1)) != 0, cw, "must not run as uid 0")
        report.check(dig(sc, "seccompProfile", "type", default=dig(psc, "seccompProfile", "type"))
                     == "RuntimeDefault", cw, "seccompProfile must be RuntimeDefault")
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                report.check(r in (res.get(kind) or {}), cw, f"resources.{kind}.{r} must be set")
        image = str(c.get("image", ""))
        report.check(bool(image) and not image.endswith(":latest") and
                     ("@sha256:" in image or re.search(r":[^/:]+$", image) is not None),
                     cw, f"image {image!r} must be pinned by tag or digest and not :latest")
        mounts = {m.get("mountPath"): m for m in c.get("volumeMounts") or []}
        tmp = mounts.get("/tmp")
        report.check(tmp is not None and "emptyDir" in volumes.get(tmp.get("name"), {}), cw,
                     "/tmp must be an emptyDir mount (the root filesystem is read-only)")


@dataclass
class ResolvedEnv:
    names: list[str]                 # every variable name the container receives
    plain: dict[str, str]            # values known from the rendered objects
    secret_refs: list[tuple[str, str, str, bool]]  # (env name, secret, key, optional)
    hidden: list[str]                # env sources whose names cannot be known


def resolve_env(container: dict[str, Any], rendered: Rendered) -> ResolvedEnv:
    names: list[str] = []
    plain: dict[str, str] = {}
    refs: list[tuple[str, str, str, bool]] = []
    hidden: list[str] = []
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        if "configMapRef" in src:
            cm = rendered.find("ConfigMap", src["configMapRef"]["name"])
            if cm is None:
                hidden.append(f"envFrom configMap {src['configMapRef']['name']} (not rendered by the chart)")
                continue
            for k, v in (cm.get("data") or {}).items():
                names.append(prefix + k)
                plain[prefix + k] = str(v)
        if "secretRef" in src:
            sec = rendered.find("Secret", src["secretRef"]["name"])
            if sec is None:
                hidden.append(f"envFrom secret {src['secretRef']['name']} (names unknown)")
                continue
            for k in list((sec.get("data") or {})) + list((sec.get("stringData") or {})):
                names.append(prefix + k)
                refs.append((prefix + k, src["secretRef"]["name"], k, True))
    for e in container.get("env") or []:
        name = e.get("name")
        names.append(name)
        if "value" in e:
            plain[name] = str(e["value"])
        ref = dig(e, "valueFrom", "secretKeyRef")
        if ref:
            refs.append((name, ref.get("name"), ref.get("key"), bool(ref.get("optional", False))))
        cmref = dig(e, "valueFrom", "configMapKeyRef")
        if cmref:
            cm = rendered.find("ConfigMap", cmref.get("name"))
            if cm is not None and cmref.get("key") in (cm.get("data") or {}):
                plain[name] = str(cm["data"][cmref["key"]])
    return ResolvedEnv(names, plain, refs, hidden)


def check_env(doc: dict[str, Any], rendered: Rendered, server: Server, report: Report,
              where: str) -> dict[str, ResolvedEnv]:
    """Env names are ones the server reads; credentials come from Secrets only; the
    settings pass `peerbridge config check`."""
    meta_spec = pod_spec_of(doc)
    result: dict[str, ResolvedEnv] = {}
    if meta_spec is None:
        return result
    _, spec = meta_spec
    for c in spec.get("containers") or []:
        cw = f"{where} {name_of(doc)} container {c.get('name')}"
        env = resolve_env(c, rendered)
        result[c.get("name")] = env
        for h in env.hidden:
            report.fail(cw, f"environment from {h}: its names cannot be checked")
        unknown = sorted(n for n in set(env.names) if n not in server.env_vars)
        report.check(not unknown, cw,
                     f"environment variables the server does not read (`peerbridge config env-vars`): {unknown}")
        dupes = sorted({n for n in env.names if env.names.count(n) > 1})
        report.check(not dupes, cw, f"environment variables set twice: {dupes}")
        leaked = sorted(n for n in env.plain if SECRET_ENV.search(n))
        report.check(not leaked, cw, f"credentials set in plain text (ConfigMap or value), not from a Secret: {leaked}")
        # The settings as the container would see them must pass the server's validation.
        full = dict(env.plain)
        for name, _secret, _key, _optional in env.secret_refs:
            if name in server.secrets:
                full[name] = server.secrets[name]
        with tempfile.TemporaryDirectory() as tmp:
            if "PEERBRIDGE_DATA_DIR" in full:
                full["PEERBRIDGE_DATA_DIR"] = tmp
            out = subprocess.run([str(server.binary), "config", "check"], capture_output=True,
                                 text=True, timeout=30, env={"PATH": "/usr/bin:/bin", **full})
        report.check(out.returncode == 0, cw,
                     f"`peerbridge config check` rejects the rendered settings: {out.stderr.strip() or out.stdout.strip()}")
    return result


def check_server_deployment(rendered: Rendered, server: Server, report: Report, where: str,
                            case: Case) -> None:
    deployments = rendered.of_kind("Deployment")
    if not report.check(len(deployments) == 1, where, f"expected one Deployment, got {len(deployments)}"):
        return
    dep = deployments[0]
    w = f"{where} {name_of(dep)}"
    pod_meta, spec = pod_spec_of(dep)  # type: ignore[misc]
    pod_labels = pod_meta.get("labels") or {}
    report.check(selector_matches(dig(dep, "spec", "selector"), pod_labels), w,
                 "spec.selector does not match the pod template labels")

    hpas = [h for h in rendered.of_kind("HorizontalPodAutoscaler")
            if dig(h, "spec", "scaleTargetRef", "name") == dig(dep, "metadata", "name")]
    if case.expect_hpa:
        if report.check(len(hpas) == 1, w, "expected an HorizontalPodAutoscaler for the Deployment"):
            hpa = hpas[0]
            report.check(hpa.get("apiVersion") == "autoscaling/v2", w, "the HPA must be autoscaling/v2")
            report.check(dig(hpa, "spec", "scaleTargetRef", "kind") == "Deployment", w,
                         "the HPA must target the Deployment")
            report.check((dig(hpa, "spec", "minReplicas") or 1) >= 2, w, "HPA minReplicas must be >= 2")
            report.check("replicas" not in dep["spec"], w,
                         "spec.replicas must be left to the HPA when autoscaling is on")
    else:
        report.check(not hpas, w, "unexpected HorizontalPodAutoscaler")
        report.check((dig(dep, "spec", "replicas") or 1) >= 2, w, "spec.replicas must be >= 2")

    tsc = spec.get("topologySpreadConstraints") or []
    report.check(bool(tsc), w, "topologySpreadConstraints must be set")
    for t in tsc:
        report.check(selector_matches(t.get("labelSelector"), pod_labels) and bool(t.get("labelSelector")),
                     w, f"topology spread on {t.get('topologyKey')} does not select the server pods")

    containers = spec.get("containers") or []
    if not report.check(len(containers) == 1, w, f"expected one container, got {len(containers)}"):
        return
    main = containers[0]
    cw = f"{w} container {main.get('name')}"
    report.check(main.get("args") == ["serve"] and not main.get("command"), cw,
                 "must run the image's entrypoint with args [serve]")

    envs = check_env(dep, rendered, server, report, where)
    env = envs.get(main.get("name"))
    plain = env.plain if env else {}

    # Listeners: API on the http port, metrics always on a separate port.
    http_port = port_number(main, "http")
    metrics_port = port_number(main, "metrics")
    report.check(http_port is not None, cw, "no container port named http")
    report.check(bind_port(plain.get("PEERBRIDGE_BIND")) == http_port
                 and str(plain.get("PEERBRIDGE_BIND", "")).startswith("0.0.0.0:"), cw,
                 f"PEERBRIDGE_BIND ({plain.get('PEERBRIDGE_BIND')}) must be 0.0.0.0:<http port {http_port}>")
    report.check(bind_port(plain.get("PEERBRIDGE_METRICS_BIND")) is not None
                 and bind_port(plain.get("PEERBRIDGE_METRICS_BIND")) == metrics_port
                 and metrics_port != http_port, cw,
                 "PEERBRIDGE_METRICS_BIND must be set to the metrics container port (else /metrics "
                 "answers on the API port and so through the Ingress)")

    # Probes: on paths the server really serves, on the API port.
    expected = {"startupProbe": None, "livenessProbe": "/livez", "readinessProbe": "/readyz"}
    for probe, want in expected.items():
        p = main.get(probe)
        if not report.check(p is not None, cw, f"{probe} missing"):
            continue
        path = dig(p, "httpGet", "path")
        if not report.check(path is not None, cw, f"{probe} must be an httpGet probe"):
            continue
        report.check(path in server.paths, cw,
                     f"{probe} path {path} is not served by the server (not in openapi/openapi.json paths)")
        if want:
            report.check(path == want, cw, f"{probe} must probe {want}, not {path}")
        report.check(port_number(main, dig(p, "httpGet", "port")) == http_port, cw,
                     f"{probe} must target the http port")
    dd = plain.get("PEERBRIDGE_DATA_DIR")
    if dd:
        mounts = {m.get("mountPath"): m.get("name") for m in main.get("volumeMounts") or []}
        vols = {v.get("name"): v for v in spec.get("volumes") or []}
        report.check(dd in mounts and "emptyDir" in vols.get(mounts[dd], {}), cw,
                     f"PEERBRIDGE_DATA_DIR {dd} must be a writable emptyDir mount")

    # Shutdown: grace > preStop + unready delay + drain.
    pre = dig(main, "lifecycle", "preStop")
    pre_secs = None
    if pre and "sleep" in pre:
        pre_secs = dig(pre, "sleep", "seconds")
    elif pre and "exec" in pre:
        cmd = dig(pre, "exec", "command", default=[]) or []
        nums = [int(x) for x in cmd if str(x).isdigit()]
        pre_secs = nums[-1] if nums and any("sleep" in str(x) for x in cmd) else None
    report.check(isinstance(pre_secs, int) and pre_secs > 0, cw, "lifecycle.preStop must sleep a few seconds")
    unready = plain.get("PEERBRIDGE_SHUTDOWN_UNREADY_DELAY_SECS")
    drain = plain.get("PEERBRIDGE_SHUTDOWN_DRAIN_SECS")
    report.check(unready is not None and drain is not None, cw,
                 "PEERBRIDGE_SHUTDOWN_UNREADY_DELAY_SECS and PEERBRIDGE_SHUTDOWN_DRAIN_SECS must be set explicitly")
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(pre_secs, int) and unready is not None and drain is not None:
        needed = pre_secs + int(unready) + int(drain)
        report.check(isinstance(grace, int) and grace > needed, cw,
                     f"terminationGracePeriodSeconds ({grace}) must exceed preStop ({pre_secs}) + "
                     f"unready delay ({unready}) + drain ({drain}) = {needed}")

    sa = spec.get("serviceAccountName")
    sa_doc = rendered.find("ServiceAccount", sa) if sa else None
    if sa_doc is not None:
        report.check(sa_doc.get("automountServiceAccountToken") is False, f"{where} {name_of(sa_doc)}",
                     "automountServiceAccountToken must be false")

    jobs = [j for j in rendered.of_kind("Job") if {"pre-install", "pre-upgrade"} <= hooks_of(j)]
    if jobs:
        report.check(plain.get("PEERBRIDGE_MIGRATE_ON_START") == "false", cw,
                     "PEERBRIDGE_MIGRATE_ON_START must be false when the migration Job runs")


def check_migration_job(rendered: Rendered, server: Server, report: Report, where: str) -> None:
    jobs = rendered.of_kind("Job")
    mig = [j for j in jobs if {"pre-install", "pre-upgrade"} <= hooks_of(j)]
    if not report.check(len(mig) == 1, where, "expected one Job hooked pre-install,pre-upgrade"):
        return
    job = mig[0]
    w = f"{where} {name_of(job)}"
    _, spec = pod_spec_of(job)  # type: ignore[misc]
    c = (spec.get("containers") or [{}])[0]
    report.check(c.get("args") == ["migrate"] and not c.get("command"), w, "must run `peerbridge migrate`")
    report.check(spec.get("restartPolicy") in ("Never", "OnFailure"), w, "restartPolicy must be Never or OnFailure")
    dep = (rendered.of_kind("Deployment") or [None])[0]
    if dep:
        report.check(str(c.get("image")) == str(dig(pod_spec_of(dep)[1], "containers", 0, "image")), w,  # type: ignore[index]
                     "must use the server's image")
    check_env(job, rendered, server, report, where)
    # Anything the Job reads must exist before it: hook objects with a lower weight, or
    # objects the operator manages.
    job_weight = int(dig(job, "metadata", "annotations", "helm.sh/hook-weight", default="0"))
    for name, secret, _key, _opt in resolve_env(c, rendered).secret_refs:
        doc = rendered.find("Secret", secret)
        if doc is None:
            continue  # existingSecret: created by the operator beforehand
        ok = {"pre-install", "pre-upgrade"} <= hooks_of(doc) and int(
            dig(doc, "metadata", "annotations", "helm.sh/hook-weight", default="0")) < job_weight
        report.check(ok, w, f"{name} comes from Secret {secret}, which does not exist yet when the "
                            "pre-install hook runs (make it a hook with a lower weight)")


def check_test_hook(rendered: Rendered, report: Report, where: str) -> None:
    tests = [d for d in rendered.docs if "test" in hooks_of(d)]
    if not report.check(len(tests) >= 1, where, "expected a `helm test` hook"):
        return
    svc = rendered.find("Service", RELEASE)
    for t in tests:
        w = f"{where} {name_of(t)}"
        _, spec = pod_spec_of(t) or ({}, {})
        words = " ".join(str(x) for c in spec.get("containers") or []
                         for x in (c.get("command") or []) + (c.get("args") or []))
        urls = re.findall(r"https?://[^\s\"']+", words)
        report.check(any(u.endswith("/readyz") for u in urls), w, f"the test must request /readyz (found {urls})")
        if svc is not None:
            port = dig(svc, "spec", "ports", 0, "port")
            report.check(any(f"//{dig(svc, 'metadata', 'name')}:{port}/" in u for u in urls), w,
                         "the test must go through the Service's http port")


def service_target(rendered: Rendered, service: str, port: Any) -> Any:
    svc = rendered.find("Service", service)
    if svc is None:
        return None
    for p in dig(svc, "spec", "ports", default=[]) or []:
        if port in (p.get("name"), p.get("port")):
            return p.get("targetPort", p.get("port"))
    return None


def check_exposure(rendered: Rendered, report: Report, where: str, case: Case) -> None:
    """The Ingress reaches the API port only; the metrics port stays internal."""
    dep = (rendered.of_kind("Deployment") or [None])[0]
    main = dig(pod_spec_of(dep)[1], "containers", 0) if dep else {}  # type: ignore[index]
    http_port = port_number(main or {}, "http")
    for svc in rendered.of_kind("Service"):
        w = f"{where} {name_of(svc)}"
        report.check(dig(svc, "spec", "type", default="ClusterIP") in ("ClusterIP", "NodePort", "LoadBalancer"),
                     w, "unexpected Service type")
        if dep:
            report.check(selector_matches({"matchLabels": dig(svc, "spec", "selector") or {}},
                                          dig(pod_spec_of(dep)[0], "labels", default={})), w,  # type: ignore[index]
                         "selector does not match the server pods")
            # Never select the migration or test pods.
            report.check(dig(svc, "spec", "selector", "app.kubernetes.io/component") == "server", w,
                         "selector must include app.kubernetes.io/component=server")
    ingresses = rendered.of_kind("Ingress")
    report.check(bool(ingresses) == case.expect_ingress, where,
                 f"Ingress {'missing' if case.expect_ingress else 'unexpected'}")
    for ing in ingresses:
        w = f"{where} {name_of(ing)}"
        backends = [dig(p, "backend", "service") for r in dig(ing, "spec", "rules", default=[]) or []
                    for p in dig(r, "http", "paths", default=[]) or []]
        if dig(ing, "spec", "defaultBackend", "service"):
            backends.append(dig(ing, "spec", "defaultBackend", "service"))
        report.check(bool(backends), w, "no backends")
        for b in backends:
            port = dig(b, "port", "name") or dig(b, "port", "number")
            target = service_target(rendered, b.get("name"), port)
            ok = target is not None and (target == "http" or target == http_port)
            report.check(ok, w, f"backend {b.get('name')}:{port} must be the API (http) port, "
                                f"resolved to target {target!r}")
        ann = dig(ing, "metadata", "annotations", default={}) or {}
        for key in ("nginx.ingress.kubernetes.io/proxy-read-timeout",
                    "nginx.ingress.kubernetes.io/proxy-send-timeout"):
            val = ann.get(key)
            report.check(val is not None and str(val).isdigit() and int(val) >= 300, w,
                         f"{key} must allow long-lived WebSockets (>= 300 s), got {val!r}")


def check_pdb(rendered: Rendered, report: Report, where: str) -> None:
    pdbs = rendered.of_kind("PodDisruptionBudget")
    if not report.check(len(pdbs) == 1, where, "expected one PodDisruptionBudget"):
        return
    pdb = pdbs[0]
    w = f"{where} {name_of(pdb)}"
    report.check(pdb.get("apiVersion") == "policy/v1", w, "must be policy/v1")
    report.check(("maxUnavailable" in pdb["spec"]) != ("minAvailable" in pdb["spec"]), w,
                 "set exactly one of maxUnavailable and minAvailable")
    dep = (rendered.of_kind("Deployment") or [None])[0]
    if dep:
        report.check(selector_matches(dig(pdb, "spec", "selector"), dig(pod_spec_of(dep)[0], "labels", default={})),  # type: ignore[index]
                     w, "selector does not match the server pods")


def rule_ports(rule: dict[str, Any]) -> list[Any]:
    return [p.get("port") for p in rule.get("ports") or []]


def check_network_policy(rendered: Rendered, report: Report, where: str, case: Case) -> None:
    nps = rendered.of_kind("NetworkPolicy")
    if not case.expect_network_policy:
        report.check(not nps, where, "NetworkPolicy rendered although disabled")
        return
    if not report.check(len(nps) == 1, where, "expected one NetworkPolicy"):
        return
    np_ = nps[0]
    w = f"{where} {name_of(np_)}"
    spec = np_.get("spec") or {}
    report.check({"Ingress", "Egress"} <= set(spec.get("policyTypes") or []), w,
                 "policyTypes must include Ingress and Egress")
    for kind in ("Deployment", "Job"):
        for d in rendered.of_kind(kind):
            report.check(selector_matches(spec.get("podSelector"), dig(pod_spec_of(d)[0], "labels", default={})),  # type: ignore[index]
                         w, f"podSelector does not cover {name_of(d)}")
    dep = (rendered.of_kind("Deployment") or [None])[0]
    main = dig(pod_spec_of(dep)[1], "containers", 0, default={}) if dep else {}  # type: ignore[index]
    http = {"http", port_number(main, "http")}
    metrics = {"metrics", port_number(main, "metrics")}
    saw_api = False
    for rule in spec.get("ingress") or []:
        ports = rule_ports(rule)
        report.check(bool(ports), w, "an ingress rule without ports opens every port")
        for p in ports:
            report.check(p in http | metrics, w, f"ingress opens port {p!r}: only the API and metrics ports may be open")
            saw_api |= p in http
            if p in metrics:
                report.check(bool(rule.get("from")), w, "the metrics port must be limited to a namespace/selector")
    report.check(saw_api, w, "no ingress rule for the API port")
    egress = spec.get("egress") or []
    all_ports: set[Any] = set()
    for rule in egress:
        ports = rule_ports(rule)
        report.check(bool(ports), w, "an egress rule without ports allows everything")
        all_ports |= set(ports)
    eg = dig(rendered.values, "networkPolicy", "egress", default={})
    wanted = {53} | {dig(eg, k, "port") for k in ("postgresql", "redis", "pushGateway")}
    report.check(wanted <= all_ports, w,
                 f"egress must allow DNS, PostgreSQL, Redis and the push gateway (ports {sorted(map(str, wanted))}), "
                 f"got {sorted(map(str, all_ports))}")


def check_secrets(rendered: Rendered, report: Report, where: str, case: Case, chart_dir: Path) -> None:
    secrets = rendered.of_kind("Secret")
    refs: list[tuple[str, str, str, str, bool]] = []  # (workload, env, secret, key, optional)
    for d in rendered.docs:
        ms = pod_spec_of(d)
        if ms is None:
            continue
        for c in (ms[1].get("containers") or []) + (ms[1].get("initContainers") or []):
            for src in c.get("envFrom") or []:
                if "secretRef" in src:
                    refs.append((name_of(d), "*", src["secretRef"]["name"], "*", True))
            for e in c.get("env") or []:
                ref = dig(e, "valueFrom", "secretKeyRef")
                if ref:
                    refs.append((name_of(d), e.get("name"), ref.get("name"), ref.get("key"),
                                 bool(ref.get("optional", False))))
        for v in ms[1].get("volumes") or []:
            if "secret" in v:
                refs.append((name_of(d), f"volume {v.get('name')}", dig(v, "secret", "secretName"), "*", True))
    if case.expect_existing_secret:
        report.check(not secrets, where,
                     f"existingSecret is set but the chart renders Secrets: {[name_of(s) for s in secrets]}")
        wrong = [r for r in refs if r[2] != case.expect_existing_secret]
        report.check(not wrong, where,
                     f"with existingSecret every secret reference must use {case.expect_existing_secret!r}: {wrong}")
        report.check(bool(refs), where, "no secret references at all")
    else:
        names = {dig(s, "metadata", "name") for s in secrets}
        dangling = [r for r in refs if r[2] not in names]
        report.check(not dangling, where, f"secret references to Secrets the chart does not render: {dangling}")
        missing = []
        for wl, env, secret, key, optional in refs:
            doc = rendered.find("Secret", secret)
            present = doc is not None and key in ((doc.get("data") or {}) | (doc.get("stringData") or {}))
            if not optional and not present:
                missing.append(f"{wl} {env} <- {secret}/{key}")
        if case.complete_secrets:
            report.check(not missing, where, f"required credentials missing from the rendered Secrets: {missing}")
            report.check("NOT READY TO START" not in rendered.notes, where,
                         "NOTES.txt warns about missing credentials although all are given")
        else:
            # Pods wait (CreateContainerConfigError) rather than start with per-pod
            # development keys; the operator must be told why.
            report.check(not missing or "NOT READY TO START" in rendered.notes, where,
                         "NOTES.txt must warn when required credentials are missing")
    # Every required credential is referenced by the server.
    dep_refs = {r[1] for r in refs if r[0].startswith("Deployment/")}
    for env in ("DATABASE_URL", "PEERBRIDGE_JWT_SIGNING_KEY", "PEERBRIDGE_FIELD_KEYS", "PEERBRIDGE_INDEX_KEY"):
        report.check(env in dep_refs, where, f"the Deployment does not read {env} from a Secret")
    if case.defaults_only:
        # Default values carry no credentials: nothing in values.yaml, nothing rendered.
        with helm.Chart.load(str(chart_dir)) as chart:
            defaults = chart.values
        filled = {k: v for k, v in (dig(defaults, "secrets", "values", default={}) or {}).items() if v}
        report.check(not filled, where, f"default values contain credentials: secrets.values {sorted(filled)}")
        report.check(not dig(defaults, "secrets", "existingSecret"), where,
                     "default values must not name an existingSecret")
        for s in secrets:
            data = {k: v for k, v in ((s.get("data") or {}) | (s.get("stringData") or {})).items() if v}
            report.check(not data, f"{where} {name_of(s)}",
                         f"default values render credentials: {sorted(data)}")


# --------------------------------------------------------------------------- alert rules


SEVERITIES = {"imminent", "urgent", "concerning", "routine", "unknown"}
# Label names and values of the escalation metrics (server/src/escalation/metrics.rs). A
# fresh exposition has no samples of a labelled family, so they cannot all come from the
# binary; check_metric_table keeps this table and the binary in step.
METRIC_LABELS: dict[str, dict[str, set[str]]] = {
    "peerbridge_escalation_flags": {"status": {"open", "acknowledged"},
                                    "level": {"0", "1", "2", "3"}, "severity": SEVERITIES},
    "peerbridge_escalation_oldest_unacknowledged_seconds": {"severity": SEVERITIES},
    "peerbridge_escalation_deadline_breaches": {"step": {"escalated", "realerted", "overdue"},
                                                "severity": SEVERITIES},
    "peerbridge_escalation_time_to_acknowledge_seconds": {"severity": SEVERITIES},
    "peerbridge_escalation_unalertable_flags": {},
    "peerbridge_escalation_ladder_last_pass_timestamp_seconds": {},
    "peerbridge_escalation_ladder_failures": {},
}
# Gauges that read the same value on every replica (from the database, or set by the lease
# holder only while the others report 0): aggregate them with max/min, never sum/count.
MAX_ONLY = {"peerbridge_escalation_flags", "peerbridge_escalation_oldest_unacknowledged_seconds",
            "peerbridge_escalation_ladder_last_pass_timestamp_seconds"}
# Labels Prometheus attaches to every scraped series (Prometheus Operator target labels).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}

ALERT_SEVERITIES = {"page", "ticket"}
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url")
RUNBOOK_DOC = "deploy/README.md"
# Prometheus durations (the PrometheusRule CRD's pattern): units in order, e.g. 1h30m.
PROM_DURATION = re.compile(r"^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$")
PROM_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
ALERT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
GROUP_KEYS = {"name", "interval", "rules", "limit", "partial_response_strategy", "query_offset", "labels"}
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


def github_slug(heading: str) -> str:
    """The anchor GitHub (and GitLab) gives a Markdown heading: lower case, punctuation
    other than hyphens and underscores dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def readme_anchors(readme: Path) -> set[str]:
    """Anchors of the headings of a Markdown file (outside code blocks)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in readme.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = github_slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def check_metric_table(server: Server, report: Report) -> None:
    """METRIC_LABELS names exactly the escalation families the binary exports, and every
    label the binary's samples carry."""
    exported = {f for f in server.metrics.families if f.startswith("peerbridge_escalation_")}
    w = "`peerbridge config metrics`"
    report.check(exported == set(METRIC_LABELS), w,
                 f"escalation families differ from check_chart.METRIC_LABELS: exported but not in the "
                 f"table {sorted(exported - set(METRIC_LABELS))}, in the table but not exported "
                 f"{sorted(set(METRIC_LABELS) - exported)}")
    for family, labels in server.metrics.sample_labels.items():
        if family in METRIC_LABELS:
            extra = labels - set(METRIC_LABELS[family])
            report.check(not extra, w, f"{family} has labels {sorted(extra)} check_chart.METRIC_LABELS lacks")


def promql_children(node: Any) -> list[Any]:
    P = promql_parser
    if isinstance(node, P.AggregateExpr):
        return [node.expr] + ([node.param] if isinstance(node.param, P.Expr) else [])
    if isinstance(node, (P.UnaryExpr, P.ParenExpr, P.SubqueryExpr)):
        return [node.expr]
    if isinstance(node, P.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, P.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, P.Call):
        return [a for a in node.args if isinstance(a, P.Expr)]
    return []


def promql_nodes(node: Any, stop_at_aggregation: bool = False) -> Iterable[Any]:
    yield node
    for child in promql_children(node):
        if stop_at_aggregation and isinstance(child, promql_parser.AggregateExpr):
            continue
        yield from promql_nodes(child, stop_at_aggregation)


def selector_name(sel: Any) -> str | None:
    if sel.name:
        return sel.name
    for m in sel.matchers.matchers:
        if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal:
            return m.value
    return None


def allowed_labels(family: str, series: str) -> set[str] | None:
    """Label names a series of a known family may be selected or grouped by."""
    if family not in METRIC_LABELS:
        return None
    return set(METRIC_LABELS[family]) | TARGET_LABELS | ({"le"} if series.endswith("_bucket") else set())


def check_expr(expr: str, server: Server, report: Report, w: str) -> None:
    """The expression parses; its peerbridge_* metrics, label names and label values exist;
    same-on-every-replica gauges are not summed."""
    try:
        tree = promql_parser.parse(expr)
    except ValueError as exc:
        report.fail(w, f"expr does not parse as PromQL: {exc}")
        return
    report.passed += 1
    for node in promql_nodes(tree):
        if isinstance(node, promql_parser.VectorSelector):
            name = selector_name(node)
            if name is None or not name.startswith("peerbridge_"):
                continue
            family = server.metrics.series.get(name)
            if not report.check(family is not None, w,
                                f"metric {name} is not exported by the server (`peerbridge config metrics`)"):
                continue
            allowed = allowed_labels(family, name)  # type: ignore[arg-type]
            if allowed is None:
                continue
            matchers = list(node.matchers.matchers) + [m for ms in node.matchers.or_matchers for m in ms]
            for m in matchers:
                if m.name == "__name__":
                    continue
                if not report.check(m.name in allowed, w,
                                    f"{name} has no label {m.name!r} (it has {sorted(METRIC_LABELS[family])} "  # type: ignore[index]
                                    f"and the target labels {sorted(TARGET_LABELS)})"):
                    continue
                values = METRIC_LABELS[family].get(m.name)  # type: ignore[index]
                if not values:
                    continue
                if m.op in (promql_parser.MatchOp.Equal, promql_parser.MatchOp.NotEqual):
                    wanted = [m.value]
                elif re.fullmatch(r"[A-Za-z0-9_-]+(\|[A-Za-z0-9_-]+)*", m.value):  # literals only
                    wanted = m.value.split("|")
                else:
                    continue  # a real regular expression: not checked
                unknown = [v for v in wanted if v not in values]
                report.check(not unknown, w,
                             f"{name}{{{m.name}}} never has the value(s) {unknown} (values: {sorted(values)})")
        elif isinstance(node, promql_parser.AggregateExpr):
            op = str(node.op)
            inner = [n for n in promql_nodes(node.expr) if isinstance(n, promql_parser.VectorSelector)]
            if op in ("sum", "count"):
                direct = [selector_name(n) for n in promql_nodes(node.expr, stop_at_aggregation=True)
                          if isinstance(n, promql_parser.VectorSelector)]
                summed = sorted({n for n in direct if n and server.metrics.series.get(n) in MAX_ONLY})
                report.check(not summed, w,
                             f"{op}() over {summed}: every replica reports the same value (aggregate with max)")
            if node.modifier is not None and node.modifier.type == promql_parser.AggModifierType.By:
                grouping: set[str] = set()
                known = True
                for sel in inner:
                    name = selector_name(sel) or ""
                    labels = allowed_labels(server.metrics.series.get(name, ""), name)
                    if labels is None:
                        known = False
                        break
                    grouping |= labels
                if known and inner:
                    unknown = sorted(set(node.modifier.labels) - grouping)
                    report.check(not unknown, w,
                                 f"{op} by {unknown}: no metric in the aggregation has such a label")


def check_alerts(rendered: Rendered, server: Server, report: Report, where: str, case: Case,
                 readme: Path) -> None:
    """PrometheusRule structure (in place of a schema), the PromQL against the server's
    metrics, and runbook links into deploy/README.md."""
    docs = rendered.of_kind("PrometheusRule")
    report.check(bool(docs) == case.expect_alerts, where,
                 f"PrometheusRule {'missing' if case.expect_alerts else 'rendered although alerts are disabled'}")
    if not docs:
        return
    anchors = readme_anchors(readme)
    values = dig(rendered.values, "alerts", default={}) or {}
    alert_names: set[str] = set()
    for doc in docs:
        w = f"{where} {name_of(doc)}"
        report.check(doc.get("apiVersion") == "monitoring.coreos.com/v1", w, "apiVersion must be monitoring.coreos.com/v1")
        unknown = sorted(set(doc) - {"apiVersion", "kind", "metadata", "spec"})
        report.check(not unknown, w, f"unknown top-level fields {unknown}")
        meta = doc.get("metadata") or {}
        report.check(bool(DNS_SUBDOMAIN.match(str(meta.get("name", "")))), w, "metadata.name is not a DNS subdomain")
        obj_labels = meta.get("labels") or {}
        for k, v in obj_labels.items():
            report.check(isinstance(v, str) and len(v) <= 63 and re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", v) is not None,
                         w, f"metadata.labels.{k}: {v!r} is not a valid label value")
        for k, v in (values.get("labels") or {}).items():
            report.check(obj_labels.get(k) == v, w, f"alerts.labels {k}={v} missing from the object's labels")
        spec = doc.get("spec") or {}
        report.check(set(spec) == {"groups"}, w, f"spec must have groups only, has {sorted(spec)}")
        groups = spec.get("groups")
        if not report.check(isinstance(groups, list) and bool(groups), w, "spec.groups must be a non-empty list"):
            continue
        group_names: set[str] = set()
        for gi, group in enumerate(groups):
            gw = f"{w} groups[{gi}]"
            if not report.check(isinstance(group, dict), gw, "must be an object"):
                continue
            unknown = sorted(set(group) - GROUP_KEYS)
            report.check(not unknown, gw, f"unknown fields {unknown}")
            gname = group.get("name")
            report.check(isinstance(gname, str) and bool(gname), gw, "name must be a non-empty string")
            report.check(gname not in group_names, gw, f"group name {gname!r} is not unique")
            group_names.add(gname)
            if "interval" in group:
                report.check(bool(PROM_DURATION.match(str(group["interval"]))), gw,
                             f"interval {group['interval']!r} is not a Prometheus duration")
            rules = group.get("rules")
            if not report.check(isinstance(rules, list) and bool(rules), gw, "rules must be a non-empty list"):
                continue
            for ri, rule in enumerate(rules):
                rw = f"{gw} rules[{ri}]"
                if not report.check(isinstance(rule, dict), rw, "must be an object"):
                    continue
                alert = rule.get("alert")
                rw = f"{gw} {alert or f'rules[{ri}]'}"
                unknown = sorted(set(rule) - RULE_KEYS)
                report.check(not unknown, rw, f"unknown fields {unknown}")
                if not report.check(isinstance(alert, str) and bool(ALERT_NAME.match(alert)), rw,
                                    "every rule must be an alert with a CamelCase name (no recording rules)"):
                    continue
                report.check(alert not in alert_names, rw, f"alert name {alert} is not unique")
                alert_names.add(alert)
                expr = rule.get("expr")
                if report.check(isinstance(expr, str) and bool(expr.strip()), rw, "expr must be a non-empty string"):
                    check_expr(expr, server, report, rw)  # type: ignore[arg-type]
                for key in ("for", "keep_firing_for"):
                    if key in rule:
                        report.check(isinstance(rule[key], str) and bool(PROM_DURATION.match(rule[key])), rw,
                                     f"{key} {rule[key]!r} is not a Prometheus duration (e.g. 5m, 1h30m)")
                labels = rule.get("labels")
                if not report.check(isinstance(labels, dict), rw, "labels missing (severity is required)"):
                    labels = {}
                for k, v in labels.items():
                    report.check(bool(PROM_LABEL.match(str(k))) and isinstance(v, str), rw,
                                 f"label {k}: {v!r} must be a valid label name with a string value")
                report.check(labels.get("severity") in ALERT_SEVERITIES, rw,
                             f"labels.severity must be one of {sorted(ALERT_SEVERITIES)}, got {labels.get('severity')!r}")
                for k, v in (values.get("ruleLabels") or {}).items():
                    report.check(labels.get(k) == v, rw, f"alerts.ruleLabels {k}={v} missing")
                ann = rule.get("annotations")
                if not report.check(isinstance(ann, dict), rw, f"annotations missing ({', '.join(REQUIRED_ANNOTATIONS)})"):
                    continue
                for key in REQUIRED_ANNOTATIONS:
                    report.check(isinstance(ann.get(key), str) and bool(ann[key].strip()), rw,
                                 f"annotations.{key} missing or empty")
                for key, text in ann.items():
                    report.check(isinstance(text, str) and text.count("{{") == text.count("}}"), rw,
                                 f"annotations.{key}: unbalanced {{{{ }}}} (Helm escaping of a Prometheus template?)")
                url = str(ann.get("runbook_url", ""))
                base, _, anchor = url.partition("#")
                report.check(base.endswith(RUNBOOK_DOC) and anchor in anchors, rw,
                             f"runbook_url {url!r} must be {RUNBOOK_DOC}#<anchor of a heading in {readme}>"
                             + ("" if anchor in anchors else f"; no heading has the anchor {anchor!r}"))


def check_case(chart_dir: Path, case: Case, server: Server, report: Report,
               readme: Path = DEFAULT_README) -> None:
    where = f"[{case.name}]"
    values = case_values(chart_dir, case)
    lint(chart_dir, values, report, where)
    rendered = render(chart_dir, values, report, where)
    if rendered is None:
        return
    validate_kubernetes(rendered, report, where)
    for doc in rendered.docs:
        check_pod_security(doc, report, where)
        report.check(doc.get("kind") != "Secret" or not doc.get("stringData"), f"{where} {name_of(doc)}",
                     "use data, not stringData")
    check_server_deployment(rendered, server, report, where, case)
    if dig(rendered.values, "migrations", "enabled"):
        check_migration_job(rendered, server, report, where)
    if dig(rendered.values, "tests", "enabled"):
        check_test_hook(rendered, report, where)
    check_exposure(rendered, report, where, case)
    if dig(rendered.values, "podDisruptionBudget", "enabled"):
        check_pdb(rendered, report, where)
    check_network_policy(rendered, report, where, case)
    check_secrets(rendered, report, where, case, chart_dir)
    check_alerts(rendered, server, report, where, case, readme)


def check_schema_strictness(chart_dir: Path, report: Report) -> None:
    """Every object in values.schema.json closes its properties (typos fail), except
    explicit maps (typed additionalProperties) and documented pass-through objects."""
    schema = json.loads((chart_dir / "values.schema.json").read_text())
    passthrough = {"/properties/affinity"}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and path not in passthrough:
                ap = node.get("additionalProperties", True)
                report.check(ap is False or isinstance(ap, dict), "values.schema.json",
                             f"object at {path or '/'} accepts unknown keys (set additionalProperties)")
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(schema, "")
    # Every default value is covered by the schema (the schema is closed, so the default
    # render passing proves it; this names the key when it does not).
    with helm.Chart.load(str(chart_dir)) as chart:
        try:
            chart.validate_schema(chart.values)
            report.passed += 1
        except helm.HelmValuesError as exc:
            report.fail("values.yaml", f"defaults do not satisfy values.schema.json: {exc}")


def run_checks(chart_dir: Path = CHART_DIR, server: Server | None = None,
               cases: Iterable[str] | None = None, binary: Path | None = None,
               openapi: Path | None = None, readme: Path = DEFAULT_README) -> Report:
    report = Report()
    if server is None:
        server = Server.load(binary or DEFAULT_BINARY, openapi or DEFAULT_OPENAPI)
    wanted = set(cases) if cases else None
    check_schema_strictness(chart_dir, report)
    check_metric_table(server, report)
    for case in MATRIX:
        if wanted is None or case.name in wanted:
            check_case(chart_dir, case, server, report, readme)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chart", type=Path, default=CHART_DIR)
    ap.add_argument("--binary", type=Path,
                    default=Path(os.environ.get("PEERBRIDGE_BIN", DEFAULT_BINARY)),
                    help="peerbridge binary (env PEERBRIDGE_BIN; default target/debug/peerbridge)")
    ap.add_argument("--openapi", type=Path, default=DEFAULT_OPENAPI)
    ap.add_argument("--readme", type=Path, default=DEFAULT_README,
                    help="the operator guide the alerts' runbook links point into")
    ap.add_argument("--case", action="append", choices=[c.name for c in MATRIX])
    args = ap.parse_args(argv)
    started = time.monotonic()
    try:
        report = run_checks(args.chart, cases=args.case, binary=args.binary, openapi=args.openapi,
                            readme=args.readme)
    except CheckError as exc:
        print(f"chart check cannot run: {exc}", file=sys.stderr)
        return 1
    cases = args.case or [c.name for c in MATRIX]
    print(f"helm SDK {helm.helm_sdk_version()} (helm-python-sdk {helm.__version__}), "
          f"kubernetes-validate {kubernetes_validate.__version__ if hasattr(kubernetes_validate, '__version__') else ''} "
          f"for Kubernetes {', '.join(KUBE_VERSIONS)}, promql-parser; cases: {', '.join(cases)}")
    for p in report.problems:
        print(f"FAIL {p}")
    print(f"chart check: {report.passed} assertions passed, {len(report.problems)} failed "
          f"in {time.monotonic() - started:.1f}s")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
