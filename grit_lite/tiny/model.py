"""The tiny Qwen2.5-VL: its config (and the 3B's), processor, building, saving and loading.

The model is transformers' real ``Qwen2_5_VLForConditionalGeneration``, only narrower and
shallower, so TRL, PEFT and ``generate`` run exactly the code path of the 3B model; the
processor is the real ``Qwen2_5_VLProcessor`` with the tiny model's small ``max_pixels``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from grit_lite import data
from grit_lite.tiny.frame import MAX_PIXELS, MERGE, MIN_PIXELS, PATCH, TEMPORAL
from grit_lite.tiny.tokenizer import CHAT_TEMPLATE, course_texts, special_ids, train_tokenizer

SHIPPED = data.DATA_DIR / "tiny"  # the pretrained weights, processor, card and log
LOG_NAME = "pretrain_log.json"


def _config(
    text: dict[str, Any], vision: dict[str, Any], ids: dict[str, int], rope_theta: float = 1e6
) -> Any:
    from transformers import Qwen2_5_VLConfig

    heads = text["num_attention_heads"]
    head_dim = text["hidden_size"] // heads
    section = text.pop("mrope_section")
    # Multimodal RoPE splits the head_dim/2 rotary frequencies into (time, height, width).
    assert sum(section) == head_dim // 2, f"mrope_section {section} must sum to {head_dim // 2}"
    text_config = {
        **text,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": rope_theta,
            "mrope_section": section,
        },
        "bos_token_id": None,
        "eos_token_id": ids["eos_token_id"],
        "pad_token_id": ids["pad_token_id"],
        "max_position_embeddings": 32768,
    }
    vision_config = {
        "patch_size": PATCH,
        "spatial_merge_size": MERGE,
        "temporal_patch_size": TEMPORAL,
        "window_size": 112,
        "out_hidden_size": text["hidden_size"],
        "fullatt_block_indexes": [vision["depth"] - 1],
        **vision,
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        tie_word_embeddings=True,
        image_token_id=ids["image_token_id"],
        video_token_id=ids["video_token_id"],
        vision_start_token_id=ids["vision_start_token_id"],
        vision_end_token_id=ids["vision_end_token_id"],
        eos_token_id=ids["eos_token_id"],
        pad_token_id=ids["pad_token_id"],
        bos_token_id=None,
    )


def tiny_config(
    vocab_size: int,
    ids: dict[str, int],
    hidden: int = 192,
    layers: int = 4,
    heads: int = 4,
    kv_heads: int = 4,
    vision_hidden: int = 96,
    vision_depth: int = 2,
    rope_theta: float = 1e6,
) -> Any:
    """A Qwen2.5-VL config shaped like the 3B model, scaled down for a CPU.

    Same ratios as the 3B where they matter: MLP about 5.4x wider than hidden in text and
    2.7x in vision, ``mrope_section`` scaled from [16, 24, 24] (of 64) to the tiny
    head_dim/2, window attention with the last vision block global, tied embeddings.
    ``ids`` are the tokenizer's :func:`special_ids`. One key/value head per query head, not
    the 3B's grouped 16:2: grounding needs a look-up from a name to the image token that
    holds it, and a 1500-step grounding probe reached IoU 0.265 with 4 key/value heads
    against 0.157 with 2 (``docs/experiment_log.md``); the 3B's 128-wide
    heads have room that 48-wide ones do not.
    """
    half = hidden // heads // 2
    t = half // 4  # [16, 24, 24] is 1/4, 3/8, 3/8 of head_dim/2
    section = [t, (half - t) // 2, half - t - (half - t) // 2]
    text = {
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "mrope_section": section,
    }
    vision = {
        "depth": vision_depth,
        "hidden_size": vision_hidden,
        "intermediate_size": vision_hidden * 8 // 3,
        "num_heads": 4,
    }
    return _config(text, vision, ids, rope_theta)


def qwen25_vl_3b_config(ids: dict[str, int] | None = None) -> Any:
    """The exact shape of Qwen2.5-VL-3B-Instruct (for random-weight benchmarks on a GPU).

    ``ids`` replaces Qwen's special-token ids, e.g. by the tiny tokenizer's, so a random
    3B model can run with the in-repo processor: same tensor shapes, hence same cost.
    """
    ids = ids or {
        "pad_token_id": 151643,
        "eos_token_id": 151645,
        "vision_start_token_id": 151652,
        "vision_end_token_id": 151653,
        "image_token_id": 151655,
        "video_token_id": 151656,
    }
    text = {
        "vocab_size": 151936,
        "hidden_size": 2048,
        "intermediate_size": 11008,
        "num_hidden_layers": 36,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "mrope_section": [16, 24, 24],
    }
    vision = {
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "fullatt_block_indexes": [7, 15, 23, 31],
    }
    return _config(text, vision, ids)


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (a tied embedding counts once); works on the meta device too."""
    return sum(p.numel() for p in model.parameters())


def build_processor(tokenizer: Any) -> Any:
    """Qwen2.5-VL's processor around ``tokenizer``; images are resized to at most 112 x 112.

    Why so small: at 112 px each 56 px cell of a scene is exactly one merged token, and a
    prompt is 48 tokens shorter than at 224 px, so a pretraining step is ~4x faster. The
    boxes the model writes are in these 112 px (Qwen's convention: the resized image).
    """
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    shape = {"patch_size": PATCH, "merge_size": MERGE, "temporal_patch_size": TEMPORAL}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, **shape),
        video_processor=Qwen2VLVideoProcessor(size=size, **shape),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny(seed: int = 0, **config_kwargs: Any) -> tuple[Any, Any]:
    """A freshly initialised tiny Qwen2.5-VL and its processor; same seed, same weights."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    tokenizer = train_tokenizer(course_texts())
    vocab = -(-len(tokenizer) // 64) * 64  # padded like Qwen's 151936 > len(tokenizer)
    config = tiny_config(vocab, special_ids(tokenizer), **config_kwargs)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.bos_token_id = None
    return model.eval(), build_processor(tokenizer)


def rope_positions(model: Any, processor: Any, image: Image.Image, prompt: str) -> Any:
    """The (temporal, height, width) position ids of every token of a one-image prompt.

    Text tokens get the same number on all three axes, one more per token; the image's
    tokens share one temporal id and take their row and column on the other two, so the
    text after the image continues from the largest id used, not from the token count.
    Returns ``(positions [3, seq], tokens)``.
    """
    text = processor.apply_chat_template(_user(prompt), add_generation_prompt=True)
    enc = processor(text=[text], images=[image], return_tensors="pt")
    positions, _ = model.model.get_rope_index(
        enc["input_ids"], enc["mm_token_type_ids"], image_grid_thw=enc["image_grid_thw"]
    )
    tokens = processor.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    return positions[:, 0], tokens


def save_tiny(model: Any, processor: Any, folder: str | Path) -> Path:
    """Save weights (safetensors), config and processor into ``folder``."""
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder


def load_tiny(folder: str | Path) -> tuple[Any, Any]:
    """Load what :func:`save_tiny` wrote, with the classes the 3B model uses."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
    return model.eval(), AutoProcessor.from_pretrained(folder)


def _user(prompt: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
