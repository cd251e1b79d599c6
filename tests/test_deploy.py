"""The deployment files in ``deploy/`` are valid and true.

- Every Kubernetes manifest passes ``kubernetes-validate --strict`` (the API's own schemas, unknown fields
  refused), and a manifest with a misspelt field fails it (the check can fail).
- ``checkov`` over the manifests and the Containerfile (scanned under a Dockerfile's name) leaves no failed
  check that ``deploy/checkov-skips.yaml`` does not list with a reason, and every listed skip still fails
  (no stale excuses).
- ``deploy/nginx.conf`` passes ``nginx -t`` (its upstream host names pointed at 127.0.0.1).
- The files say only true things about the program: every ``trm`` flag they pass is one ``trm serve`` or
  ``trm db`` takes, every ``TRM_*`` variable and every key of the settings file is a setting, and the paths the
  Containerfile's health check and the probes ask for are the server's open ``/healthz``.

The validators are not project dependencies (checkov alone brings ~100 packages that would fight the
project's pins): ``.ci/run`` installs both in a separate, cached virtual environment and names them in
``TRM_KUBERNETES_VALIDATE`` and ``TRM_CHECKOV``; elsewhere they are looked up on PATH. In CI they must run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from trm_modules.cli import app
from trm_modules.settings import tomllib

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))
SKIPS = DEPLOY / "checkov-skips.yaml"
IN_CI = bool(os.environ.get("CI"))


def tool(env: str, name: str) -> str:
    """The validator's executable: ``$env``, else ``name`` on PATH; skipped when absent, except in CI."""
    found = os.environ.get(env) or shutil.which(name)
    if not found:
        if IN_CI:
            pytest.fail(f"{name} is not installed: .ci/run installs it and sets {env}")
        pytest.skip(f"{name} is not installed (pip install {name} in a separate venv, or set {env})")
    return found


def documents() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_the_manifests_hold_what_an_orchestrator_needs():
    kinds = {doc["kind"] for _, doc in documents()}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job", "Secret"} <= kinds
    deployment = next(doc for _, doc in documents() if doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (server,) = pod["containers"]
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert server[probe]["httpGet"]["path"] == "/healthz"
    job = next(doc for _, doc in documents() if doc["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    # Secrets reach the pods as files, never as environment variables.
    for _, doc in documents():
        for container in _containers(doc):
            assert not any("secretKeyRef" in (e.get("valueFrom") or {}) for e in container.get("env", []))


def test_kubernetes_validate_strict_accepts_every_manifest_and_refuses_a_misspelt_field(tmp_path):
    validate = tool("TRM_KUBERNETES_VALIDATE", "kubernetes-validate")
    result = subprocess.run([validate, "--strict", *map(str, MANIFESTS)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(documents())

    misspelt = tmp_path / "deployment.yaml"
    misspelt.write_text((DEPLOY / "k8s" / "deployment.yaml").read_text().replace("readinessProbe:", "readynessProbe:"))
    refused = subprocess.run([validate, "--strict", str(misspelt)], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "readynessProbe" in refused.stdout + refused.stderr


def test_checkov_leaves_no_failed_check_unexplained(tmp_path):
    checkov = tool("TRM_CHECKOV", "checkov")
    # checkov scans Dockerfiles by name only (Dockerfile, *.dockerfile): the Containerfile is scanned as one.
    scanned = tmp_path / "deploy"
    shutil.copytree(DEPLOY, scanned)
    (scanned / "Containerfile").rename(scanned / "Dockerfile")
    result = subprocess.run(
        [
            checkov,
            "-d",
            str(scanned),
            "--framework",
            "kubernetes",
            "dockerfile",
            "secrets",
            "--skip-download",
            "--output",
            "json",
            "--quiet",
            "--compact",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LOG_LEVEL": "ERROR"},
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    frameworks = {report["check_type"] for report in reports}
    assert {"kubernetes", "dockerfile"} <= frameworks, f"checkov scanned only {frameworks}"
    passed = sum(report["summary"]["passed"] for report in reports)
    failed = {
        (check["check_id"], _relative(check["file_path"]))
        for report in reports
        for check in report["results"]["failed_checks"]
    }
    accepted = {(skip["id"], skip["file"]) for skip in yaml.safe_load(SKIPS.read_text())}
    assert all(skip.get("reason", "").strip() for skip in yaml.safe_load(SKIPS.read_text()))
    print(f"\ncheckov: {passed} passed, {len(failed)} failed ({len(failed & accepted)} accepted with a reason)")
    assert passed > 100
    assert not failed - accepted, f"failed checks without a reason in {SKIPS.name}: {sorted(failed - accepted)}"
    assert not accepted - failed, f"{SKIPS.name} excuses checks that no longer fail: {sorted(accepted - failed)}"


def test_nginx_accepts_the_load_balancer_config(tmp_path):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        if IN_CI:
            pytest.fail("nginx is not installed: .ci/run installs it")
        pytest.skip("nginx is not installed")
    # The compose service names do not resolve here; everything else is tested as written.
    config = re.sub(r"server trm-\d:8000", "server 127.0.0.1:8000", (DEPLOY / "nginx.conf").read_text())
    (tmp_path / "nginx.conf").write_text(config.replace("/tmp/nginx.pid", str(tmp_path / "nginx.pid")))
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_the_compose_file_runs_three_replicas_behind_nginx_on_postgresql():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    replicas = [
        name
        for name, service in services.items()
        if service.get("command") is None and "image" in service and "trm-modules" in service["image"]
    ]
    assert len(replicas) == 3
    assert {"postgres", "nginx", "migrate"} <= set(services)
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert "registry" in compose["volumes"]
    for name in replicas:
        assert any(volume.startswith("registry:") for volume in services[name]["volumes"])
        assert services[name]["read_only"] is True
    upstreams = re.findall(r"server (trm-\d):8000", (DEPLOY / "nginx.conf").read_text())
    assert sorted(upstreams) == sorted(replicas)


def test_the_files_pass_only_flags_and_settings_the_program_has():
    from trm_modules.plugins import build_plugin_manager, declared_settings
    from trm_modules.server import ServerSettings

    commands = [doc_args for _, doc in documents() for c in _containers(doc) if (doc_args := c.get("args"))]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    commands += [s["command"] for s in compose["services"].values() if isinstance(s.get("command"), list)]
    cmd = re.search(r"^CMD (\[.*\])$", (DEPLOY / "Containerfile").read_text(), re.M)
    commands.append(json.loads(cmd.group(1)))
    helps: dict[str, str] = {}
    for args in commands:
        words = [a for a in args if not a.startswith("-")][:2]
        command = words[:1] if words[0] == "serve" else words
        key = " ".join(command)
        if key not in helps:
            helps[key] = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output
            assert "Usage" in helps[key], f"trm {key} --help: {helps[key]}"
        for flag in (a for a in args if a.startswith("--")):
            assert re.search(rf"{re.escape(flag)}\b", helps[key]), f"trm {key} has no {flag}"

    settings = {name.upper() for name in ServerSettings.model_fields} | {"CONFIG", "PLUGINS", "REGISTRY_TOKEN"}
    plugin_settings = {setting.name for _, setting in declared_settings(build_plugin_manager(entry_points=True))}
    settings |= {name.upper() for name in plugin_settings}
    texts = [p.read_text() for p in (*MANIFESTS, DEPLOY / "compose.yaml", DEPLOY / "Containerfile")]
    used = {name for text in texts for name in re.findall(r"\bTRM_([A-Z_]+)", text)}
    assert used and not used - settings, f"not settings of trm serve: {sorted(used - settings)}"

    secret = next(doc for _, doc in documents() if doc["kind"] == "Secret" and "trm.toml" in doc["stringData"])
    toml = re.sub(r"^# ", "", secret["stringData"]["trm.toml"], flags=re.M)  # the commented examples too
    keys = set(tomllib.loads(toml))
    assert keys and not keys - set(ServerSettings.model_fields) - plugin_settings, keys

    healthcheck = re.search(r"HEALTHCHECK.*\n.*(http://\S+)", (DEPLOY / "Containerfile").read_text())
    assert healthcheck and healthcheck.group(1).endswith(":8000/healthz")


def test_the_settings_file_in_the_secret_is_read_by_trm(tmp_path, monkeypatch):
    """``TRM_CONFIG`` naming the Secret's trm.toml (its database pointed at a local file) sets the store of
    ``trm db upgrade``: the migration Job and the replicas find their database this way."""
    secret = next(doc for _, doc in documents() if doc["kind"] == "Secret" and "trm.toml" in doc["stringData"])
    database = tmp_path / "store.sqlite3"
    toml = re.sub(r'^db_url = ".*"$', f'db_url = "sqlite:///{database}"', secret["stringData"]["trm.toml"], flags=re.M)
    (tmp_path / "trm.toml").write_text(toml)
    monkeypatch.delenv("TRM_DB_URL", raising=False)
    monkeypatch.setenv("TRM_CONFIG", str(tmp_path / "trm.toml"))
    monkeypatch.setenv("TRM_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert database.exists()


def _containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    template = spec.get("template", {}).get("spec", {})
    return template.get("containers", []) + template.get("initContainers", [])


def _relative(path: str) -> str:
    """checkov's file path (``/k8s/x.yaml``, ``/Dockerfile``) as a path under deploy/."""
    path = path.lstrip("/")
    path = path.split("deploy/", 1)[-1]
    return "Containerfile" if path == "Dockerfile" else path
