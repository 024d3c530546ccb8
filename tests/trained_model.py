"""The briefly trained ResNet-20 of the ``trained_model`` fixture, and its stored weights.

Training takes about half a minute on two cores, so the weights it gives are stored in
``tests/data/trained_resnet20.safetensors`` and the fixture loads them; the fixture trains
only when that file is missing. After a change to ``create_model`` or to this training,
regenerate the file with ``python tests/trained_model.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from robustart.data.digits import load_digits_tensors
from robustart.models import create_model

WEIGHTS = Path(__file__).resolve().parent / "data" / "trained_resnet20.safetensors"


def untrained_resnet20() -> torch.nn.Module:
    """The fixture's architecture: ResNet-20, 10 classes, normalisation (0.3, 0.33)."""
    return create_model("resnet20", num_classes=10, mean=(0.3,) * 3, std=(0.33,) * 3)


def train_resnet20(images: torch.Tensor, labels: torch.Tensor) -> torch.nn.Module:
    """Four epochs of SGD (one-cycle schedule, batch 32) on the first 1,500 of ``images``
    (N, 3, 32, 32) in [0, 1], on two intra-op threads. Returns the model in eval mode (the
    stored weights classify all of the next 128 digits correctly)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = untrained_resnet20()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    epochs, batch = 4, 32
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, 0.1, total_steps=epochs * -(-1500 // batch)
    )
    train_x, train_y = images[:1500], labels[:1500]
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train_y))
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    torch.set_num_threads(threads)
    return model.eval()


def trained_resnet20() -> torch.nn.Module:
    """The stored weights in eval mode, or a freshly trained model if the file is missing."""
    if not WEIGHTS.is_file():
        return train_resnet20(*load_digits_tensors(32))
    model = untrained_resnet20()
    model.load_state_dict(load_file(WEIGHTS))
    return model.eval()


if __name__ == "__main__":
    trained = train_resnet20(*load_digits_tensors(32))
    WEIGHTS.parent.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, WEIGHTS)
    print(f"wrote {WEIGHTS}")
