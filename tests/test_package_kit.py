"""Shared builders for the package tests (no tests here): tiny models, packages, raw zip surgery."""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from trm_modules.model import TRM, TRMConfig
from trm_modules.plugins import get_codec

torch.set_num_threads(1)  # the test machine is shared; intra-op threads only add contention here

TINY_CONFIG = TRMConfig(vocab_size=6, seq_len=16, puzzle_emb_ndim=32, puzzle_emb_len=2, hidden_size=32,
                        num_heads=2, H_cycles=2, L_cycles=2, halt_max_steps=4)


def sudoku_codec():
    """The 4x4 Sudoku codec, which fits TINY_CONFIG (vocab 6, 16 cells)."""
    return get_codec("sudoku", {"size": 4})


def tiny_model(seed: int = 0, config: TRMConfig = TINY_CONFIG) -> TRM:
    """A random tiny TRM whose answers always decode: only digit tokens can win the argmax.

    Rows ±u, ±v of the output head make max(digit logits) >= 0 = the pad/blank logits.
    """
    torch.manual_seed(seed)
    model = TRM(config).eval()
    with torch.no_grad():
        head = model.lm_head.weight
        head.zero_()
        u, v = torch.randn(config.hidden_size), torch.randn(config.hidden_size)
        head[2], head[3], head[4], head[5] = u, -u, v, -v
    return model


def example_inputs(n: int = 2, seed: int = 0) -> list[dict]:
    return [inp for inp, _ in sudoku_codec().generate(np.random.default_rng(seed), n)]


def build_tiny_package(out_path: Path, *, name: str = "sudoku-4x4", version: str = "1.0.0", seed: int = 0,
                       **kwargs) -> Path:
    """A valid package of a tiny random model with two self-recorded examples."""
    from trm_modules.package import build_package

    kwargs.setdefault("examples", [(inp, None) for inp in example_inputs()])
    return build_package(tiny_model(seed), sudoku_codec(), name=name, version=version, out_path=out_path, **kwargs)


# ------------------------------------------------------------------------------ raw zip surgery
def read_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def write_members(path: Path, members: dict[str, bytes] | list[tuple[str | zipfile.ZipInfo, bytes]],
                  compression: int = zipfile.ZIP_STORED) -> Path:
    """Write entries as given (hostile names and attributes allowed), in the given order."""
    items = members.items() if isinstance(members, dict) else members
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in items:
            zf.writestr(name, data)
    return path


def manifest_of(members: dict[str, bytes]) -> dict:
    return json.loads(members["manifest.json"])


def with_manifest(members: dict[str, bytes], manifest: dict) -> dict[str, bytes]:
    return {**members, "manifest.json": json.dumps(manifest).encode()}


def redigest(members: dict[str, bytes]) -> dict[str, bytes]:
    """Make manifest files list every member with its true size and SHA-256 (drop any signature)."""
    members = {k: v for k, v in members.items() if k != "signature.json"}
    manifest = manifest_of(members)
    manifest["files"] = [{"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                         for name, data in sorted(members.items()) if name != "manifest.json"]
    return with_manifest(members, manifest)


def rewrite_safetensors_header(weights: bytes, mutate: Callable[[dict], None]) -> bytes:
    """The same tensor data under a header changed by ``mutate`` (length field recomputed)."""
    (length,) = struct.unpack_from("<Q", weights, 0)
    header = json.loads(weights[8 : 8 + length])
    mutate(header)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + weights[8 + length :]
