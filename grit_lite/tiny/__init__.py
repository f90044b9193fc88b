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
"""

from __future__ import annotations

# The modules, each using only those before it: frame (the model's 112 px view of the
# canvas), tasks (the pretraining examples), tokenizer, model (configs, processor, build,
# save, load), skills (generation and the held-out evaluation), pretraining (stage 0, the
# loop, the recipe), card (the model card) and cli. Their names are all re-exported here, so
# tiny.build_tiny and the like work as they always have. (This docstring is also the help
# text of python -m grit_lite.tiny, hence the map is a comment.)
from grit_lite.tiny.card import (  # noqa: F401
    MODEL_CARD,
    STAGE2,
    write_model_card,
)
from grit_lite.tiny.cli import (  # noqa: F401
    finetune,
    main,
)
from grit_lite.tiny.frame import (  # noqa: F401
    MAX_PIXELS,
    MERGE,
    MIN_PIXELS,
    PATCH,
    SIDE,
    TEMPORAL,
    first_box_cell,
    merged_token_index,
    to_model_frame,
)
from grit_lite.tiny.model import (  # noqa: F401
    LOG_NAME,
    SHIPPED,
    _user,
    build_processor,
    build_tiny,
    count_parameters,
    load_tiny,
    qwen25_vl_3b_config,
    rope_positions,
    save_tiny,
    tiny_config,
)
from grit_lite.tiny.pretraining import (  # noqa: F401
    LOOKUP_BAR,
    LOOKUP_PASSES,
    RECIPE,
    cell_targets,
    length_grouped,
    pretrain,
    pretrain_recipe,
    pretrain_vision,
    right_cell,
)
from grit_lite.tiny.skills import (  # noqa: F401
    GRIT_TAGS,
    after_parts_accuracy,
    evaluate_skills,
    generate,
    zero_shot_report,
)
from grit_lite.tiny.tasks import (  # noqa: F401
    FORMAT_TAGS,
    GRIT_TAG_NAMES,
    INSTRUCT_MIX,
    TASK_MIX,
    _multi_part,
    _random_scene,
    _task,
    _where,
    collate,
    describe,
    grounding_answer,
    pretraining_examples,
    reading_order,
)
from grit_lite.tiny.tokenizer import (  # noqa: F401
    CHAT_TEMPLATE,
    QWEN_SPLIT,
    SPECIAL_TOKENS,
    SYSTEM_MESSAGE,
    course_texts,
    special_ids,
    train_tokenizer,
)
