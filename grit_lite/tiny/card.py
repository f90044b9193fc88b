"""The shipped tiny model's card (``data/tiny/README.md``), written from its pretraining log."""

from __future__ import annotations

import json
from pathlib import Path

from grit_lite.tiny.model import LOG_NAME, count_parameters, load_tiny
from grit_lite.tiny.pretraining import LOOKUP_PASSES
from grit_lite.tiny.tasks import INSTRUCT_MIX

MODEL_CARD = """\
# grit-lite tiny Qwen2.5-VL ({params:,} parameters)

A from-scratch `Qwen2_5_VLForConditionalGeneration` (transformers' own class, config from
`grit_lite.tiny.tiny_config`) with an in-repo byte-level BPE tokenizer ({vocab} tokens, Qwen's
special tokens and chat template) and the real `Qwen2_5_VLProcessor` (images resized to
112 x 112: 16 image tokens, one per cell of a scene's 4 x 4 grid). It stands in for
Qwen2.5-VL-3B-Instruct where nothing can be downloaded.

## How it was made

    {command}

Stage 0: {vision_steps} steps of the vision tower alone, a linear head on each image token
predicting the colour, shape, row, column and box of what it holds
(`grit_lite.tiny.pretrain_vision`; the head is thrown away). Stage 1: the language model on
top of the frozen tower, in the phases of `grit_lite.tiny.RECIPE` (batch {batch}, AdamW,
each pass with 20 warm-up steps and a cosine to 10 %, batches of examples of similar
length, seed {seed}). The look-up phase (grounding alone) repeats until 80 % of the boxes
it writes for 64 fixed single-object prompts lie in the named object's grid cell
(`grit_lite.tiny.right_cell`, checked every 500 steps), at most {passes} passes:

| phase | pass | mix | lr | steps | minutes | right cell (checks) | loss (last 100) |
|---|---|---|---|---|---|---|---|
{phase_rows}

Kinds (`grit_lite.tiny.pretraining_examples`): `where` "In which column is the A?" -> "2",
`where2` "In which rows are the A and the B?" -> "1 and 4", `spatial:left of,right of` a
spatial question about those relations only (the last phases add one relation at a time:
asked about all four at once the model stayed at chance), `format` an answer in a made-up
tag, `instruct` and `multipart` instructions phrased like GRIT's in one or several parts,
each with at most one of GRIT's tag names.

**No training example contains a think/rethink/answer chain or the GRIT prompt.** Trained in
**{minutes:.1f} minutes** on {threads} CPU threads (torch {torch}). Why a vision stage and
phases, and what failed without them: `docs/experiment_log.md`.
{stage2}
## Measured skills (held-out split, {n} items, `python -m grit_lite.tiny eval -n {n}`)

| skill | measure | value | course target |
|---|---|---|---|
| grounding | mean IoU, Hungarian-matched ("Locate every ...") | {grounding_iou:.3f} | >= 0.5 |
| counting | exact answer | {counting_acc:.1%} | >= 60 % |
| spatial | exact yes/no | {spatial_acc:.1%} | >= 75 % |
| GRIT prompt, greedy | think/rethink format reward (max 0.5) | {zero_shot_format:.3f} | < 0.5 |
| GRIT prompt, greedy | completions with any GRIT tag | {zero_shot_any_tag:.1%} | some |
| GRIT prompt, sampled (*) | think/rethink format reward | {sampled_format:.3f} | < 0.5 |
| GRIT prompt, sampled (*) | completions with any GRIT tag | {sampled_any_tag:.1%} | some |

(*) 4 samples per item at temperature 1, before any RL: what GRPO's groups are made of.

Greedy, fraction of completions containing each tag: {tags}; format reward values: {values}.
Sampled (what GRPO's groups are made of): {sampled_tags}; format reward values:
{sampled_values}.
Evaluation took {eval_seconds:.0f} s.

## Files

`model.safetensors`, `config.json`, `generation_config.json`, tokenizer and processor
files (load with `grit_lite.tiny.load_tiny("data/tiny")` or transformers' `AutoProcessor`
and `Qwen2_5_VLForConditionalGeneration`), and `pretrain_log.json` (the command, the
per-step losses and the skills above).
"""


STAGE2 = """
**Stage 2, instruction following** (`grit_lite.tiny.INSTRUCT_MIX`):

    {command}

{steps} more steps of batch {batch} (lr {lr}, warm-up 20, cosine, seed {seed}) on the same
skills plus instructions phrased like GRIT's: {instruct:.0f} % around *one* tag ("write the
answer between <t> and </t>", "answer the question after <t>"), {multipart:.0f} % in several
parts ("First, list the shapes between <a> and </a>. Then, output the coordinates ...
between <b> and </b> and then answer the question after <c>."). In some of them *one* tag
is `think`, `rethink` or `answer`, as a real instruction-tuned model has met them; never two
of them, never `think` around boxes, never the GRIT prompt: the chain itself is left to RL.
{minutes:.1f} minutes; **{total:.1f} minutes in all**.
"""


def write_model_card(folder: str | Path) -> Path:
    """Write ``folder/README.md`` from ``folder/pretrain_log.json``: numbers never retyped."""
    folder = Path(folder)
    log = json.loads((folder / LOG_NAME).read_text(encoding="utf-8"))
    model, processor = load_tiny(folder)
    skills = log["skills"]
    stage2 = ""
    if "finetune" in log:
        f = log["finetune"]
        stage2 = STAGE2.format(
            **f,
            minutes=f["seconds"] / 60,
            total=(log["seconds"] + f["seconds"]) / 60,
            instruct=100 * INSTRUCT_MIX["instruct"],
            multipart=100 * INSTRUCT_MIX["multipart"],
        )
    rows = [
        f"| {p['phase']} | {p['pass'] + 1} | "
        + ", ".join(f"{k} {v:.0%}" for k, v in p["mix"].items())
        + f" | {p['lr']:g} | {p['steps']} | {p['seconds'] / 60:.1f} | "
        + (" / ".join(f"{c:.0%}" for c in p["right_cell"]) or "-")
        + f" | {sum(p['losses'][-100:]) / max(1, len(p['losses'][-100:])):.3f} |"
        for p in log.get("phases", [])
    ]
    card = MODEL_CARD.format(
        stage2=stage2,
        phase_rows="\n".join(rows),
        passes=LOOKUP_PASSES,
        params=count_parameters(model),
        vocab=len(processor.tokenizer),
        minutes=log["seconds"] / 60,
        tags=", ".join(f"{t} {v:.0%}" for t, v in skills["zero_shot_tags"].items()),
        values=", ".join(f"{k}: {v:.0%}" for k, v in skills["zero_shot_format_values"].items()),
        sampled_tags=", ".join(f"{t} {v:.0%}" for t, v in skills["sampled_tags"].items()),
        sampled_values=", ".join(
            f"{k}: {v:.0%}" for k, v in skills["sampled_format_values"].items()
        ),
        eval_seconds=skills["seconds"],
        **{k: v for k, v in log.items() if k != "skills"},
        **{k: v for k, v in skills.items() if not isinstance(v, dict) and k != "seconds"},
    )
    path = folder / "README.md"
    path.write_text(card, encoding="utf-8")
    return path
