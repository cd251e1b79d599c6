"""``Package``: an opened, checked package — manifest, examples, codec, and its model on demand."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..codec import TaskCodec
from ..errors import TRMError
from ..model import TRM, TRMConfig
from ..model.trm import RotaryEmbedding
from .archive import Archive
from .errors import PackageError, SelfTestFailed
from .manifest import Manifest
from .solving import ItemError, solve_inputs
from .weights import MANIFEST_DTYPES, WeightsHeader, tensors_from_bytes

#: Non-persistent buffers a meta-built TRM recomputes instead of loading (see ``empty_model``).
_RECOMPUTED_BUFFERS = {"rope.cos", "rope.sin"}


def _meta_model(config: TRMConfig) -> tuple[TRM, bool]:
    """A shape-only TRM, and whether its non-persistent buffers are all ones this module recomputes."""
    with torch.device("meta"):
        model = TRM(config)
    persistent = set(model.state_dict())
    computed = {name for name, _ in model.named_buffers()} - persistent
    return model, computed <= _RECOMPUTED_BUFFERS


def _computed_buffers(model: TRM) -> dict[str, torch.Tensor]:
    """The non-persistent buffers of a meta build: the RoPE tables, computed on the CPU (``RotaryEmbedding``)."""
    persistent = set(model.state_dict())
    return {name: t for name, t in model.named_buffers() if name not in persistent}


def _place_buffers(model: TRM, buffers: dict[str, torch.Tensor], device: str | torch.device,
                   dtype: torch.dtype) -> TRM:
    """Put ``buffers`` (name → tensor, from ``_computed_buffers``) into ``model`` on ``device`` in ``dtype``."""
    for name, tensor in buffers.items():
        owner, _, leaf = name.rpartition(".")
        model.get_submodule(owner).register_buffer(leaf, tensor.to(device=device, dtype=dtype), persistent=False)
    return model


def empty_model(config: TRMConfig, device: str | torch.device, dtype: torch.dtype) -> TRM:
    """A TRM with uninitialised parameters on ``device``: skips the random init that loading overwrites.

    Falls back to an ordinary (initialised) build if the model gains non-persistent buffers this
    function does not know how to recompute.
    """
    model, known = _meta_model(config)
    if not known:
        return TRM(config).to(device=device, dtype=dtype)
    buffers = _computed_buffers(model)
    return _place_buffers(model.to(dtype=dtype).to_empty(device=device), buffers, device, dtype)


def model_from_tensors(config: TRMConfig, tensors: dict[str, torch.Tensor], device: str | torch.device,
                       dtype: torch.dtype) -> TRM:
    """A TRM in eval mode whose parameters and buffers are copies of ``tensors`` on ``device`` in ``dtype``.

    Each tensor is copied once, straight into the tensor the model keeps (no allocation of an
    empty model first and a second copy into it). ``tensors`` must match the config exactly.
    """
    model, known = _meta_model(config)
    if not known:
        model = TRM(config).to(device=device, dtype=dtype)
        model.load_state_dict(tensors, strict=True)
        return model.eval()
    owned = {name: t.to(device=device, dtype=dtype, copy=True) for name, t in tensors.items()}
    model.load_state_dict(owned, strict=True, assign=True)
    return _place_buffers(model, _computed_buffers(model), device, dtype).eval()


@dataclass
class ExampleResult:
    """One example of the self-test: passed when the answer equals the output or the codec accepts it."""

    name: str
    passed: bool
    exact: bool
    steps: int


class Package:
    """An opened package. Build with ``open_package``; every check has passed by the time you hold one."""

    def __init__(self, *, path: Path, archive: Archive, manifest: Manifest, digest: str,
                 weights_header: WeightsHeader, input_schema: dict[str, Any], output_schema: dict[str, Any],
                 examples: list[tuple[dict[str, Any], dict[str, Any]]], example_names: list[str],
                 card: str, signed_by: str | None) -> None:
        self.path = path
        self.archive = archive
        self.manifest = manifest
        self.digest = digest
        self.weights_header = weights_header
        self.input_schema = input_schema
        self.output_schema = output_schema
        self.examples = examples
        self.example_names = example_names
        self.card = card
        self.signed_by = signed_by

    def __repr__(self) -> str:
        return f"<Package {self.manifest.name}@{self.manifest.version} {self.digest[:19]}… {self.path}>"

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    def read_file(self, name: str) -> bytes:
        """The bytes of archive member ``name``."""
        if name not in self.archive:
            raise PackageError(f"the package has no file {name!r}", file=name, rule="missing-file")
        return bytes(self.archive.read(name))

    @functools.cached_property
    def _codec(self) -> TaskCodec:
        from ..plugins import get_codec

        task = self.manifest.task
        try:
            codec = get_codec(task.codec, task.params)
        except TRMError as exc:
            raise PackageError(f"cannot build the package's codec {task.codec!r}: {exc}", file="manifest.json",
                               rule="codec", path="/task") from exc
        config = self.manifest.model.config
        if (codec.vocab_size, codec.seq_len) != (config.vocab_size, config.seq_len):
            raise PackageError(
                f"codec {task.codec} {task.params} has vocab {codec.vocab_size} and length {codec.seq_len}; the "
                f"model config has vocab {config.vocab_size} and length {config.seq_len}", file="manifest.json",
                rule="codec-mismatch", path="/task")
        return codec

    def codec(self) -> TaskCodec:
        """The task codec named by the manifest (a plugin must provide it), checked against the model config."""
        return self._codec

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The shipped tensors as read-only views of the archive (copy before modifying)."""
        weights = self.archive.read(self.manifest.model.weights)
        return tensors_from_bytes(weights, self.weights_header)

    def load_model(self, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> TRM:
        """The packaged TRM with its shipped (EMA) weights, in eval mode, on ``device``.

        ``dtype`` defaults to the dtype the weights are shipped in (``manifest.model.dtype``).
        """
        dtype = dtype or MANIFEST_DTYPES[self.manifest.model.dtype]
        return model_from_tensors(self.manifest.model.config, self.state_dict(), device, dtype)

    def self_test(self, model: TRM | None = None, device: str | torch.device = "cpu") -> list[ExampleResult]:
        """Run the shipped examples; raise ``SelfTestFailed`` naming the first example that fails.

        An example passes when the model's answer equals its output, or when the codec judges the
        answer valid (a task with several right answers).
        """
        if not self.examples:
            return []
        model = model if model is not None else self.load_model(device)
        codec = self.codec()
        answers = solve_inputs(model, codec, [inp for inp, _ in self.examples])
        results = []
        for name, (inp, expected), answer in zip(self.example_names, self.examples, answers):
            if isinstance(answer, ItemError):
                raise SelfTestFailed(f"example {name}: {answer.message}", file=f"examples/{name}.output.json",
                                     path=answer.path)
            exact = answer.output == expected
            results.append(ExampleResult(name=name, passed=exact or answer.valid is True, exact=exact,
                                         steps=answer.steps))
        for result in results:
            if not result.passed:
                raise SelfTestFailed(
                    f"example {result.name}: the model's answer differs from the expected output and the codec "
                    "does not accept it (weights damaged, or a numerically different device/dtype)",
                    file=f"examples/{result.name}.output.json")
        return results
