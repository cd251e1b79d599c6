"""Deep-supervision trainer, generated datasets, augmentation and evaluation."""

from .evaluate import EvalReport, evaluate, plot_report
from .recipe import Recipe, load_recipe
from .trainer import Trainer, TrainProgress, train

__all__ = ["EvalReport", "evaluate", "plot_report", "Recipe", "load_recipe", "Trainer", "TrainProgress", "train"]
