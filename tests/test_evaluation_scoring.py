"""Scoring without a judge: option-letter extraction, FutureBench/TwiFF-Bench aggregation, reply parsing, rules."""

from __future__ import annotations

import pytest

from fl1_core.evaluation import coerce_score_pair, extract_answer_letter, score_futurebench, score_twiffbench
from fl1_core.judge.parsing import clamp_score_pair, parse_score_reply, parse_yes_no
from fl1_core.judge.rules import rule_answer_score, rule_cot_score, rule_yes_no
from fl1_core.judge.sanitize import VISUAL_MARKER, sanitize_for_judge, split_reasoning_answer

pytestmark = pytest.mark.timeout(30)

# text, faithful, strict
EXTRACTION_TABLE = [
    ("<answer>Answer: B</answer>", "A", "B"),  # the release's defect: the A of "Answer"
    ("<answer>B</answer>", "B", "B"),
    ("<answer>b</answer>", "", "B"),
    ("<answer>A</answer> wait <answer>C</answer>", "A", "C"),  # first span vs last span
    ("C", "", ""),  # no tags
    ("The answer is B.", "", ""),
    ("<answer>(d)</answer>", "", "D"),
    ("<answer>(D)</answer>", "D", "D"),
    ("<ANSWER> C. the ball </ANSWER>", "", "C"),  # case-insensitive tags only in strict
    ("<answer> C. the ball </answer>", "C", "C"),
    ("<answer>a ball</answer>", "", ""),  # the article "a" is not option A
    ("<answer>a ball, so the option is B</answer>", "B", "B"),
    ("<answer>a ball, option (c)</answer>", "", "C"),
    ("<answer>a</answer>", "", "A"),
    ("<answer>a) the ball</answer>", "", "A"),
    ("<answer>the answer is c</answer>", "", "C"),
    ("<answer>Because of the ball</answer>", "B", ""),  # letters inside words never count in strict
    ("<answer>Dog</answer>", "D", ""),
    ("<answer></answer>", "", ""),
    ("<answer>B:</answer>", "B", "B"),
    ("<|latent_start|><|latent|><|latent_end|><answer><|latent|>B<|latent|></answer>", "B", "B"),
    ("<answer>B</answer><answer>no letter here</answer>", "B", ""),
]


@pytest.mark.parametrize("text,faithful,strict", EXTRACTION_TABLE)
def test_extract_answer_letter_table(text: str, faithful: str, strict: str) -> None:
    assert extract_answer_letter(text, mode="faithful") == faithful
    assert extract_answer_letter(text, mode="strict") == strict


def test_extract_default_mode_is_faithful_and_bad_mode_raises() -> None:
    assert extract_answer_letter("<answer>Answer: B</answer>") == "A"
    with pytest.raises(ValueError, match="mode"):
        extract_answer_letter("<answer>B</answer>", mode="lenient")


def _fb(qt: str, gold: str, response: str) -> dict:
    return {"question_type": qt, "answer": gold, "response": response}


def test_score_futurebench_known_numbers_and_empty_split() -> None:
    recs = (
        # hop1: 4 samples, faithful 3/4 correct, strict 4/4 ("Answer: B" → A faithful, B strict)
        [_fb("hop1", "A", "<answer>A</answer>")] * 2
        + [_fb("hop1", "C", "<answer>C</answer>"), _fb("hop1", "B", "<answer>Answer: B</answer>")]
        # hop2: 2 samples, 1 correct in both modes, 1 empty in both
        + [_fb("hop2", "D", "<answer>D</answer>"), _fb("hop2", "D", "no tags at all")]
        # hop5 (Interp.): 4 samples; faithful 0/4, strict 2/4
        + [_fb("hop5", "B", "<answer>b</answer>"), _fb("hop5", "C", "<answer>(c)</answer>")]
        + [_fb("hop5", "A", "<answer>B</answer>"), _fb("hop5", "A", "<answer>D</answer>")]
    )
    out = score_futurebench(recs)
    assert out["unit"] == "percent" and out["n"] == 10
    f, s = out["faithful"], out["strict"]
    assert f["per_split"]["hop1"] == {"label": "1-hop", "n": 4, "correct": 3, "accuracy": 75.0}
    assert s["per_split"]["hop1"]["accuracy"] == 100.0
    assert f["per_split"]["hop2"]["accuracy"] == s["per_split"]["hop2"]["accuracy"] == 50.0
    assert f["per_split"]["hop3"] == {"label": "3-hop", "n": 0, "correct": 0, "accuracy": None}
    assert f["per_split"]["hop5"]["label"] == "Interp."
    assert f["per_split"]["hop5"]["accuracy"] == 0.0 and s["per_split"]["hop5"]["accuracy"] == 50.0
    assert f["overall"] == pytest.approx(40.0) and s["overall"] == pytest.approx(70.0)  # micro: 4/10, 7/10
    assert f["macro"] == pytest.approx((75 + 50 + 0) / 3) and s["macro"] == pytest.approx((100 + 50 + 50) / 3)
    # empty answers: faithful "no tags", "b", "(c)"; strict only "no tags"
    assert f["n_empty"] == 3 and s["n_empty"] == 1
    assert f["table"] == {"1-hop": 75.0, "2-hop": 50.0, "3-hop": None, "Interp.": 0.0, "AVG": pytest.approx(40.0)}


def test_score_futurebench_precomputed_predictions_and_errors() -> None:
    recs = [{"question_type": "hop3", "answer": "b", "pred_faithful": "A", "pred_strict": "B"}]
    out = score_futurebench(recs)
    assert out["faithful"]["overall"] == 0.0 and out["strict"]["overall"] == 100.0
    with pytest.raises(ValueError, match="question_type"):
        score_futurebench([{"id": "x1", "question_type": "hop4", "answer": "A", "response": ""}])
    with pytest.raises(ValueError, match="x2.*answer"):
        score_futurebench([{"id": "x2", "question_type": "hop1", "answer": "E", "response": ""}])
    empty = score_futurebench([])
    assert empty["strict"]["overall"] is None and empty["strict"]["macro"] is None


COERCE_TABLE = [
    ([3, 4], (3, 4)),
    ([[3, 4]], (3, 4)),
    ([3, [4, 5]], (3, 4)),
    (["3", "4.6"], (3, 5)),
    ([True, 3], None),
    ([3, False], None),
    ([3], None),
    ([], None),
    ({"cot_score": 3, "answer_score": 4}, (3, 4)),
    ({"answer_score": 4, "cot_score": 3}, (3, 4)),  # named keys win over position
    ({"cot": 2.5, "ans": 0.49}, (3, 0)),  # half-up rounding
    ({"reason": "fine", "scores": [1, 2]}, (1, 2)),  # non-numeric strings skipped
    ({"cot_score": True, "answer_score": 4}, None),
    ([3, 7, True], (3, 7)),  # a bool after two numbers is never reached
    ([float("nan"), 3], None),
    ("3", None),
    (None, None),
    ([None, 4, "x", 5], (4, 5)),
]


@pytest.mark.parametrize("obj,expected", COERCE_TABLE)
def test_coerce_score_pair(obj: object, expected: tuple[int, int] | None) -> None:
    assert coerce_score_pair(obj) == expected


def test_clamp_and_parse_score_reply() -> None:
    assert clamp_score_pair((3, 4)) == ((3, 4), False)
    assert clamp_score_pair((7, -1)) == ((5, 0), True)
    assert clamp_score_pair((3, 12), lo=1, hi=10) == ((3, 10), True)
    assert parse_score_reply('{"cot_score": 2, "answer_score": 5}') == (2, 5)
    assert parse_score_reply('Sure!\n```json\n{"cot_score": 1, "answer_score": 0}\n```') == (1, 0)
    assert parse_score_reply('{"cot_score": 3, "answer_score": ') is None
    assert parse_score_reply("I cannot score this.") is None
    assert parse_score_reply(None) is None


YES_NO_TABLE = [
    ("yes", True),
    ("Yes", True),
    (" NO \n", False),
    ("yes.", True),
    ("No.", False),
    ('{"answer": "yes"}', True),
    ('{"answer":"No"}', False),
    ("yes!", None),
    ("yes..", None),
    ("yes, the answers match", None),
    ("The answer is yes", None),
    ("noyes", None),
    ("y", None),
    ("", None),
    ("maybe", None),
    ('{"answer": "perhaps"}', None),
    ('{"answer": "yes", "why": "same"}', None),
    ('{"verdict": "yes"}', None),
    ("yes\nno", None),
    (None, None),
]


@pytest.mark.parametrize("reply,expected", YES_NO_TABLE)
def test_parse_yes_no_strict(reply: str | None, expected: bool | None) -> None:
    assert parse_yes_no(reply) is expected


def test_sanitize_and_split() -> None:
    raw = (
        "<reason>the red ball rolls.</reason>\n<|latent_start|><|latent|><|latent|><|latent_end|>\n"
        "<reason>it hits the box.</reason>\n<answer>the box falls.</answer><|im_end|><|endoftext|>"
    )
    clean = sanitize_for_judge(raw)
    assert "<|" not in clean and VISUAL_MARKER in clean and clean.endswith("</answer>")
    reasoning, answer = split_reasoning_answer(raw)
    assert answer == "the box falls."
    assert reasoning.startswith("the red ball rolls.") and "it hits the box." in reasoning
    assert VISUAL_MARKER in reasoning and "<reason>" not in reasoning and "<answer>" not in reasoning
    # an unclosed latent span (truncated generation) is collapsed too
    assert sanitize_for_judge("x <|latent_start|><|latent|><|latent|>") == f"x {VISUAL_MARKER}"
    # no answer tags → empty answer; unclosed answer → rest of the text
    assert split_reasoning_answer("just text") == ("just text", "")
    assert split_reasoning_answer("why <answer> B") == ("why", "B")
    # last of two answer spans; the earlier one stays in the reasoning as text
    assert split_reasoning_answer("<answer>A</answer> hmm <answer>C</answer>") == ("A hmm", "C")


def test_score_twiffbench() -> None:
    recs = [
        {"cot_score": 4, "answer_score": 2, "judge_error": None},
        {"cot_score": 2, "answer_score": 5, "judge_error": None, "clamped": True},
        {"cot_score": 9, "answer_score": 3, "judge_error": None},  # clamped here to 5
        {"cot_score": None, "answer_score": None, "judge_error": "timeout: gave up"},
    ]
    out = score_twiffbench(recs)
    assert out["n"] == 4 and out["n_judged"] == 3 and out["n_failed"] == 1 and out["n_clamped"] == 2
    assert out["cot"] == pytest.approx(11 / 3) and out["answer"] == pytest.approx(10 / 3)
    assert out["avg"] == pytest.approx((11 / 3 + 10 / 3) / 2)
    z = out["failures_as_zero"]
    assert z["cot"] == pytest.approx(11 / 4) and z["answer"] == pytest.approx(10 / 4)
    assert z["avg"] == pytest.approx((11 / 4 + 10 / 4) / 2)
    none = score_twiffbench([{"cot_score": None, "answer_score": None, "judge_error": "x"}])
    assert none["cot"] is None and none["avg"] is None and none["failures_as_zero"]["avg"] == 0.0


def test_judge_rules() -> None:
    ref = ("THOUGHT 0: the red ball hits the blue box.<rimage>THOUGHT 1: The blue box slides right!\n"
           "the lamp turns on. the yellow block falls.")
    assert rule_cot_score(ref, "The red ball hits the blue box, then the blue-box slides right.") == 3  # 2/4 → 2.5 → 3
    assert rule_cot_score(ref, "the red ball hits the blue box") == 1  # 1/4 → 1.25 → 1
    assert rule_cot_score(ref, "the lamp turns on. the yellow block falls. the blue box slides right. "
                               "the red ball hits the blue box.") == 5
    assert rule_cot_score(ref, "the red ball hits the blue boxes") == 0  # word boundaries
    assert rule_cot_score("", "anything") == 0
    assert rule_answer_score("the blue box falls.", "The blue box falls") == 5
    assert rule_answer_score("the blue box falls.", "I think the blue box falls off.") == 5
    assert rule_answer_score("the blue box falls", "the box falls down") == 4  # F1 0.75 → 3.75 → 4
    assert rule_answer_score("the blue box falls", "nothing") == 0
    assert rule_answer_score("B", "(b)") == 5 and rule_answer_score("B", "a ball") == 0
    assert rule_yes_no("the lamp turns on", "The lamp turns on.") is True
    assert rule_yes_no("the lamp turns on", "the lamp turns off") is False
    # token F1 ignores order: a swapped collision (F1 1.0) or a flipped side (F1 0.9) is never a match
    assert rule_answer_score("the purple box hits the yellow ball", "the yellow ball hits the purple box") == 4
    assert rule_yes_no("the purple box hits the yellow ball", "the yellow ball hits the purple box") is False
    assert rule_yes_no("the green ball is on the floor at the left",
                       "the green ball is on the floor at the right") is False
    # containment holds only without extra chained events: a listed chain is not its first event
    assert rule_yes_no("the yellow box falls off the ledge",
                       "the yellow box falls off the ledge, then the green ball bounces off the right wall") is False
    assert rule_yes_no("the red ball hits the wall, then the red ball stops",
                       "so the red ball hits the wall, then the red ball stops.") is True
