"""The server's signature policy and its refusals of hostile uploads: typed 4xx, never a 500."""

from __future__ import annotations

import json

import pytest

from fixtures.packages import build_tiny_package, read_members, redigest, write_members
from fixtures.server import MODULE, served
from trm_modules.package import generate_keypair, sign_package


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """(trusted keys folder, the trusted signing key, a stranger's signing key)."""
    base = tmp_path_factory.mktemp("keys")
    trusted_key, _ = generate_keypair(base / "trusted")
    stranger_key, _ = generate_keypair(base / "stranger")
    public_only = base / "trusted-public"
    public_only.mkdir()
    (public_only / "trm-signing.pub").write_bytes((base / "trusted" / "trm-signing.pub").read_bytes())
    return public_only, trusted_key, stranger_key


@pytest.fixture(scope="module")
def strict(tmp_path_factory, keys):
    """A server over a registry of one unsigned package, trusting only ``keys[0]``."""
    with served(tmp_path_factory.mktemp("strict"), allow_unsigned=False, trusted_keys=keys[0]) as s:
        yield s


def upload(server, path, activate=False):
    return server.client.post(
        f"/v1/admin/packages?activate={str(activate).lower()}", content=path.read_bytes(), headers=server.auth("admin")
    )


def test_an_unsigned_package_in_the_registry_is_not_loaded(strict):
    assert MODULE in strict.runtime.report.failed and "signature" in strict.runtime.report.failed[MODULE]
    assert strict.client.get("/healthz").json()["modules"] == {}


def test_an_unsigned_upload_is_refused(strict, tmp_path):
    response = upload(strict, build_tiny_package(tmp_path / "u.trm", version="2.0.0"))
    assert response.status_code == 422 and response.json()["rule"] == "unsigned"


def test_an_upload_signed_by_an_untrusted_key_is_refused(strict, keys, tmp_path):
    path = sign_package(build_tiny_package(tmp_path / "s.trm", version="2.1.0"), keys[2], tmp_path / "signed.trm")
    response = upload(strict, path)
    assert response.status_code == 422 and response.json()["rule"] == "untrusted-key"


def test_an_upload_signed_by_a_trusted_key_is_published_and_served(strict, keys, tmp_path):
    path = sign_package(build_tiny_package(tmp_path / "t.trm", version="3.0.0"), keys[1], tmp_path / "signed.trm")
    response = upload(strict, path, activate=True)
    assert response.status_code == 201, response.text
    assert strict.client.get("/healthz").json()["modules"] == {MODULE: "3.0.0"}


def test_allow_unsigned_is_explicit_and_serves_unsigned_packages(tmp_path):
    with served(tmp_path, allow_unsigned=True) as server:
        assert server.client.get("/healthz").json()["modules"] == {MODULE: "1.0.0"}


@pytest.fixture(scope="module")
def lenient(tmp_path_factory):
    with served(tmp_path_factory.mktemp("lenient")) as s:
        yield s


def test_an_upload_whose_example_the_codec_refuses_is_a_422_naming_the_example(lenient, tmp_path):
    members = read_members(build_tiny_package(tmp_path / "c.trm", version="4.0.0"))
    document = json.loads(members["examples/0001.input.json"])
    document["grid"][0][0] = 9
    changed = redigest(
        {
            **members,
            "examples/0001.input.json": json.dumps(document).encode(),
            "schema/input.schema.json": b'{"type": "object"}',
        }
    )
    response = upload(lenient, write_members(tmp_path / "bad.trm", changed))
    assert response.status_code == 422, response.text
    assert (response.json()["rule"], response.json()["file"]) == ("self-test", "examples/0001.input.json")


def test_an_upload_with_an_external_ref_is_a_422_that_echoes_nothing(lenient, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"token": "do-not-echo"}')
    members = read_members(build_tiny_package(tmp_path / "r.trm", version="4.1.0"))
    schema = json.loads(members["schema/input.schema.json"])
    schema["$ref"] = secret.as_uri()
    response = upload(
        lenient,
        write_members(
            tmp_path / "ref.trm", redigest({**members, "schema/input.schema.json": json.dumps(schema).encode()})
        ),
    )
    assert response.status_code == 422 and response.json()["rule"] == "schema-external-ref"
    assert "do-not-echo" not in response.text


def test_a_deeply_nested_json_body_is_a_400_not_a_500(lenient):
    body = '{"input": ' + "[" * 20000 + "]" * 20000 + "}"
    for path in (f"/v1/modules/{MODULE}/solve", "/v1/feedback", "/xapi/statements"):
        response = lenient.client.post(
            path,
            content=body,
            headers={**lenient.auth("admin"), "content-type": "application/json", "X-Experience-API-Version": "1.0.3"},
        )
        assert response.status_code == 400 and "levels deep" in response.json()["detail"], (path, response.text)


def test_a_module_published_only_as_pre_releases_is_reported_as_such_not_as_a_failure(tmp_path):
    with served(tmp_path, versions={"0.1.0-dev.1": 0, "0.1.0-dev.2": 1}) as s:
        report = s.runtime.report
        assert report.prerelease_only == {MODULE: "0.1.0-dev.2"}
        assert MODULE not in report.failed and MODULE not in report.activated
