"""Shared fixtures of the host tests (no tests here): a tiny grid codec and tiny model versions.

The codec echoes a 4x4 grid of digits 0..4 through the token space (token = digit + 1), so any
TRM with vocab 6 and 16 positions can answer it; two differently seeded models answer
differently, which makes every answer attributable to the version that computed it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import torch

from trm_modules.codec import TaskCodec
from trm_modules.errors import CodecError
from trm_modules.host import VersionSpec
from trm_modules.model import TRM, TRMConfig

TINY = TRMConfig(vocab_size=6, seq_len=16, puzzle_emb_ndim=32, puzzle_emb_len=2, hidden_size=32, num_heads=2,
                 H_cycles=2, L_cycles=2, halt_max_steps=4)


class GridCodec(TaskCodec):
    """A 4x4 grid of digits 0..4, token = digit + 1 (0 is padding)."""

    name = "test-grid"

    @property
    def params(self) -> dict[str, Any]:
        return {}

    @property
    def vocab_size(self) -> int:
        return 6

    @property
    def seq_len(self) -> int:
        return 16

    def input_schema(self) -> dict[str, Any]:
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": ["cells"],
            "additionalProperties": False,
            "properties": {"cells": {"type": "array", "minItems": 16, "maxItems": 16,
                                     "items": {"type": "integer", "minimum": 0, "maximum": 4}}},
        }

    def output_schema(self) -> dict[str, Any]:
        return self.input_schema()

    def encode_input(self, data: dict[str, Any]) -> np.ndarray:
        if data["cells"][0] == 4 and data["cells"][1] == 4 and data["cells"][2] == 4:
            raise CodecError("three 4s may not start a grid", "/cells/2")
        return np.asarray(data["cells"], dtype=np.int64) + 1

    def encode_output(self, data: dict[str, Any], data_in: dict[str, Any] | None = None) -> np.ndarray:
        return self.encode_input(data)

    def decode_output(self, tokens: np.ndarray, data_in: dict[str, Any]) -> dict[str, Any]:
        return {"cells": [max(int(t) - 1, 0) for t in tokens]}

    def generate(self, rng: np.random.Generator, n: int, **difficulty: Any) -> list[tuple[dict, dict]]:
        grids = [{"cells": rng.integers(0, 4, size=16).tolist()} for _ in range(n)]
        return [(g, g) for g in grids]


def tiny_model(seed: int) -> TRM:
    """A tiny TRM with weights drawn from ``seed`` (its answers are a fingerprint of the seed)."""
    torch.manual_seed(seed)
    model = TRM(TINY).eval()
    with torch.no_grad():  # a non-zero halting head so examples halt at different steps
        model.q_head.weight.normal_(0, 0.5)
        model.q_head.bias.fill_(0.0)
    return model


def grid_inputs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` valid random grid inputs."""
    rng = np.random.default_rng(seed)
    return [{"cells": rng.integers(0, 4, size=16).tolist()} for _ in range(n)]


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch single-threaded on this thread (the test machine's cores are shared and busy)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def reference_outputs(model: TRM, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ``model`` answers to each input, computed one at a time without the host."""
    codec = GridCodec()
    outputs = []
    with one_torch_thread():
        for data in inputs:
            tokens = torch.from_numpy(codec.encode_input(data)).unsqueeze(0)
            outputs.append(codec.decode_output(model.solve(tokens).tokens[0].numpy(), data))
    return outputs


def tiny_spec(version: str, seed: int, *, name: str = "grid", broken_examples: bool = False,
              allowed_devices: tuple[str, ...] = ("cpu", "cuda")) -> VersionSpec:
    """A version of module ``name`` whose examples are its own answers (or wrong ones if ``broken_examples``)."""
    model = tiny_model(seed)
    inputs = grid_inputs(2, seed=100 + seed)
    outputs = reference_outputs(model, inputs)
    if broken_examples:
        outputs = [{"cells": [(c + 1) % 5 for c in out["cells"]]} for out in outputs]
    return VersionSpec.from_model(name, version, model, GridCodec(), list(zip(inputs, outputs)),
                                  allowed_devices=allowed_devices)
