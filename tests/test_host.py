"""Behaviour of the host: solving, validation, slots, swaps, placement, batching, observers."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from fixtures.host import TINY, grid_inputs, reference_outputs, tiny_model, tiny_spec
from trm_modules.errors import ModuleNotFound
from trm_modules.host import (
    Host,
    InvalidInput,
    MemorySource,
    PlacementError,
    SelfTestFailed,
    SwapError,
    VersionNotLoaded,
)
from trm_modules.host.batching import MicroBatcher
from trm_modules import hookimpl
from trm_modules.plugins import build_plugin_manager

V1, V2, V3 = tiny_spec("1.0.0", 1), tiny_spec("2.0.0", 2), tiny_spec("3.0.0", 3)
INPUTS = grid_inputs(6)
OUT1 = reference_outputs(tiny_model(1), INPUTS)
OUT2 = reference_outputs(tiny_model(2), INPUTS)


def make_host(*plugins: object, specs=(V1, V2, V3), **options) -> Host:
    pm = build_plugin_manager(entry_points=False, paths="")
    for plugin in plugins:
        pm.register(plugin)
    options.setdefault("memory_budgets", {"cpu": 1 << 30})
    options.setdefault("cpu_threads", 1)
    return Host([MemorySource(list(specs))], plugin_manager=pm, **options)


class Recorder:
    """An observer plugin that keeps what it is given."""

    def __init__(self) -> None:
        self.records, self.events = [], []

    @hookimpl
    def trm_on_solve(self, record):
        self.records.append(record)

    @hookimpl
    def trm_on_feedback(self, event):
        self.events.append(event)


def test_versions_answer_differently_so_answers_are_attributable():
    assert OUT1 != OUT2


def test_solve_returns_output_of_the_active_version_with_its_digest():
    with make_host() as host:
        host.swap("grid", "1.0.0")
        answer = host.solve("grid", INPUTS[0])
    assert answer.output == OUT1[0]
    assert (answer.module, answer.version, answer.digest) == ("grid", "1.0.0", V1.digest)
    assert 1 <= answer.steps <= TINY.halt_max_steps and 0.0 <= answer.confidence <= 1.0
    assert answer.latency_ms > 0 and answer.device == "cpu"


def test_solve_of_unloaded_module_raises_module_not_found():
    with make_host() as host, pytest.raises(ModuleNotFound, match="no module 'grid' is served here"):
        host.solve("grid", INPUTS[0])


def test_input_breaking_the_schema_raises_invalid_input_with_json_pointer():
    with make_host() as host:
        host.swap("grid", "1.0.0")
        bad = {"cells": [0] * 5 + [9] + [0] * 10}
        with pytest.raises(InvalidInput) as info:
            host.solve("grid", bad)
    assert info.value.path == "/cells/5"


def test_codec_refusal_raises_invalid_input_with_the_codecs_path():
    with make_host() as host:
        host.swap("grid", "1.0.0")
        with pytest.raises(InvalidInput) as info:
            host.solve("grid", {"cells": [4, 4, 4] + [0] * 13})
    assert info.value.path == "/cells/2"


def test_solve_many_prefixes_the_error_path_with_the_item_index():
    with make_host() as host:
        host.swap("grid", "1.0.0")
        with pytest.raises(InvalidInput) as info:
            host.solve_many("grid", [INPUTS[0], {"cells": "no"}])
    assert info.value.path == "/1/cells"


def test_solve_many_answers_in_input_order():
    with make_host() as host:
        host.swap("grid", "1.0.0")
        answers = host.solve_many("grid", INPUTS)
    assert [a.output for a in answers] == OUT1


def test_batched_answers_equal_unbatched_answers():
    with make_host(batch_window_ms=50, max_batch_size=6) as host:
        host.swap("grid", "1.0.0")
        batcher = host._slot("grid").active.batcher
        batched = host.solve_many("grid", INPUTS)
        assert batcher.batches == 1  # all six ran as one model.solve call
        single = [host.solve("grid", data) for data in INPUTS]
    assert [a.output for a in batched] == [a.output for a in single] == OUT1
    assert [a.steps for a in batched] == [a.steps for a in single]
    assert [a.confidence for a in batched] == pytest.approx([a.confidence for a in single], abs=1e-5)


def test_concurrent_solves_are_micro_batched():
    # The batch closes when the sixth request arrives (max_batch_size), not when a clock runs out:
    # the minute-long window only bounds a hang.
    with make_host(batch_window_ms=60_000, max_batch_size=6) as host:
        host.swap("grid", "1.0.0")
        batcher = host._slot("grid").active.batcher
        before = batcher.batches
        results = [None] * 6

        def call(i):
            results[i] = host.solve("grid", INPUTS[i]).output

        threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == OUT1
    assert batcher.batches - before == 1


def test_asolve_answers_like_solve():
    async def main(host):
        return await asyncio.gather(*(host.asolve("grid", data) for data in INPUTS))

    with make_host() as host:
        host.swap("grid", "2.0.0")
        answers = asyncio.run(main(host))
    assert [a.output for a in answers] == OUT2


def test_swap_makes_the_new_version_active_and_remembers_the_old():
    with make_host() as host:
        host.swap("grid", "1.0.0")
        state = host.swap("grid", "2.0.0")
        assert (state.active, state.history) == ("2.0.0", ("1.0.0",))
        assert host.solve("grid", INPUTS[0]).output == OUT2[0]


def test_swap_without_version_takes_the_latest():
    with make_host() as host:
        assert host.swap("grid").active == "3.0.0"


def test_swap_to_unknown_version_raises_swap_error_and_keeps_the_active_one():
    with make_host() as host:
        host.swap("grid", "1.0.0")
        with pytest.raises(SwapError) as info:
            host.swap("grid", "9.9.9")
        assert isinstance(info.value.cause, ModuleNotFound)
        assert host.solve("grid", INPUTS[0]).version == "1.0.0"


def test_version_failing_its_self_test_never_becomes_active():
    broken = tiny_spec("2.0.0-broken", 2, broken_examples=True)
    with make_host(specs=(V1, broken)) as host:
        host.swap("grid", "1.0.0")
        with pytest.raises(SwapError) as info:
            host.swap("grid", "2.0.0-broken")
        assert isinstance(info.value.cause, SelfTestFailed) and info.value.cause.index == 0
        assert host.modules()[0].active == "1.0.0"
        assert host.devices()[0].used_bytes == V1.memory_bytes  # the broken one was freed


def test_old_version_is_freed_only_after_its_last_request():
    with make_host() as host:
        host.swap("grid", "1.0.0")
        lease = host._lease("grid", host._context(None), "k")
        old = lease.version
        host.swap("grid", "2.0.0")
        assert old.resident and old.retired  # still serving the request that started on it
        host._release(old)
        assert not old.resident


def test_rollback_restores_the_previous_version():
    with make_host() as host:
        host.swap("grid", "1.0.0")
        host.swap("grid", "2.0.0")
        state = host.rollback("grid")
        assert (state.active, state.history) == ("1.0.0", ())
        assert host.solve("grid", INPUTS[0]).output == OUT1[0]


def test_rollback_without_history_raises():
    with make_host() as host:
        host.swap("grid", "1.0.0")
        with pytest.raises(VersionNotLoaded):
            host.rollback("grid")


def test_pinned_course_gets_its_version_others_get_the_active_one():
    with make_host() as host:
        host.swap("grid", "2.0.0")
        host.pin("grid", "course-7", "1.0.0")
        assert host.solve("grid", INPUTS[0], {"course": "course-7"}).version == "1.0.0"
        assert host.solve("grid", INPUTS[0], {"course": "course-8"}).version == "2.0.0"
        host.unpin("grid", "course-7")
        assert host.solve("grid", INPUTS[0], {"course": "course-7"}).version == "2.0.0"


def test_canary_share_is_deterministic_per_learner_and_near_its_share():
    with make_host() as host:
        host.swap("grid", "1.0.0")
        host.set_canary("grid", "2.0.0", 0.3)
        slot = host._slot("grid")
        picks = [slot.default_choice(host._context({"learner": f"l{i}"}), "x").version for i in range(400)]
        again = [slot.default_choice(host._context({"learner": f"l{i}"}), "y").version for i in range(400)]
        assert picks == again
        assert 0.2 < picks.count("2.0.0") / 400 < 0.4
        assert host.solve("grid", INPUTS[0], {"learner": "l0"}).version == picks[0]
        host.clear_canary("grid")
        assert host.modules()[0].canary is None


def test_select_version_plugin_overrides_the_default_policy():
    class AlwaysTwo:
        @hookimpl
        def trm_select_version(self, module, context):
            return "2.0.0" if "2.0.0" in module.loaded else None

    with make_host(AlwaysTwo()) as host:
        host.swap("grid", "1.0.0")
        assert host.solve("grid", INPUTS[0]).version == "1.0.0"  # plugin abstains
        host.pin("grid", "c", "2.0.0")
        assert host.solve("grid", INPUTS[0]).version == "2.0.0"


def test_select_version_plugin_naming_an_unloaded_version_is_counted_and_ignored():
    class Wrong:
        @hookimpl
        def trm_select_version(self, module, context):
            return "7.7.7"

    with make_host(Wrong()) as host:
        host.swap("grid", "1.0.0")
        assert host.solve("grid", INPUTS[0]).version == "1.0.0"
        assert sum(host.pm.error_counts.values()) == 1


def test_lru_idle_version_is_evicted_when_a_new_one_needs_room_and_reloads_on_demand():
    budget = V1.memory_bytes * 2 + V1.memory_bytes // 2  # room for two versions
    with make_host(memory_budgets={"cpu": budget}) as host:
        host.swap("grid", "1.0.0")
        host.set_canary("grid", "2.0.0", 0.0)
        host.solve("grid", INPUTS[0])  # 1.0.0 used last, so 2.0.0 is the LRU idle one
        host.pin("grid", "c", "3.0.0")
        slot = host._slot("grid")
        assert slot.canary.resident is False and slot.active.resident is True
        assert host.placement.evictions == 1
        host.set_canary("grid", "2.0.0", 1.0)
        assert host.solve("grid", INPUTS[0], {"learner": "a"}).output == OUT2[0]  # reloaded


def test_version_too_big_for_every_budget_fails_to_swap_with_placement_error():
    with make_host(memory_budgets={"cpu": V1.memory_bytes // 2}) as host:
        with pytest.raises(SwapError) as info:
            host.swap("grid", "1.0.0")
        assert isinstance(info.value.cause, PlacementError)


def test_version_that_allows_no_managed_device_fails_with_placement_error():
    cuda_only = tiny_spec("4.0.0", 4, allowed_devices=("cuda",))
    with make_host(specs=(cuda_only,)) as host:
        with pytest.raises(SwapError, match="allows devices"):
            host.swap("grid", "4.0.0")


def test_placement_plugin_chooses_the_device():
    chosen = []

    class PickSecondCpu:
        @hookimpl
        def trm_placement(self, module, devices):
            chosen.append((module.name, [d.name for d in devices]))
            return "cpu"

    with make_host(PickSecondCpu()) as host:
        assert host.swap("grid", "1.0.0").devices["1.0.0"] == "cpu"
    assert chosen == [("grid", ["cpu"])]


def test_each_solve_emits_a_solve_record_after_the_answer():
    recorder = Recorder()
    with make_host(recorder) as host:
        host.swap("grid", "1.0.0")
        answer = host.solve("grid", INPUTS[0], {"course": "c1"}, solve_id="s-1")
        assert host.flush()
    (record,) = recorder.records
    assert (record.id, record.version, record.digest, record.output) == ("s-1", "1.0.0", V1.digest, answer.output)
    assert record.context.course == "c1" and record.input == INPUTS[0]


def test_feedback_reaches_feedback_observers():
    recorder = Recorder()
    with make_host(recorder) as host:
        event = host.feedback({"solve_id": "s-1", "kind": "correct"})
        assert host.flush()
    assert recorder.events == [event]


def test_bad_feedback_raises_invalid_input_naming_the_field():
    with make_host() as host, pytest.raises(InvalidInput) as info:
        host.feedback({"solve_id": "s-1", "kind": "loved-it"})
    assert info.value.path == "/kind"


def test_raising_observer_does_not_fail_the_solve_and_is_counted():
    class Broken:
        @hookimpl
        def trm_on_solve(self, record):
            raise RuntimeError("observer down")

    recorder = Recorder()
    with make_host(Broken(), recorder) as host:
        host.swap("grid", "1.0.0")
        assert host.solve("grid", INPUTS[0]).output == OUT1[0]
        host.flush()
        name = next(n for n, p in host.pm.list_name_plugin() if isinstance(p, Broken))
        assert host.pm.error_counts[name] == 1
    assert len(recorder.records) == 1  # the other observer still got it


def test_a_failing_batch_fails_its_requests_and_the_batcher_keeps_serving():
    calls = []

    def run_batch(tokens, puzzle_ids):
        calls.append(len(tokens))
        if len(calls) == 1:
            raise RuntimeError("device fell over")
        return tokens, np.ones(len(tokens), dtype=np.int64), np.full(len(tokens), 0.5)

    batcher = MicroBatcher(run_batch, window_s=0.0, max_batch_size=4)
    try:
        with pytest.raises(RuntimeError, match="device fell over"):
            batcher.submit(np.arange(16)).result(timeout=5)
        row = batcher.submit(np.arange(16)).result(timeout=5)
        assert (row.tokens == np.arange(16)).all() and row.steps == 1
    finally:
        batcher.close()


def test_an_answer_the_codec_cannot_decode_is_returned_and_recorded_as_invalid():
    from fixtures.host import GridCodec
    from trm_modules.errors import CodecError
    from trm_modules.host import ServableVersion

    class RefusingCodec(GridCodec):
        def decode_output(self, tokens, data_in):
            raise CodecError("token 0 is not a cell value", "/cells/0")

    spec = ServableVersion.from_model("grid", "9.0.0", tiny_model(9), RefusingCodec(), [])
    observer = Recorder()
    host = make_host(observer, specs=(spec,))
    host.swap("grid", "9.0.0")
    answer = host.solve("grid", INPUTS[0])
    host.flush()
    assert answer.output is None and answer.valid is False
    assert observer.records[0].id == answer.solve_id and observer.records[0].valid is False
    host.close()


def echo_batch(
    gate: threading.Event | None = None, sizes: list[int] | None = None, started: threading.Event | None = None
):
    """A ``run_batch`` that answers every row with its own tokens; records sizes, held at ``gate``."""

    def run_batch(tokens, puzzle_ids):
        if sizes is not None:
            sizes.append(len(tokens))
        if started is not None:
            started.set()
        if gate is not None:
            gate.wait(timeout=10)
        return tokens, np.ones(len(tokens), dtype=np.int64), np.full(len(tokens), 0.5)

    return run_batch


def test_a_batch_waits_for_the_callers_of_the_previous_batch_to_come_back():
    gate, started, sizes = threading.Event(), threading.Event(), []
    # A wait bound far beyond the test: the batch forms by filling, never by timing out.
    batcher = MicroBatcher(echo_batch(gate, sizes, started), window_s=0.0, max_batch_size=16, wait_fraction=1e6)
    try:
        first = batcher.submit(np.arange(4))
        assert started.wait(timeout=10)  # the first batch (one row) is running
        queued = [batcher.submit(np.arange(4)) for _ in range(3)]  # arrive while it runs
        gate.set()
        first.result(timeout=10)
        returning = batcher.submit(np.arange(4))  # the first caller, back for its next answer
        rows = [f.result(timeout=10) for f in [*queued, returning]]
    finally:
        batcher.close()
    assert sizes == [1, 4]
    assert {row.batch_size for row in rows} == {4}


def test_a_lone_caller_is_not_kept_waiting_for_company():
    sizes = []
    batcher = MicroBatcher(echo_batch(sizes=sizes), window_s=0.0, max_batch_size=16, wait_fraction=1e6)
    try:
        for _ in range(3):
            batcher.submit(np.arange(4)).result(timeout=10)
    finally:
        batcher.close()
    assert sizes == [1, 1, 1]
