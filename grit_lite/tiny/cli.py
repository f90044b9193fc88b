"""The command line: ``python -m grit_lite.tiny pretrain | finetune | eval``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from grit_lite.tiny.card import write_model_card
from grit_lite.tiny.model import LOG_NAME, build_tiny, load_tiny, save_tiny
from grit_lite.tiny.pretraining import pretrain, pretrain_recipe, pretrain_vision
from grit_lite.tiny.skills import evaluate_skills
from grit_lite.tiny.tasks import INSTRUCT_MIX


def _run_record(
    args: argparse.Namespace, argv: Sequence[str] | None, start: float, losses: list[float]
) -> dict[str, Any]:
    """What a pretraining or finetuning command leaves in the log: enough to rerun it."""
    return {
        "command": "python -m grit_lite.tiny " + " ".join(argv or sys.argv[1:]),
        "steps": args.steps,
        "lr": args.lr,
        "batch": args.batch,
        "seed": args.seed,
        "threads": args.threads,
        "seconds": round(time.perf_counter() - start, 1),
        "losses": [round(v, 4) for v in losses],
    }


def finetune(args: argparse.Namespace, argv: Sequence[str] | None) -> None:
    """Stage 2: continue a pretrained model on :data:`INSTRUCT_MIX` (no vision stage, the
    tower frozen, a short warm-up) and add the stage to the model's ``pretrain_log.json``."""
    log_path = Path(args.model) / LOG_NAME
    log = json.loads(log_path.read_text(encoding="utf-8")) if log_path.is_file() else {}
    log.pop("skills", None)  # measured on the stage-1 model: no longer this model's
    model, processor = load_tiny(args.model)
    start = time.perf_counter()
    _, _, losses = pretrain(
        args.steps, args.lr, args.batch, None, args.seed, args.log_every,
        model=model, processor=processor, mix=INSTRUCT_MIX, warmup=20, progress=False,
        vision_steps=0,
    )  # fmt: skip
    save_tiny(model, processor, args.out)
    log["finetune"] = _run_record(args, argv, start, losses)
    (Path(args.out) / LOG_NAME).write_text(json.dumps(log), encoding="utf-8")
    print(f"{log['finetune']['seconds']:.0f} s")


def _training_args(parser: argparse.ArgumentParser, steps: int, lr: float, seed: int) -> None:
    """The options pretrain and finetune share; only their defaults differ."""
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", default="data/tiny")
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)


def main(argv: Sequence[str] | None = None) -> None:
    """``pretrain --steps N --out data/tiny`` and ``eval --model data/tiny -n 50``."""
    # The help text is the package's overview (grit_lite/tiny/__init__.py), read from the
    # loaded package rather than imported: the package imports this module, not the reverse.
    overview = sys.modules[__package__].__doc__
    parser = argparse.ArgumentParser(prog="python -m grit_lite.tiny", description=overview)
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("pretrain", help="pretrain a fresh tiny model on the skills")
    pre.add_argument("--out", default="data/tiny")
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--batch", type=int, default=16)
    pre.add_argument("--threads", type=int, default=2)
    pre.add_argument("--vision-steps", type=int, default=1000)
    pre.add_argument("--scale", type=float, default=1.0, help="shorten every phase (tests)")
    pre.add_argument("--snapshots", help="keep the model after each phase in this folder")
    fine = sub.add_parser("finetune", help="stage 2: more instruction following, from --model")
    fine.add_argument("--model", default="data/tiny")
    _training_args(fine, steps=1200, lr=1e-3, seed=1)
    ev = sub.add_parser("eval", help="measure the skills on the held-out split")
    ev.add_argument("--model", default="data/tiny")
    ev.add_argument("-n", type=int, default=50)
    ev.add_argument("--threads", type=int, default=2)
    ev.add_argument("--record", action="store_true", help=f"store the scores in {LOG_NAME}")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "pretrain":
        start = time.perf_counter()
        model, processor = build_tiny(args.seed)  # stage 0 here so its losses reach the log
        vision_losses = pretrain_vision(model, processor, args.vision_steps, seed=args.seed)
        phases = pretrain_recipe(
            model, processor, args.seed, args.batch, args.scale, args.snapshots
        )
        save_tiny(model, processor, args.out)
        log = {
            "command": "python -m grit_lite.tiny " + " ".join(argv or sys.argv[1:]),
            "seconds": round(time.perf_counter() - start, 1),
            "batch": args.batch, "seed": args.seed, "threads": args.threads,
            "vision_steps": args.vision_steps, "torch": torch.__version__,
            "vision_losses": [round(v, 4) for v in vision_losses], "phases": phases,
        }  # fmt: skip
        (Path(args.out) / LOG_NAME).write_text(json.dumps(log), encoding="utf-8")
        print(f"{log['seconds']:.0f} s")
    elif args.command == "finetune":
        finetune(args, argv)
    else:
        model, processor = load_tiny(args.model)
        start = time.perf_counter()
        skills = evaluate_skills(model, processor, args.n)
        skills["n"], skills["seconds"] = args.n, round(time.perf_counter() - start, 1)
        print(json.dumps(skills, indent=2))
        path = Path(args.model) / LOG_NAME
        if args.record and path.is_file():  # the model card's numbers come from here
            log = json.loads(path.read_text(encoding="utf-8"))
            log["skills"] = skills
            path.write_text(json.dumps(log), encoding="utf-8")
            print(f"wrote {write_model_card(args.model)}")
