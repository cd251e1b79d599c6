"""Open + verify + load of a 7M-parameter package vs raw safetensors loading of the same weights.

Builds a package of the paper's Sudoku attention config (random weights) in a temporary folder,
then times, in one process, with warm page cache, the median of several rounds of:

- baseline ``load_file``: ``safetensors.torch.load_file`` of the same weights file (memory-mapped:
  no byte is read until used), and the same followed by a ``clone`` of every tensor (bytes read);
- baseline ``load_file → TRM``: the same plus building the TRM and ``load_state_dict``
  (what it takes to get a usable model from a bare weights file);
- baseline "one hash pass": one SHA-256 pass over the package file (read in 1 MiB chunks) followed
  by ``load_file`` + ``clone`` — the least any verified load can do (goal: package <= 1.3x this);
- a stricter form of it: the same hash pass + ``load_file``, each tensor copied with one single-threaded
  ``memcpy`` (NumPy) instead of ``clone`` (which spreads a copy over the intra-op threads, slow when the
  machine is busy) — reported beside the goal ratio so a fast copy on our side is not mistaken for
  cheap verification;
- package: ``open_package`` (zip structure, manifest schema, SHA-256 of every file and of the
  whole package, safetensors header, tensors vs config) + ``load_model``, first with nothing
  cached (what every first open costs), then as a registry opens it again (verified digests
  cached by file identity: ``trm_modules.package.digests``).

Usage: python bench/bench_package_load.py [--rounds 9] [--preset paper-sudoku-attn]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file

from trm_modules.model import PRESETS, TRM, count_parameters
from trm_modules.package import build_package, open_package
from trm_modules.package.digests import DigestCache
from trm_modules.package.registry import file_digest
from trm_modules.plugins import get_codec


def interleaved_medians(functions: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median wall time of each function over ``rounds`` rounds, each round calling every function once.

    Interleaving makes every function meet the same load from other processes (a shared machine
    speeds up and slows down over seconds). One warm-up call each first.
    """
    for fn in functions.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


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
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--preset", default="paper-sudoku-attn")
    args = parser.parse_args()

    model = random_decodable_model(args.preset)
    codec = get_codec("sudoku", {"size": 9})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        import numpy as np

        inputs = [inp for inp, _ in codec.generate(np.random.default_rng(0), 1)]
        package_path = build_package(
            model,
            codec,
            name="bench-sudoku",
            version="1.0.0",
            out_path=tmp / "b.trm",
            examples=[(inp, None) for inp in inputs],
            allow_failing_examples=True,
        )
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

        def hash_pass_and_load():
            file_digest(package_path)
            return raw_load_file_materialised()

        def memcpy(tensor):
            copy = torch.empty_like(tensor)
            copy.view(-1).view(torch.uint8).numpy()[...] = tensor.view(-1).view(torch.uint8).numpy()
            return copy

        def hash_pass_and_memcpy_load():
            file_digest(package_path)
            return {k: memcpy(v) for k, v in load_file(weights_path).items()}

        def package_load():
            return open_package(package_path).load_model("cpu")

        cache = DigestCache(min_age_s=0)  # the file was written a moment ago, and nothing rewrites it

        def registry_load():
            return open_package(package_path, digest_cache=cache).load_model("cpu")

        loaded = package_load()
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())

        medians = interleaved_medians(
            {
                "load_file": raw_load_file,
                "load_file + clone": raw_load_file_materialised,
                "load_file -> TRM": raw_load_model,
                "hash pass + load": hash_pass_and_load,
                "hash pass + memcpy load": hash_pass_and_memcpy_load,
                "package": package_load,
                "registry": registry_load,
                "open only": lambda: open_package(package_path),
            },
            args.rounds,
        )
        base_file, base_read, base_model = (
            medians["load_file"],
            medians["load_file + clone"],
            medians["load_file -> TRM"],
        )
        base_hash, ours, ours_cached = medians["hash pass + load"], medians["package"], medians["registry"]
        open_only = medians["open only"]
        base_strict = medians["hash pass + memcpy load"]

    print(
        f"preset {args.preset}: {count_parameters(model):,} parameters, torch threads {torch.get_num_threads()}, "
        f"median of {args.rounds} interleaved rounds"
    )
    print(f"  safetensors load_file               {base_file * 1e3:8.2f} ms")
    print(f"  load_file + clone (bytes read)      {base_read * 1e3:8.2f} ms")
    print(f"  load_file -> TRM + load_state_dict  {base_model * 1e3:8.2f} ms")
    print(f"  one SHA-256 pass + load_file + clone {base_hash * 1e3:7.2f} ms")
    print(f"  one SHA-256 pass + load_file + memcpy {base_strict * 1e3:6.2f} ms")
    print(f"  open_package (all checks)           {open_only * 1e3:8.2f} ms")
    print(f"  open_package + load_model           {ours * 1e3:8.2f} ms")
    print(f"  the same, digests cached (registry) {ours_cached * 1e3:8.2f} ms")
    print(f"ratio package / (one SHA-256 pass + load_file + clone): {ours / base_hash:.2f}x   (goal <= 1.3x)")
    print(f"ratio registry reopen / (one SHA-256 pass + load_file + clone): {ours_cached / base_hash:.2f}x")
    print(f"ratio package / (one SHA-256 pass + load_file + memcpy): {ours / base_strict:.2f}x   (stricter baseline)")
    print(f"ratio registry reopen / (one SHA-256 pass + load_file + memcpy): {ours_cached / base_strict:.2f}x")
    print(f"ratio package / (load_file -> TRM): {ours / base_model:.2f}x   (goal <= 1.5x)")
    print(f"ratio package / (load_file + clone): {ours / base_read:.2f}x")


if __name__ == "__main__":
    main()
