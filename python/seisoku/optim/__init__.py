"""Optimizers with every norm penalty and constraint fused into one pass over memory.

``SGD``, ``Adam``, ``AdamW``, ``RMSprop`` and ``Adagrad`` follow torch.optim's update rules
and its argument names (``weight_decay`` coupled, decoupled for ``AdamW`` or with
``decoupled_weight_decay=True``) and take the same regularization arguments in the lecture's
terms: coupled ``l2``, ``l1`` (proximal or subgradient; with ``l2``: elastic net), ``max_norm``
(per-unit constraint, None: off), ``clip_value`` and the optimizer-wide ``clip_grad_norm``.
Biases and other 1-D parameters are exempt from penalties unless a group sets
``regularize=True``. ``lr_scheduler`` holds learning-rate schedules (step, cosine, warm-up).
"""

from __future__ import annotations

from . import lr_scheduler
from .optimizer import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, max_norm_project

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "lr_scheduler",
    "max_norm_project",
]
