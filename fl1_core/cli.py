"""The ``fl1`` command: one entry point for the workbook's stages.

    fl1 world --out data/world --seed 0          generate the synthetic future world
    fl1 tiny --out runs/tiny-init                save a randomly initialised tiny Qwen3-VL (Future-L1 ready)
    fl1 run [--run-id demo] [--param k=v …]      execute the notebooks in order into runs/<run-id>/ (resumable)
    fl1 batch sweep.yaml [--parallel N]          run a grid of parameter sets as separate runs, then a summary
    fl1 pretrain --out runs/world_base [--recipe FILE]        world pretraining (the shipped base's recipe)
    fl1 ship-base runs/world_base                             ship a finished base with its model card
    fl1 curate --model CKPT --data sft.json --out DIR         visual-gain curation
    fl1 sft --init CKPT --data sft.json --out DIR --mode latent|text   latent SFT / text-only SFT (accelerate-ready)
    fl1 rl --init CKPT --data rl.jsonl --out DIR --mode la-dapo   GRPO / DAPO / LA-DAPO (release|corrected implementation)
    fl1 eval --benchmark futurebench --model CKPT --data FILE --out DIR     evaluate a checkpoint (resumable)
    fl1 heldout --model NAME=CKPT … --data heldout_mcq.jsonl --out FILE.json   held-out MCQ accuracy (RL format)
    fl1 baselines --world data/world --out FILE.json   chance, read-the-present and question-only scores per kind
    fl1 report RUN_DIR                           the run's offline HTML report (RUN_DIR/report/index.html)
    fl1 plan --model CKPT --stage sft|rl|curation [--gpus N]   memory plan of a stage's GPU config, per phase
    fl1 judge-serve [--port 8008]                local OpenAI-compatible judge (loopback only by default)
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

import yaml

logger = logging.getLogger("fl1")
WORLD_BASE_RECIPE = Path(__file__).resolve().parents[1] / "configs" / "world_base" / "recipe.yaml"


class _Registered:
    """The names in one registry of :mod:`fl1_core.rl.algorithms` as argparse ``choices``, read when a value is
    checked or the help lists them (the option has a ``metavar``, so building the parser lists nothing): every verb
    but ``rl`` and ``plan`` loads no torch, and a newly registered algorithm is offered without being named here."""

    def __init__(self, registry: str) -> None:
        self.registry = registry

    def _names(self) -> list[str]:
        from fl1_core.rl import algorithms

        return sorted(getattr(algorithms, self.registry))

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def _parse_params(items: list[str]) -> dict:
    """``k=v`` pairs; values are parsed as YAML scalars/lists (``seed=1``, ``sizes=[5,10]``, ``hardware=cpu``)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--param expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = _yaml_value(value)
    return out


def _yaml_value(text: str):
    """A YAML value, except that ``2e-4`` is the float 2e-4 (YAML 1.1 reads a mantissa without a dot as a string)."""
    value = yaml.safe_load(text)
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
        return float(value)
    return value


def cmd_world(args: argparse.Namespace) -> int:
    from .data.world import WorldConfig, generate_world

    config = WorldConfig.small() if args.small else WorldConfig()
    if args.set:
        config = WorldConfig(**{**config.to_dict(), **_parse_params(args.set)})
    manifest = generate_world(args.out, seed=args.seed, config=config)
    print(json.dumps(manifest.get("counts", {}), indent=2))
    return 0


def cmd_tiny(args: argparse.Namespace) -> int:
    from .checkpoints import save_model
    from .tiny import build_tiny_future_l1

    model, processor = build_tiny_future_l1(seed=args.seed)
    save_model(model, processor, args.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"saved a tiny Future-L1 Qwen3-VL ({n / 1e6:.2f} M parameters) to {args.out}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .notebook_runner import NotebookFailed, run_workbook

    try:
        result = run_workbook(
            args.run_id, runs_root=args.runs_root, parameters=_parse_params(args.param) if args.param else None,
            notebooks=args.notebooks or None, resume=not args.no_resume, cell_timeout_s=args.cell_timeout,
        )
    except NotebookFailed as err:
        print(f"fl1 run: {err}", file=sys.stderr)
        return 1
    for name in result.skipped:
        print(f"  {name:<20} already completed")
    for name in result.completed:
        print(f"  {name:<20} {result.wall_s[name]:7.1f} s")
    print(f"run folder: {result.run_dir}")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from .notebook_runner import run_sweep

    results = run_sweep(args.sweep, runs_root=args.runs_root, parallel=args.parallel)
    for r in results:
        print(f"  {r['run_id']:<40} {r['status']:<7} {r['wall_s']:8.1f} s  {r.get('error', '')}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


def _load_model(spec: str, seed: int = 0, device: str = "auto"):
    """'tiny' (random init) or a local checkpoint directory → (model, processor), on the accelerator when there is
    one (``FL1_DEVICE=cpu`` forces the CPU)."""
    from .placement import resolve_device

    if spec == "tiny":
        from .tiny import build_tiny_future_l1

        model, processor = build_tiny_future_l1(seed=seed)
        return model.to(resolve_device(device)), processor
    from .model import load_future_l1

    return load_future_l1(spec, device=device)


def cmd_eval(args: argparse.Namespace) -> int:
    import contextlib

    from .judge.config import JudgeConfig
    from .judge.server import start_judge_server
    from .evaluation.runner import evaluate
    from .evaluation.eval_config import EvalConfig

    model, processor = _load_model(args.model)
    overrides = {k: v for k, v in {"max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
                                   "limit": args.limit, "num_frames": args.num_frames}.items() if v is not None}
    config = EvalConfig(**overrides)
    with contextlib.ExitStack() as stack:
        judge = None
        if args.benchmark == "twiffbench":
            if args.local_judge:
                server = stack.enter_context(start_judge_server())
                judge = JudgeConfig(base_url=server.base_url, model="world-judge")
            else:
                judge = JudgeConfig.from_env(**{k: v for k, v in {"base_url": args.judge_url,
                                                                   "model": args.judge_model}.items() if v})
        summary = evaluate(args.benchmark, model, processor, args.data, args.out, config, judge_config=judge)
    print(json.dumps(summary.get("scores", summary), indent=2, default=str)[:4000])
    return 0


def _sft_config(hardware: str, overrides: list[str]):
    from .sft import SFTConfig

    base = SFTConfig.for_hardware(hardware)
    return base.replace(**_parse_params(overrides)) if overrides else base


def _recipe(path: str | None, overrides: list[str]):
    from .pretrain.chain import load_recipe

    recipe = load_recipe(path or WORLD_BASE_RECIPE)  # --set applies to every phase of a chain
    return recipe.replace(**_parse_params(overrides)) if overrides else recipe


def cmd_pretrain(args: argparse.Namespace) -> int:
    import torch

    from .pretrain import pretrain_world_base

    torch.set_num_threads(args.threads)
    recipe = _recipe(args.recipe, args.set)
    world = args.world
    if world is not None and not (Path(world) / "world.json").exists():
        raise SystemExit(f"fl1 pretrain: {world} is not a generated world (no world.json); run `fl1 world --out {world}`")
    path = pretrain_world_base(recipe, args.out, world_dir=world, eval_mcq=args.eval_mcq, max_steps=args.max_steps)
    print(f"world base: {path}")
    return 0


def cmd_ship_base(args: argparse.Namespace) -> int:
    import torch

    from .pretrain.shipped import card_from_run, ship_world_base
    from .world_base import WORLD_BASE_DIR

    torch.set_num_threads(args.threads)
    card = card_from_run(args.run, args.world)
    dest = ship_world_base(args.run, card, args.dest or WORLD_BASE_DIR)
    print(json.dumps({k: v for k, v in card["metrics"].items()}, indent=1, default=str)[:3000])
    print(f"shipped to {dest}")
    return 0


def _require_gpu(command: str) -> None:
    """The GPU presets refuse to start without a usable CUDA device (never a silent CPU run at GPU sizes)."""
    from .cuda_requirement import CudaUnavailableError, require_cuda

    try:
        require_cuda(f"fl1 {command} --hardware gpu")
    except CudaUnavailableError as err:
        raise SystemExit(f"{err} (the CPU presets: --hardware cpu)") from None


def cmd_sft(args: argparse.Namespace) -> int:
    from .sft import run_sft

    if args.hardware == "gpu":
        _require_gpu("sft")
    result = run_sft(args.init, args.data, args.out, _sft_config(args.hardware, args.set), mode=args.mode)
    print(f"final model: {result.final_dir}")
    return 0


def cmd_curate(args: argparse.Namespace) -> int:
    from .curation import CurationConfig, curate

    model, processor = _load_model(args.model)
    config = CurationConfig(**_parse_params(args.set))
    result = curate(model, processor, args.data, args.out, config)
    print(json.dumps(result.summary, indent=2, default=str)[:3000])
    return 0


def cmd_rl(args: argparse.Namespace) -> int:
    import contextlib

    from .judge.client import judge_from_choice
    from .rl.config import RLConfig
    from .rl.trainer import run_rl

    if args.hardware == "gpu":
        _require_gpu("rl")
    config = RLConfig.for_hardware(args.hardware, mode=args.mode, implementation=args.implementation,
                                   **_parse_params(args.set))
    with contextlib.ExitStack() as stack:
        result = run_rl(args.init, args.data, args.out, config, judge_from_choice(args.judge, stack))
    print(f"{result.steps} steps; final model: {result.final_dir}")
    return 0


def cmd_heldout(args: argparse.Namespace) -> int:
    from .evaluation.heldout import ROUTES, run_heldout_mcq

    checkpoints = {}
    for item in args.model:
        name, sep, path = item.partition("=")
        name, path = (name, path) if sep else (Path(item).name, item)
        if name in checkpoints:
            raise SystemExit(f"fl1 heldout: two checkpoints named {name!r}; name them with NAME=CKPT")
        checkpoints[name] = path
    budget = {} if args.max_new_tokens is None else {"max_new_tokens": args.max_new_tokens}
    try:
        results = run_heldout_mcq(checkpoints, args.data, args.out, batch_size=args.batch_size, limit=args.limit,
                                  assistant_prefix=ROUTES[args.route], **budget)
    except ValueError as err:
        raise SystemExit(f"fl1 heldout: {err}") from None
    for name, res in results.items():
        groups = "; ".join(f"{g} {v['event_accuracy']:.3f}" for g, v in res["by_group"].items())
        print(f"{name}: accuracy {res['accuracy']:.3f} (format-valid {res['format_valid']:.3f}, n={res['n']}); "
              f"event accuracy {res['event_accuracy']:.3f} (by group: {groups})")
    return 0


def cmd_baselines(args: argparse.Namespace) -> int:
    from .evaluation.baselines import format_baselines_table, run_baselines

    result = run_baselines(args.world, args.out, C=args.C, random_state=args.seed)
    print(f"text-only model trained on {result['train']['n']} MCQ items of train clips; "
          f"{result['heldout']['n']} held-out items")
    print(format_baselines_table(result["table"]))
    return 0


def cmd_frame_reading(args: argparse.Namespace) -> int:
    from .audit.frame_reading import MEASURES, readings_table

    for row in readings_table(args.checks):
        print(row["check"], row["decode"], " ".join(f"{k}={row[k]}" for k in MEASURES if k in row))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report

    print(f"report: {build_report(args.run_dir)}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .memory_plan import plan_memory
    from .run_plan import curation_plan_inputs, rl_plan_inputs, sft_plan_inputs

    overrides = _parse_params(args.set)
    if args.lora:
        overrides.setdefault("lora", {"r": args.lora_rank})
    extra = {"projection_head": True} if args.projection_head else {}
    if args.stage == "rl":  # the config `fl1 rl --hardware gpu --implementation I` runs with
        from .rl.config import RLConfig

        config = RLConfig.gpu_release(implementation=args.implementation, **overrides)
        inputs = rl_plan_inputs(config, gpus=args.gpus, gpu_mem_gb=args.gpu_mem,
                                prompt_tokens=args.prompt_tokens, tokens_per_row=args.tokens, **extra)
    elif args.stage == "sft":  # the config `fl1 sft --hardware gpu` runs with
        inputs = sft_plan_inputs(_sft_config("gpu", args.set + (["lora={r: %d}" % args.lora_rank] if args.lora
                                                                 else [])),
                                 gpus=args.gpus, gpu_mem_gb=args.gpu_mem, tokens_per_row=args.tokens,
                                 mode=args.sft_mode, **extra)
    else:  # the config `fl1 curate --set ...` runs with
        from .curation import CurationConfig
        from .data.prompt_caps import MAX_PROMPT_TOKENS

        overrides.pop("lora", None)
        inputs = curation_plan_inputs(CurationConfig(**overrides), gpu_mem_gb=args.gpu_mem,
                                      prompt_tokens=args.prompt_tokens or MAX_PROMPT_TOKENS, **extra)
    plan = plan_memory(args.model, inputs)
    print(json.dumps(plan.to_dict(), indent=2) if args.json else plan.render())
    return 0 if plan.fits else 3


def cmd_judge_serve(args: argparse.Namespace) -> int:
    from .judge.server import FaultConfig, serve

    fault = FaultConfig(
        error_rate=args.error_rate, timeout_rate=args.timeout_rate, malformed_rate=args.malformed_rate,
        latency_s=args.latency, seed=args.seed,
    )
    serve(host=args.host, port=args.port, fault=fault, allow_remote=args.allow_remote)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fl1", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("world", help="generate the synthetic future world")
    p.add_argument("--out", default="data/world")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--small", action="store_true", help="the small test-size world")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override WorldConfig fields")
    p.set_defaults(func=cmd_world)

    p = sub.add_parser("tiny", help="save a randomly initialised tiny Future-L1 Qwen3-VL")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_tiny)

    p = sub.add_parser("run", help="execute the workbook notebooks into runs/<run-id>/")
    p.add_argument("--run-id", default=None)
    p.add_argument("--runs-root", default="runs")
    p.add_argument("--param", nargs="*", default=[], metavar="KEY=VALUE", help="notebook parameters")
    p.add_argument("--notebooks", nargs="*", default=[], help="explicit notebook paths (default: all, in order)")
    p.add_argument("--no-resume", action="store_true", help="re-run completed notebooks too")
    p.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS",
                   help="limit per cell; a notebook whose cell exceeds it is restarted once, then fails (default: none)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("batch", help="run a sweep file (grid of parameter sets) as separate runs")
    p.add_argument("sweep")
    p.add_argument("--runs-root", default="runs")
    p.add_argument("--parallel", type=int, default=1)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("pretrain", help="world pretraining: the tiny Qwen3-VL learns to see and read (resumable)")
    p.add_argument("--out", required=True)
    p.add_argument("--recipe", default=None, help="a PretrainRecipe YAML/JSON (default: configs/world_base/recipe.yaml)")
    p.add_argument("--world", default="data/world", help="a generated world whose held-out MCQ set is scored")
    p.add_argument("--eval-mcq", type=int, default=200, help="held-out MCQ rows per evaluation")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (no final checkpoint)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", nargs="*", default=[], help="recipe overrides k=v (a chain: applied to every phase)")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("ship-base", help="copy a finished world base into fl1_core/assets/world_base with its card")
    p.add_argument("run", help="the run folder of `fl1 pretrain`")
    p.add_argument("--world", default="data/world")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the held-out evaluation (the card "
                   "records the count the run trained with, from its log)")
    p.add_argument("--dest", default=None)
    p.set_defaults(func=cmd_ship_base)

    p = sub.add_parser("curate", help="visual-gain curation of an SFT file with a base model")
    p.add_argument("--model", required=True, help="'tiny' or a local checkpoint directory (the base model)")
    p.add_argument("--data", required=True, help="SFT records (TwiFF / Future-L1-50K JSON)")
    p.add_argument("--out", required=True)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="CurationConfig fields")
    p.set_defaults(func=cmd_curate)

    p = sub.add_parser("sft", help="latent SFT or the text-only SFT baseline (run under accelerate launch for GPUs)")
    p.add_argument("--init", required=True, help="base checkpoint directory")
    p.add_argument("--data", required=True, help="SFT records (JSON)")
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=["latent", "text", "pause"], default="latent",
                   help="latent = Future-L1, text = text-only baseline, pause = pause-token control")
    p.add_argument("--hardware", choices=["cpu", "gpu"], default="cpu", help="cpu = world sizes, gpu = the release's sizes (docs/PAPER.md#hyperparameters)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="SFTConfig overrides")
    p.set_defaults(func=cmd_sft)

    p = sub.add_parser("rl", help="GRPO / DAPO / LA-DAPO from an SFT checkpoint (run under accelerate for GPUs)")
    p.add_argument("--init", required=True, help="the (latent) SFT checkpoint directory")
    p.add_argument("--data", required=True, help="RL records (JSONL)")
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=_Registered("ALGORITHMS"), default="la-dapo", metavar="MODE",
                   help="grpo, dapo, la-dapo (the paper's), or an ablation between GRPO and DAPO; registered in "
                        "fl1_core.rl.algorithms: %(choices)s (default %(default)s)")
    p.add_argument("--implementation", choices=_Registered("IMPLEMENTATIONS"), default="corrected", metavar="IMPL",
                   help="release = what the authors' code ran, corrected = its defects fixed (fl1_core.rl.algorithms; "
                        "default %(default)s)")
    p.add_argument("--hardware", choices=["cpu", "gpu"], default="cpu", help="cpu = world sizes, gpu = the release's sizes (docs/PAPER.md#hyperparameters)")
    p.add_argument("--judge", choices=["none", "local", "env"], default="none",
                   help="LLM judge for rule failures: none, the local world judge, or $FL1_JUDGE_* endpoint")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="RLConfig overrides")
    p.set_defaults(func=cmd_rl)

    p = sub.add_parser("eval", help="evaluate a checkpoint on FutureBench- or TwiFF-Bench-style data")
    p.add_argument("--benchmark", choices=["futurebench", "twiffbench"], required=True)
    p.add_argument("--model", required=True, help="'tiny' or a local checkpoint directory")
    p.add_argument("--data", required=True, help="futurebench JSON/JSONL or twiffbench parquet file/folder")
    p.add_argument("--out", required=True, help="output folder (predictions.jsonl, summary.json); resumable")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the release's 2048 / 4096")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--num-frames", type=int, default=None)
    p.add_argument("--limit", type=int, default=None,
                   help="N items spread evenly over the file (every split keeps its share)")
    p.add_argument("--local-judge", action="store_true", help="TwiFF-Bench: judge with the local world judge")
    p.add_argument("--judge-url", default=None, help="OpenAI-compatible base URL (else $FL1_JUDGE_BASE_URL)")
    p.add_argument("--judge-model", default=None, help="judge model name (else $FL1_JUDGE_MODEL)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("heldout", help="held-out MCQ accuracy of checkpoints, prompts built like RL rollouts")
    p.add_argument("--model", nargs="+", required=True, metavar="[NAME=]CKPT", help="checkpoint directories")
    p.add_argument("--data", required=True, help="RL-format JSONL with multiple-choice records (heldout_mcq.jsonl)")
    p.add_argument("--out", default=None, help="JSON file for the results (responses go beside it)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="token budget per answer (default: "
                   "fl1_core.evaluation.heldout.HELDOUT_MAX_NEW_TOKENS, room for three latent spans and their thoughts)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--limit", type=int, default=None, help="N multiple-choice records spread over the file")
    p.add_argument("--route", choices=("free", "chain", "reading"), default="free",
                   help="free: the model answers as it likes; chain: every response starts as the world's chains do "
                        "(fl1_core.evaluation.heldout.CHAIN_PREFIX); reading: every response starts with the world's "
                        "own reading of the last observed frame (heldout.reading_prefix)")
    p.set_defaults(func=cmd_heldout)

    p = sub.add_parser("baselines", help="held-out MCQ baselines that need no model: chance, the answer read off "
                                         "the last observed frame, a question-only text model (per kind, Wilson CIs)")
    p.add_argument("--world", default="data/world", help="world folder (heldout_mcq.jsonl, rl.jsonl, sft.json)")
    p.add_argument("--out", default=None, help="JSON file for the table and every item's predictions")
    p.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the text model's logistic regression")
    p.add_argument("--seed", type=int, default=0, help="random_state of the text model")
    p.set_defaults(func=cmd_baselines)

    p = sub.add_parser("frame-reading", help="finished imagination checks: per decode, the share of frame-needing "
                       "items whose reading is right, whose conclusion follows the reading, and concluded right (%%)")
    p.add_argument("checks", nargs="+", help="OUT_DIRs of scripts/imagination_check.sh")
    p.set_defaults(func=cmd_frame_reading)

    p = sub.add_parser("report", help="RUN_DIR/report/index.html: the run's notebooks, manifest, metrics, figures, "
                                      "clips (opens offline)")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("plan", help="per-GPU memory plan of an SFT, RL or curation run, from the config that run uses "
                                    "(meta device; exit 3 if it won't fit)")
    p.add_argument("--model", required=True, help="a checkpoint folder, or qwen3-vl-8b (its published shapes)")
    p.add_argument("--gpus", type=int, default=1, help="processes, one per GPU (curation: per GPU)")
    p.add_argument("--gpu-mem", type=float, default=80.0, metavar="GB")
    p.add_argument("--stage", choices=["sft", "rl", "curation"], default="sft")
    p.add_argument("--implementation", choices=_Registered("IMPLEMENTATIONS"), default="corrected", metavar="IMPL",
                   help="RL implementation (as fl1 rl): %(choices)s")
    p.add_argument("--sft-mode", choices=["latent", "text", "pause"], default="latent",
                   help="SFT mode (as fl1 sft --mode): the KL reference and scheduled sampling act in latent mode "
                        "only")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="overrides of the stage's GPU config (SFTConfig / RLConfig / CurationConfig), as in its command")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (lora={r: RANK})")
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--tokens", type=int, default=4096,
                   help="SFT: tokens per record when max_length is not set; RL: tokens per record of the SFT anchor "
                   "(--set sft_anchor=G sft_anchor_data=F)")
    p.add_argument("--prompt-tokens", type=int, default=None,
                   help="prompt tokens (RL: default max_prompt_tokens; curation: default the RL cap)")
    p.add_argument("--projection-head", action="store_true", help="count the latent projection head (a checkpoint "
                                                                   "with one is detected from its config)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("judge-serve", help="local OpenAI-compatible judge scoring world answers exactly")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8008)
    p.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--timeout-rate", type=float, default=0.0)
    p.add_argument("--malformed-rate", type=float, default=0.0)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_judge_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
