"""``Package``: an opened, checked package — manifest, examples, codec, and its model on demand."""

from __future__ import annotations


import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
import torch

from ..codec import TaskCodec
from ..errors import CodecError, TRMError, UnknownCodec
from ..model import ReasoningModel
from ..plugins import get_codec, get_plugin_manager
from .archive import Archive
from .errors import NoCodec, PackageError, SelfTestFailed
from .manifest import Manifest
from .task_schema import task_validator
from ..solving import ExampleResult, grade_examples, solve_inputs
from .weights import MANIFEST_DTYPES, WeightsHeader, tensors_from_bytes


@dataclass(kw_only=True, eq=False)
class Package:
    """An opened package. Build with ``open_package``; every check has passed by the time you hold one."""

    path: Path
    archive: Archive
    manifest: Manifest
    digest: str
    weights_header: WeightsHeader
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    examples: list[tuple[dict[str, Any], dict[str, Any]]]
    example_names: list[str]
    card: str
    signed_by: str | None
    _codec: tuple[pluggy.PluginManager, TaskCodec] | None = field(default=None, init=False, repr=False)

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
    def input_validator(self) -> Any:
        """The input schema's validator: local references only, patterns matched in linear time (``task_schema``)."""
        return task_validator(self.input_schema)

    def codec(self, plugins: pluggy.PluginManager | None = None) -> TaskCodec:
        """The task codec the manifest names, from ``plugins`` (default: the process's plugin manager,
        ``trm_modules.plugins.get_plugin_manager``), checked against the model config.

        ``NoCodec`` when no plugin of ``plugins`` provides it; ``PackageError`` when its parameters
        do not build it or it does not fit the model.
        """
        plugins = plugins if plugins is not None else get_plugin_manager()
        cached = self._codec
        if cached is not None and cached[0] is plugins:
            return cached[1]
        task = self.manifest.task
        try:
            codec = get_codec(task.codec, task.params, plugins)
        except UnknownCodec as exc:
            provider = task.provider
            hint = (
                f"; it came from the distribution {provider.distribution!r}"
                f"{f' {provider.version}' if provider.version else ''}: install it ({provider.install_hint()})"
                if provider is not None
                else "; install the plugin distribution that provides it (the package does not name one)"
            )
            raise NoCodec(
                f"the package's task codec {task.codec!r} is not available: {exc}{hint}",
                file="manifest.json",
                path="/task/codec",
            ) from exc
        except TRMError as exc:
            raise PackageError(
                f"cannot build the package's codec {task.codec!r}: {exc}",
                file="manifest.json",
                rule="codec",
                path="/task",
            ) from exc
        config = self.manifest.model.config
        if (codec.vocab_size, codec.seq_len) != (config.vocab_size, config.seq_len):
            raise PackageError(
                f"codec {task.codec} {task.params} has vocab {codec.vocab_size} and length {codec.seq_len}; the "
                f"model config has vocab {config.vocab_size} and length {config.seq_len}",
                file="manifest.json",
                rule="codec-mismatch",
                path="/task",
            )
        self._codec = (plugins, codec)
        return codec

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The shipped tensors as read-only views of the archive (copy before modifying)."""
        weights = self.archive.read(self.manifest.model.weights)
        return tensors_from_bytes(weights, self.weights_header)

    def load_model(self, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> ReasoningModel:
        """The packaged network (its architecture's class) with its shipped (EMA) weights and calibrated halting, in eval mode, on ``device``.

        ``dtype`` defaults to the dtype the weights are shipped in (``manifest.model.dtype``).
        """
        dtype = dtype or MANIFEST_DTYPES[self.manifest.model.dtype]
        from ..plugins import get_architecture

        architecture = get_architecture(self.manifest.model.architecture)
        model = architecture.from_state_dict(self.manifest.model.config, self.state_dict(), device, dtype)
        halting = self.halting
        if halting:
            model.use_halting(halting.get("threshold"), halting.get("min_steps", 1))
        return model

    @property
    def halting(self) -> dict | None:
        """The halting policy calibrated for this package (``evaluation.halting``), or None (q_halt > 0)."""
        evaluation = self.manifest.evaluation
        halting = (evaluation.model_extra or {}).get("halting") if evaluation is not None else None
        return halting if isinstance(halting, dict) else None

    def self_test(
        self,
        model: ReasoningModel | None = None,
        device: str | torch.device = "cpu",
        plugins: pluggy.PluginManager | None = None,
    ) -> list[ExampleResult]:
        """Run the shipped examples; raise ``SelfTestFailed`` naming the first example that fails.

        An example passes when the model's answer equals its output, or when the codec judges the
        answer valid (a task with several right answers).
        """
        if not self.examples:
            return []
        codec = self.codec(plugins)
        for name, (inp, _) in zip(self.example_names, self.examples):
            try:  # an example the task's codec refuses is the package's fault: a refusal, not a crash
                codec.encode_input(inp)
            except CodecError as exc:
                raise SelfTestFailed(
                    f"example {name}: the task codec refuses its input: {exc.message}",
                    file=f"examples/{name}.input.json",
                    path=exc.path,
                ) from exc
        model = model if model is not None else self.load_model(device)
        answers = solve_inputs(model, codec, [inp for inp, _ in self.examples])
        results = grade_examples(self.example_names, self.examples, answers)
        SelfTestFailed.raise_for(results, self.examples)
        return results
