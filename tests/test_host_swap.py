"""Hot swap under load: no failed request, and every answer comes from the version it names."""

from __future__ import annotations

import threading

from fixtures.host import grid_inputs, reference_outputs, tiny_model, tiny_spec
from trm_modules.host import Host, MemorySource
from trm_modules.plugins import build_plugin_manager

CALLERS = 16
SWAPS = 20


def test_sixteen_callers_through_twenty_swaps_never_fail_and_answers_match_their_version():
    versions = {"1.0.0": 1, "2.0.0": 2}
    inputs = grid_inputs(4, seed=7)
    expected = {v: reference_outputs(tiny_model(seed), inputs) for v, seed in versions.items()}
    assert expected["1.0.0"] != expected["2.0.0"]
    specs = [tiny_spec(v, seed) for v, seed in versions.items()]
    host = Host(
        [MemorySource(specs)],
        plugin_manager=build_plugin_manager(entry_points=False, paths=""),
        memory_budgets={"cpu": 1 << 30},
        batch_window_ms=2,
        cpu_threads=1,
    )
    host.swap("grid", "1.0.0")

    failures: list[BaseException] = []
    mismatches: list[tuple] = []
    answered: dict[str, int] = {"1.0.0": 0, "2.0.0": 0}
    lock = threading.Condition()
    stop = threading.Event()

    def caller(index: int) -> None:
        i = index
        while not stop.is_set():
            data = inputs[i % len(inputs)]
            try:
                answer = host.solve("grid", data)
            except BaseException as exc:  # noqa: BLE001 - every failure counts
                with lock:
                    failures.append(exc)
                continue
            with lock:
                answered[answer.version] += 1
                lock.notify_all()
                if (
                    answer.output != expected[answer.version][i % len(inputs)]
                    or answer.digest != specs[versions[answer.version] - 1].digest
                ):
                    mismatches.append((answer.version, i % len(inputs)))
            i += 1

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(CALLERS)]
    for thread in threads:
        thread.start()
    try:
        for n in range(SWAPS):  # back to back: each swap loads and self-tests while callers hammer
            last = host.swap("grid", "2.0.0" if n % 2 == 0 else "1.0.0").active
        with lock:  # let requests run on the last version too: every caller once more
            target = answered[last] + CALLERS
            assert lock.wait_for(lambda: answered[last] >= target, timeout=120)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    # Every replaced version was freed once its last request finished: only the active one holds memory.
    assert host.devices()[0].used_bytes == specs[0].memory_bytes
    host.close()

    assert failures == []
    assert mismatches == []
    assert answered["1.0.0"] > 0 and answered["2.0.0"] > 0


def test_swap_without_a_version_activates_the_release_over_its_release_candidate():
    specs = [tiny_spec(v, seed) for v, seed in (("2.0.0", 2), ("2.0.0-rc.1", 1), ("1.10.0", 3))]
    with Host(
        [MemorySource(specs)],
        plugin_manager=build_plugin_manager(entry_points=False, paths=""),
        memory_budgets={"cpu": 1 << 30},
        cpu_threads=1,
    ) as host:
        assert host.available_versions("grid") == ["1.10.0", "2.0.0-rc.1", "2.0.0"]
        assert host.swap("grid").active == "2.0.0"
