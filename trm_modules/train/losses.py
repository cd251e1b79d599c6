"""Losses of deep supervision (defined beside the networks in ``trm_modules.model.losses``, whose
``supervision_loss`` uses them; re-exported here for the trainer and its callers)."""

from ..model.losses import IGNORE_LABEL, deep_supervision_loss, log_stablemax, token_cross_entropy

__all__ = ["IGNORE_LABEL", "deep_supervision_loss", "log_stablemax", "token_cross_entropy"]
