"""A valid package: built reproducibly, opened, verified, loaded, self-tested, signed."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures.packages import (
    TINY_CONFIG,
    build_tiny_package,
    example_inputs,
    manifest_of,
    read_members,
    sudoku_codec,
    tiny_model,
    with_manifest,
    write_members,
)
from trm_modules.package import (
    BuildError,
    NewerFormatWarning,
    SelfTestFailed,
    build_package,
    generate_keypair,
    open_package,
    sign_package,
    verify_package,
)
from trm_modules.package.manifest import check_spdx_expression, manifest_schema

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def package_path(tmp_path_factory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("pkg") / "sudoku-4x4-1.0.0.trm")


def test_valid_package_passes_verify(package_path):
    report = verify_package(package_path)
    assert [name for name, _ in report.checks] == [
        "structure",
        "manifest",
        "digests",
        "signature",
        "tensors",
        "codec",
        "examples",
    ]
    assert all(result.passed for result in report.examples)


def test_manifest_exposes_the_package_api(package_path):
    pkg = open_package(package_path)
    m = pkg.manifest
    assert (m.name, m.version, m.task.codec, m.task.params["size"]) == ("sudoku-4x4", "1.0.0", "sudoku", 4)
    assert m.module_id == "urn:trm-modules:module:sudoku-4x4"
    assert m.model.config == TINY_CONFIG
    assert m.runtime.devices == ["cpu", "cuda"] and m.runtime.memory_bytes > 0
    assert pkg.digest.startswith("sha256:") and len(pkg.digest) == 71
    assert len(pkg.examples) == 2


def test_archive_entries_are_stored_sorted_with_fixed_timestamps(package_path):
    import zipfile

    with zipfile.ZipFile(package_path) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_same_inputs_build_identical_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = build_tiny_package(tmp_path / "a.trm")
    second = build_tiny_package(tmp_path / "b.trm")
    assert first.read_bytes() == second.read_bytes()


def test_loaded_model_has_the_shipped_weights(package_path):
    original = tiny_model()
    loaded = open_package(package_path).load_model("cpu")
    assert not loaded.training
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert torch.equal(loaded.rope.cos, original.rope.cos)


def test_load_model_converts_to_a_requested_dtype(package_path):
    model = open_package(package_path).load_model("cpu", dtype=torch.bfloat16)
    assert model.lm_head.weight.dtype == torch.bfloat16


def test_self_test_names_the_failing_example(package_path):
    pkg = open_package(package_path)
    other = tiny_model(seed=1)
    with pytest.raises(SelfTestFailed) as refusal:
        pkg.self_test(other)
    assert refusal.value.file.startswith("examples/")


def test_build_refuses_an_example_the_model_does_not_answer(tmp_path):
    inp, solution = sudoku_codec().generate(np.random.default_rng(0), 1)[0]  # an untrained model misses it
    with pytest.raises(BuildError, match="example 0001"):
        build_package(
            tiny_model(),
            sudoku_codec(),
            name="x",
            version="1.0.0",
            out_path=tmp_path / "x.trm",
            examples=[(inp, solution)],
        )


def test_build_refuses_a_codec_that_does_not_fit_the_model(tmp_path):
    from trm_modules.plugins import get_codec

    with pytest.raises(BuildError, match="vocab"):
        build_package(
            tiny_model(),
            get_codec("sudoku", {"size": 9}),
            name="x",
            version="1.0.0",
            out_path=tmp_path / "x.trm",
            examples=[],
        )


def test_signed_package_verifies_with_its_trusted_key(package_path, tmp_path):
    private, _ = generate_keypair(tmp_path / "keys")
    signed = sign_package(package_path, private, tmp_path / "signed.trm")
    pkg = open_package(signed, trusted_keys=tmp_path / "keys")
    assert pkg.signed_by is not None
    assert open_package(signed).signed_by == pkg.signed_by


def test_signature_is_a_dsse_envelope_over_an_in_toto_statement(package_path, tmp_path):
    import base64

    private, _ = generate_keypair(tmp_path / "keys")
    members = read_members(sign_package(package_path, private, tmp_path / "signed.trm"))
    envelope = json.loads(members["signature.json"])["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names[0] == "manifest.json" and "weights.safetensors" in names
    assert set(envelope["signatures"][0]) == {"keyid", "sig"}


def test_newer_minor_format_loads_with_a_warning(package_path, tmp_path):
    members = read_members(package_path)
    manifest = manifest_of(members)
    manifest["format_version"] = "1.9"
    manifest["field_from_the_future"] = {"x": 1}
    path = write_members(tmp_path / "newer.trm", with_manifest(members, manifest))
    with pytest.warns(NewerFormatWarning):
        pkg = open_package(path)
    assert pkg.manifest.format_version == "1.9"


def test_shipped_manifest_schema_matches_the_spec():
    assert manifest_schema() == json.loads((REPO / "spec" / "manifest.schema.json").read_text())


@pytest.mark.parametrize(
    "expression, ok",
    [
        ("Apache-2.0", True),
        ("MIT OR Apache-2.0", True),
        ("(MIT AND BSD-3-Clause) OR GPL-2.0+", True),
        ("GPL-2.0-only WITH Classpath-exception-2.0", True),
        ("LicenseRef-Proprietary", True),
        ("MIT OR", False),
        ("(MIT", False),
        ("MIT Apache-2.0", False),
        ("AND", False),
    ],
)
def test_license_must_be_an_spdx_expression(expression, ok):
    assert (check_spdx_expression(expression) is None) == ok


def test_pack_run_builds_a_package_from_a_training_run(tmp_path):
    from safetensors.torch import save_file

    from trm_modules.lifecycle import pack_run

    run = tmp_path / "run"
    run.mkdir()
    model = tiny_model()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, run / "model.safetensors")
    (run / "config.json").write_text(TINY_CONFIG.model_dump_json())
    (run / "task.json").write_text(json.dumps({"codec": "sudoku", "params": {"size": 4}}))
    (run / "evaluation.json").write_text(
        json.dumps(
            {
                "dataset": "400 generated 4x4 puzzles",
                "metric": "exact_accuracy",
                "value": 0.5,
                "steps": 4,
                "per_step_accuracy": [0.1, 0.3, 0.4, 0.5],
                "mean_steps_halting": 2.5,
                "accuracy_halting": 0.48,
                "accuracy_1_step": 0.1,
            }
        )
    )
    (run / "training.json").write_text(
        json.dumps(
            {
                "recipe": "registry/recipes/sudoku-4x4.toml",
                "command": "trm train ...",
                "wall_time_s": 12.5,
                "hardware": "cpu",
                "data": "generated 4x4 puzzles",
                "optimizer_steps": 100,
            }
        )
    )
    codec = sudoku_codec()
    with open(run / "examples.jsonl", "w") as fh:
        for inp in example_inputs(3):
            fh.write(json.dumps({"input": inp, "output": codec.reference_solution(inp)}) + "\n")
    (run / "accuracy_vs_steps.png").write_bytes(b"\x89PNG\r\n\x1a\n fake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a random model solves none: packed only because the author says so
        with pytest.raises(BuildError, match="solves none of the 3 run examples"):
            pack_run(run, name="sudoku-4x4", version="0.1.0", out_path=tmp_path / "p.trm")
        path = pack_run(
            run, name="sudoku-4x4", version="0.1.0", out_path=tmp_path / "p.trm", allow_failing_examples=True
        )
    pkg = open_package(path)
    assert pkg.manifest.evaluation.accuracy_halting == 0.48
    assert pkg.manifest.provenance.optimizer_steps == 100
    assert "card/accuracy_vs_steps.png" in pkg.archive
    assert "## Evaluation" in pkg.card and "## Limits" in pkg.card
    pkg.self_test()


@pytest.mark.parametrize(
    "breakage, file",
    [
        ("no weights", "run"),
        ("weights of another shape", "model.safetensors"),
        ("unknown codec", "task.json"),
        ("config not JSON", "config.json"),
    ],
)
def test_pack_run_names_the_run_file_at_fault(tmp_path, breakage, file):
    from safetensors.torch import save_file

    from trm_modules.lifecycle import pack_run
    from trm_modules.package import BuildError

    run = tmp_path / "run"
    run.mkdir()
    state = {k: v.contiguous() for k, v in tiny_model().state_dict().items()}
    if breakage == "weights of another shape":
        state["lm_head.weight"] = state["lm_head.weight"][:, :3].contiguous()
    if breakage != "no weights":
        save_file(state, run / "model.safetensors")
    (run / "config.json").write_text("{" if breakage == "config not JSON" else TINY_CONFIG.model_dump_json())
    codec = "no-such-task" if breakage == "unknown codec" else "sudoku"
    (run / "task.json").write_text(json.dumps({"codec": codec, "params": {"size": 4}}))
    with pytest.raises(BuildError) as refused:
        pack_run(run, name="sudoku-4x4", version="0.1.0", out_path=tmp_path / "p.trm")
    assert refused.value.file.endswith(file)
