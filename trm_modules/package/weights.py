"""The weights file: a safetensors blob, checked header-first and read without a temporary file.

The header (8-byte little-endian length, then JSON) is bounded and validated — dtypes known,
shapes consistent with byte ranges, ranges inside the data, contiguous, neither overlapping nor
leaving holes — *before* any tensor byte is read. Tensor names, shapes and dtypes are then
compared with what the manifest's ``TRMConfig`` builds (a meta-device model: no memory, no init).
"""

from __future__ import annotations

import functools
import json
import math
import struct
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import save as save_safetensors

from ..json_limits import check_json_depth

from .errors import TensorMismatch, WeightsInvalid

#: safetensors dtype codes → torch dtypes.
SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
#: Manifest ``model.dtype`` names → torch dtypes (floating types a TRM can be shipped in).
MANIFEST_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
_TORCH_TO_SAFETENSORS = {v: k for k, v in SAFETENSORS_DTYPES.items()}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the header declares it; ``begin``/``end`` are relative to the data section."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class WeightsHeader:
    """A validated safetensors header; ``data_start`` is where the data section begins in the file."""

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def parse_strict_json(raw: bytes | memoryview) -> Any:
    """Parse UTF-8 JSON refusing duplicate object keys, NaN/Infinity and nesting deeper than
    ``MAX_JSON_DEPTH`` (raises ValueError; ``JsonTooDeep`` for the depth)."""
    data = bytes(raw)
    check_json_depth(data)
    return json.loads(data.decode("utf-8"), object_pairs_hook=_refuse_duplicate_keys, parse_constant=_refuse_constant)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_weights_header(
    data: memoryview | bytes, *, max_header_bytes: int, max_tensors: int, file: str = "weights.safetensors"
) -> WeightsHeader:
    """Validate the safetensors header of ``data`` against its own size; raise ``WeightsInvalid``."""
    size = len(data)
    if size < 8:
        raise WeightsInvalid(
            f"{size} bytes is too short for a safetensors file (needs an 8-byte header length)",
            file=file,
            rule="weights-header-length",
        )
    (header_length,) = struct.unpack_from("<Q", data, 0)
    if header_length > max_header_bytes:
        raise WeightsInvalid(
            f"the header declares {header_length:,} bytes, over the limit of {max_header_bytes:,}",
            file=file,
            rule="weights-header-length",
        )
    if 8 + header_length > size:
        raise WeightsInvalid(
            f"the header declares {header_length:,} bytes but the file has only {size - 8:,} "
            "after the length field (length past end of file)",
            file=file,
            rule="weights-header-length",
        )
    raw = bytes(data[8 : 8 + header_length])
    if not raw.lstrip(b" ").startswith(b"{"):
        raise WeightsInvalid(
            "the header is not a JSON object (is this a pickle or another format?)",
            file=file,
            rule="weights-header-json",
        )
    try:
        header = parse_strict_json(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WeightsInvalid(f"the header is not valid JSON: {exc}", file=file, rule="weights-header-json") from exc
    if not isinstance(header, dict):
        raise WeightsInvalid("the header is not a JSON object", file=file, rule="weights-header-json")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise WeightsInvalid("__metadata__ must map strings to strings", file=file, rule="weights-header-json")
    if len(header) > max_tensors:
        raise WeightsInvalid(
            f"the header declares {len(header)} tensors, over the limit of {max_tensors}",
            file=file,
            rule="weights-header-length",
        )

    data_start = 8 + header_length
    data_length = size - data_start
    tensors: dict[str, TensorInfo] = {}
    for name, spec in header.items():
        where = f"tensor {name!r}"
        if not name or not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
            raise WeightsInvalid(
                f"{where}: an entry needs exactly dtype, shape and data_offsets", file=file, rule="weights-header-json"
            )
        dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
        if dtype not in SAFETENSORS_DTYPES:
            raise WeightsInvalid(
                f"{where}: unknown dtype {dtype!r}; expected one of {sorted(SAFETENSORS_DTYPES)}",
                file=file,
                rule="weights-dtype",
            )
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise WeightsInvalid(
                f"{where}: shape must be a list of non-negative integers, got {shape!r}",
                file=file,
                rule="weights-shape",
            )
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_int(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise WeightsInvalid(
                f"{where}: data_offsets must be [begin, end] with 0 <= begin <= end, got {offsets!r}",
                file=file,
                rule="weights-offsets",
            )
        begin, end = offsets
        if end > data_length:
            raise WeightsInvalid(
                f"{where}: data_offsets end {end:,} is past the data section ({data_length:,} bytes)",
                file=file,
                rule="weights-offsets",
            )
        expected = math.prod(shape) * SAFETENSORS_DTYPES[dtype].itemsize
        if end - begin != expected:
            raise WeightsInvalid(
                f"{where}: shape {shape} of {dtype} needs {expected:,} bytes but data_offsets span {end - begin:,}",
                file=file,
                rule="weights-shape",
            )
        tensors[name] = TensorInfo(dtype=dtype, shape=tuple(shape), begin=begin, end=end)

    cursor = 0
    for name, info in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if info.begin < cursor:
            raise WeightsInvalid(
                f"tensor {name!r} overlaps the previous tensor (begins at {info.begin:,}, previous ends at {cursor:,})",
                file=file,
                rule="weights-offsets",
            )
        if info.begin > cursor:
            raise WeightsInvalid(
                f"a hole of {info.begin - cursor:,} unindexed bytes precedes tensor {name!r}",
                file=file,
                rule="weights-offsets",
            )
        cursor = info.end
    if cursor != data_length:
        raise WeightsInvalid(
            f"{data_length - cursor:,} bytes after the last tensor are not indexed by the header",
            file=file,
            rule="weights-offsets",
        )
    return WeightsHeader(tensors=tensors, metadata=metadata, data_start=data_start)


def _meta_model_facts(config: Any) -> tuple[dict[str, tuple[int, ...]], int]:
    try:
        return _cached_meta_model_facts(config)
    except TypeError:  # a plugin's config that is not hashable (not frozen): build it every time
        return _cached_meta_model_facts.__wrapped__(config)


@functools.lru_cache(maxsize=32)
def _cached_meta_model_facts(config: Any) -> tuple[dict[str, tuple[int, ...]], int]:
    from ..plugins import architecture_of_config

    model_type = architecture_of_config(config).model_type
    with torch.device("meta"):
        model = model_type(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}, model.count_parameters()


def expected_tensors(config: Any) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors the network of ``config`` (any architecture) persists (built on the meta
    device)."""
    return _meta_model_facts(config)[0]


def expected_parameter_count(config: Any) -> int:
    """Trainable parameters of the network of ``config``, counted as ``count_parameters`` counts them."""
    return _meta_model_facts(config)[1]


#: Sane bounds on a package's model config, checked before anything is built from it (even on the
#: meta device, building a config with 10**9 layers or a 10**12-wide table takes the process down).
CONFIG_LIMITS: dict[str, int] = {
    "vocab_size": 1 << 16,
    "seq_len": 1 << 14,
    "num_puzzle_identifiers": 1 << 24,
    "puzzle_emb_ndim": 1 << 14,
    "puzzle_emb_len": 1 << 10,
    "hidden_size": 1 << 14,
    "num_heads": 256,
    "expansion": 64,
    "L_layers": 64,
    "H_cycles": 64,
    "L_cycles": 64,
    "halt_max_steps": 256,
    "H_layers": 64,
}


def check_config_within_limits(config: Any, dtype: str, weights_bytes: int, file: str = "manifest.json") -> None:
    """Refuse (``ConfigOutOfBounds``) a config beyond ``CONFIG_LIMITS``, or one whose tables alone need more
    bytes than the weights file holds, before any model (even a meta-device one) is built from it."""
    from .errors import ConfigOutOfBounds

    for name, limit in CONFIG_LIMITS.items():
        value = getattr(config, name, None)  # an architecture has the fields it has
        if isinstance(value, (int, float)) and value > limit:
            raise ConfigOutOfBounds(
                f"model.config.{name} is {value:,}; at most {limit:,} is accepted",
                file=file,
                path=f"/model/config/{name}",
            )
    element = torch.empty((), dtype=MANIFEST_DTYPES[dtype]).element_size()
    table_elements = config.vocab_size * config.hidden_size + getattr(config, "num_puzzle_identifiers", 1) * getattr(
        config, "puzzle_emb_ndim", 0
    )
    if table_elements * element > weights_bytes:
        raise ConfigOutOfBounds(
            f"the config's embedding tables alone need {table_elements * element:,} bytes of "
            f"{dtype}; the weights file has {weights_bytes:,}",
            file=file,
            path="/model/config",
        )


def check_tensors_match_config(
    header: WeightsHeader, config: Any, dtype: str, file: str = "weights.safetensors"
) -> None:
    """Raise ``TensorMismatch`` unless the header holds exactly the config's tensors, shapes and ``dtype``."""
    expected = expected_tensors(config)
    missing = sorted(set(expected) - set(header.tensors))
    extra = sorted(set(header.tensors) - set(expected))
    if missing:
        raise TensorMismatch(
            f"tensors the model config requires are missing: {', '.join(missing[:8])}"
            f"{' …' if len(missing) > 8 else ''}",
            file=file,
        )
    if extra:
        raise TensorMismatch(
            f"tensors the model config does not have: {', '.join(extra[:8])}{' …' if len(extra) > 8 else ''}", file=file
        )
    want_dtype = _TORCH_TO_SAFETENSORS[MANIFEST_DTYPES[dtype]]
    for name, shape in expected.items():
        info = header.tensors[name]
        if info.shape != shape:
            raise TensorMismatch(
                f"tensor {name!r} has shape {list(info.shape)}, the model config requires {list(shape)}", file=file
            )
        if info.dtype != want_dtype:
            raise TensorMismatch(
                f"tensor {name!r} is {info.dtype}, the manifest declares model.dtype {dtype!r} ({want_dtype})",
                file=file,
            )


def tensors_from_bytes(data: memoryview, header: WeightsHeader) -> dict[str, torch.Tensor]:
    """Tensors viewing ``data`` (no copy). They are read-only views: copy before writing to them."""
    tensors: dict[str, torch.Tensor] = {}
    with warnings.catch_warnings():
        # frombuffer warns on read-only buffers; the views are only ever copied from.
        warnings.simplefilter("ignore", UserWarning)
        for name, info in header.tensors.items():
            dtype = SAFETENSORS_DTYPES[info.dtype]
            count = math.prod(info.shape)
            if count == 0:
                tensors[name] = torch.empty(info.shape, dtype=dtype)
                continue
            flat = torch.frombuffer(data, dtype=dtype, count=count, offset=header.data_start + info.begin)
            tensors[name] = flat.view(info.shape)
    return tensors


def serialize_state_dict(state_dict: dict[str, torch.Tensor], dtype: torch.dtype | None = None) -> bytes:
    """The safetensors bytes of ``state_dict`` (CPU, contiguous, optionally cast to ``dtype``)."""
    prepared = {}
    for name, tensor in state_dict.items():
        t = tensor.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        prepared[name] = t.contiguous().clone()
    return save_safetensors(prepared)


def manifest_dtype_of(state_dict: dict[str, torch.Tensor]) -> str:
    """The manifest dtype name shared by every floating tensor of ``state_dict``."""
    found = {t.dtype for t in state_dict.values() if t.is_floating_point()}
    names = {v: k for k, v in MANIFEST_DTYPES.items()}
    if len(found) != 1 or next(iter(found)) not in names:
        raise ValueError(f"a package needs one floating dtype among {sorted(MANIFEST_DTYPES)}, found {found}")
    return names[next(iter(found))]
