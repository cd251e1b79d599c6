"""Single-puzzle latency at the paper's 9×9 Sudoku shape: ONNX Runtime step vs today's eager path.

For each mixer (``paper-sudoku-attn``, ``paper-sudoku-mlp``: hidden 512, 2 layers, T=3, n=6,
81 cells + 16 puzzle positions), one puzzle at batch 1 is solved for ``--steps`` supervision
steps without halting (random weights never halt; latency per step is what differs):

- baseline: ``model.solve`` (eager PyTorch);
- fast path: ``model.solve(step=OnnxStep(model))`` — the same loop, each step one ONNX Runtime call.

The two alternate round by round (both meet the same load from other processes); medians are
compared. Answers must be identical tokens, confidences within 1e-4. Goal: >= 1.5x.

    python bench/bench_latency.py [--steps 2] [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from trm_modules.model import PRESETS, TRM
from trm_modules.model.onnx_step import OnnxStep
from trm_modules.plugins import get_codec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="supervision steps per solve (no halting)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads of both engines (default torch's)")
    parser.add_argument("--presets", nargs="+", default=["paper-sudoku-attn", "paper-sudoku-mlp"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    codec = get_codec("sudoku", {"size": 9})
    puzzle, _ = codec.generate(np.random.default_rng(0), 1)[0]
    tokens = torch.from_numpy(np.asarray(codec.encode_input(puzzle), dtype=np.int64)).unsqueeze(0)
    print(f"batch 1, {args.steps} steps per solve (no halting), torch threads {torch.get_num_threads()}, "
          f"median of {args.rounds} alternating rounds")
    for preset in args.presets:
        torch.manual_seed(0)
        model = TRM(PRESETS[preset]).eval()
        started = time.perf_counter()
        fast = OnnxStep(model)
        export_s = time.perf_counter() - started

        def eager():
            with torch.inference_mode():
                return model.solve(tokens, max_steps=args.steps, halt=False)

        def onnx():
            with torch.inference_mode():
                return fast.solve(tokens, max_steps=args.steps, halt=False)

        reference, answer = eager(), onnx()  # warm-up, and the answers compared
        identical = torch.equal(reference.tokens, answer.tokens)
        confidence_diff = float((reference.confidence - answer.confidence).abs().max())
        times: dict[str, list[float]] = {"eager": [], "onnx": []}
        for _ in range(args.rounds):
            for name, fn in (("eager", eager), ("onnx", onnx)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        base, ours = statistics.median(times["eager"]), statistics.median(times["onnx"])
        print(f"{preset}: eager {base * 1e3:8.1f} ms   ONNX Runtime step {ours * 1e3:8.1f} ms   "
              f"speed-up {base / ours:.2f}x (goal >= 1.5x)   tokens identical: {identical}, "
              f"max confidence diff {confidence_diff:.1e}   (export {export_s:.1f} s, once per model)")


if __name__ == "__main__":
    main()
