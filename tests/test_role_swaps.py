"""fl1_core.evaluation.role_swaps and scripts/role_swaps.py: a conclusion that states one option's collision with its
roles swapped is counted and, read either way round, names that option; other conclusions keep their strict reading;
a written collision's subject is compared with the body the response's first thought says moves."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from role_swaps import main  # noqa: E402

from fl1_core.answers import concluded_option, option_lines  # noqa: E402
from fl1_core.data.formats import load_rl_records  # noqa: E402
from fl1_core.data.world.physics import event_text, first_event_type, swapped_roles  # noqa: E402
from fl1_core.data.world.world_types import FRAME_KINDS  # noqa: E402
from fl1_core.evaluation.role_swaps import (  # noqa: E402
    conclusion_summary, either_role, mover_agreement, reads_movers_right, stated_movers, subject_is_stated_mover,
    swapped_option,
)


def said(sentence: str) -> str:
    return f"<reason>At the end of the video, it moves.</reason>\n<reason>So, {sentence}, which is option A.</reason>" \
           "\n<answer>A</answer>"


def test_swapped_roles_only_turns_collisions_between_bodies():
    chain = "So, the red ball bounces off the left wall, then the red ball hits the blue box."
    assert first_event_type(chain) == "bounce"
    assert first_event_type(event_text("switch", "red ball")) == "switch"
    assert first_event_type(event_text("hit", "red ball", "blue box")) == "hit"
    assert first_event_type("it moves") is None
    assert swapped_roles(event_text("hit", "red ball", "blue box")) == "the blue box hits the red ball"
    assert swapped_roles(event_text("switch", "red ball")) is None
    assert swapped_roles(event_text("bounce", "red ball", where="left")) is None
    options = {"A": "the red ball hits the blue box", "B": "the red ball stops on the floor"}
    assert swapped_option(said("the blue box hits the red ball"), options) == "A"
    assert concluded_option(said("the blue box hits the red ball"), options) == ""  # the strict reading
    assert swapped_option(said("the red ball hits the blue box"), options) == ""
    two = {"A": "the red ball hits the blue box", "B": "the blue box hits the green ball"}
    assert swapped_option(said("the blue box hits the red ball, then the green ball hits the blue box"), two) == ""


def test_the_written_subject_is_compared_with_the_first_thoughts_moving_body():
    first = "<reason>At the end of the video, the red ball is rolling left along the floor, the blue box is resting " \
            "on the floor and the green ball is falling. Next, the red ball hits the blue box.</reason>"
    assert stated_movers(first) == {"red ball", "green ball"}
    assert stated_movers("<reason>So, the red ball hits the blue box.</reason>") is None
    assert subject_is_stated_mover(first, "the red ball hits the blue box") is True
    assert subject_is_stated_mover(first, "the blue box hits the red ball") is False
    assert subject_is_stated_mover(first, "the red ball hits the green ball") is None  # both move
    assert subject_is_stated_mover(first, "the red ball bounces off the left wall") is None
    world = "At the end of the video, the green ball is falling, the blue box is resting on the floor and the red " \
            "ball is rolling right along the floor. Next, the green ball lands on the floor."
    assert reads_movers_right(first, world) is True  # the same moving bodies, whatever their direction or order
    assert reads_movers_right(first.replace("the green ball is falling", "the green ball is resting"), world) is False
    assert reads_movers_right(first, "So, the red ball hits the blue box.") is None  # no reading to score against
    options = {"A": "the red ball hits the blue box", "B": "the red ball stops on the floor"}
    rows = [{"id": i, "kind": "next_event", "answer": a, "concluded": c, "role_swap": s, "text": first + t}
            for i, a, c, s, t in [("1", "A", "A", False, said("the red ball hits the blue box")),
                                  ("2", "A", "A", True, said("the blue box hits the red ball")),
                                  ("3", "B", "A", False, said("the red ball hits the blue box")),  # not the gold
                                  ("4", "B", "B", False, said("the red ball stops on the floor"))]]  # no collision
    agree = mover_agreement(rows, {r["id"]: options for r in rows})
    assert agree["ordered"] == Counter({True: 1}) and agree["swapped"] == Counter({False: 1})


def test_rows_are_read_either_way_round_and_counted_on_the_event_kinds(small_world, tmp_path, capsys):
    records = load_rl_records(small_world / "heldout_mcq.jsonl").records
    kinds = {json.loads(line)["id"]: json.loads(line).get("meta", {}).get("question_kind")
             for line in (small_world / "heldout_mcq.jsonl").read_text().splitlines()}
    pick = []
    for r in records:
        opts = option_lines(r.question_text)
        hit = [k for k, v in opts.items() if swapped_roles(v)]
        if hit and kinds.get(r.id) not in FRAME_KINDS:
            pick.append((r, opts, hit[0]))
    assert len(pick) >= 2
    (r1, o1, k1), (r2, o2, k2) = pick[:2]
    rows = [
        {"id": r1.id, "kind": "next_event", "answer": k1, "correct": False, "group": "vision",
         "concluded": "", "text": said(swapped_roles(o1[k1]))},  # swapped gold: unnamed strictly, gold either way
        {"id": r2.id, "kind": "next_event", "answer": k2, "correct": False, "group": "vision",
         "concluded": k2, "text": said(o2[k2])},  # named: unchanged
    ]
    read = [either_role(rows[0], o1), either_role(rows[1], o2)]
    assert read[0]["concluded"] == k1 and read[0]["role_swap"]
    assert read[1] == {**rows[1], "role_swap": False}
    types = Counter(first_event_type(o[k]) for o, k in ((o1, k1), (o2, k2)))
    assert conclusion_summary(read) == {"items": 2, "unnamed": 1, "role_swaps": 1, "role_swaps_gold": 1,
                                        "event_accuracy_either": 1.0, "types": dict(sorted(types.items())),
                                        # the swapped gold is right only either way round: the strict count skips it
                                        "types_right": {t: int(t == first_event_type(o2[k2])) for t in sorted(types)}}
    assert conclusion_summary([{**read[1], "text": "<reason>So, nothing.</reason>"}])["types"] == {"none": 1}

    responses = tmp_path / "H.model.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(small_world / "heldout_mcq.jsonl"), str(responses), "--out", str(tmp_path / "either")]) == 0
    printed = capsys.readouterr().out
    assert "2 event-kind items, 1 unnamed, of them 1 role swaps (1 of the gold option)" in printed
    assert "concluded event types: " + ", ".join(
        f"{t} {n} ({int(t == first_event_type(o2[k2]))} right)" for t, n in sorted(types.items())) in printed
    neither = "written subject = the first thought's mover 0, = its resting body 0, neither 1"  # "it moves"
    assert f"gold collisions concluded: ordered 1, {neither}; swapped 1, {neither}" in printed
    written = [json.loads(line) for line in (tmp_path / "either" / "H.model.jsonl").read_text().splitlines()]
    assert [w["concluded"] for w in written] == [k1, k2]
    bare = tmp_path / "kept.jsonl"  # kept rows have no texts: refused
    bare.write_text(json.dumps({k: v for k, v in rows[0].items() if k != "text"}) + "\n")
    with pytest.raises(SystemExit):
        main([str(small_world / "heldout_mcq.jsonl"), str(bare)])
