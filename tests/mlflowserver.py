"""A real `mlflow server` on 127.0.0.1 for tests, read over the REST API its web UI uses."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tbserver import free_port


class MLflowAPI:
    """https://mlflow.org/docs/latest/api_reference/rest-api.html"""

    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, route: str, **params: Any) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.base}/api/2.0/mlflow/{route}{query}", timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def post(self, route: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.base}/api/2.0/mlflow/{route}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def experiment(self, name: str) -> dict[str, Any]:
        return self.get("experiments/get-by-name", experiment_name=name)["experiment"]

    def runs(self, experiment_id: str) -> list[dict[str, Any]]:
        return self.post("runs/search", {"experiment_ids": [experiment_id], "max_results": 1000}).get(
            "runs", []
        )

    def metric_history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        return self.get("metrics/get-history", run_id=run_id, metric_key=key)["metrics"]

    def artifacts(self, run_id: str, path: str = "") -> list[str]:
        """Every artifact file's path under `path`, walking folders."""
        found = self.get("artifacts/list", run_id=run_id, **({"path": path} if path else {}))
        files: list[str] = []
        for entry in found.get("files", []):
            files += self.artifacts(run_id, entry["path"]) if entry["is_dir"] else [entry["path"]]
        return files


def by_key(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """MLflow's [{"key": k, "value": v}, ...] lists (params, tags, metrics) as a dict."""
    return {entry["key"]: entry["value"] for entry in entries}


@contextlib.contextmanager
def mlflow_server(store: Path) -> Iterator[MLflowAPI]:
    """`mlflow server` on the SQLite store `store`, from this venv, one worker."""
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{store}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its uvicorn workers and job consumers go with it (os.killpg below)
    )
    api = MLflowAPI(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                api.post("experiments/search", {"max_results": 1})
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.terminate()
                    raise RuntimeError(
                        f"mlflow server did not serve: {process.communicate(timeout=10)[1][-3000:]}"
                    ) from None
                time.sleep(0.5)
        yield api
    finally:
        for signum in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)
            try:
                process.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
