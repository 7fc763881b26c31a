import json
import subprocess
import sys
from pathlib import Path

import pytest

from fl1_core.evaluation.heldout_pairs import paired_table, read_pooled, read_rows

ROOT = Path(__file__).resolve().parents[1]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _row(i, group, concluded, correct):
    return {"id": f"q{i}", "answer": "B", "pred": "B" if correct else "A", "correct": correct,
            "concluded": concluded, "group": group}


def test_paired_differences_per_group_match_a_hand_count(tmp_path):
    ref = _write(tmp_path / "ref.jsonl", [_row(0, "vision", "B", True), _row(1, "text", "A", False),
                                          _row(2, "frame", "B", False), _row(3, "frame", "C", True)])
    new = _write(tmp_path / "new.jsonl", [_row(0, "vision", "B", False), _row(1, "text", "B", True),
                                          _row(2, "frame", "B", True), _row(3, "frame", "B", True),
                                          _row(9, "frame", "B", True)])  # an id the reference lacks is ignored
    table = {r["group"]: r for r in paired_table(read_rows(ref), {"new": read_rows(new)})}
    assert table["event kinds"]["n"] == 2 and table["frame"]["n"] == 2 and table["all"]["n"] == 4
    assert table["event kinds"]["event delta"]["delta"] == pytest.approx(0.5)  # q1 concluded right now
    assert table["event kinds"]["letter delta"]["delta"] == pytest.approx(0.0)  # q0 lost, q1 gained
    assert table["frame"]["event delta"]["delta"] == pytest.approx(0.5)
    assert table["frame"]["letter"] == pytest.approx(1.0) and table["frame"]["letter reference"] == pytest.approx(0.5)
    # every row of both files names some option; a file whose event-kind rows name none moves only that group
    assert table["all"]["unnamed delta"]["delta"] == pytest.approx(0.0)
    none = _write(tmp_path / "none.jsonl", [_row(0, "vision", "", False), _row(1, "text", "", False),
                                           _row(2, "frame", "B", True), _row(3, "frame", "C", True)])
    table = {r["group"]: r for r in paired_table(read_rows(ref), {"none": read_rows(none)})}
    assert table["event kinds"]["unnamed"] == pytest.approx(1.0) and table["event kinds"]["unnamed reference"] == 0.0
    assert table["frame"]["unnamed delta"]["delta"] == pytest.approx(0.0)
    lo, hi = table["all"]["event delta"]["ci95"]
    assert lo < table["all"]["event delta"]["delta"] < hi


def test_the_breakdown_by_kind_pairs_each_question_kind_alone_frame_needing_kinds_last(tmp_path):
    kinds = ("where_at_time", "kth_event", "where_at_time", "interpolation")
    groups = ("frame", "vision", "frame", "text")
    ref = _write(tmp_path / "ref.jsonl", [_row(i, g, "A", False) | {"kind": k}
                                          for i, (k, g) in enumerate(zip(kinds, groups))])
    new = _write(tmp_path / "new.jsonl", [_row(i, g, "B" if i in (0, 3) else "A", i == 1) | {"kind": k}
                                          for i, (k, g) in enumerate(zip(kinds, groups))])
    rows = paired_table(read_rows(ref), {"new": read_rows(new)}, by="kind")
    assert [r["group"] for r in rows] == ["kth_event", "interpolation", "where_at_time"]
    table = {r["group"]: r for r in rows}
    assert table["where_at_time"]["n"] == 2 and table["where_at_time"]["event delta"]["delta"] == pytest.approx(0.5)
    assert table["interpolation"]["event delta"]["delta"] == pytest.approx(1.0)
    assert table["kth_event"]["event delta"]["delta"] == 0.0 and table["kth_event"]["letter"] == 1.0
    with pytest.raises(KeyError, match="without 'kind'"):
        paired_table(read_rows(_write(tmp_path / "old.jsonl", [_row(0, "frame", "A", False)])),
                     {"new": read_rows(new)}, by="kind")
    with pytest.raises(ValueError, match="unknown breakdown"):
        paired_table(read_rows(ref), {"new": read_rows(new)}, by="seed")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "heldout_pairs.py"), "--by", "kind", str(ref),
                           f"new={new}"], capture_output=True, text=True)
    assert done.returncode == 0 and [line.split()[1] for line in done.stdout.splitlines()] == \
        ["kth_event", "interpolation", "where_at_time"]


def test_bad_files_are_refused_naming_them(tmp_path):
    bad = _write(tmp_path / "bad.jsonl", [{"id": "q0", "answer": "B"}])
    with pytest.raises(ValueError, match="bad.jsonl:1: not a held-out response row"):
        read_rows(bad)
    ref = _write(tmp_path / "ref.jsonl", [_row(0, "frame", "B", True)])
    other = _write(tmp_path / "other.jsonl", [_row(5, "frame", "B", True)])
    with pytest.raises(ValueError, match="no record id in common"):
        paired_table(read_rows(ref), {"other": read_rows(other)})
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "heldout_pairs.py"), str(ref), "oops"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "NAME=FILE" in done.stderr
    script = [sys.executable, str(ROOT / "scripts" / "heldout_pairs.py"), str(ref)]
    missing = subprocess.run([*script, f"other={tmp_path / 'not_yet.jsonl'}"], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such response file" in missing.stderr and "not_yet.jsonl" in missing.stderr
    unpaired = subprocess.run([*script, f"other={other}"], capture_output=True, text=True)
    assert unpaired.returncode == 2 and "no record id in common" in unpaired.stderr
    assert "Traceback" not in missing.stderr + unpaired.stderr


def test_kept_rows_drop_the_text_and_pair_as_the_full_files_do(tmp_path):
    """scripts/keep_heldout_rows.py keeps the scoring fields (no response text), and the paired table of the kept
    files equals that of the full ones; a run without held-out files is a usage error."""
    metrics = tmp_path / "run" / "metrics"
    metrics.mkdir(parents=True)
    full = {}
    for name, flips in (("sft_init", ()), ("la-dapo", (1, 2))):
        rows = []
        for i in range(6):
            row = _row(i, "frame" if i % 2 else "vision", "B" if (i in flips) ^ (i % 3 == 0) else "C", i % 2 == 0)
            rows.append(row | {"text": "<reason>long response</reason>" * 20, "kind": "kth_event", "changed": None})
        full[name] = _write(metrics / f"rl_heldout.{name}.jsonl", rows)
    out = tmp_path / "kept"
    done = subprocess.run([sys.executable, str(ROOT / "scripts/keep_heldout_rows.py"), str(tmp_path / "run"),
                           str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    kept = {name: out / path.name for name, path in full.items()}
    assert all("text" not in json.loads(line) for p in kept.values() for line in p.read_text().splitlines())
    assert json.loads(kept["sft_init"].read_text().splitlines()[0])["kind"] == "kth_event"
    assert kept["la-dapo"].stat().st_size < full["la-dapo"].stat().st_size / 5
    assert (paired_table(read_rows(kept["sft_init"]), {"x": read_rows(kept["la-dapo"])})
            == paired_table(read_rows(full["sft_init"]), {"x": read_rows(full["la-dapo"])}))
    empty = subprocess.run([sys.executable, str(ROOT / "scripts/keep_heldout_rows.py"), str(tmp_path), str(out)],
                           capture_output=True, text=True)
    assert empty.returncode == 2 and "no metrics/rl_heldout" in empty.stderr


def test_pooled_seeds_pair_each_seed_with_its_own_reference(tmp_path):
    """Two seeds share ids; pooling pairs seed k's model rows with seed k's reference only. Here each seed's model
    equals its own reference, so the pooled Δ is 0 with a zero-width CI; pairing across seeds would give a wide one.
    The script refuses a model with another number of files than the reference."""
    seed0 = [_row(0, "frame", "B", True), _row(1, "frame", "C", False)]
    seed1 = [_row(0, "frame", "C", False), _row(1, "frame", "B", True)]
    ref0, ref1 = _write(tmp_path / "ref0.jsonl", seed0), _write(tmp_path / "ref1.jsonl", seed1)
    new0, new1 = _write(tmp_path / "new0.jsonl", seed0), _write(tmp_path / "new1.jsonl", seed1)
    pooled = read_pooled([new0, new1])
    assert len(pooled) == 4 and pooled["1:q0"]["concluded"] == "C" and pooled["0:q0"]["concluded"] == "B"
    own = {r["group"]: r for r in paired_table(read_pooled([ref0, ref1]), {"new": pooled})}["frame"]
    assert own["n"] == 4 and own["event delta"]["ci95"] == pytest.approx([0.0, 0.0])
    crossed = {r["group"]: r for r in paired_table(read_pooled([ref1, ref0]), {"new": pooled})}["frame"]
    assert crossed["event delta"]["ci95"][1] - crossed["event delta"]["ci95"][0] > 1.0
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "heldout_pairs.py"), f"{ref0},{ref1}",
                           f"new={new0}"], capture_output=True, text=True)
    assert done.returncode == 2 and "1 files against 2 reference files" in done.stderr
    ok = subprocess.run([sys.executable, str(ROOT / "scripts" / "heldout_pairs.py"), f"{ref0},{ref1}",
                         f"new={new0},{new1}"], capture_output=True, text=True)
    assert ok.returncode == 0 and "n=4" in ok.stdout and "Δ +0.0 [+0.0, +0.0]" in ok.stdout
