"""Importer for checkpoints written by the authors' TRM code (TRM.md, "checkpoint layout").

Their files are pickled torch state dicts; we only ever open them with ``weights_only=True``,
which refuses arbitrary objects. RoPE tables are recomputed, never loaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import torch

from ..errors import ConfigError
from .config import TRMConfig
from .hrm import HRM, HRMConfig
from .trm import TRM

_PREFIXES = ("_orig_mod.", "model.")

# authors' key (after prefixes, minus "inner.") -> our key; layer keys handled by regex
_STATIC = {
    "embed_tokens.embedding_weight": "embed_tokens.weight",
    "lm_head.weight": "lm_head.weight",
    "q_head.weight": "q_head.weight",
    "q_head.bias": "q_head.bias",
    "puzzle_emb.weights": "puzzle_emb.weight",
    "embed_pos.embedding_weight": "embed_pos.weight",
    "H_init": "H_init",
    "L_init": "L_init",
}
_LAYER = re.compile(
    r"^L_level\.layers\.(\d+)\.(self_attn|mlp_t|mlp)\.(qkv_proj|o_proj|gate_up_proj|down_proj)\.weight$"
)


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def authors_key_to_ours(key: str) -> str | None:
    """Map one key of the authors' layout to ours; None for keys we recompute (RoPE caches)."""
    key = _strip(key)
    if not key.startswith("inner."):
        raise ConfigError(f"unexpected checkpoint key {key!r}: expected it under 'inner.'")
    key = key[len("inner.") :]
    if key in _STATIC:
        return _STATIC[key]
    if key.startswith("rotary_emb."):
        return None
    m = _LAYER.match(key)
    if m:
        return f"net.layers.{m[1]}.{m[2]}.{m[3]}.weight"
    raise ConfigError(f"unknown key {key!r} in the authors' checkpoint layout")


def to_authors_state_dict(model: TRM, prefix: str = "model.") -> dict[str, torch.Tensor]:
    """Our weights in the authors' layout (for round-trip tests and exporting back)."""
    inverse = {v: k for k, v in _STATIC.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if key in inverse:
            theirs = inverse[key]
        elif key.startswith("net.layers."):
            theirs = "L_level." + key[len("net.") :]
        else:
            continue
        out[f"{prefix}inner.{theirs}"] = value.detach().clone()
    return out


def load_authors_checkpoint(
    path_or_state_dict: str | os.PathLike | Mapping[str, torch.Tensor], config: TRMConfig
) -> TRM:
    """Build a ``TRM`` from an authors' checkpoint (a ``step_N`` file or a state dict).

    Accepts the ``_orig_mod.`` (torch.compile) and ``model.`` (loss head) prefixes, either mixer,
    bf16-stored buffers. Every tensor is shape-checked against ``config``.
    """
    if isinstance(path_or_state_dict, Mapping):
        state = path_or_state_dict
    else:
        state = torch.load(os.fspath(path_or_state_dict), map_location="cpu", weights_only=True)
        if not isinstance(state, Mapping):
            raise ConfigError(f"{path_or_state_dict}: expected a state dict, found {type(state).__name__}")
    model = TRM(config)
    ours = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        target = authors_key_to_ours(key)
        if target is None:
            continue
        if target not in ours:
            raise ConfigError(f"checkpoint key {key!r} has no place in a model with this config ({target})")
        if tuple(value.shape) != tuple(ours[target].shape):
            raise ConfigError(
                f"checkpoint key {key!r}: shape {tuple(value.shape)} but the config needs {tuple(ours[target].shape)}"
            )
        mapped[target] = value.to(ours[target].dtype)
    missing = sorted(set(ours) - set(mapped))
    if missing:
        raise ConfigError(f"checkpoint lacks {len(missing)} tensors the config needs, e.g. {missing[:3]}")
    model.load_state_dict(mapped, strict=True)
    return model


_HRM_LAYER = re.compile(
    r"^(H_level|L_level)\.layers\.(\d+)\.(self_attn|mlp)\.(qkv_proj|o_proj|gate_up_proj|down_proj)\.weight$"
)


def authors_hrm_key_to_ours(key: str) -> str | None:
    """Map one key of the HRM authors' layout (``hrm_act_v1.py``) to ours; None for recomputed RoPE caches."""
    key = _strip(key)
    if not key.startswith("inner."):
        raise ConfigError(f"unexpected checkpoint key {key!r}: expected it under 'inner.'")
    key = key[len("inner.") :]
    if key in _STATIC:
        return _STATIC[key]
    if key.startswith("rotary_emb."):
        return None
    if _HRM_LAYER.match(key):
        return key  # the H/L module tensors keep the authors' names
    raise ConfigError(f"unknown key {key!r} in the HRM authors' checkpoint layout")


def load_authors_hrm_checkpoint(
    path_or_state_dict: str | os.PathLike | Mapping[str, torch.Tensor], config: HRMConfig
) -> HRM:
    """Build an ``HRM`` from a checkpoint of the authors' HRM code (sapientinc/HRM), a file or a state dict.

    Loaded with ``weights_only=True`` (no arbitrary unpickling); ``_orig_mod.`` and ``model.`` prefixes
    accepted; every tensor shape-checked against ``config``; bf16-stored tensors cast to our dtype.
    """
    if isinstance(path_or_state_dict, Mapping):
        state = path_or_state_dict
    else:
        state = torch.load(os.fspath(path_or_state_dict), map_location="cpu", weights_only=True)
        if not isinstance(state, Mapping):
            raise ConfigError(f"{path_or_state_dict}: expected a state dict, found {type(state).__name__}")
    model = HRM(config)
    ours = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        target = authors_hrm_key_to_ours(key)
        if target is None:
            continue
        if target not in ours:
            raise ConfigError(f"checkpoint key {key!r} has no place in a model with this config ({target})")
        if tuple(value.shape) != tuple(ours[target].shape):
            raise ConfigError(
                f"checkpoint key {key!r}: shape {tuple(value.shape)} but the config needs {tuple(ours[target].shape)}"
            )
        mapped[target] = value.to(ours[target].dtype)
    missing = sorted(set(ours) - set(mapped))
    if missing:
        raise ConfigError(f"checkpoint lacks {len(missing)} tensors the config needs, e.g. {missing[:3]}")
    model.load_state_dict(mapped, strict=True)
    return model
