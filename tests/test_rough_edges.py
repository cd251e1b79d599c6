"""What an outside author met on the way from a run to a served module: errors that keep their location,
a new registry that can trust its signer, a server whose messages say what is true and name HTTP routes."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from fixtures.packages import build_tiny_package
from fixtures.server import MODULE, puzzle, served
from trm_modules.cli import app
from trm_modules.host.errors import VersionNotLoaded
from trm_modules.package import DirectoryRegistry, generate_keypair, open_package
from trm_modules.server.problems import problem_for
from trm_modules.server.trust import SignaturePolicy


def test_a_cli_error_keeps_its_rule_file_and_pointer(tmp_path):
    broken = tmp_path / "broken.trm"
    broken.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip: no manifest
    result = CliRunner().invoke(app, ["verify", str(broken)])
    assert result.exit_code != 0
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: ") and line.endswith("]") and "[" in line, result.output


def _signed_package(tmp_path: Path) -> tuple[Path, Path]:
    keys = tmp_path / "keys-of-the-author"
    generate_keypair(keys, "author")
    path = build_tiny_package(tmp_path / "signed.trm", signing_key=keys / "author.key")
    return path, keys


def test_publishing_to_a_new_registry_with_trusted_keys_sets_up_its_keys(tmp_path):
    path, keys = _signed_package(tmp_path)
    registry = tmp_path / "new-registry"
    result = CliRunner().invoke(app, ["publish", str(path), "--registry", str(registry), "--trusted-keys", str(keys)])
    assert result.exit_code == 0, result.output
    assert (registry / "keys" / "author.pub").read_bytes() == (keys / "author.pub").read_bytes()
    assert "had no keys/ folder" in result.output
    policy = SignaturePolicy.build(DirectoryRegistry(registry), None, allow_unsigned=False)
    assert open_package(path, policy.keys_for_opening()).signed_by  # what `trm serve --registry` now accepts


def test_publishing_without_trusted_keys_says_how_to_trust_the_signer(tmp_path):
    path, _ = _signed_package(tmp_path)
    registry = tmp_path / "new-registry"
    result = CliRunner().invoke(app, ["publish", str(path), "--registry", str(registry)])
    assert result.exit_code == 0, result.output
    assert not (registry / "keys").exists()
    assert "has no keys/ folder" in result.output and "refuses every package" in result.output


def test_a_module_without_an_active_version_names_the_route_that_activates_it():
    problem = problem_for(VersionNotLoaded("module 'latin' has no active version", module="latin"))
    assert problem.status == 404 and "POST /v1/admin/modules/latin/activate" in problem.detail
    assert "swap(" not in problem.detail


def test_a_module_published_while_the_server_runs_is_activated_over_http(tmp_path):
    with served(tmp_path / "server") as server:
        registry = DirectoryRegistry(server.runtime.registry.root)
        registry.publish(build_tiny_package(tmp_path / "late.trm", name="late-4x4", version="1.0.0"))
        body = {"input": puzzle()}
        before = server.client.post("/v1/modules/late-4x4/solve", json=body, headers=server.auth("solve"))
        assert before.status_code == 404 and "POST /v1/admin/modules/late-4x4/activate" in before.json()["detail"]
        activated = server.client.post(
            "/v1/admin/modules/late-4x4/activate", json={"version": "1.0.0"}, headers=server.auth("admin")
        )
        assert activated.status_code == 200, activated.text
        after = server.client.post("/v1/modules/late-4x4/solve", json=body, headers=server.auth("solve"))
        assert after.status_code == 200, after.text
        assert after.json()["version"] == "1.0.0"
        ghost = server.client.post("/v1/modules/never-published/solve", json=body, headers=server.auth("solve"))
        assert ghost.status_code == 404 and f"modules served: late-4x4, {MODULE}" in ghost.json()["detail"]
