"""Read an offline W&B run's records (`run-<id>.wandb`) as `wandb sync` would upload them.

The file is a LevelDB-style log of protobuf `Record`s (wandb/proto/wandb_internal.proto): a 7-byte header
(`:W&B`, magic 0xBEE1, version), then 32 KiB blocks of chunks, each with a 7-byte header (CRC-32C, length,
type: full, first, middle or last piece of a record). wandb 0.2x reads it in Go, so tests read it here.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    found, pieces, offset = [], b"", 7
    while offset + 7 <= len(data):
        left_in_block = BLOCK - offset % BLOCK
        if left_in_block < 7:  # a block's tail too short for a chunk header is padding
            offset += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + 7])
        chunk = data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind == 0 and length == 0:
            break
        pieces = chunk if kind in (FULL, FIRST) else pieces + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            found.append(record)
    return found


def history(path: Path) -> list[dict[str, Any]]:
    """Each `run.log` call's {key: value} (Lightning's scalars carry `trainer/global_step`)."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return rows


def run_info(path: Path) -> Any:
    """The run record: id, project, group, display name, config."""
    return next(r.run for r in records(path) if r.WhichOneof("record_type") == "run")
