"""scripts/rl_replicate_summary.py: every RL run of a seed study paired against the right SFT init, per algorithm."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "rl_replicate_summary.py"


def _rows(folder: Path, name: str, concluded: list[str]) -> None:
    """Four event-kind items whose gold option is B, the first two of kind ``interpolation`` and the others
    ``next_event``; ``concluded`` is each one's concluded option ("" = none)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"q{i}", "answer": "B", "pred": "B", "correct": True, "concluded": c, "group": "vision",
             "kind": "interpolation" if i < 2 else "next_event"} for i, c in enumerate(concluded)]
    (folder / f"rl_heldout.{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_each_run_set_is_paired_with_its_own_init(tmp_path):
    study = tmp_path / "study"
    for s in (0, 1):
        _rows(study / "heldout_rows" / f"seed{s}", "sft_init", ["B", "B", "A", "A"])  # the study's init: 2 of 4
        _rows(study / "heldout_rows" / f"seed{s}", "grpo", ["B"] * 4)  # +50 points
        _rows(study / "heldout_rows" / f"seed{s}", "pause_sft", ["A"] * 4)  # a control: not an RL run
        _rows(study / "rl_replicates" / "other_inits" / f"seed{s}", "sft_init", ["B"] * 4)  # other inits: 4 of 4
        _rows(study / "rl_replicates" / "other_inits" / f"seed{s}", "dapo", ["B", "B", "B", ""])  # −25 against them
        _rows(study / "rl_replicates" / "more" / f"seed{s}", "la-dapo-x", ["B", "A", "A", "A"])  # −25 vs the study
    _rows(study / "rl_replicates" / "more" / "seed0", "grpo-only-one-seed", ["B"] * 4)  # not in every seed: left out
    (study / "rl_replicates" / "references.json").write_text(
        json.dumps({"rl_replicates/other_inits": "rl_replicates/other_inits"}))
    out = _run(study)
    assert out.returncode == 0, out.stderr
    _, runs, algorithms = out.stdout.strip().split("\n\n")
    rows = [line.split(" | ") for line in runs.splitlines()[1:]]
    got = {(r[0], r[1]): (r[2], r[4].split()[0], r[5].split()[0]) for r in rows}
    assert got == {("heldout_rows", "grpo"): ("8", "+50.0", "+0.0"),
                   ("rl_replicates/other_inits", "dapo"): ("8", "-25.0", "+25.0"),
                   ("rl_replicates/more", "la-dapo-x"): ("8", "-25.0", "+0.0")}
    per_algorithm = {line.split(" | ")[0]: line.split(" | ")[1:] for line in algorithms.splitlines()[1:]}
    assert per_algorithm == {"grpo": ["1", "+50.0", "+50.0", "+50.0", "1"],
                             "dapo": ["1", "-25.0", "-25.0", "-25.0", "0"],
                             "la-dapo": ["1", "-25.0", "-25.0", "-25.0", "0"]}


def test_a_folder_that_is_not_a_seed_study_is_a_usage_error(tmp_path):
    out = _run(tmp_path)
    assert out.returncode == 2 and "no heldout_rows/" in out.stderr


def test_kinds_split_the_items(tmp_path):
    study = tmp_path / "study"
    for s in (0, 1):
        _rows(study / "heldout_rows" / f"seed{s}", "sft_init", ["B", "B", "A", "A"])
        _rows(study / "heldout_rows" / f"seed{s}", "grpo", ["A", "B", "B", "B"])  # −50 on interpolation, +100 else

    def event_delta(*args) -> str:
        out = _run(study, *args)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().split("\n\n")[1].splitlines()[1].split(" | ")[4].split()[0]

    assert event_delta() == "+25.0"
    assert event_delta("--kind", "interpolation") == "-50.0"
    assert event_delta("--drop-kind", "interpolation") == "+100.0"
    assert event_delta("--kind", "interpolation", "--kind", "next_event") == "+25.0"
    out = _run(study, "--kind", "kth_event")
    assert out.returncode == 2 and "no item of the chosen question kinds" in out.stderr
    for s in (0, 1):  # rows written before they kept the kind
        path = study / "heldout_rows" / f"seed{s}" / "rl_heldout.sft_init.jsonl"
        rows = [{k: v for k, v in json.loads(line).items() if k != "kind"} for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _run(study, "--kind", "interpolation")
    assert out.returncode == 2 and "has no question kind" in out.stderr


def test_several_study_folders_make_one_table_and_one_line_per_algorithm_and_folder(tmp_path):
    worlds = [tmp_path / "world0", tmp_path / "world1"]
    for world, grpo in zip(worlds, (["B"] * 4, ["B", "B", "A", "A"])):
        for s in (0, 1):
            _rows(world / "heldout_rows" / f"seed{s}", "sft_init", ["B", "B", "A", "A"])
            _rows(world / "heldout_rows" / f"seed{s}", "grpo", grpo)  # +50 on world0, +0 on world1
    out = _run(*worlds)
    assert out.returncode == 0, out.stderr
    _, runs, algorithms = out.stdout.strip().split("\n\n")
    run_sets = [line.split(" | ")[0] for line in runs.splitlines()[1:]]
    assert run_sets == [f"{w.as_posix()}/heldout_rows" for w in worlds]
    per_algorithm = {line.split(" | ")[0]: line.split(" | ")[1:] for line in algorithms.splitlines()[1:]}
    assert per_algorithm == {"grpo": ["2", "+25.0", "+0.0", "+50.0", "2"],
                             f"grpo ({worlds[0].as_posix()})": ["1", "+50.0", "+50.0", "+50.0", "1"],
                             f"grpo ({worlds[1].as_posix()})": ["1", "+0.0", "+0.0", "+0.0", "1"]}
    out = _run(worlds[0], tmp_path / "not_a_study")
    assert out.returncode == 2 and "not_a_study: no heldout_rows/" in out.stderr


def _frame_rows(folder: Path, name: str, concluded: list[str]) -> None:
    """Four frame-needing items (gold B) added to ``name``'s file of :func:`_rows`."""
    rows = [{"id": f"f{i}", "answer": "B", "pred": "B", "correct": True, "concluded": c, "group": "frame",
             "kind": "where_at_event"} for i, c in enumerate(concluded)]
    with (folder / f"rl_heldout.{name}.jsonl").open("a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))


def test_the_trade_off_pairs_each_run_on_both_groups_and_plots_it(tmp_path):
    study = tmp_path / "study"
    for s in (0, 1):
        d = study / "heldout_rows" / f"seed{s}"
        for name, events, frames in [("sft_init", ["B", "B", "A", "A"], ["B"] * 4),
                                     ("grpo", ["B"] * 4, ["B", "B", "B", "A"]),  # event kinds +50, frame −25
                                     ("dapo", ["B", "A", "A", "A"], ["B"] * 4),  # −25, +0
                                     ("la-dapo", ["B", "B", "A", "A"], ["B"] * 4),  # +0, +0: meets both
                                     ("pause_sft", ["A"] * 4, ["A"] * 4)]:  # a control: no point
            _rows(d, name, events)
            _frame_rows(d, name, frames)
    html = tmp_path / "fig" / "trade.html"
    out = _run(study, "--trade-off", html)
    assert out.returncode == 0, out.stderr
    # x = (+50, −25, 0), y = (−25, 0, 0): r = Σdxdy / √(Σdx² Σdy²) = −1041.67 / √(2916.67 · 416.67) = −0.94
    assert "3 runs: Pearson r -0.94; meeting ≥ 0 on both: 1 (heldout_rows:la-dapo)" in out.stdout
    page = html.read_text()
    assert "plotly" in page and "heldout_rows: grpo" in page and "pause_sft" not in page
    refused = _run(study, "--trade-off", html, "--kind", "interpolation")
    assert refused.returncode == 2 and "--trade-off compares the whole" in refused.stderr
