"""Reading a training run directory (the output of ``trm train``, the input of ``trm pack``)."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from ..codec import TaskCodec
from ..errors import ConfigError
from ..model import TRM, TRMConfig
from ..plugins import get_codec

RUN_FILES = ("model.safetensors", "config.json", "task.json")


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[TRM, TaskCodec]:
    """The EMA model and task codec of a finished run."""
    run_dir = Path(run_dir)
    missing = [f for f in RUN_FILES if not (run_dir / f).exists()]
    if missing:
        raise ConfigError(f"{run_dir} is not a finished training run: missing {', '.join(missing)}")
    config = TRMConfig.model_validate_json((run_dir / "config.json").read_text())
    task = json.loads((run_dir / "task.json").read_text())
    model = TRM(config)
    model.load_state_dict(load_file(run_dir / "model.safetensors"))
    return model.to(device).eval(), get_codec(task["codec"], task.get("params", {}))
