"""Single-puzzle latency at the paper's 9×9 Sudoku shape: ONNX Runtime step vs today's eager path.

For each mixer (``paper-sudoku-attn``, ``paper-sudoku-mlp``: hidden 512, 2 layers, T=3, n=6,
81 cells + 16 puzzle positions), one puzzle at batch 1 is solved for ``--steps`` supervision
steps without halting (random weights never halt; latency per step is what differs):

- baseline: ``model.solve`` (eager PyTorch);
- fast path: ``model.solve(step=OnnxStep(model))`` — the same loop, each step one ONNX Runtime call.

- optionally (``--compile``), ``model.solve(step=torch.compile(model.deep_recursion))``.

The engines alternate round by round (all meet the same load from other processes); medians are
compared. Answers must be identical tokens, confidences within 1e-4. Goal: >= 1.5x, at 1 intra-op
thread and at torch's default thread count (both engines get the same count); ``--threads N``
measures only N.

    python bench/bench_latency.py [--steps 2] [--rounds 3] [--threads N] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import torch

from trm_modules.model import PRESETS, TRM
from trm_modules.model.trm import Solution
from trm_modules.model.onnx_step import OnnxStep
from trm_modules.plugins import get_codec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="supervision steps per solve (no halting)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="intra-op threads of every engine (default: 1, then torch's default)"
    )
    parser.add_argument("--presets", nargs="+", default=["paper-sudoku-attn", "paper-sudoku-mlp"])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the step (slow to build)")
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    thread_counts = [args.threads] if args.threads else sorted({1, default_threads})

    codec = get_codec("sudoku", {"size": 9})
    puzzle, _ = codec.generate(np.random.default_rng(0), 1)[0]
    tokens = torch.from_numpy(np.asarray(codec.encode_input(puzzle), dtype=np.int64)).unsqueeze(0)
    print(
        f"batch 1, {args.steps} steps per solve (no halting), median of {args.rounds} alternating rounds, "
        f"intra-op threads {thread_counts} (torch's default here: {default_threads})"
    )
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for preset in args.presets:
            torch.manual_seed(0)
            model = TRM(PRESETS[preset]).eval()
            started = time.perf_counter()
            fast = OnnxStep(model, threads=threads)
            export_s = time.perf_counter() - started
            engines: dict[str, Callable[[], Solution]] = {
                "eager": lambda: model.solve(tokens, max_steps=args.steps, halt=False),
                "onnx": lambda: fast.solve(tokens, max_steps=args.steps, halt=False),
            }
            if args.compile:
                compiled = torch.compile(model.deep_recursion, dynamic=False)
                engines["compile"] = lambda: model.solve(tokens, max_steps=args.steps, halt=False, step=compiled)
            answers, build_s = {}, {"onnx": export_s}
            for name, fn in engines.items():  # warm-up (torch.compile builds here), and the answers compared
                started = time.perf_counter()
                with torch.inference_mode():
                    answers[name] = fn()
                build_s.setdefault(name, time.perf_counter() - started)
            times: dict[str, list[float]] = {name: [] for name in engines}
            for _ in range(args.rounds):
                for name, fn in engines.items():
                    start = time.perf_counter()
                    with torch.inference_mode():
                        fn()
                    times[name].append(time.perf_counter() - start)
            base = statistics.median(times["eager"])
            line = f"threads {threads}  {preset}: eager {base * 1e3:8.1f} ms"
            for name in engines:
                if name == "eager":
                    continue
                ours = statistics.median(times[name])
                identical = torch.equal(answers["eager"].tokens, answers[name].tokens)
                diff = float((answers["eager"].confidence - answers[name].confidence).abs().max())
                line += (
                    f" | {name} {ours * 1e3:8.1f} ms speed-up {base / ours:.2f}x (goal >= 1.5x), tokens identical: "
                    f"{identical}, max confidence diff {diff:.1e}, build {build_s[name]:.1f} s once per model"
                )
            print(line, flush=True)


if __name__ == "__main__":
    main()
