"""The frame-reading decomposition: the world's own chains parse as right readings that their conclusions follow;
a wrong reading, a conclusion that ignores the reading and a missing reading are each told apart."""

import json
import re

import pytest

from fl1_core.audit.frame_reading import (asked_object, read_frame, reading_decomposition, reading_points,
                                          reading_rows)
from fl1_core.tokens import LATENT_END, LATENT_START, LATENT_TOKEN


def response(thoughts: list[str], letter: str = "B", slots: int = 9) -> str:
    span = LATENT_START + LATENT_TOKEN * slots + LATENT_END
    return span.join(f"<reason>{t}</reason>\n" for t in thoughts) + f"<answer>{letter}</answer>"


GOLD = "the red ball is on the floor at the left"
READ_LEFT = "From left to right: the red ball on the floor at the left, the blue box on the ledge in the middle."
READ_MID = "From left to right: the blue box on the ledge at the left, the red ball on the floor in the middle."


def test_every_reference_chain_of_the_world_reads_right_and_is_followed(small_world):
    rows = [json.loads(x) for name in ("heldout_mcq.jsonl", "rl.jsonl")
            for x in (small_world / name).read_text().splitlines()]
    frame = [r["meta"] for r in rows if r["meta"].get("needs_frame")]
    texts = [response(m["reference_thoughts"]) for m in frame]
    for r in json.loads((small_world / "sft.json").read_text()):  # free-form SFT chains: "THOUGHT k: …<image>…"
        if r["meta"].get("needs_frame"):
            gpt = r["conversations"][-1]["value"]
            texts.append(response([re.sub(r"^THOUGHT \d+: ", "", t) for t in gpt.split("<image>")]))
            frame.append(r["meta"])
    assert len(frame) >= 15 and {m["question_kind"] for m in frame} == {"where_at_event", "where_at_time"}
    for text, meta in zip(texts, frame):
        r = read_frame(text, meta["answer_text"])
        assert (r.reading_right, r.follows, r.concluded_right) == (True, True, True), text
    d = reading_decomposition(texts, frame)
    assert d["reading_right"]["share"] == d["follows_reading"]["share"] == d["concluded_right"]["share"] == 1.0
    assert d["changed"]["reading_right"]["n"] == sum(bool(m["changed"]) for m in frame)


def test_wrong_reading_followed_right_reading_ignored_and_no_reading_are_told_apart():
    wrong_followed = read_frame(response(["Imagine.", f"{READ_MID} So, the red ball is on the floor in the middle, "
                                                       "which is option B."]), GOLD)
    assert (wrong_followed.read, wrong_followed.reading_right, wrong_followed.follows,
            wrong_followed.concluded_right) == ("on the floor in the middle", False, True, False)
    ignored = read_frame(response(["Imagine.", f"{READ_LEFT} So, the red ball is on the floor at the right, "
                                               "which is option C."]), GOLD)
    assert (ignored.reading_right, ignored.follows, ignored.concluded_right) == (True, False, False)
    # the reading names another object only: no reading of the asked one, so "follows" is undefined
    blind = read_frame(response(["Imagine.", "From left to right: the blue box on the ledge at the left. So, the red "
                                             "ball is on the floor at the left, which is option A."]), GOLD)
    assert (blind.read, blind.follows, blind.concluded_right) == (None, None, True)
    # the conclusion's place is read from the last thought only, never from the question's options
    early = read_frame(response([f"{READ_LEFT} So, the red ball is on the floor at the left, which", "Done."]), GOLD)
    assert early.read is None and early.concluded is None


def test_decomposition_shares_and_points():
    metas = [{"needs_frame": True, "answer_text": GOLD, "changed": c} for c in (True, True, False)]
    metas.append({"needs_frame": False, "answer_text": "the red ball hits the blue box"})  # not counted
    texts = [
        response(["x", f"{READ_LEFT} So, the red ball is on the floor at the left, which is option A."]),
        response(["x", f"{READ_LEFT} So, the red ball is on the floor in the middle, which is option B."]),
        response(["x", f"{READ_MID} So, the red ball is on the floor in the middle, which is option B."]),
        "<answer>A</answer>",
    ]
    d = reading_decomposition(texts, metas)
    assert d["reading_right"]["n"] == 3 and d["reading_right"]["share"] == pytest.approx(2 / 3)
    assert d["follows_reading"]["share"] == pytest.approx(2 / 3)
    assert d["concluded_right"]["share"] == pytest.approx(1 / 3)
    assert d["concluded_if_read_right"]["n"] == 2 and d["concluded_if_read_right"]["share"] == 0.5
    assert d["changed"]["reading_right"]["share"] == 1.0 and d["changed"]["concluded_right"]["share"] == 0.5
    lo, hi = d["concluded_right"]["ci95"]
    assert 0 < lo < 1 / 3 < hi < 1
    points = reading_points(d)
    assert points["reading_right"][0] == 66.7 and points["changed"]["concluded_right"][0] == 50.0
    rows = reading_rows({"model": d})
    assert rows[0]["decode"] == "model" and rows[0]["reading right"].startswith("66.7 [")
    empty = reading_decomposition(["<answer>A</answer>"], metas[:1])  # no reading, no conclusion
    assert empty["follows_reading"] == {"n": 0, "k": 0, "share": None, "ci95": None}
    assert reading_points(empty)["follows_reading"] is None
    assert reading_rows({"m": empty})[0]["conclusion follows the reading"] == "— (n=0)"


def test_changed_items_count_readings_and_conclusions_that_keep_the_present_place():
    present = "the red ball is on the floor in the middle"  # where it was at the last observed frame
    metas = [{"needs_frame": True, "answer_text": GOLD, "changed": True, "present_answer": present}] * 3
    metas.append({"needs_frame": True, "answer_text": GOLD, "changed": False, "present_answer": GOLD})
    texts = [
        response(["x", f"{READ_MID} So, the red ball is on the floor in the middle, which is option B."]),  # present
        response(["x", f"{READ_LEFT} So, the red ball is on the floor in the middle, which is option B."]),
        response(["x", f"{READ_LEFT} So, the red ball is on the floor at the left, which is option A."]),
        response(["x", f"{READ_LEFT} So, the red ball is on the floor at the left, which is option A."]),
    ]
    d = reading_decomposition(texts, metas)
    assert d["changed"]["read_present"] == {"n": 3, "k": 1, "share": pytest.approx(1 / 3),
                                            "ci95": d["changed"]["read_present"]["ci95"]}
    assert d["changed"]["concluded_present"]["k"] == 2 and "read_present" not in d  # changed items only
    rows = reading_rows({"m": d}, subset="changed")
    assert rows[0]["concluded where it was at the last observed frame"].startswith("66.7 [")
    assert "read where it was at the last observed frame" not in reading_rows({"m": d})[0]
    older = reading_decomposition(texts, [{k: v for k, v in m.items() if k != "present_answer"} for m in metas])
    assert "concluded_present" not in older["changed"]  # worlds written before present_answer


def test_asked_object_rejects_an_event_answer():
    assert asked_object(GOLD) == ("red ball", "on the floor at the left")
    with pytest.raises(ValueError, match="not a frame-needing answer"):
        asked_object("the red ball hits the blue box")
