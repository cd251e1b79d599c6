"""Test-wide settings.

Tests use tiny models, for which one intra-op thread is fastest; on a small shared machine more
threads oversubscribe the cores and make matmuls orders of magnitude slower.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
# Servers and `trm solve` in tests compute tiny models on one thread with the eager engine; the tests of
# the measured choices (auto engine, precision) ask for them by argument.
os.environ.setdefault("TRM_CPU_THREADS", "1")
os.environ.setdefault("TRM_ENGINE", "eager")

import torch  # noqa: E402

torch.set_num_threads(1)
