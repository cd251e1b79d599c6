"""``Architecture``: what a plugin hands the core so that a reasoning network is packed, trained and served.

An architecture is contributed by name through the ``trm_register_architectures`` hook (see
``trm_modules.hookspecs``); TRM and HRM are the built-in ones (``trm_modules.architectures``). The
manifest's ``model.architecture`` names one, and ``trm_modules.plugins.get_architecture`` resolves it,
refusing a name no installed plugin provides with ``UnknownArchitecture``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from pydantic import BaseModel

from ..errors import ConfigError
from .reasoning import ReasoningModel


@dataclass(frozen=True)
class Architecture:
    """One architecture: its config model, its network class and what it supports.

    - ``config_type``: a pydantic model of the whole config (task shape included: ``vocab_size``,
      ``seq_len``, ``halt_max_steps`` …); serialised into every manifest and run directory.
    - ``model_type``: a ``ReasoningModel`` subclass built as ``model_type(config)``; it carries the
      supervision-step contract (``deep_recursion``: carry in, answer logits and halting logits out),
      its halting rule (``halting_logit``) and its training loss (``supervision_loss``).
    - ``presets``: named configs for ``trm model-info --preset``.
    - ``onnx_step``: its ``deep_recursion`` traces to one ONNX graph (the host's ``onnx`` engine, the
      browser step graph); ``browser_export``: the browser activities (SCORM/cmi5) may ship it.
    """

    name: str
    config_type: type[BaseModel]
    model_type: type[ReasoningModel]
    presets: Mapping[str, BaseModel] = field(default_factory=dict)
    description: str = ""
    onnx_step: bool = True
    browser_export: bool = True

    def config(self, data: Mapping[str, Any] | BaseModel) -> Any:
        """``data`` validated as this architecture's config; ``ConfigError`` saying what is wrong."""
        if isinstance(data, self.config_type):
            return data
        try:
            return self.config_type.model_validate(dict(data) if isinstance(data, Mapping) else data.model_dump())
        except ValueError as exc:
            raise ConfigError(f"not a valid {self.name} config: {exc}") from exc

    def build(self, config: Any) -> ReasoningModel:
        """A freshly initialised network of ``config``."""
        return self.model_type(self.config(config))

    def from_state_dict(
        self, config: Any, tensors: Mapping[str, Any], device: Any = "cpu", dtype: Any = None
    ) -> ReasoningModel:
        """The network of ``config`` holding ``tensors`` (strictly), in eval mode."""
        model: ReasoningModel = self.model_type.from_state_dict(self.config(config), tensors, device, dtype)
        return model

    def parameter_count(self, config: Any) -> int:
        """Trainable parameters of ``config``'s network, counted without allocating it."""
        import torch

        with torch.device("meta"):
            return self.model_type(self.config(config)).count_parameters()
