"""A model architecture from outside the core (tests/plugins/direct_prediction.py) is packed, verified,
served, hot-swapped, batched and recorded like a TRM, with no change to the core; without its plugin
its packages are refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures.host import one_torch_thread
from trm_modules.host import FolderSource, Host
from trm_modules.package import (
    ArchitectureUnavailable,
    build_package,
    generate_keypair,
    open_package,
    sign_package,
    verify_package,
)
from trm_modules.plugins import architectures, build_plugin_manager, get_codec, get_plugin_manager, register_plugin_file
from trm_modules.store import StorePlugin, Store
from trm_modules.store.queries import recent_solves
from trm_modules.train.recipe import Recipe

PLUGIN_FILE = Path(__file__).parent / "plugins" / "direct_prediction.py"
PLUGIN_NAME = "direct_prediction_test"


@pytest.fixture(scope="module")
def plugin():
    """The plugin, registered with the process-wide manager (the one package manifests resolve against)."""
    pm = get_plugin_manager()
    register_plugin_file(pm, PLUGIN_FILE, name=PLUGIN_NAME)
    yield pm.get_plugin(PLUGIN_NAME)
    pm.unregister(name=PLUGIN_NAME)
    pm.origins.pop(PLUGIN_NAME, None)


def direct_model(plugin, seed: int):
    """An untrained direct-prediction model whose answers are always digit tokens, different per seed."""
    torch.manual_seed(seed)
    model = plugin.DirectTransformer(plugin.DirectConfig(vocab_size=6, seq_len=16)).eval()
    with torch.no_grad():
        model.lm_head.weight[0:2] = 0.0
        model.lm_head.weight[3] = -model.lm_head.weight[2]
    return model


@pytest.fixture(scope="module")
def packages(plugin, tmp_path_factory):
    folder = tmp_path_factory.mktemp("direct")
    keys = tmp_path_factory.mktemp("keys")
    private, _ = generate_keypair(keys)
    codec = get_codec("sudoku", {"size": 4})
    puzzles = [inp for inp, _ in codec.generate(np.random.default_rng(0), 3)]
    paths = {}
    with one_torch_thread():
        for version, seed in (("1.0.0", 1), ("1.1.0", 2)):
            built = build_package(
                direct_model(plugin, seed),
                codec,
                name="sudoku-4x4-direct",
                version=version,
                out_path=folder / f"unsigned-{version}.trm",
                examples=[(p, None) for p in puzzles],
                allow_failing_examples=True,
            )
            paths[version] = sign_package(built, private, folder / f"sudoku-4x4-direct-{version}.trm")
            built.unlink()
    return folder, keys, paths, puzzles


def test_the_plugin_contributes_its_architecture_through_the_hook(plugin):
    assert {"trm", "hrm", "direct"} <= set(architectures())
    recipe = Recipe.model_validate(
        {
            "name": "d",
            "task": {"codec": "sudoku", "params": {"size": 4}},
            "model": {"architecture": "direct", "layers": 3},
        }
    )
    assert type(recipe.model_config_for(6, 16)).__name__ == "DirectConfig"


def test_a_package_of_the_outside_architecture_packs_signed_and_verifies(packages):
    _, keys, paths, _ = packages
    package = open_package(paths["1.0.0"], trusted_keys=keys)
    assert package.manifest.model.architecture == "direct"
    assert package.signed_by is not None
    assert package.manifest.model.parameters == package.load_model().count_parameters()
    verify_package(paths["1.1.0"], trusted_keys=keys)


def test_without_its_plugin_the_package_is_refused_naming_the_architecture(plugin, packages):
    _, _, paths, _ = packages
    pm = get_plugin_manager()
    pm.unregister(name=PLUGIN_NAME)
    try:
        with pytest.raises(ArchitectureUnavailable) as refused:
            open_package(paths["1.0.0"])
    finally:
        register_plugin_file(pm, PLUGIN_FILE, name=PLUGIN_NAME)
    assert refused.value.architecture == "direct" and "'direct'" in str(refused.value)
    assert refused.value.rule == "architecture" and refused.value.path == "/model/architecture"


def test_the_host_serves_hot_swaps_batches_and_records_it(packages, tmp_path):
    folder, _, paths, puzzles = packages
    store_plugin = StorePlugin.open(str(tmp_path / "store.sqlite3"), journal_path=tmp_path / "journal.jsonl")
    pm = build_plugin_manager(paths="")
    pm.register(store_plugin)
    host = Host(
        [FolderSource(folder)],
        plugin_manager=pm,
        memory_budgets={"cpu": 1 << 30},
        cpu_threads=1,
        batch_window_ms=50,
        max_batch_size=len(puzzles),
    )
    with host:
        host.swap("sudoku-4x4-direct", "1.0.0")
        first = host.solve("sudoku-4x4-direct", puzzles[0], {"course": "c1", "learner": "p-1"})
        assert first.digest == open_package(paths["1.0.0"]).digest
        assert first.output == open_package(paths["1.0.0"]).examples[0][1]
        assert first.steps == first.views  # one pass per view: nothing to recurse on

        batcher = host._slot("sudoku-4x4-direct").active.batcher
        before, rows_before = batcher.batches, batcher.rows
        batched = host.solve_many("sudoku-4x4-direct", puzzles)
        # The puzzles share batches (the first pass and each test-time view of the untrained model's answers).
        assert batcher.rows - rows_before > batcher.batches - before
        assert [a.output for a in batched] == [e[1] for e in open_package(paths["1.0.0"]).examples]

        assert host.swap("sudoku-4x4-direct", "1.1.0").active == "1.1.0"
        second = host.solve("sudoku-4x4-direct", puzzles[0], {"course": "c1", "learner": "p-1"})
        assert second.digest == open_package(paths["1.1.0"]).digest
        assert host.flush()
    store_plugin.close()
    solves = recent_solves(Store(f"sqlite:///{tmp_path / 'store.sqlite3'}"), module="sudoku-4x4-direct")
    assert sorted(s.version for s in solves) == ["1.0.0"] * (1 + len(puzzles)) + ["1.1.0"]
