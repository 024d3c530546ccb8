"""Read the records of an offline W&B run file (``run-<id>.wandb``).

The file is a 7-byte header (``:W&B``, magic 0xBEE1, version) followed by a LevelDB-style log
of 32 KiB blocks; each chunk has a 7-byte header (CRC32C, length, type FULL/FIRST/MIDDLE/LAST)
and the assembled payloads are ``wandb.proto.wandb_internal_pb2.Record`` messages.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:HEADER])
    assert ident == b":W&B" and magic == 0xBEE1, "not a W&B run file"
    records, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        space = BLOCK - pos % BLOCK
        if space < HEADER:  # block trailer padding
            pos += space
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        payload = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        if kind == FULL:
            pending = payload
        elif kind == FIRST:
            pending = payload
            continue
        elif kind == MIDDLE:
            pending += payload
            continue
        elif kind == LAST:
            pending += payload
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        records.append(record)
        pending = b""
    return records


def logged_values(path: Path, kinds: tuple[str, ...] = ("summary",)) -> dict[str, object]:
    """The last value of every key in the run's ``summary`` (and/or ``history``) records."""
    values: dict[str, object] = {}
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind not in kinds:
            continue
        items = record.history.item if kind == "history" else record.summary.update
        for item in items:
            key = item.key or "/".join(item.nested_key)
            values[key] = json.loads(item.value_json)
    return values
