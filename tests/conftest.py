"""Test-wide settings.

Tests use tiny models, for which one intra-op thread is fastest; on a small shared machine more
threads oversubscribe the cores and make matmuls orders of magnitude slower.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
