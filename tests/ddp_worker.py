"""Run by tests/test_train.py under torchrun: trains a few steps and saves this rank's weights."""

import sys
from pathlib import Path

import torch.distributed as dist
from safetensors.torch import save_file

from trm_modules.train import Trainer, load_recipe

recipe_path, out_dir = sys.argv[1], Path(sys.argv[2])
recipe = load_recipe(
    recipe_path,
    {
        "train.steps": 4,
        "train.batch_size": 16,
        "data.train_puzzles": 64,
        "data.test_puzzles": 16,
        "train.eval_every": 1000,
    },
)
trainer = Trainer(recipe, out_dir / "run")
trainer.run()
rank = dist.get_rank()
save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, out_dir / f"rank{rank}.safetensors")
save_file({k: v.contiguous() for k, v in trainer.ema.shadow.items()}, out_dir / f"ema{rank}.safetensors")
dist.destroy_process_group()
