"""Run 2 RL steps of the tiny model in 1 process (python) or 2 (torchrun, gloo); used by test_rl_distributed.

    python rl_dist_worker.py MODEL_DIR RL_JSONL OUT_DIR [STOP_AT]
    ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2 rl_dist_worker.py MODEL_DIR RL_JSONL OUT_DIR [STOP_AT]

Under the environment of an FSDP launch (tests/fsdp_launch.py) the actor and the reference are sharded (FSDP2).
STOP_AT: stop (as if killed) once step STOP_AT is logged, before its checkpoint; a checkpoint is written every step.
With ``FL1_TEST_SFT_ANCHOR=SFT_JSON`` in the environment the run adds the SFT anchor (weight 1, 2 records per process
and step) on those records; with ``FL1_TEST_SFT_ANCHOR_DRIFT=1`` too, its drift draw (a probe of 2 records per kind,
scored before every step).

Rewards are the share of even token ids of each response (a random model answers nothing right), so advantages are
non-zero and the update does something. Sampling is rank-invariant (per-group seeds, one group per generate call),
dynamic sampling is off and one mini-batch per rollout: 1 and 2 processes must train the same model.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch


def anchor_settings() -> dict:
    path = os.environ.get("FL1_TEST_SFT_ANCHOR")
    drift = {"sft_anchor_draw": "drift", "sft_anchor_probe": 2, "sft_anchor_probe_every": 1} \
        if os.environ.get("FL1_TEST_SFT_ANCHOR_DRIFT") else {}
    return {"sft_anchor": 1.0, "sft_anchor_data": path, "sft_anchor_batch": 2, **drift} if path else {}


def main() -> None:
    model_dir, data, out = sys.argv[1:4]
    stop_at = int(sys.argv[4]) if len(sys.argv) > 4 else None
    torch.set_num_threads(1)
    import fl1_core.rl.trainer as trainer_mod
    from fl1_core.data.formats import load_rl_records
    from fl1_core.model import load_future_l1
    from fl1_core.rl.config import RLConfig
    from fl1_core.rl.trainer import RLTrainer
    from fl1_core.rl.update import StopTraining

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared reward helper
    from helpers_rl import ALL_GROUPS, with_even_token_reward

    trainer_mod.score_groups = with_even_token_reward(trainer_mod.score_groups)
    model, processor = load_future_l1(model_dir, device=None)
    model.latent_config = model.latent_config.replace(budget_mode="loose")
    records = load_rl_records(data).records
    cfg = RLConfig(group_size=4, prompts_per_step=4, max_new_tokens=10, latent={"loose_cap": 3, "force_initial_latent": True},
                   learning_rate=1e-3, max_steps=2, save_every=1, max_rounds=1, progress_bar=False, mode=ALL_GROUPS,
                   mini_batches=1, micro_batch_size=3, rollout_batch_size=4, kl_beta=0.01,
                   **anchor_settings())

    def stop(trainer, step, row) -> None:
        if step == stop_at:
            raise StopTraining(f"stopped at step {step}")

    try:
        RLTrainer(model, processor, records, cfg, out, callbacks=[stop]).train()
    except StopTraining:
        pass


if __name__ == "__main__":
    main()
