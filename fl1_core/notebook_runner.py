"""The notebook runner: the workbook's notebooks in order with papermill into ``runs/<run-id>/``, and sweeps of many
runs (``fl1 run``, ``fl1 batch``).

A run folder holds the executed notebooks, ``manifest.json`` (git commit, parameters, package versions, data hashes,
stage flags), ``stages.json`` (which notebooks completed, with wall times) and whatever the notebooks write
(metrics, figures, checkpoints). A failed notebook stops the chain with a clear message; its executed copy (with the
error cell) stays in the run folder, and re-running the same command resumes after the last completed notebook.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .runs import REPO_ROOT, repo_path
from .run_summary import read_run_summary
from .runs import atomic_write_json, run_directory, write_manifest

logger = logging.getLogger(__name__)

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


class _QuietParameterWarnings(logging.Filter):
    """papermill's own parameter inspector mis-parses lines whose comments hold quotes or ``=``; its warnings are
    false here (parameters are read with :func:`notebook_parameters`), so they are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Unable to parse line") or msg.startswith("Passed unknown parameter"))


for _name in ("papermill", "papermill.translators"):
    logging.getLogger(_name).addFilter(_QuietParameterWarnings())


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names it and where its executed copy (with the error cell) is."""


@dataclass
class RunResult:
    run_dir: Path
    completed: list[str]
    skipped: list[str] = field(default_factory=list)
    wall_s: dict[str, float] = field(default_factory=dict)


def workbook_notebooks(directory: str | Path = NOTEBOOK_DIR, include_benchmarks: bool = False) -> list[Path]:
    """The pipeline notebooks ``NN_name.ipynb`` in order (``9x_*``: benchmarks and the seed study, only when asked)."""
    books = sorted(p for p in Path(directory).glob("[0-9][0-9]_*.ipynb"))
    return [p for p in books if include_benchmarks or not p.name.startswith("9")]


def notebook_parameters(path: str | Path) -> dict[str, Any]:
    """Names and default values (as source text) of the assignments in a notebook's cell tagged ``parameters``.

    Parsed with :mod:`ast`, so comments of any content are fine (papermill's own inspector skips lines whose
    comments contain quotes, which would silently drop those parameters).
    """
    import ast

    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if not cells:
        return {}
    names: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = ast.get_source_segment(cells[0].source, node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            names[node.target.id] = ast.get_source_segment(cells[0].source, node.value)
    return names


def _stages_file(run_dir: Path) -> Path:
    return run_dir / "stages.json"


def _load_stages(run_dir: Path) -> dict[str, Any]:
    path = _stages_file(run_dir)
    return json.loads(path.read_text()) if path.exists() else {}


def run_workbook(
    run_id: str | None = None,
    *,
    runs_root: str | Path = "runs",
    parameters: dict[str, Any] | None = None,
    notebooks: list[str | Path] | None = None,
    resume: bool = True,
    kernel_name: str = "python3",
    progress: bool = True,
    cell_timeout_s: float | None = None,
    timeout_retries: int = 1,
) -> RunResult:
    """Execute the notebooks in order into ``runs_root/run_id``; resume after the last completed one.

    ``parameters`` go to every notebook that declares them in its ``parameters`` cell (``run_dir`` is always the
    run folder). A change of parameters between a first attempt and a resume is refused: completed stages would
    no longer match; ``parameters=None`` on an existing run resumes with the run's own parameters.

    ``cell_timeout_s`` bounds each cell (None = no limit: GPU cells may run for days). A cell that exceeds it (or
    a client that never hears back from an idle kernel, a rare jupyter_client/papermill hang) restarts that
    notebook up to ``timeout_retries`` times (its stages resume from their checkpoints), then fails loudly.
    The last step, also of a failed run, writes the run's offline report (``run_dir/report/index.html``).
    """
    run_dir = run_directory(runs_root, run_id).resolve()
    books = [Path(p) for p in (notebooks or workbook_notebooks())]
    if not books:
        raise FileNotFoundError(f"no notebooks to run in {NOTEBOOK_DIR}")
    stages = _load_stages(run_dir) if resume else {}
    if parameters is None and stages.get("parameters"):  # resuming without parameters: the run's own
        parameters = stages["parameters"]
        logger.info("%s: resuming with the run's parameters %s", run_dir.name, parameters)
    params = dict(parameters or {})
    if stages and stages.get("parameters") != params:
        raise ValueError(
            f"{run_dir} was started with parameters {stages.get('parameters')}; now {params}. "
            "Use a new --run-id (or --no-resume) to run with different parameters."
        )
    stages.setdefault("parameters", params)
    stages.setdefault("completed", {})
    write_manifest(run_dir, parameters=params, extra={"run_id": run_dir.name, "notebooks": [b.name for b in books]})
    result = RunResult(run_dir=run_dir, completed=[])
    try:
        _execute_books(books, run_dir, params, stages, result, kernel_name=kernel_name, progress=progress,
                       cell_timeout_s=cell_timeout_s, timeout_retries=timeout_retries)
    finally:  # the report is the last step, also of a failed run (it shows the failing cell first)
        write_manifest(run_dir, extra={"stages": stages["completed"]})
        _write_report(run_dir)
    return result


def _write_report(run_dir: Path) -> None:
    try:
        from .report import build_report

        logger.info("run report: %s", build_report(run_dir))
    except Exception as err:  # a report problem must not hide the run's own result or error
        logger.warning("run report not written (%s: %s); retry with `fl1 report %s`", type(err).__name__, err,
                       run_dir)


def _execute_books(books: list[Path], run_dir: Path, params: dict, stages: dict, result: RunResult, *,
                   kernel_name: str, progress: bool, cell_timeout_s: float | None, timeout_retries: int) -> None:
    import papermill

    for book in books:
        name = book.stem
        if name in stages["completed"]:
            logger.info("skipping %s (completed in an earlier attempt)", name)
            result.skipped.append(name)
            continue
        declared = notebook_parameters(book)
        given = {k: v for k, v in params.items() if k in declared}
        given["run_dir"] = str(run_dir)
        if "interactive" in declared:  # no browser under papermill: widgets would wait for a frontend forever
            given["interactive"] = False
        output = run_dir / book.name
        logger.info("running %s → %s", book.name, output)
        start = time.perf_counter()
        for attempt in range(timeout_retries + 1):
            try:
                papermill.execute_notebook(
                    str(book), str(output), parameters=given, kernel_name=kernel_name, progress_bar=progress,
                    cwd=str(book.parent), log_output=False, execution_timeout=cell_timeout_s,
                )
                break
            except papermill.PapermillExecutionError as err:
                raise NotebookFailed(
                    f"notebook {book.name} failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n"
                    f"the executed notebook with the error cell is {output}; fix it and re-run the same command to "
                    "resume"
                ) from None
            except TimeoutError as err:  # nbclient's CellTimeoutError
                if attempt == timeout_retries:
                    raise NotebookFailed(
                        f"notebook {book.name}: a cell ran longer than {cell_timeout_s} s in each of "
                        f"{timeout_retries + 1} attempt(s) ({type(err).__name__}); see {output}"
                    ) from None
                logger.warning("%s: a cell exceeded %s s; restarting the notebook (attempt %d of %d)",
                               book.name, cell_timeout_s, attempt + 2, timeout_retries + 1)
        wall = time.perf_counter() - start
        stages["completed"][name] = {"wall_s": round(wall, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_json(_stages_file(run_dir), stages)
        result.completed.append(name)
        result.wall_s[name] = wall


# --------------------------------------------------------------------------------------------- sweeps
def expand_sweep(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A sweep spec → [(run_id, parameters)]: the cartesian product of ``grid`` on top of ``base``.

    ``{"name": "rl-scaling", "base": {...}, "grid": {"seed": [0, 1], "rl_sizes": [...]}}``; run ids are
    ``<name>-<key>=<value>-…`` (``runs`` lists explicit ``{id, parameters}`` entries instead of a grid).
    """
    name = spec.get("name", "sweep")
    base = dict(spec.get("base", {}))
    if "runs" in spec:
        return [(f"{name}-{r['id']}", {**base, **r.get("parameters", {})}) for r in spec["runs"]]
    grid = spec.get("grid", {})
    keys = sorted(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        params = {**base, **dict(zip(keys, values))}
        label = "-".join(f"{k}={v}" for k, v in zip(keys, values)) or "base"
        out.append((f"{name}-{label}".replace("/", "_").replace(" ", ""), params))
    return out


def _run_one(run_id: str, params: dict, runs_root: str, notebooks: list[str] | None) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        res = run_workbook(run_id, runs_root=runs_root, parameters=params, notebooks=notebooks, progress=False)
        return {"run_id": run_id, "status": "ok", "completed": res.completed, "wall_s": round(time.perf_counter() - start, 1)}
    except Exception as err:  # one failed run must not stop the others
        return {"run_id": run_id, "status": "failed", "error": f"{type(err).__name__}: {err}".splitlines()[0],
                "wall_s": round(time.perf_counter() - start, 1)}


def run_sweep(
    spec_path: str | Path, *, runs_root: str | Path = "runs", parallel: int = 1, notebooks: list[str] | None = None
) -> list[dict[str, Any]]:
    """Run every parameter set of a sweep file as its own run (``parallel`` at a time); write a summary table.

    ``notebooks`` (or the spec's ``notebooks:`` list of file names in ``notebooks/``) restricts every run to those.
    One failed run does not stop the others; the summary (``<runs_root>/<name>-summary.json`` and ``.md``) lists
    every run with its status, wall time and headline metrics found in its ``metrics/summary.json``.
    """
    spec = yaml.safe_load(Path(spec_path).read_text())
    runs = expand_sweep(spec)
    if notebooks is None and spec.get("notebooks"):
        notebooks = [str(repo_path(Path("notebooks") / n)) for n in spec["notebooks"]]
    results: list[dict[str, Any]] = []
    workers = max(1, int(parallel))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_run_one, rid, params, str(runs_root), notebooks): rid for rid, params in runs}
        for fut in concurrent.futures.as_completed(futures):
            results.append(fut.result())
    order = {rid: i for i, (rid, _) in enumerate(runs)}
    results.sort(key=lambda r: order[r["run_id"]])
    for row in results:
        headline = read_run_summary(Path(runs_root) / row["run_id"])
        if headline is not None:
            row["metrics"] = headline
    name = spec.get("name", "sweep")
    atomic_write_json(Path(runs_root) / f"{name}-summary.json", results)
    lines = ["| run | status | wall s | detail |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['run_id']} | {r['status']} | {r['wall_s']} | {r.get('error', '')} |")
    (Path(runs_root) / f"{name}-summary.md").write_text("\n".join(lines) + "\n")
    return results
