"""ImageNet-1k class ids (wnids) and the 200-class subsets of ImageNet-A, -R and -O.

A 1000-class model is scored on a 200-class dataset by keeping only the subset's logits:
:class:`ClassSubset` knows the subset's indices into the 1000 ImageNet classes (``indices``), the
boolean ``mask`` over the 1000 classes, and :meth:`ClassSubset.restrict` picks those logit
columns. Datasets of a subset label their images ``0..len(subset)-1`` in sorted-wnid order, which
is the order of ``restrict``'s columns (the ImageNet class index order is the sorted-wnid order),
so ``restrict(model(x)).argmax(1) == label`` is a correct prediction. :class:`SubsetLogits` wraps
a model so that any evaluation (attacks, corruptions) sees the 200-way model.

The three 200-wnid lists are facts from the datasets' reference code (Hendrycks et al.); the
1000 ImageNet wnids come with timm (``timm.data.ImageNetInfo``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from robustart.errors import ConfigError, DatasetNotFoundError
from robustart.registry import Registry


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k wnids in class-index order (sorted), e.g. ``n01440764`` is 0."""
    from timm.data import ImageNetInfo

    return tuple(ImageNetInfo().label_names())


@functools.cache
def imagenet_wnid_to_index() -> dict[str, int]:
    """``{wnid: ImageNet-1k class index}``."""
    return {wnid: i for i, wnid in enumerate(imagenet_wnids())}


def wnid_indices(wnids: Iterable[str], what: str = "class folders") -> list[int]:
    """ImageNet-1k indices of ``wnids``.

    Raises:
        DatasetNotFoundError: naming the entries that are not ImageNet-1k wnids.
    """
    lookup = imagenet_wnid_to_index()
    wnids = list(wnids)
    unknown = [w for w in wnids if w not in lookup]
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise DatasetNotFoundError(
            f"{what} must be ImageNet-1k wnids such as n01440764; not recognised: {shown}"
        )
    return [lookup[w] for w in wnids]


def _wnid_list(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: The 200 ImageNet-1k classes of ImageNet-A (sorted wnids; from the dataset's reference code).
IMAGENET_A_WNIDS: tuple[str, ...] = _wnid_list(
    """
    n01498041 n01531178 n01534433 n01558993 n01580077 n01614925 n01616318 n01631663
    n01641577 n01669191 n01677366 n01687978 n01694178 n01698640 n01735189 n01770081
    n01770393 n01774750 n01784675 n01819313 n01820546 n01833805 n01843383 n01847000
    n01855672 n01882714 n01910747 n01914609 n01924916 n01944390 n01985128 n01986214
    n02007558 n02009912 n02037110 n02051845 n02077923 n02085620 n02099601 n02106550
    n02106662 n02110958 n02119022 n02123394 n02127052 n02129165 n02133161 n02137549
    n02165456 n02174001 n02177972 n02190166 n02206856 n02219486 n02226429 n02231487
    n02233338 n02236044 n02259212 n02268443 n02279972 n02280649 n02281787 n02317335
    n02325366 n02346627 n02356798 n02361337 n02410509 n02445715 n02454379 n02486410
    n02492035 n02504458 n02655020 n02669723 n02672831 n02676566 n02690373 n02701002
    n02730930 n02777292 n02782093 n02787622 n02793495 n02797295 n02802426 n02814860
    n02815834 n02837789 n02879718 n02883205 n02895154 n02906734 n02948072 n02951358
    n02980441 n02992211 n02999410 n03014705 n03026506 n03124043 n03125729 n03187595
    n03196217 n03223299 n03250847 n03255030 n03291819 n03325584 n03355925 n03384352
    n03388043 n03417042 n03443371 n03444034 n03445924 n03452741 n03483316 n03584829
    n03590841 n03594945 n03617480 n03666591 n03670208 n03717622 n03720891 n03721384
    n03724870 n03775071 n03788195 n03804744 n03837869 n03840681 n03854065 n03888257
    n03891332 n03935335 n03982430 n04019541 n04033901 n04039381 n04067472 n04086273
    n04099969 n04118538 n04131690 n04133789 n04141076 n04146614 n04147183 n04179913
    n04208210 n04235860 n04252077 n04252225 n04254120 n04270147 n04275548 n04310018
    n04317175 n04344873 n04347754 n04355338 n04366367 n04376876 n04389033 n04399382
    n04442312 n04456115 n04482393 n04507155 n04509417 n04532670 n04540053 n04554684
    n04562935 n04591713 n04606251 n07583066 n07695742 n07697313 n07697537 n07714990
    n07718472 n07720875 n07734744 n07749582 n07753592 n07760859 n07768694 n07831146
    n09229709 n09246464 n09472597 n09835506 n11879895 n12057211 n12144580 n12267677
    """
)

#: The 200 ImageNet-1k classes of ImageNet-R (sorted wnids; from the dataset's reference code).
IMAGENET_R_WNIDS: tuple[str, ...] = _wnid_list(
    """
    n01443537 n01484850 n01494475 n01498041 n01514859 n01518878 n01531178 n01534433
    n01614925 n01616318 n01630670 n01632777 n01644373 n01677366 n01694178 n01748264
    n01770393 n01774750 n01784675 n01806143 n01820546 n01833805 n01843383 n01847000
    n01855672 n01860187 n01882714 n01910747 n01944390 n01983481 n01986214 n02007558
    n02009912 n02051845 n02056570 n02066245 n02071294 n02077923 n02085620 n02086240
    n02088094 n02088238 n02088364 n02088466 n02091032 n02091134 n02092339 n02094433
    n02096585 n02097298 n02098286 n02099601 n02099712 n02102318 n02106030 n02106166
    n02106550 n02106662 n02108089 n02108915 n02109525 n02110185 n02110341 n02110958
    n02112018 n02112137 n02113023 n02113624 n02113799 n02114367 n02117135 n02119022
    n02123045 n02128385 n02128757 n02129165 n02129604 n02130308 n02134084 n02138441
    n02165456 n02190166 n02206856 n02219486 n02226429 n02233338 n02236044 n02268443
    n02279972 n02317335 n02325366 n02346627 n02356798 n02363005 n02364673 n02391049
    n02395406 n02398521 n02410509 n02423022 n02437616 n02445715 n02447366 n02480495
    n02480855 n02481823 n02483362 n02486410 n02510455 n02526121 n02607072 n02655020
    n02672831 n02701002 n02749479 n02769748 n02793495 n02797295 n02802426 n02808440
    n02814860 n02823750 n02841315 n02843684 n02883205 n02906734 n02909870 n02939185
    n02948072 n02950826 n02951358 n02966193 n02980441 n02992529 n03124170 n03272010
    n03345487 n03372029 n03424325 n03452741 n03467068 n03481172 n03494278 n03495258
    n03498962 n03594945 n03602883 n03630383 n03649909 n03676483 n03710193 n03773504
    n03775071 n03888257 n03930630 n03947888 n04086273 n04118538 n04133789 n04141076
    n04146614 n04147183 n04192698 n04254680 n04266014 n04275548 n04310018 n04325704
    n04347754 n04389033 n04409515 n04465501 n04487394 n04522168 n04536866 n04552348
    n04591713 n07614500 n07693725 n07695742 n07697313 n07697537 n07714571 n07714990
    n07718472 n07720875 n07734744 n07742313 n07745940 n07749582 n07753275 n07753592
    n07768694 n07873807 n07880968 n07920052 n09472597 n09835506 n10565667 n12267677
    """
)

#: The 200 ImageNet-1k classes whose logits the ImageNet-O reference evaluation keeps (sorted).
IMAGENET_O_WNIDS: tuple[str, ...] = _wnid_list(
    """
    n01443537 n01704323 n01770081 n01784675 n01819313 n01820546 n01910747 n01917289
    n01968897 n02074367 n02317335 n02319095 n02395406 n02454379 n02606052 n02655020
    n02666196 n02672831 n02730930 n02777292 n02783161 n02786058 n02787622 n02791270
    n02808304 n02817516 n02841315 n02865351 n02877765 n02892767 n02906734 n02910353
    n02916936 n02948072 n02965783 n03000134 n03000684 n03017168 n03026506 n03032252
    n03075370 n03109150 n03126707 n03134739 n03160309 n03196217 n03207743 n03218198
    n03223299 n03240683 n03271574 n03291819 n03297495 n03314780 n03325584 n03344393
    n03347037 n03372029 n03376595 n03388043 n03388183 n03400231 n03445777 n03457902
    n03467068 n03482405 n03483316 n03494278 n03530642 n03544143 n03584829 n03590841
    n03598930 n03602883 n03649909 n03661043 n03666591 n03676483 n03692522 n03706229
    n03717622 n03720891 n03721384 n03724870 n03729826 n03733131 n03733281 n03742115
    n03786901 n03788365 n03794056 n03804744 n03814639 n03814906 n03825788 n03840681
    n03843555 n03854065 n03857828 n03868863 n03874293 n03884397 n03891251 n03908714
    n03920288 n03929660 n03930313 n03937543 n03942813 n03944341 n03961711 n03970156
    n03982430 n03991062 n03995372 n03998194 n04005630 n04023962 n04033901 n04040759
    n04067472 n04074963 n04116512 n04118776 n04125021 n04127249 n04131690 n04141975
    n04153751 n04154565 n04201297 n04204347 n04209133 n04209239 n04228054 n04235860
    n04243546 n04252077 n04254120 n04258138 n04265275 n04270147 n04275548 n04330267
    n04332243 n04336792 n04347754 n04371430 n04371774 n04372370 n04376876 n04409515
    n04417672 n04418357 n04423845 n04429376 n04435653 n04442312 n04482393 n04501370
    n04507155 n04525305 n04542943 n04554684 n04557648 n04562935 n04579432 n04591157
    n04597913 n04599235 n06785654 n06874185 n07615774 n07693725 n07695742 n07697537
    n07711569 n07714990 n07715103 n07716358 n07717410 n07718472 n07720875 n07742313
    n07745940 n07747607 n07749582 n07753275 n07753592 n07754684 n07768694 n07836838
    n07871810 n07873807 n07880968 n09229709 n09472597 n12144580 n12267677 n13052670
    """
)


@dataclass(frozen=True)
class ClassSubset:
    """A subset of the 1000 ImageNet classes, in ImageNet index order.

    Attributes:
        name: Label of the subset (``"imagenet_a"``, ``"folders"``, ...).
        wnids: The subset's wnids, sorted (= ImageNet index order).
    """

    name: str
    wnids: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.wnids:
            raise ConfigError(f"class subset {self.name!r} is empty")
        if len(set(self.wnids)) != len(self.wnids):
            raise ConfigError(f"class subset {self.name!r} lists a wnid twice")
        wnid_indices(self.wnids, f"the wnids of class subset {self.name!r}")
        object.__setattr__(self, "wnids", tuple(sorted(self.wnids)))

    @classmethod
    def from_wnids(cls, wnids: Iterable[str], name: str = "custom") -> ClassSubset:
        """A subset from any iterable of ImageNet-1k wnids (sorted for you)."""
        return cls(name, tuple(wnids))

    @classmethod
    def from_folder(cls, root: str | Path) -> ClassSubset:
        """The subset formed by the wnid class folders present under ``root``."""
        root = Path(root)
        if not root.is_dir():
            raise DatasetNotFoundError(f"folder not found: {root}; expected {root}/<wnid>/<images>")
        names = sorted(d.name for d in root.iterdir() if d.is_dir())
        if not names:
            raise DatasetNotFoundError(f"no class folders in {root}; expected {root}/<wnid>/...")
        wnid_indices(names, f"the class folders of {root}")
        return cls("folders", tuple(names))

    def __len__(self) -> int:
        return len(self.wnids)

    @property
    def indices(self) -> Tensor:
        """(len,) int64 indices into the 1000 ImageNet classes, increasing."""
        return torch.tensor(wnid_indices(self.wnids), dtype=torch.long)

    @property
    def mask(self) -> Tensor:
        """(1000,) bool, True on the subset's classes."""
        mask = torch.zeros(len(imagenet_wnids()), dtype=torch.bool)
        mask[self.indices] = True
        return mask

    def label_of(self, wnid: str) -> int:
        """Subset label (0-based position) of ``wnid``."""
        try:
            return self.wnids.index(wnid)
        except ValueError:
            raise ConfigError(f"{wnid} is not in class subset {self.name!r}") from None

    def restrict(self, logits: Tensor) -> Tensor:
        """Keep the subset's columns of (N, 1000) logits → (N, len(subset))."""
        if logits.ndim != 2 or logits.shape[1] != len(imagenet_wnids()):
            raise ConfigError(
                f"expected (N, 1000) ImageNet logits to restrict to {self.name!r}, got shape "
                f"{tuple(logits.shape)}"
            )
        return logits[:, self.indices.to(logits.device)]

    def to_imagenet_labels(self, labels: Tensor) -> Tensor:
        """Map subset labels (0..len-1) to ImageNet-1k class indices."""
        return self.indices.to(labels.device)[labels]


class SubsetLogits(nn.Module):
    """Wraps a 1000-class ImageNet model so that it outputs only a subset's logits.

    Args:
        model: Any module mapping images (N, 3, H, W) in [0, 1] to (N, 1000) logits.
        subset: The class subset (e.g. ``CLASS_SUBSETS.get("imagenet_a")()``).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 1000))
        >>> wrapped = SubsetLogits(model, imagenet_subset("imagenet_r"))
        >>> wrapped(torch.rand(8, 3, 8, 8)).shape
        torch.Size([8, 200])
    """

    def __init__(self, model: nn.Module, subset: ClassSubset) -> None:
        super().__init__()
        self.model = model
        self.subset = subset
        self.register_buffer("indices", subset.indices, persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        logits = self.model(images)
        if logits.ndim != 2 or logits.shape[1] != len(imagenet_wnids()):
            raise ConfigError(
                f"SubsetLogits needs a 1000-class ImageNet model, got logits of shape "
                f"{tuple(logits.shape)}"
            )
        return logits[:, self.indices]


#: Registry of the known subsets: name → factory returning a :class:`ClassSubset`.
CLASS_SUBSETS: Registry = Registry("class subset")
_KNOWN: dict[str, Sequence[str]] = {
    "imagenet_a": IMAGENET_A_WNIDS,
    "imagenet_r": IMAGENET_R_WNIDS,
    "imagenet_o": IMAGENET_O_WNIDS,
}
for _name, _wnids in _KNOWN.items():
    CLASS_SUBSETS.register(_name)(functools.partial(ClassSubset, _name, tuple(_wnids)))


def imagenet_subset(name: str) -> ClassSubset:
    """The known subset ``name`` (``imagenet_a``, ``imagenet_r``, ``imagenet_o``)."""
    return CLASS_SUBSETS.get(name)()


def resolve_subset(subset: str | ClassSubset | Iterable[str], root: str | Path) -> ClassSubset:
    """A :class:`ClassSubset` from a known name, ``"folders"`` (the class folders present
    under ``root``), a subset, or an iterable of wnids."""
    if isinstance(subset, ClassSubset):
        return subset
    if isinstance(subset, str):
        return ClassSubset.from_folder(root) if subset == "folders" else imagenet_subset(subset)
    return ClassSubset.from_wnids(subset)
