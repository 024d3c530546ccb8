"""The registry of robustart's own architectures (the small-image models timm lacks)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from robustart.registry import Registry

#: Builders ``(num_classes, in_chans, **kwargs) -> nn.Module`` returning logits.
MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
