"""Packages cannot reach out or run away: no $ref is retrieved, patterns match in bounded time,
JSON nesting and model configs are bounded, and every such package is a typed refusal."""

from __future__ import annotations

import json
import socket
import time

import pytest

from fixtures.packages import (
    build_tiny_package,
    manifest_of,
    read_members,
    redigest,
    rewrite_safetensors_header,
    with_manifest,
    write_members,
)
from trm_modules.json_limits import MAX_JSON_DEPTH, JsonTooDeep, json_depth
from trm_modules.package import ConfigOutOfBounds, DocumentInvalid, ManifestInvalid, WeightsInvalid, open_package
from trm_modules.package.errors import SelfTestFailed


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> dict[str, bytes]:
    return read_members(build_tiny_package(tmp_path_factory.mktemp("valid") / "valid.trm"))


def with_input_schema(members: dict[str, bytes], change) -> dict[str, bytes]:
    schema = json.loads(members["schema/input.schema.json"])
    change(schema)
    return redigest({**members, "schema/input.schema.json": json.dumps(schema).encode()})


def refusal(path, error):
    with pytest.raises(error) as refused:
        open_package(path)
    return refused.value


def test_an_external_ref_is_refused_and_never_fetched(members, tmp_path):
    with socket.socket() as listener:  # a server the schema points at: nobody may connect
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.0)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/schema.json"
        path = write_members(tmp_path / "p.trm", with_input_schema(members, lambda s: s.update({"$ref": url})))
        error = refusal(path, DocumentInvalid)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert (error.rule, error.file, error.path) == ("schema-external-ref", "schema/input.schema.json", "/$ref")


def test_a_file_ref_is_refused_without_reading_the_file(members, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"secret": "do not echo"}')
    path = write_members(
        tmp_path / "p.trm",
        with_input_schema(members, lambda s: s["properties"].update({"x": {"$ref": secret.as_uri()}})),
    )
    error = refusal(path, DocumentInvalid)
    assert error.rule == "schema-external-ref" and "do not echo" not in str(error)


def test_a_catastrophic_pattern_is_matched_in_bounded_time(members, tmp_path):
    from trm_modules.package.task_schema import task_validator

    validator = task_validator({"type": "string", "pattern": "^(a+)+$"})
    started = time.perf_counter()
    assert not validator.is_valid("a" * 40 + "!")  # Python's re: ~2**40 steps
    assert time.perf_counter() - started < 5.0


def test_a_pattern_with_a_backreference_is_refused_at_open(members, tmp_path):
    path = write_members(tmp_path / "p.trm", with_input_schema(members, lambda s: s.update({"pattern": "(a)\\1"})))
    assert refusal(path, DocumentInvalid).rule == "schema-pattern"


def test_an_overlong_pattern_is_refused_at_open(members, tmp_path):
    path = write_members(tmp_path / "p.trm", with_input_schema(members, lambda s: s.update({"pattern": "a" * 5000})))
    assert refusal(path, DocumentInvalid).rule == "schema-pattern"


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth(b'{"a": [1, {"b": "[[[["}], "c\\"[": 2}') == 3


def test_a_deeply_nested_manifest_is_a_typed_refusal(members, tmp_path):
    manifest = members["manifest.json"]
    deep = manifest[:-1] + b', "x-deep": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    path = write_members(tmp_path / "p.trm", {**members, "manifest.json": deep})
    error = refusal(path, ManifestInvalid)
    assert f"at most {MAX_JSON_DEPTH}" in str(error)


def test_a_deeply_nested_safetensors_header_is_a_typed_refusal(members, tmp_path):
    deep = rewrite_safetensors_header(members["weights.safetensors"], lambda h: h.update({"__metadata__": {"x": "y"}}))
    (length,) = __import__("struct").unpack_from("<Q", deep, 0)
    header = deep[8 : 8 + length]
    nested = b'{"n":' + b"[" * 5000 + b"]" * 5000 + b"," + header[1:]
    weights = len(nested).to_bytes(8, "little") + nested + deep[8 + length :]
    path = write_members(tmp_path / "p.trm", redigest({**members, "weights.safetensors": weights}))
    assert "levels" in str(refusal(path, WeightsInvalid))


def test_an_absurd_hidden_size_is_refused_before_any_model_is_built(members, tmp_path):
    manifest = manifest_of(members)
    manifest["model"]["config"]["hidden_size"] = 1 << 30
    path = write_members(tmp_path / "p.trm", with_manifest(members, manifest))
    error = refusal(path, ConfigOutOfBounds)
    assert (error.rule, error.path) == ("config-limit", "/model/config/hidden_size")


def test_a_config_larger_than_its_weights_is_refused(members, tmp_path):
    manifest = manifest_of(members)
    manifest["model"]["config"]["vocab_size"] = 60_000
    path = write_members(tmp_path / "p.trm", with_manifest(members, manifest))
    assert "weights file has" in str(refusal(path, ConfigOutOfBounds))


def codec_refused_example(members: dict[str, bytes]) -> tuple[dict[str, bytes], str]:
    """A package whose (permissive) input schema lets through an example the Sudoku codec refuses."""
    name = "examples/0001.input.json"
    document = json.loads(members[name])
    document["grid"][0][0] = 9  # no 4x4 Sudoku token for 9
    changed = {**members, name: json.dumps(document).encode(), "schema/input.schema.json": b'{"type": "object"}'}
    return redigest(changed), name


def test_an_example_the_codec_refuses_fails_the_self_test_with_a_typed_error(members, tmp_path):
    changed, name = codec_refused_example(members)
    package = open_package(write_members(tmp_path / "p.trm", changed))
    with pytest.raises(SelfTestFailed) as failed:
        package.self_test()
    assert (failed.value.file, failed.value.path) == (name, "/grid/0/0")


def test_too_deep_is_a_value_error_naming_the_depth():
    with pytest.raises(JsonTooDeep) as refused:
        from trm_modules.json_limits import check_json_depth

        check_json_depth(b"[" * 100 + b"]" * 100)
    assert refused.value.depth == 100
