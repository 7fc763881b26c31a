"""Import layers and the one home of the run summary: the notebook runner never imports the CLI, rl never imports
evaluation, and the headline metrics have one schema."""

from __future__ import annotations

import ast
from pathlib import Path

import fl1_core

PKG = Path(fl1_core.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (functions included), as written."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_the_notebook_runner_never_imports_the_cli():
    runner = _imports(PKG / "notebook_runner.py") | _imports(PKG / "notebook_setup.py")
    assert not {".cli", "fl1_core.cli", ".launch", "fl1_core.launch"} & runner


def test_rl_never_imports_evaluation():
    for path in (PKG / "rl").glob("*.py"):
        assert not any("evaluation" in m for m in _imports(path)), path


def test_headline_metrics_schema_and_round_trip(tmp_path):
    from fl1_core.run_summary import headline_metrics, read_run_summary, write_run_summary

    fb = {"latent SFT": {"scores": {"strict": {"overall": 40.0, "table": {"1-hop": 50.0, "AVG": 40.0}},
                                    "faithful": {"overall": 42.5}}},
          "base": {"scores": {"strict": {"overall": 25.0, "table": {"1-hop": 20.0}}, "faithful": {"overall": 25.0}}}}
    tw = {"latent SFT": {"scores": {"cot": 2.0, "answer": 3.0, "avg": 2.5}}}
    head = headline_metrics(fb, tw)
    assert head["latent SFT"] == {"futurebench_strict": 40.0, "futurebench_faithful": 42.5, "hop:1-hop": 50.0,
                                  "hop:AVG": 40.0, "twiff_cot": 2.0, "twiff_answer": 3.0, "twiff_avg": 2.5}
    assert "twiff_avg" not in head["base"]
    assert read_run_summary(tmp_path) is None
    write_run_summary(tmp_path / "metrics", head)
    assert read_run_summary(tmp_path) == head
