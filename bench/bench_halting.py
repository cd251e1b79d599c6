"""Early halting vs the authors' all-steps evaluation on a trained module, in one process.

    python bench/bench_halting.py runs/sudoku-4x4            # a run directory
    python bench/bench_halting.py registry/sudoku-4x4/...trm # or a package

Prints puzzles/s and exact accuracy for ``solve(halt=True)`` and ``solve(halt=False)`` on the same
freshly generated puzzles and batch size, and their ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from trm_modules.train.data import encode_pairs


def load(source: str):
    if Path(source).is_dir():
        from trm_modules.train.run_dir import load_run

        return load_run(source)
    from trm_modules.package import open_package

    pkg = open_package(source)
    return pkg.load_model(), pkg.codec()


def timed_solve(model, tokens, batch_size: int, halt: bool) -> tuple[float, torch.Tensor, torch.Tensor]:
    answers, steps = [], []
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(tokens), batch_size):
            sol = model.solve(tokens[i : i + batch_size], halt=halt)
            answers.append(sol.tokens)
            steps.append(sol.steps)
    return time.perf_counter() - start, torch.cat(answers), torch.cat(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source")
    parser.add_argument("--puzzles", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model, codec = load(args.source)
    data = encode_pairs(codec, codec.generate(np.random.default_rng(args.seed), args.puzzles))
    tokens, labels = torch.from_numpy(data.inputs), torch.from_numpy(data.labels)
    timed_solve(model, tokens[: args.batch_size], args.batch_size, True)  # warm-up

    results = {}
    for halt in (False, True):
        best = None
        for _ in range(args.repeats):
            seconds, answers, steps = timed_solve(model, tokens, args.batch_size, halt)
            best = seconds if best is None else min(best, seconds)
        accuracy = float((answers == labels).all(-1).float().mean())
        results[halt] = (len(tokens) / best, accuracy, float(steps.float().mean()))
        label = "halt=True " if halt else "halt=False"
        print(f"{label}: {results[halt][0]:8.1f} puzzles/s  exact {accuracy:.2%}  mean steps {results[halt][2]:.2f}")
    speedup = results[True][0] / results[False][0]
    delta = (results[True][1] - results[False][1]) * 100
    print(
        f"speed-up of early halting: {speedup:.2f}x  (accuracy difference {delta:+.2f} points; goal >= 1.5x within ±0.5)"
    )


if __name__ == "__main__":
    main()
