"""Per-image augmentation policies, applied in the DataLoader (datamodule option).

AutoAugment, RandAugment, TrivialAugment and AugMix draw their operations *per image*: every
image of a batch gets its own sub-policy, as in the original methods. They therefore run where
images are still single: in the data loader, on each image after the datamodule's own crop and
flip, through torchvision's ``transforms.v2`` (which draws its random choices on every call,
i.e. per image) on float tensors (C, H, W) in [0, 1]. Kornia's batch versions draw one
sub-policy for the whole batch, which is a different method.

Datamodules take the policy as a plain mapping::

    data:
      init_args:
        augment_policy: {name: autoaugment, policy: cifar10}
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.utils.data import get_worker_info

from robustart.errors import ConfigError
from robustart.registry import Registry

#: Registry of per-image augmentation policies.
AUGMENT_POLICIES: Registry[type[AugmentPolicy]] = Registry("augmentation policy")


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run per-image tensor operations with one intra-op thread.

    Operations on one small image are dominated by thread synchronisation: with 2+ threads,
    a 32×32 AutoAugment image takes 20–40× longer than with one. DataLoader workers already
    run single-threaded; this also covers ``num_workers: 0``.
    """
    threads = torch.get_num_threads()
    if threads == 1 or get_worker_info() is not None:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class AugmentPolicy:
    """Base class: a random per-image transformation ``image (C, H, W) float in [0, 1] →
    image``, or (``views > 1``) a stack of views (V, C, H, W).

    Subclasses set :attr:`transform` (a callable on one image) or override :meth:`apply`.
    """

    name: ClassVar[str] = ""
    #: Images returned per input image: 1, or V views stacked as (V, C, H, W).
    views: int = 1
    transform: Callable[[Tensor], Tensor]

    def apply(self, image: Tensor) -> Tensor:
        """Transform one image (C, H, W) in [0, 1]."""
        return self.transform(image)

    def __call__(self, image: Tensor) -> Tensor:
        with single_threaded():
            return self.apply(image)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transform!r})"


def build_augment_policy(spec: dict[str, Any] | None) -> AugmentPolicy | None:
    """Instantiate a policy from ``{name: ..., <settings>}`` (``None``: no policy).

    Raises:
        UnknownNameError: unknown policy name (close matches are suggested).
        ConfigError: malformed spec or bad settings.
    """
    if spec is None:
        return None
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError(
            f"augment_policy must be a mapping with a 'name' (one of "
            f"{', '.join(AUGMENT_POLICIES.names())}), got {spec!r}"
        )
    settings = copy.deepcopy(dict(spec))
    cls = AUGMENT_POLICIES.get(settings.pop("name"))
    try:
        return cls(**settings)
    except TypeError as err:
        raise ConfigError(f"bad settings for augmentation policy {cls.name!r}: {err}") from None
