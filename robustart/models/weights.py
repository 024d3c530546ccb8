"""Loading model weights from untrusted files.

Checkpoints are untrusted input: ``.safetensors`` files are read with safetensors, everything
else with ``torch.load(..., weights_only=True)`` (no code execution), and only after their
first bytes show a file written by ``torch.save`` (so random bytes are reported as unreadable,
not as a refused pickle). A SHA-256 checksum, when given (the model zoo lists one per file),
is verified before anything is parsed. Truncated or corrupt files, checksum mismatches and
weights for another architecture raise :class:`~robustart.errors.CheckpointError` with what
to do.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robustart.errors import CheckpointError


def sha256_of(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raise :class:`CheckpointError` if the file's SHA-256 differs from ``expected``."""
    actual = sha256_of(path)
    if actual.lower() != expected.lower().strip():
        raise CheckpointError(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}. The file "
            "is corrupt, incomplete or was modified; download it again from its source."
        )


def load_checkpoint_file(path: str | os.PathLike, sha256: str | None = None) -> dict:
    """Read a checkpoint safely and return its top-level dictionary.

    Args:
        path: A ``.safetensors`` file, a PyTorch state dict or a Lightning ``.ckpt``.
        sha256: Expected hex digest; verified before parsing when given.

    Raises:
        CheckpointError: missing, truncated, corrupt, tampered or not a dictionary.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(_directory_message(path, str(path)))
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint not found: {path}. Check the path (and the working "
            "directory it is relative to)."
        )
    if sha256:
        verify_sha256(path, sha256)

    def unreadable(err: BaseException | None = None) -> CheckpointError:
        detail = f" ({type(err).__name__} while parsing it)" if err is not None else ""
        return CheckpointError(
            f"cannot read {path}{detail}: it is not a checkpoint robustart can read (the file "
            "is truncated or corrupt, or not a PyTorch or safetensors file at all). Check the "
            "path, re-download or re-copy the file, or use an earlier checkpoint."
        )

    if path.suffix != ".safetensors" and not _looks_like_torch_file(path):
        raise unreadable()
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = _unsupported_global(str(err))
        if unsafe is None:  # a damaged pickle stream, not a refused object
            raise unreadable(err) from None
        raise CheckpointError(
            f"refusing to load {path}: it stores Python objects other than tensors and plain "
            f"data ({unsafe}). robustart reads checkpoints only with torch.load(weights_only="
            "True), so that loading a file cannot run code: re-save it as a state dict "
            "(`torch.save(model.state_dict(), path)`) or as a safetensors file."
        ) from None
    except Exception as err:  # torch and safetensors raise many types on damaged files
        if isinstance(err, MemoryError):
            raise
        raise unreadable(err) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dictionary")
    return dict(obj)


def _directory_message(path: Path, what: str) -> str:
    """The error for a checkpoint argument that names a folder, suggesting the checkpoint a
    run folder of ``robustart fit`` holds."""
    found = [p for p in (path / "checkpoints" / "last.ckpt", path / "last.ckpt") if p.is_file()]
    hint = f" (e.g. {found[0]})" if found else ""
    return f"{what} is a directory, not a checkpoint file: give the checkpoint file itself{hint}"


def check_checkpoint_matches(
    checkpoint: dict[str, Any], model: str, num_classes: int, source: str = "the checkpoint"
) -> None:
    """Raise :class:`CheckpointError` if ``checkpoint`` was saved for another architecture or
    number of classes than ``model`` / ``num_classes``."""
    info = checkpoint.get("robustart")
    if not isinstance(info, dict):
        return
    saved_model, saved_classes = info.get("model"), info.get("num_classes")
    if saved_model != model or saved_classes != num_classes:
        raise CheckpointError(
            f"{source} was trained with model={saved_model!r} and num_classes={saved_classes}, "
            f"but the configuration builds model={model!r} with num_classes={num_classes}. "
            "Use the recipe the checkpoint was trained with."
        )


def check_checkpoint_file(path: str | os.PathLike, model: str | None = None) -> None:
    """Check a Lightning checkpoint to resume or evaluate from (``--ckpt_path``) before
    anything runs.

    Lightning's default would merge the checkpoint's hyperparameters into the config, which can
    silently swap the architecture; robustart instead checks that the file is readable (with
    ``weights_only``), is a Lightning checkpoint, and was trained for ``model``.

    Args:
        path: The checkpoint file.
        model: The configured architecture, compared with the one the checkpoint records
            (``None``: not checked).

    Raises:
        CheckpointError: a missing, unreadable or unsafe file, plain weights, a checkpoint
            of another architecture, or weights with NaN or infinite entries.
    """
    if Path(path).is_dir():
        raise CheckpointError(_directory_message(Path(path), f"--ckpt_path {path}"))
    if not Path(path).is_file():
        raise CheckpointError(f"--ckpt_path {path}: no such file")
    checkpoint = load_checkpoint_file(path)
    if "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path} is not a Lightning checkpoint (no 'state_dict'). To initialise a model "
            "from plain weights, use --model.init_args.weights instead of --ckpt_path."
        )
    if model is not None:
        num_classes = checkpoint.get("robustart", {}).get("num_classes")
        check_checkpoint_matches(checkpoint, model, num_classes, source=str(path))
    state = checkpoint["state_dict"]
    if isinstance(state, Mapping):
        check_finite_state(state, str(path))


#: How the files ``torch.save`` writes begin: a zip archive (the default since PyTorch 1.6) or
#: a pickle stream (protocol 2 or higher; the legacy format).
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOLS = range(2, 6)


def _looks_like_torch_file(path: Path) -> bool:
    """Whether ``path`` starts like a file written by ``torch.save``."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(_ZIP_MAGIC):
        return True
    return len(head) >= 2 and head[0] == 0x80 and head[1] in _PICKLE_PROTOCOLS


def _unsupported_global(message: str) -> str | None:
    """The object PyTorch's weights-only unpickler refused (``GLOBAL module.Name``), if the
    error says so; ``None`` for other unpickling errors (a damaged file)."""
    match = re.search(r"(?:Unsupported global:|unsupported) (GLOBAL [\w.]+)", message)
    return match.group(1) if match else None


def extract_state_dict(checkpoint: Mapping, prefix: str = "model.") -> dict[str, Tensor]:
    """The model weights in a checkpoint: a Lightning ``state_dict`` (keys under ``prefix``)
    or a plain state dict."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise CheckpointError("the checkpoint's 'state_dict' entry is not a dictionary")
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return {k: v for k, v in state.items() if isinstance(v, Tensor)}


def load_into(module: nn.Module, state: Mapping[str, Tensor], source: str, arch: str) -> None:
    """Load ``state`` into ``module`` strictly, explaining any mismatch.

    Raises:
        CheckpointError: missing or unexpected keys or shape mismatches, e.g. weights of another
            architecture or for another number of classes (:func:`check_state_fits`), or
            non-finite weights.
    """
    check_state_fits(module, state, source, arch)
    check_finite_state(state, source)
    module.load_state_dict(state, strict=True)


def check_state_fits(module: nn.Module, state: Mapping[str, Any], source: str, arch: str) -> None:
    """Refuse a state dict whose keys or tensor shapes differ from ``module``'s.

    PyTorch's own refusal (``load_state_dict``) is a multi-line ``RuntimeError`` raised only
    once the loading starts; this names the first differences in one message.

    Args:
        module: The module the state is for.
        state: Tensors by name, as ``module.state_dict()`` names them.
        source: Where the state comes from, for the message.
        arch: The configured architecture, for the message.

    Raises:
        CheckpointError: missing or unexpected keys, shape mismatches, or non-float tensors
            (integer, complex, boolean) for float parameters.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(getattr(state[k], 'shape', ()))} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and getattr(state[k], "shape", None) != v.shape
    ]
    # load_state_dict casts silently: integer or complex weights for a float parameter are a
    # damaged file, not a model
    types = [
        f"{k}: checkpoint {state[k].dtype} vs model {v.dtype}"
        for k, v in expected.items()
        if k in state
        and isinstance(state[k], Tensor)
        and v.is_floating_point()
        and not state[k].is_floating_point()
    ]
    if missing or unexpected or shapes or types:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (e.g. {'; '.join(shapes[:2])})")
        if types:
            parts.append(f"{len(types)} type mismatches (e.g. {'; '.join(types[:2])})")
        raise CheckpointError(
            f"the weights in {source} do not fit model {arch!r}: {'; '.join(parts)}. They were "
            "probably saved for another architecture or number of classes (or the file is "
            "damaged): use the model and dataset they were trained with."
        )


def check_finite_state(state: Mapping[str, Tensor], source: str) -> None:
    """Refuse weights with a NaN or infinite entry in a floating-point tensor.

    Such a model can still give finite logits (an infinite BatchNorm mean behind a ReLU), and
    so an accuracy, for a network that is broken.

    Args:
        state: Parameters and buffers by name.
        source: Where they come from, for the message.

    Raises:
        CheckpointError: naming the first tensors with non-finite entries.
    """
    bad = [
        name
        for name, tensor in state.items()
        if isinstance(tensor, Tensor)
        and tensor.is_floating_point()
        and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        raise CheckpointError(
            f"the weights in {source} hold NaN or infinite values in {len(bad)} tensor(s) (e.g. "
            f"{', '.join(bad[:3])}): the model is broken (training diverged, or the file was "
            "damaged). Use an earlier checkpoint of the run."
        )
