"""A tiny Qwen2.5-VL that learns on a CPU: tokenizer, config, processor, pretraining, eval.

GRIT starts from Qwen2.5-VL-3B-Instruct, a model that can already *see*, *ground* (write
boxes), *answer* short questions and *follow format instructions*; RL only teaches it to
chain those skills in the think/rethink/answer format. Nothing can be downloaded here, so
this package builds a same-architecture model small enough to pretrain those separate skills
on the synthetic world of :mod:`grit_lite.world` in minutes on two CPU cores:

* the model is transformers' real ``Qwen2_5_VLForConditionalGeneration`` (window-attention
  vision tower, 2x2 patch merger, multimodal RoPE), only narrower and shallower, so TRL,
  PEFT and ``generate`` run exactly the code path of the 3B model;
* the tokenizer is a byte-level BPE trained here on course text, with Qwen's pre-tokenizer
  rule (every digit its own token) and Qwen's special tokens and chat template;
* the processor is the real ``Qwen2_5_VLProcessor`` with a small ``max_pixels``: a 224 x 224
  canvas is resized to 112 x 112, 8 x 8 patches of 14 px merged 2 x 2 into 16
  ``<|image_pad|>`` tokens, one per cell of the scene's 4 x 4 grid;
* pretraining has Qwen's two parts in miniature: a vision tower trained on its own first
  (:func:`pretrain_vision`), then the language model on the skills, the tower frozen, in
  phases that build each skill on the one before (:data:`RECIPE`).

Pretraining never shows a think/rethink/answer chain nor GRIT's prompt suffix: that is
what GRPO has to discover (notebook 06). ``python -m grit_lite.tiny pretrain`` and
``python -m grit_lite.tiny eval`` are the command-line entry points.

The modules, each using only those before it: ``frame`` (the model's 112 px view of the
canvas), ``tasks`` (the pretraining examples), ``tokenizer``, ``model`` (configs, processor,
build, save, load), ``skills`` (generation and the held-out evaluation), ``pretraining``
(stage 0, the loop, the recipe), ``card`` (the model card) and ``cli``. Their names are all
re-exported here, so ``tiny.build_tiny`` and the like work as they always have.
"""

from __future__ import annotations

from grit_lite.tiny.card import (
    MODEL_CARD as MODEL_CARD,
)
from grit_lite.tiny.card import (
    STAGE2 as STAGE2,
)
from grit_lite.tiny.card import (
    write_model_card as write_model_card,
)
from grit_lite.tiny.cli import (
    finetune as finetune,
)
from grit_lite.tiny.cli import (
    main as main,
)
from grit_lite.tiny.frame import (
    MAX_PIXELS as MAX_PIXELS,
)
from grit_lite.tiny.frame import (
    MERGE as MERGE,
)
from grit_lite.tiny.frame import (
    MIN_PIXELS as MIN_PIXELS,
)
from grit_lite.tiny.frame import (
    PATCH as PATCH,
)
from grit_lite.tiny.frame import (
    SIDE as SIDE,
)
from grit_lite.tiny.frame import (
    TEMPORAL as TEMPORAL,
)
from grit_lite.tiny.frame import (
    first_box_cell as first_box_cell,
)
from grit_lite.tiny.frame import (
    merged_token_index as merged_token_index,
)
from grit_lite.tiny.frame import (
    to_model_frame as to_model_frame,
)
from grit_lite.tiny.model import (
    LOG_NAME as LOG_NAME,
)
from grit_lite.tiny.model import (
    SHIPPED as SHIPPED,
)
from grit_lite.tiny.model import (
    _user as _user,
)
from grit_lite.tiny.model import (
    build_processor as build_processor,
)
from grit_lite.tiny.model import (
    build_tiny as build_tiny,
)
from grit_lite.tiny.model import (
    count_parameters as count_parameters,
)
from grit_lite.tiny.model import (
    load_tiny as load_tiny,
)
from grit_lite.tiny.model import (
    qwen25_vl_3b_config as qwen25_vl_3b_config,
)
from grit_lite.tiny.model import (
    rope_positions as rope_positions,
)
from grit_lite.tiny.model import (
    save_tiny as save_tiny,
)
from grit_lite.tiny.model import (
    tiny_config as tiny_config,
)
from grit_lite.tiny.pretraining import (
    LOOKUP_BAR as LOOKUP_BAR,
)
from grit_lite.tiny.pretraining import (
    LOOKUP_PASSES as LOOKUP_PASSES,
)
from grit_lite.tiny.pretraining import (
    RECIPE as RECIPE,
)
from grit_lite.tiny.pretraining import (
    cell_targets as cell_targets,
)
from grit_lite.tiny.pretraining import (
    length_grouped as length_grouped,
)
from grit_lite.tiny.pretraining import (
    pretrain as pretrain,
)
from grit_lite.tiny.pretraining import (
    pretrain_recipe as pretrain_recipe,
)
from grit_lite.tiny.pretraining import (
    pretrain_vision as pretrain_vision,
)
from grit_lite.tiny.pretraining import (
    right_cell as right_cell,
)
from grit_lite.tiny.skills import (
    GRIT_TAGS as GRIT_TAGS,
)
from grit_lite.tiny.skills import (
    evaluate_skills as evaluate_skills,
)
from grit_lite.tiny.skills import (
    generate as generate,
)
from grit_lite.tiny.skills import (
    zero_shot_report as zero_shot_report,
)
from grit_lite.tiny.tasks import (
    FORMAT_TAGS as FORMAT_TAGS,
)
from grit_lite.tiny.tasks import (
    GRIT_TAG_NAMES as GRIT_TAG_NAMES,
)
from grit_lite.tiny.tasks import (
    INSTRUCT_MIX as INSTRUCT_MIX,
)
from grit_lite.tiny.tasks import (
    TASK_MIX as TASK_MIX,
)
from grit_lite.tiny.tasks import (
    _multi_part as _multi_part,
)
from grit_lite.tiny.tasks import (
    _random_scene as _random_scene,
)
from grit_lite.tiny.tasks import (
    _task as _task,
)
from grit_lite.tiny.tasks import (
    _where as _where,
)
from grit_lite.tiny.tasks import (
    collate as collate,
)
from grit_lite.tiny.tasks import (
    describe as describe,
)
from grit_lite.tiny.tasks import (
    grounding_answer as grounding_answer,
)
from grit_lite.tiny.tasks import (
    pretraining_examples as pretraining_examples,
)
from grit_lite.tiny.tasks import (
    reading_order as reading_order,
)
from grit_lite.tiny.tokenizer import (
    CHAT_TEMPLATE as CHAT_TEMPLATE,
)
from grit_lite.tiny.tokenizer import (
    QWEN_SPLIT as QWEN_SPLIT,
)
from grit_lite.tiny.tokenizer import (
    SPECIAL_TOKENS as SPECIAL_TOKENS,
)
from grit_lite.tiny.tokenizer import (
    SYSTEM_MESSAGE as SYSTEM_MESSAGE,
)
from grit_lite.tiny.tokenizer import (
    course_texts as course_texts,
)
from grit_lite.tiny.tokenizer import (
    special_ids as special_ids,
)
from grit_lite.tiny.tokenizer import (
    train_tokenizer as train_tokenizer,
)
