"""A real `tensorboard` server on 127.0.0.1 for tests, read over the HTTP API its web page uses."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class TensorBoardAPI:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, route: str, **params: Any) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.base}/data{route}{query}", timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def runs(self) -> list[str]:
        return self.get("/runs")

    def scalar_tags(self) -> dict[str, dict[str, Any]]:
        return self.get("/plugin/scalars/tags")

    def scalars(self, run: str, tag: str) -> list[tuple[float, int, float]]:
        """[(wall_time, step, value), ...] of one series."""
        return [tuple(point) for point in self.get("/plugin/scalars/scalars", run=run, tag=tag)]

    def hparams_experiment(self) -> dict[str, Any]:
        return self.get("/plugin/hparams/experiment", request=json.dumps({"experimentName": ""}))

    def hparams_sessions(self) -> list[dict[str, Any]]:
        request = {
            "startIndex": 0,
            "sliceSize": 1000,
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": [],
        }
        return self.get("/plugin/hparams/session_groups", request=json.dumps(request))["sessionGroups"]

    def image_tags(self) -> dict[str, dict[str, Any]]:
        return self.get("/plugin/images/tags")

    def text_tags(self) -> dict[str, list[str]]:
        return self.get("/plugin/text/tags")

    def text(self, run: str, tag: str) -> list[dict[str, Any]]:
        return self.get("/plugin/text/text", run=run, tag=tag)

    def wait_until(self, ready: Callable[[TensorBoardAPI], bool], timeout: float = 90.0) -> None:
        """TensorBoard loads event files in the background; poll until `ready` holds."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if ready(self):
                    return
            except (OSError, ValueError, KeyError) as err:
                last_error = err
            time.sleep(0.5)
        raise TimeoutError(f"TensorBoard at {self.base} not ready in {timeout} s (last error: {last_error})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def tensorboard_server(logdir: Path) -> Iterator[TensorBoardAPI]:
    """`tensorboard --logdir LOGDIR` from this venv; the Python data loader, so no extra binary runs."""
    port = free_port()
    executable = Path(sys.executable).with_name("tensorboard")
    process = subprocess.Popen(
        [
            str(executable),
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load_fast=false",
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    api = TensorBoardAPI(f"http://127.0.0.1:{port}")
    try:
        api.wait_until(lambda tb: process.poll() is None and tb.runs() is not None, timeout=60)
        yield api
    except TimeoutError:
        process.terminate()
        raise TimeoutError(
            f"tensorboard did not serve: {process.communicate(timeout=10)[1][-3000:]}"
        ) from None
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
