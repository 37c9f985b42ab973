"""deploy/: the production files parse, name only real settings and metrics, give each
ingest worker its own MQTT client id, build (kustomize, systemd-analyze) and hold no
secret (deploy/README.md, issue 6)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml

from core import settings as settings_mod
from core.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
K8S = DEPLOY / "k8s"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes the manifests promise to fit
INSTALLED_FOYER = "/opt/foyer/.venv/bin/foyer"


# --- helpers --------------------------------------------------------------------------


def deploy_files() -> list[Path]:
    """deploy/ as it would be committed: git's view (tracked + untracked, minus ignored,
    so an operator's certs/ or .env on this machine are not scanned), else the tree."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "deploy"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return sorted(p for p in DEPLOY.rglob("*") if p.is_file())
    return sorted(ROOT / line for line in out.splitlines() if (ROOT / line).is_file())


def files_with(*suffixes: str) -> list[Path]:
    return [p for p in deploy_files() if p.name.endswith(suffixes)]


def yaml_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def foyer_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services that run `foyer serve` (the image built from the repo)."""
    return {
        name: svc
        for name, svc in doc["services"].items()
        if "build" in svc and "serve" in svc.get("command", [])
    }


@pytest.fixture(scope="module")
def k8s_docs() -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    found: list[dict[str, Any]] = spec.get("containers", [])
    return found


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


# --- every file parses --------------------------------------------------------------------


@pytest.mark.parametrize("path", files_with(".yaml", ".yml"), ids=lambda p: p.name)
def test_every_yaml_file_parses(path: Path) -> None:
    assert yaml_docs(path), f"{path} holds no YAML document"


@pytest.mark.parametrize("path", files_with(".json"), ids=lambda p: p.name)
def test_every_json_file_parses(path: Path) -> None:
    json.loads(path.read_text())


@pytest.mark.parametrize("path", files_with(".toml"), ids=lambda p: p.name)
def test_every_toml_file_is_a_valid_foyer_config(path: Path) -> None:
    settings_mod.load(path, env={})  # unknown keys or bad values raise SettingsError


def test_the_k8s_configmap_holds_a_valid_foyer_config(tmp_path: Path) -> None:
    (doc,) = yaml_docs(K8S / "configmap.yaml")
    (tmp_path / "foyer.toml").write_text(doc["data"]["foyer.toml"])
    settings_mod.load(tmp_path / "foyer.toml", env={})


# --- names: settings, metrics, datasources ------------------------------------------------

FOYER_VAR = re.compile(r"\bFOYER_[A-Z0-9_]+\b")


def test_every_foyer_variable_in_deploy_is_a_real_setting() -> None:
    # The CLI reads only --config and FOYER_* settings (core/settings.ENV); no FOYER_CONFIG.
    known = set(settings_mod.ENV.values())
    unknown = {
        f"{path.relative_to(ROOT)}: {var}"
        for path in deploy_files()
        if path.parent.name != "dev"
        for var in FOYER_VAR.findall(path.read_text(errors="replace"))
        if var not in known
    }
    assert not unknown, sorted(unknown)


def known_series() -> set[str]:
    """The series names Prometheus sees for Foyer's metrics, by type: a counter `x` is
    exposed as `x_total`, a histogram as `x_bucket`, `x_sum`, `x_count`, a gauge as `x`."""
    metrics = Metrics()
    metrics.observe_spool(lambda: 0, lambda: 0)  # registered at start-up by the spool
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def test_series_names_follow_the_exposition_suffixes() -> None:
    names = known_series()
    assert {"foyer_messages_received_total", "foyer_ack_latency_seconds_bucket"} <= names
    assert "foyer_spool_batches" in names and "foyer_spool_batches_total" not in names
    assert "foyer_messages_received" not in names  # a counter is never queried bare


def promql_exprs() -> Iterator[tuple[str, str]]:
    for path in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                if "expr" in target:
                    yield f"{path.name}: {panel['title']}", target["expr"]
    for group in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            yield f"alerts.yml: {rule['alert']}", rule["expr"]


def test_every_metric_in_dashboards_and_alerts_exists_in_foyer() -> None:
    names = known_series()
    exprs = list(promql_exprs())
    assert len(exprs) > 20
    missing = {
        f"{where}: {name}"
        for where, expr in exprs
        for name in re.findall(r"\bfoyer_[a-z0-9_]+\b", expr)
        if name not in names
    }
    assert not missing, sorted(missing)


def test_foyer_job_label_is_queried_as_exported_job() -> None:
    # foyer_job_runs_total has its own `job` label; Prometheus renames it exported_job
    # because `job` is the scrape job's (honor_labels is off).
    for where, expr in promql_exprs():
        if "foyer_job_runs_total" in expr:
            assert "exported_job" in expr and "by (job" not in expr, where


def test_the_alert_and_dashboard_scrape_jobs_are_scraped() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {c["job_name"] for c in config["scrape_configs"]}
    used = {m for _, expr in promql_exprs() for m in re.findall(r'job="([^"]+)"', expr)}
    assert used and used <= jobs
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_dashboards_use_provisioned_datasources_and_the_agreed_rollups() -> None:
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "foyer.yaml").read_text()
    )
    uids = {d["uid"] for d in provisioned["datasources"]}
    influxql: list[str] = []
    for path in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] in uids, (path.name, panel["title"])
            influxql += [t["query"] for t in panel["targets"] if "query" in t]
    # names.md: the commune rollups live in retention policy `rollup`.
    text = "\n".join(influxql)
    assert '"rollup"."commune_water_use_1h"' in text
    assert '"rollup"."commune_water_use_1d"' in text


# --- one client id per worker ---------------------------------------------------------------


def systemd_env(unit: str, instance: str = "") -> dict[str, str]:
    env: dict[str, str] = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            env[key] = value.replace("%i", instance)
    return env


def test_systemd_ingest_instances_get_distinct_client_ids_and_probe_ports() -> None:
    one, two = (
        systemd_env("foyer-ingest@.service", "01"),
        systemd_env("foyer-ingest@.service", "02"),
    )
    assert one["FOYER_MQTT_CLIENT_ID"] != two["FOYER_MQTT_CLIENT_ID"]
    assert one["FOYER_PROBE_BIND"] != two["FOYER_PROBE_BIND"]
    others = {
        systemd_env(u)["FOYER_MQTT_CLIENT_ID"]
        for u in ("foyer-api.service", "foyer-scheduler.service")
    }
    assert len(others) == 2 and one["FOYER_MQTT_CLIENT_ID"] not in others


def test_the_shared_env_file_does_not_override_per_process_settings() -> None:
    # systemd: EnvironmentFile= overrides Environment=, so per-process values must stay out.
    example = (SYSTEMD / "foyer.env.example").read_text()
    for var in ("FOYER_MQTT_CLIENT_ID", "FOYER_PROBE_BIND", "FOYER_COAP_BIND"):
        assert not re.search(rf"^\s*{var}=", example, re.M), var


def test_compose_foyer_processes_have_distinct_client_ids_in_one_group() -> None:
    services = foyer_services(compose())
    ids = [svc["environment"]["FOYER_MQTT_CLIENT_ID"] for svc in services.values()]
    assert len(ids) == len(set(ids)) == len(services) >= 4
    ingest = [n for n, s in services.items() if s["command"][-1] == "ingest"]
    assert len(ingest) == 2
    assert all("FOYER_MQTT_GROUP" not in services[n]["environment"] for n in ingest)
    coap = [n for n in ingest if services[n]["environment"].get("FOYER_COAP_BIND")]
    assert len(coap) == 1  # one process per CoAP port, one writer of the OSCORE state


def test_k8s_ingest_workers_take_their_client_id_from_a_stable_pod_name(
    k8s_docs: list[dict[str, Any]],
) -> None:
    (ingest,) = [d for d in k8s_docs if d["metadata"]["name"] == "foyer-ingest" and containers(d)]
    # StatefulSet: the name (and the spool's volume) survive a restart.
    assert ingest["kind"] == "StatefulSet" and ingest["spec"]["replicas"] >= 2
    env = env_of(containers(ingest)[0])
    assert env["FOYER_MQTT_CLIENT_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["FOYER_COAP_BIND"]["value"] == ""


def test_k8s_every_foyer_pod_has_its_own_client_id(k8s_docs: list[dict[str, Any]]) -> None:
    literal: list[str] = []
    for doc in k8s_docs:
        for c in containers(doc):
            client_id = env_of(c)["FOYER_MQTT_CLIENT_ID"]
            if "value" in client_id:  # a fixed id is only safe on a single pod
                assert doc["spec"]["replicas"] == 1, doc["metadata"]["name"]
                assert doc["spec"].get("strategy", {}).get("type") == "Recreate"
                literal.append(client_id["value"])
            else:
                assert client_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert len(literal) == len(set(literal))


def test_k8s_probes_and_scrape_annotations_point_at_declared_ports(
    k8s_docs: list[dict[str, Any]],
) -> None:
    for doc in (d for d in k8s_docs if containers(d)):
        (c,) = containers(doc)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"]["port"] in ports, (doc["metadata"]["name"], probe)
        annotations = doc["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) in ports.values()


# --- builds -------------------------------------------------------------------------------


def test_k8s_manifests_match_the_kubernetes_schemas(k8s_docs: list[dict[str, Any]]) -> None:
    docs = [*k8s_docs, *yaml_docs(K8S / "secret.example.yaml")]
    kinds = {d["kind"] for d in docs}
    assert {"StatefulSet", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    assert {"Service", "ConfigMap", "Namespace", "Secret"} <= kinds
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_check_refuses_a_wrong_manifest() -> None:
    (doc,) = [d for d in yaml_docs(K8S / "api.yaml") if d["kind"] == "Deployment"]
    doc["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_k8s_coap_is_served_over_udp(k8s_docs: list[dict[str, Any]]) -> None:
    services = [d for d in k8s_docs if d["kind"] == "Service"]
    udp = [p for s in services for p in s["spec"]["ports"] if p.get("protocol") == "UDP"]
    assert [p["port"] for p in udp] == [5683]


UNITS = ["foyer.service", "foyer-api.service", "foyer-scheduler.service", "foyer.target"]


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    foyer = Path(shutil.which("foyer") or ROOT / ".venv" / "bin" / "foyer")
    assert foyer.exists(), "verify needs the ExecStart binary: install Foyer in the venv"
    shutil.copytree(SYSTEMD, tmp_path, dirs_exist_ok=True)
    for unit in tmp_path.glob("*.service"):
        unit.write_text(unit.read_text().replace(INSTALLED_FOYER, str(foyer)))
    names = [*UNITS, "foyer-ingest@01.service", "foyer-ingest@02.service"]
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(f"{tmp_path}/{n}" for n in names)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    # verify only warns (exit 0) on an unknown key: any output is a defect.
    assert out.returncode == 0 and not out.stderr.strip() and not out.stdout.strip(), out.stderr


def hardening(unit: str) -> set[str]:
    text = (SYSTEMD / unit).read_text()
    section = text[text.index("# --- Hardening") : text.index("[Install]")]
    return {line for line in section.splitlines() if line and not line.startswith("#")}


def test_every_role_unit_has_the_all_in_one_units_hardening() -> None:
    base = hardening("foyer.service")
    assert {"MemoryDenyWriteExecute=yes", "ProtectProc=invisible", "CapabilityBoundingSet="} <= base
    assert "SystemCallFilter=@system-service" in base
    for unit in ("foyer-ingest@.service", "foyer-api.service", "foyer-scheduler.service"):
        assert hardening(unit) == base, unit


def test_role_units_run_their_role_and_belong_to_the_target() -> None:
    for unit, role in [
        ("foyer-ingest@.service", "ingest"),
        ("foyer-api.service", "api"),
        ("foyer-scheduler.service", "scheduler"),
        ("foyer.service", "all"),
    ]:
        text = (SYSTEMD / unit).read_text()
        assert re.search(rf"^ExecStart={INSTALLED_FOYER} .* serve --role {role}$", text, re.M)
        assert ("PartOf=foyer.target" in text) == (role != "all"), unit
    assert "Conflicts=foyer.target" in (SYSTEMD / "foyer.service").read_text()


def test_the_container_runs_foyer_as_a_non_root_user() -> None:
    text = (DEPLOY / "container" / "Containerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["foyer"\]$', text, re.M)
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in dockerignore and "!core/" in dockerignore  # deny by default


def test_every_compose_variable_is_in_example_env() -> None:
    example = (DEPLOY / "compose" / "example.env").read_text()
    defined = set(re.findall(r"^([A-Z0-9_]+)=", example, re.M))
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    assert used and used <= defined, sorted(used - defined)


# --- no secrets -----------------------------------------------------------------------------

# What stands for a secret in examples: empty, CHANGE-ME, a variable, <token>, ..., a path,
# or placeholder words such as `user:password`.
PLACEHOLDER = re.compile(r"^(|.*CHANGE-ME.*|\$.*|<[^>]*>|\.\.\.|\*+|/.*)$")
PLACEHOLDER_WORDS = {"password", "admin_password", "admin", "user", "username", "foyer", "token"}
SECRET_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\bAC[0-9a-f]{32}\b"),  # a Twilio account SID
]
LONG_TOKEN = re.compile(r"[A-Za-z0-9_+/=\-]{32,}")
CREDENTIAL_URL = re.compile(r"://[^/\s:@\"']+:([^@\s\"']+)@")
# KEY=value (env files, shell) or KEY: value (YAML), commented-out examples included.
SECRET_ASSIGNMENT = re.compile(
    r"^[# \t-]*(?:export[ \t]+)?[A-Z0-9_]*(?:PASSWORD|TOKEN|SECRET|ACCOUNT_SID)[A-Z0-9_]*"
    r"[ \t]*[:=][ \t]*(\S*)",
    re.M,
)


def is_placeholder(value: str) -> bool:
    value = value.strip("\"'`;,")
    words = set(re.split(r"[:@]", value.lower()))
    return bool(PLACEHOLDER.match(value)) or words <= PLACEHOLDER_WORDS


def looks_random(word: str) -> bool:
    """Long, and mixing cases and digits as generated keys do (identifiers do not)."""
    return (
        sum(c.isdigit() for c in word) >= 4
        and any(c.islower() for c in word)
        and any(c.isupper() for c in word)
    )


def secrets_in(text: str) -> list[str]:
    found = [m.group(0)[:20] for p in SECRET_PATTERNS for m in p.finditer(text)]
    found += [m.group(0)[:8] + "..." for m in LONG_TOKEN.finditer(text) if looks_random(m.group(0))]
    for pattern in (CREDENTIAL_URL, SECRET_ASSIGNMENT):
        found += [m.group(0)[:40] for m in pattern.finditer(text) if not is_placeholder(m.group(1))]
    return found


def test_the_secret_check_flags_real_looking_values() -> None:
    assert secrets_in("FOYER_MQTT_URL=mqtt://foyer-ingest:s3cr3t-Pa55@127.0.0.1:1883")
    assert secrets_in("POSTGRES_PASSWORD=hunter2hunter2")
    assert secrets_in("FOYER_TWILIO_ACCOUNT_SID=AC" + "0123456789abcdef" * 2)
    assert secrets_in("token: " + "Zx8Qm2Lr9Tv4Nb7Kc1Wd6Yf3Hg5Js0PaEo" * 2)
    assert secrets_in("-----BEGIN RSA PRIVATE KEY-----")
    assert not secrets_in("FOYER_MQTT_URL=mqtt://foyer-ingest:CHANGE-ME@127.0.0.1:1883")
    assert not secrets_in("POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set in .env}")
    assert not secrets_in("FOYER_TWILIO_AUTH_TOKEN=\nFOYER_TWILIO_FROM=+33600000000")
    assert not secrets_in("# FOYER_INFLUX_TOKEN=user:password  # 1.x")
    assert not secrets_in("preferredDuringSchedulingIgnoredDuringExecution: []")


@pytest.mark.parametrize("path", deploy_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_no_file_under_deploy_holds_a_real_looking_secret(path: Path) -> None:
    text = path.read_text(errors="replace")
    assert not secrets_in(text), secrets_in(text)


def test_the_operators_env_file_is_ignored_by_git() -> None:
    assert ".env" in (DEPLOY / "compose" / ".gitignore").read_text().splitlines()


def test_no_certificate_or_key_is_committed() -> None:
    keys = [p for p in deploy_files() if p.suffix in (".key", ".crt", ".pem", ".csr")]
    assert not keys
    assert (DEPLOY / "compose" / "certs" / ".gitignore").read_text().splitlines()[-2:] == [
        "*",
        "!.gitignore",
    ]
