"""Visual-gain curation (docs/PAPER.md#curation): gain arithmetic, selection rules, both scoring modes, resume, curated files."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import fl1_core.curation as C
from fl1_core.curation import CurationConfig, GainScore, curate, score_visual_gain, select_by_gain
from fl1_core.curation.probes import rollout_correct
from fl1_core.data.formats import load_sft_records
from fl1_core.data.records import read_rejects

HINT = "The following images show how the scene continues."


# ---------------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def world(small_world) -> Path:
    return small_world


@pytest.fixture(scope="module")
def records(world):
    return load_sft_records(world / "sft.json").records


def distinct_records(records, k: int, **meta):
    """k records with pairwise distinct question texts (so a fake model can tell them apart), meta filters."""
    out, seen = [], set()
    for r in records:
        if r.question_text in seen or any((r.meta or {}).get(key) != v for key, v in meta.items()):
            continue
        seen.add(r.question_text)
        out.append(r)
    assert len(out) >= k
    return out[:k]


def subset_file(world: Path, n: int, name: str) -> Path:
    """The first n rows of the world's sft.json, written next to it (relative video paths stay valid)."""
    rows = json.loads((world / "sft.json").read_text())[:n]
    path = world / name
    path.write_text(json.dumps(rows))
    return path


def gs(id_: str, p_text: float, p_hint: float, **kw) -> GainScore:
    return GainScore(id=id_, p_text=p_text, p_hint=p_hint, mode="rollouts", **kw)


class Counting(torch.nn.Module):
    """Wraps the model; counts forward calls and rows; optionally raises on call number ``fail_on`` (a "crash")."""

    def __init__(self, model, fail_on: int | None = None):
        super().__init__()
        self.inner = model
        self.calls = 0
        self.rows = 0
        self.fail_on = fail_on

    @property
    def device(self):
        return self.inner.device

    @property
    def base(self):  # the LM head scores target positions outside forward
        return self.inner.base

    def forward(self, **batch):
        self.calls += 1
        if self.fail_on is not None and self.calls == self.fail_on:
            raise RuntimeError("simulated crash")
        self.rows += batch["input_ids"].shape[0]
        return self.inner(**batch)


@contextlib.contextmanager
def biased_towards_answers(model, processor, recs, *, hinted_only: bool, bias: float = 6.0):
    """Hooks that add ``bias`` to the logits of every token of the records' answers (only on hinted-probe rows when
    ``hinted_only``); yields the list of per-row "hinted" flags of the last forward."""
    tok = processor.tokenizer
    answer_ids = sorted({i for r in recs for text in (r.answer, ">" + r.answer)
                         for i in tok(text, add_special_tokens=False)["input_ids"]})
    hinted_rows: list[bool] = []

    def remember(_module, _args, kwargs):
        hinted_rows[:] = [HINT in tok.decode(ids) for ids in kwargs["input_ids"].tolist()]

    def add_bias(_module, _inp, out):
        out = out.clone()
        rows = torch.tensor(hinted_rows) if hinted_only else torch.ones(out.shape[0], dtype=torch.bool)
        out[rows.nonzero().squeeze(-1).unsqueeze(-1), :, answer_ids] += bias
        return out

    def scored(hidden, weight, targets, **kw):  # likelihood mode scores target positions chunk-wise, not via lm_head
        z = add_bias(None, None, (hidden @ weight.T).float())
        return torch.log_softmax(z, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1), None

    import fl1_core.curation.probes as curation_mod

    real_scorer = curation_mod.token_logprobs
    curation_mod.token_logprobs = scored
    handles = [model.register_forward_pre_hook(remember, with_kwargs=True), model.base.lm_head.register_forward_hook(add_bias)]
    try:
        yield hinted_rows
    finally:
        curation_mod.token_logprobs = real_scorer
        for h in handles:
            h.remove()


# ---------------------------------------------------------------------------------------------------------- selection
def test_gain_is_p_hint_minus_p_text_and_rows_round_trip():
    s = gs("a", 0.25, 0.875, question_kind="next_event", needs_vision=True, detail={"correct_text": 2})
    assert s.gain == pytest.approx(0.625)
    row = s.to_row("fp")
    assert row["gain"] == pytest.approx(0.625) and row["fingerprint"] == "fp"
    assert GainScore.from_row(json.loads(json.dumps(row))) == s


def test_selection_drops_easy_negative_and_zero_gain():
    scores = [
        gs("easy", 0.75, 1.0),  # solved text-only (P_t >= 0.75) even though gain > 0
        gs("neg", 0.5, 0.25),
        gs("zero", 0.25, 0.25),
        gs("good", 0.0, 0.5),
        gs("almost_easy", 0.625, 1.0),
    ]
    d = {x.id: x for x in select_by_gain(scores, CurationConfig(easy_threshold=0.75))}
    assert [x.id for x in select_by_gain(scores, CurationConfig())] == [s.id for s in scores]  # input order
    assert (d["easy"].reason, d["neg"].reason, d["zero"].reason) == ("easy", "negative_gain", "zero_gain")
    assert d["good"].kept and d["almost_easy"].kept and not d["easy"].kept
    assert d["good"].rank == 1 and d["almost_easy"].rank == 2 and d["neg"].rank is None
    # zero gain is kept when allowed; negative gain never
    d2 = {x.id: x for x in select_by_gain(scores, CurationConfig(drop_zero_gain=False))}
    assert d2["zero"].kept and d2["neg"].reason == "negative_gain"


def test_top_k_orders_by_gain_then_id():
    scores = [gs("d", 0.0, 0.5), gs("c", 0.0, 0.5), gs("a", 0.25, 0.5), gs("b", 0.0, 1.0), gs("e", 0.0, 0.5)]
    d = select_by_gain(scores, CurationConfig(top_k=3))
    by_id = {x.id: x for x in d}
    assert sorted((x.rank, x.id) for x in d) == [(1, "b"), (2, "c"), (3, "d"), (4, "e"), (5, "a")]
    assert [x.id for x in d if x.kept] == ["d", "c", "b"]  # input order; b (gain 1.0), then c, d (gain 0.5, by id)
    assert by_id["e"].reason == "beyond_top_k" and by_id["a"].reason == "beyond_top_k"
    # deterministic regardless of input order
    again = select_by_gain(list(reversed(scores)), CurationConfig(top_k=3))
    assert {x.id for x in again if x.kept} == {"b", "c", "d"}


def test_stratified_letters_keep_each_letters_share():
    """Gain favours letter D; stratified, each letter keeps its share of the input (free-form its own)."""
    from fl1_core.curation.selection import answer_stratum

    answers = {f"{letter}{i}": letter for letter in "ABCD" for i in range(4)} | {f"f{i}": "the ball falls" for i in range(8)}
    scores = [gs(i, 0.0, 0.9 if a == "D" else 0.5 - 0.01 * int(i[1:])) for i, a in answers.items()]
    strata = {i: answer_stratum(a) for i, a in answers.items()}
    assert answer_stratum(" C ") == "C" and answer_stratum("the ball falls") == "free-form"
    plain = [x.id for x in select_by_gain(scores, CurationConfig(keep_fraction=0.5), strata) if x.kept]
    assert sum(i.startswith("D") for i in plain) == 4  # unstratified: every D record, by gain
    config = CurationConfig(keep_fraction=0.5, stratify_letters=True)
    kept = [x for x in select_by_gain(scores, config, strata) if x.kept]
    by_stratum = Counter(strata[x.id] for x in kept)
    assert by_stratum == {"A": 2, "B": 2, "C": 2, "D": 2, "free-form": 4}
    assert {x.id for x in kept if strata[x.id] == "A"} == {"A0", "A1"}  # the stratum's top by gain
    # without strata (or with the option off) selection is the plain top K
    assert [x.id for x in select_by_gain(scores, config) if x.kept] == plain


def test_centred_gain_removes_a_letter_offset_the_hints_cause():
    """Hint images lower every A record's gain by 0.6 (a letter-prior shift); centred per stratum, an A record
    whose gain is above its letter's mean is kept, and the letters keep their shares without stratifying."""
    from fl1_core.curation.selection import answer_stratum

    help_ = [0.0, 0.1, 0.2, 0.3]  # the visual help of records 0..3 of each letter
    answers = {f"{letter}{i}": letter for letter in "AD" for i in range(4)}
    scores = [gs(i, 0.3, 0.3 + help_[int(i[1:])] - (0.6 if a == "A" else 0.0)) for i, a in answers.items()]
    strata = {i: answer_stratum(a) for i, a in answers.items()}
    plain = {x.id for x in select_by_gain(scores, CurationConfig(), strata) if x.kept}
    assert plain == {"D1", "D2", "D3"}  # every A record has a negative raw gain
    decided = {x.id: x for x in select_by_gain(scores, CurationConfig(centre_gain=True), strata)}
    assert {i for i, x in decided.items() if x.kept} == {"A2", "A3", "D2", "D3"}  # above their letter's mean 0.15
    assert decided["A3"].selection_gain == pytest.approx(0.15) and decided["A3"].gain == pytest.approx(-0.3)
    assert decided["A1"].reason == "negative_gain"


def test_threshold_and_keep_fraction_modes():
    scores = [gs("a", 0.0, 0.125), gs("b", 0.0, 0.375), gs("c", 0.0, 0.75), gs("d", 0.5, 0.25)]
    d = {x.id: x for x in select_by_gain(scores, CurationConfig(min_gain=0.25))}
    assert d["a"].reason == "below_min_gain" and d["b"].kept and d["c"].kept and d["d"].reason == "negative_gain"
    kept = [x.id for x in select_by_gain(scores, CurationConfig(keep_fraction=0.5)) if x.kept]
    assert kept == ["b", "c"]  # floor(0.5 * 4) = 2 highest gains
    with pytest.raises(ValueError, match="top_k or keep_fraction"):
        CurationConfig(top_k=2, keep_fraction=0.5)
    with pytest.raises(ValueError, match="mode"):
        CurationConfig(mode="vibes")


def test_correctness_rules():
    assert rollout_correct("<reason>x</reason><answer>B</answer>", "B", mcq=True)
    assert rollout_correct("<answer>Answer: (b)</answer>", "B", mcq=True)
    assert not rollout_correct("<answer>A ball</answer>", "B", mcq=True)
    assert not rollout_correct("B", "B", mcq=True)  # no answer span
    ref = "the red ball hits the blue box"
    assert rollout_correct("<answer>The red ball hits the blue box.</answer>", ref, mcq=False)
    assert rollout_correct("<answer>first, the red  ball hits the BLUE box, then it stops</answer>", ref, mcq=False)
    assert rollout_correct("<answer>no</answer> ... <answer>the red ball hits the blue box</answer>", ref, mcq=False)
    assert not rollout_correct("<answer>the red ball hits the blue boxes</answer>", ref, mcq=False)  # word boundary
    assert not rollout_correct("<answer>the blue box hits the red ball</answer>", ref, mcq=False)
    assert not rollout_correct("the red ball hits the blue box", ref, mcq=False)


# ---------------------------------------------------------------------------------------------------------- likelihood
def test_likelihood_in_unit_interval_and_rises_when_the_model_prefers_the_answer(tiny, records, tmp_path):
    model, processor = tiny
    recs = records[:4]
    cfg = CurationConfig(mode="likelihood", batch_size=4)
    base = score_visual_gain(model, processor, recs, cfg, tmp_path / "a.jsonl", progress=False)
    assert [s.id for s in base] == [r.id for r in recs]
    for s in base:
        assert 0.0 < s.p_text <= 1.0 and 0.0 < s.p_hint <= 1.0
        assert s.gain == pytest.approx(s.p_hint - s.p_text)
        assert s.detail["n_tokens_text"] >= 1

    with biased_towards_answers(model, processor, recs, hinted_only=False):
        biased = score_visual_gain(model, processor, recs, cfg, tmp_path / "b.jsonl", progress=False)
    for a, b in zip(base, biased):
        assert b.p_text > a.p_text and b.p_hint > a.p_hint and b.p_hint <= 1.0

    # a model that knows the answer only when it sees the future frames: every record gains
    with biased_towards_answers(model, processor, recs, hinted_only=True) as hinted_rows:
        visual = score_visual_gain(model, processor, recs, cfg, tmp_path / "c.jsonl", progress=False)
    assert sum(hinted_rows) == len(recs)
    for a, v in zip(base, visual):
        assert v.p_text == pytest.approx(a.p_text, rel=1e-4) and v.p_hint > a.p_hint and v.gain > 0


# ---------------------------------------------------------------------------------------------------------- resume
def test_resume_skips_scored_ids_and_matches_an_uninterrupted_run(tiny, records, tmp_path):
    model, processor = tiny
    recs = records[:6]
    cfg = CurationConfig(mode="likelihood", batch_size=2)

    full = Counting(model)
    ref = score_visual_gain(full, processor, recs, cfg, tmp_path / "full.jsonl", progress=False)
    assert (full.calls, full.rows) == (3, 12)

    crashing = Counting(model, fail_on=3)  # two chunks (4 records) scored, then the process "dies"
    with pytest.raises(RuntimeError, match="simulated crash"):
        score_visual_gain(crashing, processor, recs, cfg, tmp_path / "run.jsonl", progress=False)
    on_disk = [json.loads(line)["id"] for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert on_disk == [r.id for r in recs[:4]]

    # a torn half line from a writer killed mid-append is dropped, not fatal
    with open(tmp_path / "run.jsonl", "a") as fh:
        fh.write('{"id": "world-sft-000')
    again = Counting(model)
    resumed = score_visual_gain(again, processor, recs, cfg, tmp_path / "run.jsonl", progress=False)
    assert (again.calls, again.rows) == (1, 4)  # only the last two records, both probes
    assert resumed == ref
    lines = (tmp_path / "run.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == [r.id for r in recs]

    done = Counting(model)
    assert score_visual_gain(done, processor, recs, cfg, tmp_path / "run.jsonl", progress=False) == ref
    assert done.calls == 0

    edited = [dataclasses.replace(recs[0], answer="the light turns on")] + list(recs[1:])
    with pytest.raises(ValueError, match="changed"):
        score_visual_gain(model, processor, edited, cfg, tmp_path / "run.jsonl", progress=False)
    with pytest.raises(ValueError, match="fingerprint"):
        score_visual_gain(model, processor, recs, cfg.replace(likelihood_scope="tagged"), tmp_path / "run.jsonl", progress=False)
    # selection settings are not part of the fingerprint: re-selecting from cached scores is free
    assert score_visual_gain(Counting(model), processor, recs, cfg.replace(top_k=1, easy_threshold=0.5),
                             tmp_path / "run.jsonl", progress=False) == ref


def test_rollouts_resume_with_the_real_decoder_is_identical(tiny, records, tmp_path, monkeypatch):
    model, processor = tiny
    recs = records[:4]
    cfg = CurationConfig(mode="rollouts", n_rollouts=2, max_new_tokens=3, batch_size=2, seed=7)
    ref = score_visual_gain(model, processor, recs, cfg, tmp_path / "full.jsonl", progress=False)
    for s in ref:
        assert s.p_text in (0.0, 0.5, 1.0) and s.detail["n"] == 2

    real = C.probes.generate_with_latents
    calls = []

    def crash_second(model_, inputs, **kw):
        calls.append((inputs["input_ids"].shape[0], kw["num_samples"]))
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real(model_, inputs, **kw)

    monkeypatch.setattr(C.probes, "generate_with_latents", crash_second)
    with pytest.raises(RuntimeError):
        score_visual_gain(model, processor, recs, cfg, tmp_path / "run.jsonl", progress=False)
    monkeypatch.setattr(C.probes, "generate_with_latents", real)
    assert score_visual_gain(model, processor, recs, cfg, tmp_path / "run.jsonl", progress=False) == ref
    assert calls[0] == (2 * 2, 2)  # records × probes prompts, each prefilled once for its 2 rollouts


# ---------------------------------------------------------------------------------------------------------- rollouts
def make_fake_generate(processor, plan: dict[str, tuple[int, int]], recs, n: int, seen: list):
    """A generate function returning fixed texts: for record r, the first plan[r][0] (text-only) / plan[r][1]
    (hinted) rollouts of a prompt are correct, the rest wrong."""
    tok = processor.tokenizer
    by_question = {r.question_text: r for r in recs}

    def fake(model, inputs, **kw):
        seen.append(kw)
        texts, counters = [], {}
        for ids in inputs["input_ids"].repeat_interleave(kw["num_samples"], dim=0).tolist():
            prompt = tok.decode(ids)
            rec = next(r for q, r in by_question.items() if q in prompt)
            hinted = HINT in prompt
            k = counters.get((rec.id, hinted), 0)
            counters[(rec.id, hinted)] = k + 1
            good = k < plan[rec.id][int(hinted)]
            answer = (rec.answer if len(rec.answer) == 1 else rec.answer.upper() + ".") if good else "the light stays off"
            texts.append(f"<reason>thinking</reason>\n<answer>{answer}</answer><|im_end|>")
        assert all(v == n for v in counters.values())
        return SimpleNamespace(texts=texts)

    return fake


def test_rollouts_mode_with_a_fake_model_gives_the_expected_accuracies(tiny, records, tmp_path, monkeypatch):
    model, processor = tiny
    recs = distinct_records(records, 2, format="mcq") + distinct_records(records, 2, format="free-form")
    plan = {recs[0].id: (2, 6), recs[1].id: (8, 8), recs[2].id: (0, 5), recs[3].id: (3, 1)}
    seen: list = []
    monkeypatch.setattr(C.probes, "generate_with_latents", make_fake_generate(processor, plan, recs, 8, seen))
    cfg = CurationConfig(mode="rollouts", n_rollouts=8, batch_size=4, temperature=0.7, top_p=0.9, max_new_tokens=20)
    scores = score_visual_gain(model, processor, recs, cfg, tmp_path / "s.jsonl", progress=False)
    got = {s.id: (s.p_text, s.p_hint, s.gain) for s in scores}
    assert got == {rid: (t / 8, v / 8, (v - t) / 8) for rid, (t, v) in plan.items()}
    assert len(seen) == 1  # one batched call for 4 records × 2 probes × 8 rollouts
    assert seen[0]["do_sample"] and seen[0]["temperature"] == 0.7 and seen[0]["top_p"] == 0.9
    assert seen[0]["max_new_tokens"] == 20 and isinstance(seen[0]["seed"], int)
    decisions = {d.id: d for d in select_by_gain(scores, cfg)}
    assert [decisions[r.id].reason for r in recs] == ["kept", "easy", "kept", "negative_gain"]


# ---------------------------------------------------------------------------------------------------------- curate
def test_curate_writes_a_loadable_curated_set_with_exactly_the_kept_ids(tiny, world, tmp_path, monkeypatch):
    model, processor = tiny
    src = subset_file(world, 6, "sft_first6.json")
    recs = load_sft_records(src).records
    plan = {r.id: (0, 8) for r in recs}  # every record gains 1.0 → ties, resolved by id
    plan[recs[1].id] = (8, 8)  # easy
    monkeypatch.setattr(C.probes, "generate_with_latents", make_fake_generate(processor, plan, recs, 2, []))
    if len({r.question_text for r in recs}) < len(recs):
        pytest.skip("world subset repeats a question text; the fake model cannot tell records apart")
    cfg = CurationConfig(mode="rollouts", n_rollouts=2, batch_size=3, top_k=3)
    out = tmp_path / "curated"
    res = curate(model, processor, src, out, cfg, progress=False)

    expected = sorted(r.id for r in recs if r.id != recs[1].id)[:3]
    assert sorted(res.kept_ids) == expected
    loaded = load_sft_records(res.curated_path)  # relative video paths were made absolute
    assert [r.id for r in loaded.records] == [r.id for r in recs if r.id in expected]  # source order
    assert all(Path(r.video).is_absolute() for r in loaded.records)
    raw = json.loads(res.curated_path.read_text())
    orig = {row["id"]: row for row in json.loads(src.read_text())}
    for row in raw:  # everything but the media path is the original row
        assert {k: v for k, v in row.items() if k != "video"} == {k: v for k, v in orig[row["id"]].items() if k != "video"}

    table = [json.loads(x) for x in res.table_path.read_text().splitlines()]
    assert [t["id"] for t in table] == [r.id for r in recs]
    assert {t["id"] for t in table if t["kept"]} == set(expected)
    assert set(table[0]) >= {"id", "p_text", "p_hint", "gain", "kept", "reason", "question_kind", "needs_vision"}
    csv_lines = res.csv_path.read_text().splitlines()
    assert len(csv_lines) == 7 and csv_lines[0].startswith("id,p_text,p_hint,gain,kept,reason")
    summary = json.loads(res.summary_path.read_text())
    assert summary["counts"]["kept"] == 3 and summary["counts"]["by_reason"]["easy"] == 1
    assert summary["counts"]["by_reason"]["beyond_top_k"] == 2
    assert summary["kept"]["mean_gain"] == 1.0 and summary["random_baseline"]["k"] == 3
    assert summary["all"]["needs_vision_share"] == pytest.approx(
        sum(bool(r.meta["needs_vision"]) for r in recs) / len(recs))


def test_curate_next_to_the_source_keeps_rows_untouched_and_rejects_bad_records(tiny, world, tmp_path):
    model, processor = tiny
    rows = json.loads((world / "sft.json").read_text())[:3]
    bad_video = dict(rows[0], id="bad-video", video="videos/missing.mp4")
    no_future = dict(rows[1], id="no-future", reasoning_image=[],
                     conversations=[rows[1]["conversations"][0], {"from": "gpt", "value": "THOUGHT 0: nothing."}])
    src = world / "sft_with_bad.json"
    src.write_text(json.dumps(rows + [bad_video, no_future]))
    cfg = CurationConfig(mode="likelihood", easy_threshold=1.1)
    good = load_sft_records(src, on_error="skip").records[:3]
    with biased_towards_answers(model, processor, good, hinted_only=True):  # every good record gains
        res = curate(model, processor, src, world / "curated_here", cfg, progress=False)
    assert res.summary["counts"]["load_rejects"] == 1  # the missing video is caught by the loader
    assert read_rejects(world / "curated_here" / "rejects.jsonl")[0].record_id == "bad-video"
    assert res.summary["counts"]["score_rejects"] == 1  # no future frame → nothing to hint with
    assert read_rejects(world / "curated_here" / "scoring_rejects.jsonl")[0].record_id == "no-future"
    assert len(res.decisions) == 3 and len(res.kept_ids) == 3

    # written next to the source: the very same rows, relative paths included
    same = curate(model, processor, src, world, cfg.replace(top_k=2), scores_path=res.scores_path,
                  curated_name="sft_with_bad.curated.json", progress=False)
    raw = json.loads(same.curated_path.read_text())
    assert raw == [r for r in rows if r["id"] in set(same.kept_ids)] and len(raw) == 2
    assert raw[0]["video"].startswith("videos/")
    assert [r.id for r in load_sft_records(same.curated_path).records] == [r["id"] for r in raw]
