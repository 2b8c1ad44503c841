"""`python -m trainlab.runs [DIR]`: the runs and sweeps under outputs/, compared and ranked.

    python -m trainlab.runs                      # every run under ./outputs: one line each
    python -m trainlab.runs --all                # also the runs refused at start-up (a bad config)
    python -m trainlab.runs outputs/multirun     # only those under a folder (a sweep dir works too)
    python -m trainlab.runs --compare RUN RUN... # config differences and metrics side by side
    python -m trainlab.runs --best [DIR]         # per dataset, the best run's dir and checkpoint
    python -m trainlab.runs --best --data NAME   # the best run on one dataset (data=NAME)
    python -m trainlab.runs --mlflow URI         # the runs of an MLflow store (a team server, a SQLite file)
    python -m trainlab.runs --mlflow URI --experiment NAME   # one experiment's (a sweep's) runs

A run is any dir with Hydra's .hydra/overrides.yaml; sweep jobs show as <sweep dir>/<job>.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainlab.errors import TrainlabError, exit_code
from trainlab.records.catalog import RunRecord, find_runs, flatten, is_run_dir, rank, read_run

RESULT_KEYS = (
    "val/acc_best",
    "val/acc",
    "val/acc_top5",
    "val/loss",
    "test/acc",
    "test/acc_top5",
    "test/loss",
    "epochs",
)
LIST_COLUMNS = ("run", "started", "status", "val/acc_best", "test/acc", "epochs", "duration", "overrides")


def list_runs(root: Path, show_all: bool = False) -> str:
    found = find_runs(root)
    records = found if show_all else [r for r in found if not r.refused]
    hidden = len(found) - len(records)
    note = (
        f"; {hidden} refused at start-up (a config or data error) not shown, --all lists them"
        if hidden
        else ""
    )
    if not records:
        return f"no runs under {root} (a run dir holds .hydra/overrides.yaml){note}"
    rows = [list_row(record, root) for record in records]
    sweeps = sorted({r.sweep_dir for r in records if r.sweep_dir is not None})
    footer = [f"{len(records)} runs, {len(sweeps)} sweeps under {root}{note}"]
    footer += [f"  sweep {sweep}: summary {sweep / 'summary.md'}" for sweep in sweeps]
    errors = [
        f"  {_relative(r.run_dir, root)}: {_clip(r.error.strip().splitlines()[0], 140)}"
        for r in records
        if r.error and r.error.strip()
    ]
    if errors:
        footer += ["errors:", *errors]
    return table(LIST_COLUMNS, rows) + "\n" + "\n".join(footer)


def list_mlflow_runs(tracking_uri: str, experiment: str | None = None) -> str:
    """The runs of an MLflow store, newest first: the same columns as a local listing, with each run's
    experiment (a sweep's dir) and its run dir on the machine that trained it."""
    from trainlab.loggers.mlflow_store import stored_runs  # MLflow's import is heavy: only for --mlflow

    runs = stored_runs(tracking_uri, experiment)
    if not runs:
        return f"no runs in {tracking_uri}" + (f" experiment {experiment}" if experiment else "")
    rows = [
        [
            run["experiment"],
            run["run_dir"] or run["name"],
            (run["started"] or "")[:19].replace("T", " "),
            run["status"],
            _number(run["metrics"].get("val/acc_best")),
            _number(run["metrics"].get("test/acc")),
            _value(run["metrics"].get("epochs", "")),
            _duration(run["duration_s"]),
            run["overrides"],
        ]
        for run in runs
    ]
    experiments = sorted({run["experiment"] for run in runs})
    footer = f"{_count(len(runs), 'run')} in {_count(len(experiments), 'experiment')} of {tracking_uri}"
    errors = [
        f"  {run['run_dir'] or run['name']}: {_clip(run['error'].strip().splitlines()[0], 140)}"
        for run in runs
        if run["error"]
    ]
    return "\n".join(
        [table(("experiment", *LIST_COLUMNS), rows), footer, *(["errors:", *errors] if errors else [])]
    )


def list_row(record: RunRecord, root: Path) -> list[str]:
    return [
        _relative(record.run_dir, root),
        (record.started or "")[:19].replace("T", " "),
        "refused" if record.refused else record.status,
        _number(record.metric("val/acc_best")),
        _number(record.metric("test/acc")),
        str(record.metrics.get("epochs", ""))
        + (" (stopped early)" if record.metrics.get("stopped_early") else ""),
        _duration(record.duration_s),
        " ".join(record.overrides),
    ]


def compare(run_dirs: Sequence[Path], width: int | None = None) -> str:
    """Metrics and the config keys that differ, one column per run (`run 1`, ... named below the tables),
    long values cut so that the table fits `width` characters (the terminal's)."""
    records = [read_run(_require_run(path)) for path in run_dirs]
    names = [f"run {i}" for i in range(1, len(records) + 1)]
    configs = [own_paths_neutral(dict(flatten(r.config())), r.run_dir.resolve()) for r in records]
    keys = sorted(set().union(*configs))
    differing = [k for k in keys if len({repr(c.get(k, "<absent>")) for c in configs}) > 1]
    width = width or shutil.get_terminal_size().columns
    key_width = max(len(k) for k in ("config key", *RESULT_KEYS, "wall_s", *differing))
    cell = max(16, (width - key_width) // len(records) - 2)
    rows = [["status", *(r.status for r in records)]]
    always = ("val/acc_best", "epochs")  # the rest only where some run has them (acc_top5, test/*)
    shown = [k for k in RESULT_KEYS if k in always or any(k in r.metrics for r in records)]
    rows += [[key, *(_value(r.metrics.get(key)) for r in records)] for key in (*shown, "wall_s")]
    result = table(("metric", *names), rows, cell)
    if differing:
        config_rows = [[key, *(_value(c.get(key, "<absent>")) for c in configs)] for key in differing]
        result += "\n\n" + table(("config key", *names), config_rows, cell)
    else:
        result += "\n\nthe configs are identical"
    return result + "\n\n" + "\n".join(f"{n}: {p}" for n, p in zip(names, run_dirs, strict=True))


def best(root: Path, data: str | None = None) -> str:
    """The best run by val/acc_best of each dataset (data option) under root, or of `data` only: runs on
    different data are not ranked against each other."""
    finished = [r for r in find_runs(root) if r.metric("val/acc_best") is not None]
    if data is not None:
        finished = [r for r in finished if r.data == data]
    if not finished:
        which = f" on data={data}" if data is not None else ""
        raise TrainlabError(f"No run under {root}{which} has finished with a val/acc_best: nothing to rank.")
    blocks = []
    for name in sorted({r.data for r in finished}):
        ranked = rank([r for r in finished if r.data == name])
        top = ranked[0]
        blocks.append(
            "\n".join(
                [
                    f"data={name or '?'}: the best of {len(ranked)} finished run(s) by val/acc_best",
                    f"run_dir: {top.run_dir}",
                    f"checkpoint: {top.best_ckpt}",
                    f"val/acc_best: {_number(top.metric('val/acc_best'))}",
                    f"test/acc: {_number(top.metric('test/acc'))}",
                    f"overrides: {' '.join(top.overrides)}",
                ]
            )
        )
    return "\n\n".join(blocks)


def own_paths_neutral(config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Each run's own dir written as <run dir>, so paths that only follow the run dir do not differ."""
    own = str(run_dir)
    return {k: v.replace(own, "<run dir>") if isinstance(v, str) else v for k, v in config.items()}


def table(header: Sequence[str], rows: Sequence[Sequence[str]], clip: int | None = None) -> str:
    """Left-aligned columns; with `clip`, values after the first column are cut to that many characters."""
    if clip is not None:
        rows = [[row[0], *(_clip(str(v), clip) for v in row[1:])] for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    widths[-1] = 0  # the last column runs free (overrides are long)
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def _require_run(path: Path) -> Path:
    if not is_run_dir(path):
        raise TrainlabError(
            f"{path} is not a run dir (no .hydra/overrides.yaml): give dirs that runs listed."
        )
    return path


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


def _clip(text: str, limit: int) -> str:
    """At most `limit` characters; a longer text keeps its start and its end (where dotted names and
    paths differ) around an ellipsis."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 3
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainlab.runs", description=__doc__.split("\n")[0])
    parser.add_argument("dir", nargs="?", type=Path, default=Path("outputs"), help="where to look (outputs)")
    parser.add_argument("--compare", nargs="+", type=Path, metavar="RUN", help="run dirs to compare")
    parser.add_argument("--best", action="store_true", help="print the best run's dir and checkpoint")
    parser.add_argument("--data", metavar="NAME", help="with --best: only runs on data=NAME")
    parser.add_argument("--all", action="store_true", help="also list runs refused at start-up")
    parser.add_argument("--mlflow", metavar="URI", help="list the runs of this MLflow tracking store instead")
    parser.add_argument("--experiment", metavar="NAME", help="with --mlflow: only this experiment's runs")
    args = parser.parse_args(argv)
    return exit_code(lambda: print(report(args)))


def report(args: argparse.Namespace) -> str:
    if args.mlflow:
        return list_mlflow_runs(args.mlflow, args.experiment)
    if args.experiment:
        raise TrainlabError("--experiment selects an MLflow experiment: give the store with --mlflow URI.")
    if args.compare:
        return compare(args.compare)
    if not args.dir.is_dir():
        raise TrainlabError(f"{args.dir} does not exist: give the folder runs were written to (outputs).")
    return best(args.dir, args.data) if args.best else list_runs(args.dir, show_all=args.all)


if __name__ == "__main__":
    sys.exit(main())
