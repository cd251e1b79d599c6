"""Reading a training run directory (the output of ``trm train``, the input of ``trm pack``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from safetensors.torch import load_file

from ..codec import TaskCodec
from ..errors import ConfigError, TRMError
from ..model import ReasoningModel
from ..plugins import get_architecture, get_codec

RUN_FILES = ("model.safetensors", "config.json", "task.json")
#: ``{"name": architecture}`` beside config.json; a run without it trained a TRM (runs before architectures).
ARCHITECTURE_FILE = "architecture.json"


class RunInvalid(ConfigError):
    """A run directory that cannot be read; ``file`` names the file at fault."""

    def __init__(self, message: str, file: str) -> None:
        super().__init__(message)
        self.message = message
        self.file = file


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise RunInvalid(f"cannot read {path}: {exc}", str(path)) from exc


def load_run(
    run_dir: str | Path, device: str = "cpu", task: Mapping[str, Any] | None = None
) -> tuple[ReasoningModel, TaskCodec]:
    """The EMA model (eval mode, on ``device``) and task codec of a finished run.

    ``task`` (``{"codec": name, "params": {…}}``) replaces the run's task.json. Raises
    ``RunInvalid`` naming the missing or broken file.
    """
    run_dir = Path(run_dir)
    missing = [f for f in RUN_FILES if not (run_dir / f).is_file()]
    if missing:
        raise RunInvalid(f"{run_dir} is not a finished training run: missing {', '.join(missing)}", str(run_dir))
    named = _read_json(run_dir / ARCHITECTURE_FILE) if (run_dir / ARCHITECTURE_FILE).is_file() else {"name": "trm"}
    try:
        architecture = get_architecture(str(named.get("name") if isinstance(named, dict) else named))
        config = architecture.config(_read_json(run_dir / "config.json"))
    except ValueError as exc:
        if isinstance(exc, RunInvalid):
            raise
        raise RunInvalid(f"{run_dir / 'config.json'}: {exc}", "config.json") from exc
    task = dict(task) if task is not None else _read_json(run_dir / "task.json")
    try:
        codec = get_codec(task["codec"], task.get("params", {}))
    except (KeyError, TypeError, AttributeError) as exc:
        raise RunInvalid(f"task must be {{'codec': name, 'params': {{…}}}}, got {task!r}", "task.json") from exc
    except TRMError as exc:
        raise RunInvalid(f"cannot build the run's codec: {exc}", "task.json") from exc
    model = architecture.build(config)
    try:
        model.load_state_dict(load_file(run_dir / "model.safetensors"))
    except (RuntimeError, OSError, ValueError) as exc:
        raise RunInvalid(f"the run's weights do not fit its config: {exc}", "model.safetensors") from exc
    return model.to(device).eval(), codec
