"""Host benchmark: serving overhead, latency under hot swaps, and micro-batching gains.

Measured in one process, each against its own baseline:
1. host solve/s (16 concurrent callers, micro-batched) vs a raw torch loop calling
   ``model.solve`` on batches of the same size, in interleaved rounds so that both meet the same
   load from other processes; the median of the per-round ratios with its quartiles and range
   (goal: >= 0.9x, mean batch >= 12);
2. p50/p99 latency of 16 concurrent callers, without and with swaps during the run
   (goal: p99 with swaps <= 2x without);
3. micro-batching (window 2 ms, up to 16) vs one-at-a-time (max batch 1), same 16 callers.

Model: a 4x4-Sudoku-sized TRM, hidden 128 (attention, 2 layers), the ``sudoku`` codec.

    python bench/bench_host.py [--seconds 5] [--rounds 3] [--cpu-threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np
import torch

from trm_modules.host import Host, MemorySource, ServableVersion
from trm_modules.model import TRM, TRMConfig
from trm_modules.plugins import get_codec
from trm_modules.solving import solve_inputs
from trm_modules.testing import digit_answering_sudoku_model

CALLERS = 16
CONFIG = TRMConfig(
    vocab_size=6,
    seq_len=16,
    puzzle_emb_ndim=128,
    puzzle_emb_len=1,
    hidden_size=128,
    num_heads=4,
    H_cycles=2,
    L_cycles=3,
    halt_max_steps=6,
)


def sudoku_model(seed: int) -> TRM:
    """Untrained, but always answering digit tokens so the codec can decode every answer."""
    return digit_answering_sudoku_model(CONFIG, seed)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def raw_loop(
    model: TRM, tokens: torch.Tensor, seconds: float, device: str, answer_table: torch.Tensor | None = None
) -> float:
    """Solved examples per second of a bare ``model.solve`` loop on full batches (decoding as the host does)."""
    model = model.to(device)
    tokens = tokens.to(device)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        with torch.inference_mode():
            model.solve(tokens, answer_table=answer_table)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        done += tokens.shape[0]
    return done / (time.perf_counter() - start)


def hammer(
    host: Host, inputs: list[dict], seconds: float, swap_versions: list[str] | None = None, swap_every: float = 1.0
) -> tuple[float, list[float], int]:
    """(solve/s, latencies in ms, swaps done) for CALLERS threads calling ``host.solve`` for ``seconds``."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = threading.Event()
    failures: list[BaseException] = []

    def caller(index: int) -> None:
        mine = []
        i = index
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                host.solve("sudoku-4x4", inputs[i % len(inputs)])
            except BaseException as exc:  # noqa: BLE001
                failures.append(exc)
                continue
            mine.append((time.perf_counter() - t0) * 1000)
            i += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(CALLERS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    swaps = 0
    while time.perf_counter() - start < seconds:
        if swap_versions:
            time.sleep(swap_every)
            host.swap("sudoku-4x4", swap_versions[swaps % len(swap_versions)])
            swaps += 1
        else:
            time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, first: {failures[0]!r}")
    return len(latencies) / elapsed, latencies, swaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved raw/host rounds of measurement 1")
    parser.add_argument("--cpu-threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)

    codec = get_codec("sudoku", {"size": 4})
    inputs = [inp for inp, _ in codec.generate(np.random.default_rng(0), 64)]
    examples = inputs[:2]
    specs = []
    for version, seed in (("1.0.0", 1), ("1.1.0", 2)):
        model = sudoku_model(seed)
        outputs = [answer.output for answer in solve_inputs(model, codec, examples)]  # as the host answers them
        specs.append(
            ServableVersion.from_model(
                "sudoku-4x4",
                version,
                model,
                codec,
                list(zip(examples, outputs)),
                allowed_devices=(args.device.split(":")[0],),
            )
        )
    budgets = {args.device if ":" in args.device or args.device == "cpu" else f"{args.device}:0": 8 << 30}

    def make_host(max_batch_size: int) -> Host:
        # views=1: the untrained model's answers break the rules, and the raw loop solves each input once.
        host = Host(
            [MemorySource(specs)],
            memory_budgets=budgets,
            batch_window_ms=2.0,
            max_batch_size=max_batch_size,
            cpu_threads=args.cpu_threads,
            views=1,
        )
        host.swap("sudoku-4x4", "1.0.0")
        for data in inputs[:CALLERS]:  # warm up (one at a time: not counted in the mean batch below)
            host.solve("sudoku-4x4", data)
        return host

    print(
        f"device {args.device}, torch threads {torch.get_num_threads()}, {CALLERS} callers, "
        f"{args.seconds:.0f} s per measurement, model hidden {CONFIG.hidden_size}, "
        f"{CONFIG.H_cycles}x{CONFIG.L_cycles + 1} net applications/step, up to {CONFIG.halt_max_steps} steps"
    )

    tokens = torch.from_numpy(np.stack([codec.encode_input(d) for d in inputs[:CALLERS]]))
    raw_model = sudoku_model(1).to(args.device)
    table = codec.answer_token_table()
    table = None if table is None else torch.from_numpy(table).to(args.device)
    with torch.inference_mode():
        raw_model.solve(tokens.to(args.device), answer_table=table)  # warm up
    raw_rates, host_rates, lat_plain = [], [], []
    with make_host(CALLERS) as host:
        batcher = host._slot("sudoku-4x4").active.batcher
        rows_before, batches_before = batcher.rows, batcher.batches
        for _ in range(args.rounds):
            raw_rates.append(raw_loop(raw_model, tokens, args.seconds / args.rounds, args.device, table))
            rate, latencies, _ = hammer(host, inputs, args.seconds / args.rounds)
            host_rates.append(rate)
            lat_plain += latencies
        mean_batch = (batcher.rows - rows_before) / max(batcher.batches - batches_before, 1)
    raw, batched = statistics.median(raw_rates), statistics.median(host_rates)
    # Each round's host rate against the raw rate measured just before it, under the same outside load.
    ratios = sorted(h / r for h, r in zip(host_rates, raw_rates))
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    with make_host(CALLERS) as host:
        _, lat_swaps, swaps = hammer(host, inputs, args.seconds, swap_versions=["1.1.0", "1.0.0"])
    with make_host(1) as host:
        single, _, _ = hammer(host, inputs, args.seconds)

    p50, p99 = percentile(lat_plain, 50), percentile(lat_plain, 99)
    s50, s99 = percentile(lat_swaps, 50), percentile(lat_swaps, 99)
    print(
        f"1. raw torch loop, batch {CALLERS}:      {raw:8.1f} solve/s median of {args.rounds} interleaved rounds "
        f"(min {min(raw_rates):.1f}, max {max(raw_rates):.1f})"
    )
    print(f"   host, {CALLERS} callers, micro-batched: {batched:8.1f} solve/s  (mean batch {mean_batch:.1f})")
    print(
        f"   host / raw, per round: median {statistics.median(ratios):.2f}x, quartiles {quartiles[0]:.2f}-"
        f"{quartiles[2]:.2f}x, range {ratios[0]:.2f}-{ratios[-1]:.2f}x  (goal >= 0.9x, mean batch >= 12)"
    )
    print(f"2. latency without swaps: p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  (mean {statistics.mean(lat_plain):.1f})")
    print(
        f"   latency with {swaps} swaps:  p50 {s50:7.1f} ms  p99 {s99:7.1f} ms"
        f"  p99 ratio {s99 / p99:.2f}x  (goal <= 2x)"
    )
    print(f"3. one at a time (max batch 1): {single:8.1f} solve/s; micro-batching gives {batched / single:.2f}x")


if __name__ == "__main__":
    main()
