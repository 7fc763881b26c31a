"""The LA-DAPO trainer (docs/PAPER.md#la-dapo): replay, loss masks, dynamic sampling with refill, judge faults,
resume past a damaged checkpoint, a full disk while saving, updates."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers_rl import ALL_GROUPS
from safetensors.torch import load_file

from fl1_core.answers import rule_correct
from fl1_core.checkpoints import DamagedCheckpointWarning, DiskFullError, ResumeMismatchError
from fl1_core.judge.config import JudgeConfig
from fl1_core.judge.server import FaultConfig, start_judge_server
from fl1_core.rl.accuracy import score_accuracy
from fl1_core.rl.config import RLConfig
from fl1_core.rl.dynamic_sampling import dynamic_sampling_rounds
from fl1_core.rl.rollout import Response, score_groups
from fl1_core.rl.step_metrics import TIMING_KEYS as TIME_KEYS
from fl1_core.rl.trainer import RLTrainer


# ----------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from fl1_core.data.formats import load_rl_records
    from fl1_core.data.world import WorldConfig, generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(out, seed=0, config=WorldConfig.small(rl_size=12))
    return load_rl_records(out / "rl.jsonl").records


def small_config(**kw) -> RLConfig:
    base = dict(
        group_size=4, prompts_per_step=2, max_new_tokens=12, latent={"loose_cap": 4, "force_initial_latent": True},
        learning_rate=1e-3, max_steps=2, save_every=1, max_rounds=1, progress_bar=False, micro_batch_size=None,
    )
    base.update(kw)
    return RLConfig(**base)


def fresh_model(tiny):
    """A copy of the initial tiny model with a loose latent budget (so the ``loose_cap`` override bounds the spans)."""
    model = copy.deepcopy(tiny[0])
    model.latent_config = model.latent_config.replace(budget_mode="loose")
    return model


def make_trainer(tiny, world, tmp_path, **kw) -> RLTrainer:
    return RLTrainer(fresh_model(tiny), tiny[1], world, small_config(**kw), tmp_path)


@pytest.fixture
def token_reward(monkeypatch):
    """A random model answers nothing right; give responses a deterministic reward that varies within a group
    (share of even token ids) on top of the real scoring, so advantages are non-zero."""
    import fl1_core.rl.trainer as trainer_mod
    from helpers_rl import with_even_token_reward

    monkeypatch.setattr(trainer_mod, "score_groups", with_even_token_reward(trainer_mod.score_groups))


def rollout(trainer: RLTrainer, step: int = 0):
    sampling, _, _ = trainer.collect(step)
    return sampling


@pytest.fixture(scope="module")
def groups(tiny, world, tmp_path_factory):
    """One rollout (2 prompts x 4 responses, forced initial latent span) shared by the tests below, with a
    deterministic reward that varies within groups (share of even token ids) so advantages are non-zero."""
    tr = make_trainer(tiny, world, tmp_path_factory.mktemp("rollout"))
    out = rollout(tr).groups
    for g in out:
        for r in g:
            r.reward = float((r.sequence % 2 == 0).float().mean()) if r.length else 0.0
    return out


# ------------------------------------------------------------------------------------------ log-probs and masks
def test_replayed_old_logprobs_equal_rollout_logprobs(tiny, world, tmp_path, groups):
    tr = make_trainer(tiny, world, tmp_path, implementation="corrected", mode="la-dapo",
                      recompute_old_logprobs=True)
    batch = tr.prepare_batch(groups)
    assert any(r.latent_mask.any() for r in batch.rows), "the test needs latent spans"
    for r, old in zip(batch.rows, batch.old_logprobs):
        torch.testing.assert_close(old, r.logprobs, atol=1e-4, rtol=0)
    # the release implementation re-scores without latent replay: text after a span is scored in another context
    tr_rel = make_trainer(tiny, world, tmp_path / "rel", implementation="release", recompute_old_logprobs=True)
    old_rel = tr_rel.prepare_batch(groups).old_logprobs
    diffs = [float((o - r.logprobs).abs().max()) for o, r in zip(old_rel, batch.rows)]
    assert max(diffs) > 1e-3


@pytest.mark.parametrize("implementation", ["release", "corrected"])
def test_forced_positions_in_the_loss_mask_only_for_release(tiny, world, tmp_path, implementation, groups):
    tr = make_trainer(tiny, world, tmp_path, implementation=implementation, kl_beta=0.0)
    batch = tr.prepare_batch(groups)
    forced = torch.cat([r.forced_mask for r in batch.rows])
    mask = torch.cat(batch.loss_masks)
    assert forced.any()
    if implementation == "release":
        assert mask[forced].all() and mask.all()
    else:
        assert not mask[forced].any() and mask[~forced].all()


def _groups(accs: list[list[float]]):
    return [[SimpleNamespace(acc=a, tag=(gi, j)) for j, a in enumerate(g)] for gi, g in enumerate(accs)]


def test_grpo_mode_draws_one_round_without_filtering():
    cfg = RLConfig(mode="grpo")
    algo = cfg.algorithm
    assert algo.dynamic_sampling is False and (algo.eps_low, algo.eps_high) == (0.2, 0.2) and algo.loss_agg == "seq"
    assert cfg.latent_reward_weights[:2] == (0.0, 0.0)
    res = dynamic_sampling_rounds(lambda r: _groups([[1, 1], [0, 1], [0, 0]]), target=2, enabled=algo.dynamic_sampling)
    assert res.rounds == 1 and len(res.groups) == 2 and res.groups[0][0].acc == 1 and not res.fallback


def test_named_algorithms_and_implementations():
    dapo = RLConfig(mode="dapo")
    assert dapo.algorithm.dynamic_sampling and (dapo.algorithm.eps_low, dapo.algorithm.eps_high) == (0.2, 0.28)
    assert dapo.algorithm.loss_agg == "token" and dapo.latent_reward_weights[:2] == (0.0, 0.0)
    la = RLConfig(mode="la-dapo", implementation="corrected", mini_batches=4)
    assert la.latent_reward_weights == (0.2, 0.1, 0.5)
    assert la.implementation_settings.replay_latents and la.implementation_settings.mask_forced
    rel = RLConfig(mode="la-dapo", implementation="release")
    assert rel.latent_reward_weights == (1.0, 0.0, 0.5)
    assert not rel.implementation_settings.replay_latents and not rel.implementation_settings.mask_forced
    # the release takes one optimiser step per rollout: more is refused, not silently changed
    with pytest.raises(ValueError, match="one optimiser step per rollout"):
        RLConfig(implementation="release", mini_batches=4)
    with pytest.raises(ValueError, match="registered"):
        RLConfig(mode="ppo")
    gpu = RLConfig.gpu_release()
    assert (gpu.group_size, gpu.prompts_per_step, gpu.max_new_tokens, gpu.latent, gpu.learning_rate) == (
        8, 64, 2048, {"loose_cap": 64}, 1e-6)
    assert gpu.flags()["rl_implementation"] == "release" and gpu.mini_batches == 1
    assert RLConfig.gpu_release(implementation="corrected").mini_batches == 4
    assert RLConfig.cpu_world(implementation="release").mini_batches == 1
    # one optimiser step per rollout: π_old = π_θ, the old log-probs need no extra pass; several steps need them
    assert not rel.old_logprobs_pass and la.old_logprobs_pass
    assert RLConfig(recompute_old_logprobs=True).old_logprobs_pass
    # a name re-registered with other values is a different run on resume
    assert la.result_dict()["algorithm_settings"]["eps_high"] == 0.28


def test_the_ablations_between_grpo_and_dapo_each_take_one_dapo_ingredient():
    from fl1_core.cli import build_parser

    grpo, dapo = RLConfig(mode="grpo").algorithm, RLConfig(mode="dapo").algorithm
    fields = ("dynamic_sampling", "eps_low", "eps_high", "loss_agg", "latent_rewards")
    for name, ingredient in (("grpo-token-mean", "loss_agg"), ("grpo-dynamic-sampling", "dynamic_sampling")):
        algo = RLConfig(mode=name).algorithm
        differs = {f for f in fields if getattr(algo, f) != getattr(grpo, f)}
        assert differs == {ingredient} and getattr(algo, ingredient) == getattr(dapo, ingredient), name
    # the CLI offers every registered algorithm, read off the registry, and nothing else
    parser = build_parser()
    for name in ("grpo-token-mean", "grpo-dynamic-sampling"):
        assert parser.parse_args(["rl", "--init", "i", "--data", "d", "--out", "o", "--mode", name]).mode == name
    with pytest.raises(SystemExit):
        parser.parse_args(["rl", "--init", "i", "--data", "d", "--out", "o", "--mode", "grpo-unregistered"])


def test_the_fl1_command_reads_the_registered_algorithms_without_loading_torch():
    code = ("import sys; from fl1_core.cli import build_parser; p = build_parser(); "
            "p.parse_args(['world', '--out', 'w']); assert 'torch' not in sys.modules, 'torch loaded'; "
            "a = p.parse_args(['rl', '--init', 'i', '--data', 'd', '--out', 'o', '--mode', 'grpo-token-mean', "
            "'--implementation', 'release']); assert (a.mode, a.implementation) == ('grpo-token-mean', 'release'); "
            "from fl1_core.rl.algorithms import ALGORITHMS; "
            "mode = next(x for x in p._actions if x.dest == 'command').choices['rl']._option_string_actions['--mode']; "
            "assert list(mode.choices) == sorted(ALGORITHMS); print(*mode.choices)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert {"grpo", "dapo", "la-dapo", "grpo-token-mean", "grpo-dynamic-sampling"} <= set(done.stdout.split())


# ------------------------------------------------------------------------------------------------------ accuracy
def _record(world, mcq: bool):
    return next(r for r in world if r.is_multiple_choice == mcq)


def test_rule_check_mcq_letter_and_event_sentence(world):
    mcq, free = _record(world, True), _record(world, False)
    assert rule_correct(f"<reason>x</reason><answer>{mcq.answer}</answer>", mcq)
    assert not rule_correct("<answer>Answer</answer>", mcq)  # strict: the A of "Answer" is not a letter
    assert rule_correct(f"<answer>{free.answer.upper()}.</answer><|im_end|>", free)
    assert not rule_correct(f"<answer>then {free.answer}</answer>", free)  # not equal: left to the judge
    assert not rule_correct(free.answer, free)  # no answer span


@pytest.mark.timeout(90)
@pytest.mark.parametrize("policy", ["drop_group", "retry"])
def test_faulty_judge_neither_hangs_nor_misscores(world, tmp_path, policy):
    free = [r for r in world if not r.is_multiple_choice][:2]
    assert free
    # judge-only items: containment (yes) or a wrong event (no); never decided by the rule
    texts, records, truth = [], [], []
    for i in range(24):
        rec = free[i % len(free)]
        good = i % 3 != 0
        texts.append(f"<answer>{'so ' + rec.answer if good else 'nothing happens at all ' + str(i)}</answer>")
        records.append(rec)
        truth.append(1.0 if good else 0.0)
    fault = FaultConfig(error_rate=0.25, timeout_rate=0.15, malformed_rate=0.2, seed=3, hang_s=30.0)
    with start_judge_server(fault=fault) as server:
        jc = JudgeConfig(base_url=server.base_url, model="fl1-rule-judge", timeout_s=0.5, max_retries=1,
                         backoff_base_s=0.01, backoff_max_s=0.02, concurrency=8)
        res = score_accuracy(texts, records, judge_config=jc, failure_policy=policy, retry_rounds=3,
                             cache_dir=str(tmp_path / "cache"))
        stats = server.stats
    assert res.judge_calls == 24
    assert sum(v for k, v in stats.items() if k not in ("chat_requests", "ok", "bad_request")) > 0, stats
    unresolved = [i for i, c in enumerate(res.correct) if c is None]
    assert res.judge_unresolved == len(unresolved) and res.judge_failures >= len(unresolved)
    assert res.judge_failures > 0
    for c, t, src in zip(res.correct, truth, res.source):  # every judged item is right; failures are None
        assert c is None and src == "judge_failed" or c == t and src == "judge"
    # every item sent to the judge is kept with its final verdict (None where the judge failed)
    assert [j["verdict"] for j in res.judged] == [None if c is None else c == 1.0 for c in res.correct]
    assert res.judged[1] == {"id": records[1].id, "reference": records[1].answer, "answer": "so " + records[1].answer,
                             "verdict": res.judged[1]["verdict"]}
    if policy == "retry":
        assert len(unresolved) < res.judge_failures  # retries recovered some failures

    # in the trainer's scoring path, a group with a failed judgement is dropped, never trained on
    def resp(text, rec, group):
        prompt = SimpleNamespace(record=rec)
        return Response(group=group, prompt=prompt, sequence=torch.zeros(3, dtype=torch.long),
                        latent_mask=torch.zeros(3, dtype=torch.bool), forced_mask=torch.zeros(3, dtype=torch.bool),
                        logprobs=torch.zeros(3), latents=torch.zeros(0, 8), span_counts=[], text=text)

    groups = [[resp(texts[4 * g + j], records[4 * g + j], g) for j in range(4)] for g in range(6)]
    with start_judge_server(fault=FaultConfig(error_rate=1.0)) as server:  # the judge is down
        jc = JudgeConfig(base_url=server.base_url, model="fl1-rule-judge", timeout_s=0.5, max_retries=1,
                         backoff_base_s=0.01, backoff_max_s=0.02)
        stats = score_groups(groups, w_acc=0.9, w_fmt=0.1, lambda_ctr=0.0, lambda_div=0.0, tau=0.5,
                             judge_config=jc, failure_policy=policy, retry_rounds=1)
    assert stats.dropped_groups == 6 and stats.judge_unresolved == 24
    res = dynamic_sampling_rounds(lambda r: groups, target=2, max_rounds=2)
    assert res.groups == [] and res.dropped_groups == 12 and res.short


# --------------------------------------------------------------------------------------------------- updates
def test_one_update_changes_weights_and_lowers_the_loss(tiny, world, tmp_path, groups):
    tr = make_trainer(tiny, world, tmp_path, mode="la-dapo", learning_rate=1e-3, mini_batches=1, recompute_old_logprobs=True)
    batch = tr.prepare_batch(groups)
    assert batch.advantages.abs().sum() > 0
    n = float(sum(int(m.sum()) for m in batch.loss_masks))
    idx = list(range(len(batch.rows)))
    before = tr.loss_and_backward(batch, idx, num_tokens=n, num_seqs=len(idx), backward=False)["loss"]
    w0 = [p.detach().clone() for p in tr.params]
    metrics = tr.update(batch, step=0)
    assert metrics["optim/steps"] == 1
    assert 0.0 < metrics["policy/entropy"] < math.log(tr.model.base.config.text_config.vocab_size)  # finite, not NaN
    assert any(not torch.equal(a, p) for a, p in zip(w0, tr.params))
    after = tr.loss_and_backward(batch, idx, num_tokens=n, num_seqs=len(idx), backward=False)["loss"]
    assert after < before, (before, after)


@pytest.mark.parametrize("mode", ["la-dapo", "grpo"])  # token-mean and sequence-mean aggregation
def test_micro_batches_add_up_to_the_full_batch(tiny, world, tmp_path, mode, groups):
    tr = make_trainer(tiny, world, tmp_path, mode=mode)
    batch = tr.prepare_batch(groups)
    idx = list(range(len(batch.rows)))
    n = float(sum(int(m.sum()) for m in batch.loss_masks))

    def grads(micro):
        tr.cfg = dataclasses.replace(tr.cfg, micro_batch_size=micro)
        tr.optimizer.zero_grad(set_to_none=True)
        out = tr.loss_and_backward(batch, idx, num_tokens=n, num_seqs=len(idx))
        g = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in tr.params]
        tr.optimizer.zero_grad(set_to_none=True)
        return out, g

    full, g_full = grads(None)
    micro, g_micro = grads(3)
    assert full["tokens"] == micro["tokens"] == n
    assert micro["loss"] == pytest.approx(full["loss"], abs=1e-6)
    for a, b in zip(g_full, g_micro):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------------------------------------- checkpoints
def _run(tiny, world, out, cfg):
    return RLTrainer(fresh_model(tiny), tiny[1], world, cfg, out).train()


@pytest.fixture
def judged_first_response(token_reward, monkeypatch):
    """On top of ``token_reward``: every scored round reports one judge verdict (its first response's text), as a
    judge on free-form answers would, so the trainer's verdict log has rows to write and to cut back on resume."""
    import fl1_core.rl.trainer as trainer_mod

    scored = trainer_mod.score_groups

    def with_verdict(groups, **kw):
        stats = scored(groups, **kw)
        first = groups[0][0]
        stats.judged = [{"id": first.prompt.record.id, "reference": first.prompt.record.answer,
                         "answer": first.text, "verdict": first.length % 2 == 0}]
        return stats

    monkeypatch.setattr(trainer_mod, "score_groups", with_verdict)


@pytest.mark.timeout(600)
def test_a_damaged_newest_checkpoint_is_set_aside_and_rl_resumes_from_the_older_one(tiny, world, tmp_path,
                                                                                     judged_first_response):
    """A copy of the uninterrupted run cut back to its checkpoints of steps 1 and 2 (as if stopped during step 3,
    whose metrics row is written), with step 2's weights truncated: the re-run warns naming the file, resumes from
    step 1 and ends with the uninterrupted run's metrics and weights (refill rounds and mini-batches included)."""
    cfg = small_config(max_steps=3, save_every=1, keep_checkpoints=3, mini_batches=2, max_new_tokens=10,
                       max_rounds=2, group_size=2, prompts_per_step=2)
    ref = _run(tiny, world, tmp_path / "ref", cfg)
    run = tmp_path / "run"
    shutil.copytree(ref.out_dir, run)
    shutil.rmtree(run / "checkpoints" / "step-00000003")
    shutil.rmtree(run / "final")
    weights = run / "checkpoints" / "step-00000002" / "model.pt"
    weights.write_bytes(weights.read_bytes()[:4096])
    with pytest.warns(DamagedCheckpointWarning, match=r"step-00000002/model\.pt: 4096 bytes"):
        resumed = _run(tiny, world, run, cfg)
    assert resumed.resumed_from == 1 and len(resumed.metrics) == 3
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in rows]  # noqa: E731
    assert strip(resumed.metrics) == strip(ref.metrics)
    # the judge's verdicts: one row per judged answer and step, cut back to step 1 on resume, then the same rows
    verdicts = [json.loads(line) for line in (ref.out_dir / "judge_verdicts.jsonl").read_text().splitlines()]
    assert sorted({v["step"] for v in verdicts}) == [1, 2, 3] and {"reference", "answer", "verdict"} <= set(verdicts[0])
    assert (run / "judge_verdicts.jsonl").read_text() == (ref.out_dir / "judge_verdicts.jsonl").read_text()
    # the rollout log: every response of every drawn group, cut back on resume and written again alike
    rollouts = [json.loads(line) for line in (ref.out_dir / "rollouts.jsonl").read_text().splitlines()]
    assert [sum(r["step"] == m["step"] for r in rollouts) for m in ref.metrics] == [
        m["sampling/drawn_groups"] * cfg.group_size for m in ref.metrics]
    assert {"id", "answer", "acc", "reward", "length"} <= set(rollouts[0])
    assert (run / "rollouts.jsonl").read_text() == (ref.out_dir / "rollouts.jsonl").read_text()
    assert ref.metrics[-1]["policy/kl"] > 0 and ref.metrics[-1]["optim/grad_norm"] > 0  # the run actually learns
    w_ref, w_res = load_file(ref.final_dir / "model.safetensors"), load_file(resumed.final_dir / "model.safetensors")
    assert w_ref.keys() == w_res.keys() and all(torch.equal(w_ref[k], w_res[k]) for k in w_ref)
    assert (run / "checkpoints" / "step-00000002.damaged" / "model.pt").exists()
    manifest = (run / "manifest.json").read_text()
    assert '"rl_implementation": "corrected"' in manifest and '"rl_replay_latents": true' in manifest
    # a changed result-affecting setting is refused
    with pytest.raises(ResumeMismatchError, match="config.learning_rate"):
        _run(tiny, world, run, dataclasses.replace(cfg, learning_rate=5e-4, max_steps=4))


def test_a_full_disk_while_saving_an_rl_checkpoint_says_so_and_leaves_no_half_checkpoint(tiny, world, tmp_path,
                                                                                          disk_full_at):
    trainer = make_trainer(tiny, world, tmp_path, keep_checkpoints=1)
    trainer.step, trainer.cursor = 1, 2
    trainer.save_checkpoint()
    restore = disk_full_at(".step-00000002.tmp-")
    trainer.step = 2
    with pytest.raises(DiskFullError) as info:
        trainer.save_checkpoint()
    msg = str(info.value)
    root = tmp_path / "checkpoints"
    assert "the disk is full" in msg and str(root) in msg and f"{root / 'step-00000001'} (step 1)" in msg
    assert "re-run the same command" in msg and " bytes)" in msg
    assert sorted(p.name for p in root.iterdir()) == ["step-00000001"]  # kept although keep_checkpoints=1
    restore()
    again = make_trainer(tiny, world, tmp_path, keep_checkpoints=1)
    assert again.maybe_resume() == 1 and again.cursor == 2


def test_gradient_checkpointing_in_replay_gives_the_same_update(tiny, world, tmp_path, token_reward):
    """RLConfig.gradient_checkpointing recomputes the replay's activations in backward: same loss, same weights."""
    results = []
    for ckpt in (False, True):
        tr = make_trainer(tiny, world, tmp_path / str(ckpt), gradient_checkpointing=ckpt, max_steps=1, mode=ALL_GROUPS)
        row = tr.train_step(0)
        results.append((row["loss/total"], {n: p.detach().clone() for n, p in tr.model.named_parameters()}))
    (loss_a, w_a), (loss_b, w_b) = results
    assert loss_b == pytest.approx(loss_a, rel=1e-5, abs=1e-7)
    moved = max(float((w_a[n] - tiny[0].state_dict()[n]).abs().max()) for n in w_a if n in tiny[0].state_dict())
    assert moved > 0
    for n in w_a:
        torch.testing.assert_close(w_b[n], w_a[n], atol=1e-6, rtol=1e-5)


def test_event_reward_scores_the_concluded_option_only_when_weighted(world):
    """w_event · 1[final thought names the answer option] joins the reward; w_event = 0 leaves it as the paper's."""
    from fl1_core.answers import option_lines
    from fl1_core.rl.rollout import event_correct

    mcq = _record(world, True)
    options = option_lines(mcq.question_text)
    wrong = next(k for k in options if k != mcq.answer)
    right_text = f"<reason>So, {options[mcq.answer]}, which is option {wrong}.</reason>\n<answer>{wrong}</answer>"
    wrong_text = f"<reason>So, {options[wrong]}, which is option {wrong}.</reason>\n<answer>{wrong}</answer>"
    assert event_correct(right_text, mcq) == 1.0 and event_correct(wrong_text, mcq) == 0.0
    assert event_correct(right_text, _record(world, False)) == 0.0  # free-form: no options

    def resp(text):
        prompt = SimpleNamespace(record=mcq)
        return Response(group=0, prompt=prompt, sequence=torch.zeros(3, dtype=torch.long),
                        latent_mask=torch.zeros(3, dtype=torch.bool), forced_mask=torch.zeros(3, dtype=torch.bool),
                        logprobs=torch.zeros(3), latents=torch.zeros(0, 8), span_counts=[], text=text)

    for w_event in (0.0, 0.5):
        group = [resp(right_text), resp(wrong_text)]
        score_groups([group], w_acc=0.9, w_fmt=0.1, w_event=w_event, lambda_ctr=0.0, lambda_div=0.0, tau=1.0)
        assert [r.acc for r in group] == [0.0, 0.0]  # the letter is wrong in both
        assert [r.event for r in group] == ([1.0, 0.0] if w_event else [0.0, 0.0])
        assert group[0].reward - group[1].reward == pytest.approx(w_event)


def test_agreement_reward_ties_the_conclusion_to_the_own_letter_right_or_wrong(world):
    """w_agree · 1[final thought names the option of the response's own letter] joins the reward; it is blind to
    which option is right, so a wrong letter with its own option agrees and a right letter with another does not."""
    from fl1_core.answers import option_lines
    from fl1_core.rl.rollout import conclusion_agrees

    mcq = _record(world, True)
    options = option_lines(mcq.question_text)
    gold = mcq.answer
    wrong = next(k for k in options if k != gold)

    def text(named: str, letter: str) -> str:
        return f"<reason>So, {options[named]}, which is option {letter}.</reason>\n<answer>{letter}</answer>"

    cases = {(gold, gold): 1.0, (wrong, wrong): 1.0, (wrong, gold): 0.0, (gold, wrong): 0.0}
    for (named, letter), want in cases.items():
        assert conclusion_agrees(text(named, letter), mcq) == want
    assert conclusion_agrees(f"<reason>{options[gold]}</reason>", mcq) == 0.0  # no answer letter
    assert conclusion_agrees(text(gold, gold), _record(world, False)) == 0.0  # free-form: no options

    def resp(t):
        return Response(group=0, prompt=SimpleNamespace(record=mcq), sequence=torch.zeros(3, dtype=torch.long),
                        latent_mask=torch.zeros(3, dtype=torch.bool), forced_mask=torch.zeros(3, dtype=torch.bool),
                        logprobs=torch.zeros(3), latents=torch.zeros(0, 8), span_counts=[], text=t)

    for w_agree in (0.0, 0.3):
        group = [resp(text(gold, gold)), resp(text(wrong, gold)), resp(text(wrong, wrong))]
        score_groups([group], w_acc=0.9, w_fmt=0.1, w_agree=w_agree, lambda_ctr=0.0, lambda_div=0.0, tau=1.0)
        assert [r.acc for r in group] == [1.0, 1.0, 0.0]
        assert [r.agree for r in group] == ([1.0, 0.0, 1.0] if w_agree else [0.0, 0.0, 0.0])
        assert [r.event for r in group] == [0.0, 0.0, 0.0]  # w_event stays off
        assert group[0].reward - group[1].reward == pytest.approx(w_agree)
