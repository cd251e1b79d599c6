"""Open + verify + load of a 7M-parameter package vs raw safetensors loading of the same weights.

Builds a package of the paper's Sudoku attention config (random weights) in a temporary folder,
then times, in one process, with warm page cache, the median of several rounds of:

- baseline ``load_file``: ``safetensors.torch.load_file`` of the same weights file (memory-mapped:
  no byte is read until used), and the same followed by a ``clone`` of every tensor (bytes read);
- baseline ``load_file → TRM``: the same plus building the TRM and ``load_state_dict``
  (what it takes to get a usable model from a bare weights file);
- package: ``open_package`` (zip structure, manifest schema, SHA-256 of every file and of the
  whole package, safetensors header, tensors vs config) + ``load_model``.

Usage: python bench/bench_package_load.py [--rounds 7] [--preset paper-sudoku-attn]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from trm_modules.model import PRESETS, TRM, count_parameters
from trm_modules.package import build_package, open_package
from trm_modules.plugins import get_codec


def median_seconds(fn, rounds: int) -> float:
    """Median wall time of ``fn()`` over ``rounds`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_decodable_model(preset: str) -> TRM:
    """Random weights whose answers decode as digits and halt after one step (keeps the build quick)."""
    config = PRESETS[preset]
    torch.manual_seed(0)
    model = TRM(config).eval()
    with torch.no_grad():
        head = model.lm_head.weight
        head[:2].zero_()  # pad / blank never win against ±u pairs of the digit rows
        for row in range(2, config.vocab_size - 1, 2):
            head[row + 1] = -head[row]
        model.q_head.bias.fill_(5.0)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--preset", default="paper-sudoku-attn")
    args = parser.parse_args()

    model = random_decodable_model(args.preset)
    codec = get_codec("sudoku", {"size": 9})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        import numpy as np

        inputs = [inp for inp, _ in codec.generate(np.random.default_rng(0), 1)]
        package_path = build_package(model, codec, name="bench-sudoku", version="1.0.0", out_path=tmp / "b.trm",
                                     examples=[(inp, None) for inp in inputs])
        weights_path = tmp / "weights.safetensors"
        weights_path.write_bytes(open_package(package_path).read_file("weights.safetensors"))

        def raw_load_file():
            return load_file(weights_path)

        def raw_load_file_materialised():
            return {k: v.clone() for k, v in load_file(weights_path).items()}

        def raw_load_model():
            m = TRM(model.config)
            m.load_state_dict(load_file(weights_path))
            return m.eval()

        def package_load():
            return open_package(package_path).load_model("cpu")

        loaded = package_load()
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())

        base_file = median_seconds(raw_load_file, args.rounds)
        base_read = median_seconds(raw_load_file_materialised, args.rounds)
        base_model = median_seconds(raw_load_model, args.rounds)
        ours = median_seconds(package_load, args.rounds)
        open_only = median_seconds(lambda: open_package(package_path), args.rounds)

    print(f"preset {args.preset}: {count_parameters(model):,} parameters, torch threads {torch.get_num_threads()}, "
          f"median of {args.rounds} rounds")
    print(f"  safetensors load_file               {base_file * 1e3:8.2f} ms")
    print(f"  load_file + clone (bytes read)      {base_read * 1e3:8.2f} ms")
    print(f"  load_file -> TRM + load_state_dict  {base_model * 1e3:8.2f} ms")
    print(f"  open_package (all checks)           {open_only * 1e3:8.2f} ms")
    print(f"  open_package + load_model           {ours * 1e3:8.2f} ms")
    print(f"ratio package / (load_file -> TRM): {ours / base_model:.2f}x   (goal <= 1.5x)")
    print(f"ratio package / (load_file + clone): {ours / base_read:.2f}x   (the difference is mostly SHA-256)")
    print(f"ratio package / load_file alone:    {ours / base_file:.2f}x   (load_file maps lazily; no model built)")


if __name__ == "__main__":
    main()
