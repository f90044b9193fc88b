"""grit-lite: learn GRIT (grounded reasoning with images, trained by GRPO-GR) by building it.

Each notebook topic has one module: ``format`` (01), ``boxes`` (02), ``rewards`` (03),
``grpo`` (04), ``data``/``world``/``tiny`` (05), ``train`` (06), ``evaluate`` (07).
"""

from __future__ import annotations

import random

__version__ = "0.1.0"


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch so notebook outputs reproduce under nbval.

    torch is imported lazily: notebooks 01-03 must not pay for it at import time.
    """
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        pass
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
