"""Every script in ``benchmarks/`` runs at its ``--smoke`` size, so a rename in the library cannot break one silently.

Each script's ``main(argv)`` runs in this process (its argument parsing and its whole main path, with ``benchmarks/``
first on ``sys.path`` and the repository root as working directory, as ``python benchmarks/X.py`` has them): a fresh
interpreter per script would add about 5 s of torch and transformers imports each. What it prints is checked
against what its docstring promises. A new script must get an entry in ``SMOKE``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
IMPORTED_ONLY = {"reference_decode", "checkpoint_probe_args"}  # modules the scripts import, not scripts
NUMBER = r"([-+]?\d+(?:\.\d+)?)"


def run_benchmark(name: str, argv: list[str]) -> str:
    """``benchmarks/<name>.py --smoke *argv`` through its ``main``, in this process; returns what it printed.
    Torch's thread count and RNG state are restored afterwards."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    threads = torch.get_num_threads()
    printed = io.StringIO()
    sys.path.insert(0, str(BENCH))
    sys.modules[name] = module  # importable by name, as a spawned child process (judge_load's server) needs
    try:
        with torch.random.fork_rng(), contextlib.redirect_stdout(printed):
            spec.loader.exec_module(module)
            status = module.main(["--smoke", *argv])
    finally:
        sys.modules.pop(name, None)
        sys.path.remove(str(BENCH))
        torch.set_num_threads(threads)
    assert status in (None, 0), f"{name}.py ended with status {status}"
    return printed.getvalue()


def lines_with(out: str, pattern: str) -> list[re.Match]:
    return [m for m in (re.search(pattern, ln) for ln in out.splitlines()) if m]


# ------------------------------------------------------------------------------------ what each script must print
def check_cell_head_probe(out: str) -> None:
    rows = lines_with(out, rf"^step\s+2 (with|without) cell head .* exact {NUMBER} colour slots {NUMBER}$")
    assert sorted(m.group(1) for m in rows) == ["with", "without"], out
    assert all(0 <= float(m.group(k)) <= 1 for m in rows for k in (2, 3))


def check_curation_speed(out: str) -> None:
    rows = lines_with(out, rf"^\s*(likelihood|rollouts:2:4): .* {NUMBER} rec/s\s+kept (\d+)/(\d+)")
    assert [m.group(1) for m in rows] == ["likelihood", "rollouts:2:4"], out
    assert all(m.group(4) == "4" and int(m.group(3)) <= 4 and float(m.group(2)) > 0 for m in rows), out


def check_fed_back_latents(out: str) -> None:
    result = json.loads(out.strip().splitlines()[-1])
    assert {"responses", "spans", "slots", "spans_per_item"} <= set(result), result
    assert 0 <= result["responses"] <= 2 and result["spans_per_item"] >= 0


def check_judge_load(out: str) -> None:
    rows = lines_with(out, rf"server in a (thread|separate process).*: +{NUMBER} judged samples/s "
                           r"\(n=8, concurrency=2\)")
    assert [m.group(1) for m in rows] == ["thread", "separate process"], out
    assert all(float(m.group(2)) > 0 for m in rows)


def check_latent_core(out: str) -> None:
    assert "decoding, 2 prompts x 10 steps" in out, out
    assert len(lines_with(out, rf"tok/s +ratio {NUMBER}x")) == 2, out  # without and with latent spans
    assert len(lines_with(out, rf"^  latent spans .* ratio {NUMBER}x")) == 1, out
    assert [m.group(1) for m in lines_with(out, r"^  budget +(\d+):")] == ["2", "4"], out


def check_follow_reading_probe(out: str) -> None:
    rows = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert len(rows) == 1 and rows[0]["model"].endswith("world_base"), out
    for context in ("text", "chain"):
        accuracy, lo, hi, n = rows[0][f"{context}/all"]
        assert n == 2 and lo <= accuracy <= hi and rows[0][f"{context}/last"][3] + rows[0][f"{context}/earlier"][3] == 2


def check_imagination_probe(out: str) -> None:
    rows = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert len(rows) == 1 and rows[0]["checkpoint"].endswith("world_base") and rows[0]["n_chains"] == 2, out
    for name in ("model", "own", "slot_mean", "present"):
        assert set(rows[0][name]) == {"top", "middle", "bottom", "all"} and rows[0][name]["all"] > 0
    assert rows[0]["model"]["all"] < rows[0]["slot_mean"]["all"]


def check_letter_weight_probe(out: str) -> None:
    rows = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert [r["at"] for r in rows] == ["start", "after 2 steps"], out
    assert all(set(r["mcq"]) == {"all", "text", "vision"} and 0 <= r["lookup"] <= 1 for r in rows)


def check_option_lookup_probe(out: str) -> None:
    rows = lines_with(out, rf"^step (\d+) loss \S+ held-out look-up {NUMBER} .*\(n=2,")
    assert [m.group(1) for m in rows] == ["0", "2"], out


def check_probe_targets(out: str) -> None:
    from fl1_core.audit.world_states import REGRESSION_TARGETS

    rows = lines_with(out, rf"^(\w+) +(mean|flat) +R² {NUMBER} +frames (\d+) +clips 2$")
    assert {(m.group(1), m.group(2)) for m in rows} == {(t, p) for t in REGRESSION_TARGETS for p in ("mean", "flat")}
    assert len(rows) == 2 * len(REGRESSION_TARGETS) and all(int(m.group(4)) > 0 for m in rows), out


def check_rl_vs_trl(out: str) -> None:
    ours = lines_with(out, rf"^ours : {NUMBER} optimiser steps/s .* {NUMBER} completion tokens/s")
    assert len(ours) == 1 and float(ours[0].group(1)) > 0 and float(ours[0].group(2)) > 0, out
    if importlib.util.find_spec("trl") is None:
        assert "TRL  : skipped, trl is not installed" in out, out
    else:
        assert len(lines_with(out, rf"^ratio ours / TRL = {NUMBER}x")) == 1, out


def check_sft_throughput(out: str) -> None:
    rates = lines_with(out, rf"^  (plain|plain\+collate|ours-text|ours-latent) +{NUMBER} tokens/s")
    assert [m.group(1) for m in rates] == ["plain", "plain+collate", "ours-text", "ours-latent"], out
    ratios = lines_with(out, rf"^ratio .* = {NUMBER}")
    assert len(ratios) == 3 and all(float(m.group(1)) > 0 for m in ratios), out


def check_static_decode(out: str) -> None:
    assert len(lines_with(out, r"per step, \d rows")) == 2, out
    rollouts = lines_with(out, rf"per rollout, \d samples .* ratio {NUMBER}x")
    # a step time is a difference of two timings (noisy at smoke sizes); a rollout time is a whole run
    assert len(rollouts) == 2 and all(float(m.group(1)) > 0 for m in rollouts), out
    assert out.count("same tokens: True") == 2  # both loops drew the same responses on the shipped base


# script → (arguments after --smoke; {world}: the small world, {out}: a scratch folder), check of its output
SMOKE = {
    "cell_head_probe": (["--threads", "1"], check_cell_head_probe),
    "curation_speed": (["--threads", "1", "--world", "{world}", "--out", "{out}"], check_curation_speed),
    "fed_back_latents": (["--threads", "1", "--world", "{world}"], check_fed_back_latents),
    "follow_reading_probe": (["--threads", "1"], check_follow_reading_probe),
    "imagination_probe": (["--threads", "1"], check_imagination_probe),
    "judge_load": ([], check_judge_load),
    "latent_core": (["--threads", "1"], check_latent_core),
    "letter_weight_probe": (["--threads", "1", "--world", "{world}"], check_letter_weight_probe),
    "option_lookup_probe": (["--threads", "1", "--world", "{world}", "--random-words", "0.5", "--verify"],
                            check_option_lookup_probe),
    "probe_targets": (["--threads", "1", "--world", "{world}"], check_probe_targets),
    "rl_vs_trl": (["--threads", "1", "--world", "{world}"], check_rl_vs_trl),
    "sft_throughput": (["--threads", "1", "--world", "{world}"], check_sft_throughput),
    "static_decode": (["--threads", "1"], check_static_decode),
}


def test_every_benchmark_script_has_a_smoke_run():
    scripts = {p.stem for p in BENCH.glob("*.py")} - IMPORTED_ONLY
    assert scripts == set(SMOKE), f"benchmarks without a smoke run: {sorted(scripts - set(SMOKE))}; " \
                                  f"smoke runs without a script: {sorted(set(SMOKE) - scripts)}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_smoke_run(name, small_world, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    argv, check = SMOKE[name]
    out = run_benchmark(name, [a.format(world=small_world, out=tmp_path / "out") for a in argv])
    check(out)
