"""ONNX export: the unrolled recursion gives the same answers as torch on the package's examples."""

from __future__ import annotations

import pytest

from fixtures.packages import build_tiny_package
from trm_modules.package import open_package

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.mark.slow  # the TorchScript exporter takes a few seconds even for a tiny model
def test_onnx_export_matches_torch_on_the_examples(tmp_path):
    from trm_modules.package.onnx_export import check_onnx, export_onnx

    package = open_package(build_tiny_package(tmp_path / "p.trm"))
    path = export_onnx(package, tmp_path / "model.onnx", max_steps=2)
    result = check_onnx(package, path, max_steps=2)
    assert result.examples == 2 and result.ok
    assert result.max_confidence_difference < 1e-4


@pytest.mark.slow
def test_onnx_step_graph_looped_with_halting_matches_torch_solve(tmp_path):
    from trm_modules.package.onnx_export import check_onnx_step, export_onnx_step

    package = open_package(build_tiny_package(tmp_path / "p.trm"))
    path = export_onnx_step(package, tmp_path / "step.onnx")
    result = check_onnx_step(package, path, max_steps=3)
    assert result.examples == 2 and result.ok
    assert result.max_confidence_difference < 1e-4
