"""The host with real ``.trm`` packages built by ``build_package``: folder and registry sources."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.host import one_torch_thread
from trm_modules.host import FolderSource, Host, InvalidInput, LoadedVersion, SwapError
from trm_modules.model import TRM, TRMConfig
from trm_modules.package import DirectoryRegistry, NoCodec, PackageError, build_package, open_package
from trm_modules.plugins import build_plugin_manager, codec_classes, get_codec
from trm_modules.testing import digit_answering_sudoku_model

SUDOKU4 = TRMConfig(
    vocab_size=6,
    seq_len=16,
    puzzle_emb_ndim=32,
    puzzle_emb_len=2,
    hidden_size=32,
    num_heads=2,
    H_cycles=2,
    L_cycles=2,
    halt_max_steps=4,
)


def sudoku_model(seed: int) -> TRM:
    """An untrained model whose answers are always digit tokens (2..5), different for each seed."""
    return digit_answering_sudoku_model(SUDOKU4, seed)


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """Two versions of a 4x4 Sudoku module with different weights, in one folder."""
    folder = tmp_path_factory.mktemp("modules")
    codec = get_codec("sudoku", {"size": 4})
    puzzles = codec.generate(np.random.default_rng(0), 2)
    paths = {}
    with one_torch_thread():
        for version, seed in (("1.0.0", 1), ("1.1.0", 2)):
            paths[version] = build_package(
                sudoku_model(seed),
                codec,
                name="sudoku-4x4",
                version=version,
                out_path=folder / f"sudoku-4x4-{version}.trm",
                examples=[(inp, None) for inp, _ in puzzles],
                allow_failing_examples=True,
                title="4x4 Sudoku",
            )
    return folder, paths, [inp for inp, _ in puzzles]


def make_host(*sources) -> Host:
    return Host(sources, plugin_manager=build_plugin_manager(paths=""), memory_budgets={"cpu": 1 << 30}, cpu_threads=1)


def test_folder_source_lists_the_versions_of_its_packages(packages):
    folder, _, _ = packages
    assert FolderSource(folder).list_versions("sudoku-4x4") == ["1.0.0", "1.1.0"]


def test_folder_source_skips_a_corrupt_file_and_reports_it(packages, tmp_path):
    folder, paths, _ = packages
    (tmp_path / "good.trm").write_bytes(paths["1.0.0"].read_bytes())
    (tmp_path / "bad.trm").write_bytes(b"not a zip")
    source = FolderSource(tmp_path)
    assert source.list_versions("sudoku-4x4") == ["1.0.0"]
    assert list(source.errors) == [str(tmp_path / "bad.trm")]


def test_host_serves_a_package_and_attributes_answers_to_its_digest(packages):
    folder, paths, puzzles = packages
    with make_host(FolderSource(folder)) as host:
        host.swap("sudoku-4x4", "1.0.0")
        answer = host.solve("sudoku-4x4", puzzles[0])
    assert answer.digest == open_package(paths["1.0.0"]).digest
    assert answer.output == open_package(paths["1.0.0"]).examples[0][1]


def test_swap_to_latest_from_a_registry_source(packages, tmp_path):
    _, paths, puzzles = packages
    registry = DirectoryRegistry(tmp_path / "registry", create=True)
    for path in paths.values():
        registry.add(open_package(path))  # publish() would also re-run the examples
    with make_host(registry) as host:
        assert host.swap("sudoku-4x4").active == "1.1.0"
        assert host.solve("sudoku-4x4", puzzles[1]).output == open_package(paths["1.1.0"]).examples[1][1]


def test_sudoku_input_with_a_bad_cell_names_its_json_pointer(packages):
    folder, _, puzzles = packages
    bad = {"grid": [row[:] for row in puzzles[0]["grid"]]}
    bad["grid"][2][3] = 9
    with make_host(FolderSource(folder)) as host:
        host.swap("sudoku-4x4", "1.0.0")
        with pytest.raises(InvalidInput) as info:
            host.solve("sudoku-4x4", bad)
    assert info.value.path.startswith("/grid/2")


def test_tampered_package_never_becomes_active(packages, tmp_path):
    folder, paths, _ = packages
    data = bytearray(paths["1.1.0"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "good.trm").write_bytes(paths["1.0.0"].read_bytes())
    (tmp_path / "tampered.trm").write_bytes(bytes(data))
    with make_host(FolderSource(tmp_path)) as host:
        host.swap("sudoku-4x4", "1.0.0")
        with pytest.raises(SwapError):
            host.swap("sudoku-4x4", "1.1.0")  # not even listed: the tampered file fails to open
        assert host.modules()[0].active == "1.0.0"


def test_modules_on_trm_module_path_are_found_by_the_builtin_plugin(packages, tmp_path, monkeypatch):
    folder, _, _ = packages
    monkeypatch.setenv("TRM_MODULE_PATH", str(folder))
    monkeypatch.setenv("TRM_HOME", str(tmp_path))  # no installed modules
    with make_host() as host:
        assert host.available_versions("sudoku-4x4") == ["1.0.0", "1.1.0"]


def test_installed_modules_are_found_by_the_builtin_plugin(packages, tmp_path, monkeypatch):
    _, paths, _ = packages
    monkeypatch.setenv("TRM_HOME", str(tmp_path))
    monkeypatch.delenv("TRM_MODULE_PATH", raising=False)
    DirectoryRegistry(tmp_path / "modules", create=True).add(open_package(paths["1.1.0"]))
    with make_host() as host:
        assert host.available_versions("sudoku-4x4") == ["1.1.0"]


def test_no_installed_modules_means_no_registry_is_created(tmp_path, monkeypatch):
    monkeypatch.setenv("TRM_HOME", str(tmp_path))
    monkeypatch.delenv("TRM_MODULE_PATH", raising=False)
    with make_host() as host:
        assert host.available_versions("sudoku-4x4") == []
    assert not (tmp_path / "modules").exists()


def test_loaded_version_from_package_answers_its_examples(packages):
    _, paths, _ = packages
    pkg = open_package(paths["1.0.0"])
    loaded = LoadedVersion.from_package(pkg, "cpu", cpu_threads=1)
    try:
        loaded.self_test()
        assert loaded.spec.memory_bytes == pkg.manifest.runtime.memory_bytes
        assert loaded.spec.allowed_devices == tuple(pkg.manifest.runtime.devices)
    finally:
        loaded.unload()


def test_package_refused_on_open_is_the_swap_errors_cause(packages, tmp_path):
    _, paths, _ = packages
    tampered = tmp_path / "tampered.trm"
    data = bytearray(paths["1.1.0"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))

    class ListsWhatItCannotOpen:
        def list_versions(self, name):
            return ["1.1.0"]

        def open(self, name, version):
            return open_package(tampered)

    with make_host(ListsWhatItCannotOpen()) as host:
        with pytest.raises(SwapError) as info:
            host.swap("sudoku-4x4", "1.1.0")
    assert isinstance(info.value.cause, PackageError)


def test_a_host_whose_plugin_manager_has_no_codec_plugins_refuses_a_sudoku_package_with_no_codec(packages):
    folder, _, _ = packages
    assert "sudoku" in codec_classes()  # the process's default manager has it: the host must not use that one
    host = Host(
        [FolderSource(folder)],
        plugin_manager=build_plugin_manager(entry_points=False, paths=""),
        memory_budgets={"cpu": 1 << 30},
        cpu_threads=1,
    )
    with host:
        with pytest.raises(SwapError) as refused:
            host.swap("sudoku-4x4", "1.0.0")
        assert host.modules() == []  # a failed swap leaves no empty slot behind
    assert isinstance(refused.value.cause, NoCodec)
    assert (refused.value.cause.rule, refused.value.cause.path) == ("no-codec", "/task/codec")
