"""The tiny Qwen2.5-VL: tokenizer, template, processor, model, pretraining, and TRL on top."""

from __future__ import annotations

import json
import math
import random
import re

import pytest
import torch

from grit_lite import data, tiny
from grit_lite.format import GRIT_PROMPT_SUFFIX, build_messages


@pytest.fixture(scope="module")
def tiny_pair():
    torch.set_num_threads(1)  # tiny matrices: one thread is faster on a shared 2-core box
    return tiny.build_tiny(seed=0)


@pytest.fixture(scope="module")
def sample():
    return data.train_split()[0]


def test_tokenizer_round_trip_and_special_ids(tiny_pair):
    model, processor = tiny_pair
    tok = processor.tokenizer
    text = 'Locate every red circle. [{"bbox_2d": [12, 148, 56, 190], "label": "red circle"}] é✓'
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text  # byte-level: anything round-trips
    assert tok.convert_ids_to_tokens(tok("148", add_special_tokens=False)["input_ids"]) == [
        "1",
        "4",
        "8",
    ]  # Qwen's rule: one token per digit
    config = model.config
    assert tok.convert_tokens_to_ids("<|image_pad|>") == config.image_token_id
    assert tok.convert_tokens_to_ids("<|video_pad|>") == config.video_token_id
    assert tok.convert_tokens_to_ids("<|vision_start|>") == config.vision_start_token_id
    assert tok.convert_tokens_to_ids("<|vision_end|>") == config.vision_end_token_id
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == config.text_config.eos_token_id
    assert tok.pad_token == "<|endoftext|>" and tok.pad_token_id == config.text_config.pad_token_id
    assert tok.bos_token is None and config.text_config.bos_token_id is None
    assert len(tok) <= config.text_config.vocab_size
    # a tag at the start of an answer shares its word piece with the tag in the prompt
    answer = tok.convert_ids_to_tokens(tok("<result>3</result>")["input_ids"])
    prompt = tok.convert_ids_to_tokens(tok("Answer inside <result> </result>.")["input_ids"])
    assert answer[:3] == ["<", "result", ">"] and "result" in prompt
    # GRIT's tags are plain text, several tokens each, as in Qwen2.5's tokenizer
    for tag in ("<think>", "</think>", "<rethink>", "</rethink>", "<answer>"):
        pieces = tok(" " + tag, add_special_tokens=False)["input_ids"]
        assert len(pieces) > 1
        assert not set(pieces) & set(tok.all_special_ids)


def test_chat_template_expands_16_image_tokens(tiny_pair, sample):
    _, processor = tiny_pair
    record, image = sample
    assert image.size == (224, 224)
    messages = build_messages(record.question, image)
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert "<|vision_start|><|image_pad|><|vision_end|>Question: " in text
    assert text.endswith(GRIT_PROMPT_SUFFIX + "<|im_end|>\n<|im_start|>assistant\n")
    enc = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    # the 224 px canvas is resized to 112 px: 8 x 8 patches, merged 2 x 2 into 16 tokens
    assert int((enc["input_ids"] == processor.image_token_id).sum()) == 16
    assert enc["image_grid_thw"].tolist() == [[1, 8, 8]]
    assert tuple(enc["pixel_values"].shape) == (64, 3 * 2 * 14 * 14)


def test_chat_template_accepts_trl_image_entries(tiny_pair):
    _, processor = tiny_pair
    trl_style = [
        {
            "role": "user",
            "content": [{"type": "image", "text": None}, {"type": "text", "text": "Hi"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "3"}]},
    ]
    text = processor.apply_chat_template(trl_style)
    assert text.count("<|image_pad|>") == 1
    assert "None" not in text
    assert "<|im_start|>assistant\n3<|im_end|>" in text
    with_system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    text = processor.apply_chat_template(with_system, add_generation_prompt=False)
    assert "helpful" not in text and text.count("<|im_start|>") == 2


def test_forward_and_generate(tiny_pair, sample):
    model, processor = tiny_pair
    record, image = sample
    enc = processor.apply_chat_template(
        build_messages(record.question, image),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        logits = model(**enc).logits
    assert tuple(logits.shape) == (
        1,
        enc["input_ids"].shape[1],
        model.config.text_config.vocab_size,
    )
    assert torch.isfinite(logits).all()
    out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert out.shape[1] - enc["input_ids"].shape[1] in range(1, 5)
    texts = tiny.generate(model, processor, ["How many red circles are there?"] * 2, [image] * 2, 3)
    assert len(texts) == 2 and texts[0] == texts[1]  # greedy, batched with left padding


def test_save_load_round_trip(tiny_pair, sample, tmp_path):
    model, processor = tiny_pair
    record, image = sample
    tiny.save_tiny(model, processor, tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded, loaded_processor = tiny.load_tiny(tmp_path)
    assert type(loaded_processor).__name__ == "Qwen2_5_VLProcessor"
    messages = build_messages(record.question, image)
    kwargs = {"add_generation_prompt": True, "tokenize": True, "return_dict": True}
    enc = processor.apply_chat_template(messages, return_tensors="pt", **kwargs)
    enc2 = loaded_processor.apply_chat_template(messages, return_tensors="pt", **kwargs)
    assert torch.equal(enc["input_ids"], enc2["input_ids"])
    assert torch.equal(enc["pixel_values"], enc2["pixel_values"])
    with torch.no_grad():
        assert torch.equal(model(**enc).logits, loaded(**enc2).logits)


def test_pretraining_examples_never_show_the_grit_chain():
    examples = tiny.pretraining_examples(random.Random(1), 400, images=False)
    kinds = {e["kind"] for e in examples}
    assert kinds == {"describe", "ground", "count", "spatial", "format"}
    for e in examples:
        text = e["prompt"] + e["answer"]
        for forbidden in ("<think>", "<rethink>", "<answer>", "</answer>", GRIT_PROMPT_SUFFIX):
            assert forbidden not in text, (forbidden, text)
        assert "bbox_2d" not in e["prompt"] or e["kind"] == "ground"
    formats = [e for e in examples if e["kind"] == "format"]
    assert all(e["answer"].startswith("<") and e["answer"].endswith(">") for e in formats)
    grounding = [e for e in examples if e["kind"] == "ground"]
    assert any('"bbox_2d": [' in e["answer"] for e in grounding)


def test_stage_two_names_grit_tags_only_singly_and_never_think_around_boxes():
    examples = tiny.pretraining_examples(random.Random(2), 800, tiny.INSTRUCT_MIX, images=False)
    instruct = [e for e in examples if e["kind"] == "instruct"]
    multi = [e for e in examples if e["kind"] == "multipart"]
    assert len(instruct) > 100 and len(multi) > 100
    named = 0
    for e in examples:
        text = e["prompt"] + e["answer"]
        assert GRIT_PROMPT_SUFFIX.strip() not in text
        names = {t for t in tiny.GRIT_TAG_NAMES if f"<{t}>" in e["answer"]}
        assert len(names) <= 1, e  # never two of GRIT's tags: never its chain
        assert not re.search(r"<think>[^<]*bbox_2d", e["answer"]), e
        for name in re.findall(r"<(\w+)>", e["answer"]):
            assert f"<{name}>" in e["prompt"], e  # only the tags the instruction names
        if names:
            named += 1
            assert e["kind"] in ("instruct", "multipart"), e
            assert e["kind"] == "multipart" or "bbox_2d" not in e["answer"], e
        answer_tags = {name for _, name in re.findall(r"<(/?)(\w+)>", e["answer"])}
        assert len(answer_tags) <= 1 or e["kind"] == "multipart", e
    assert 0.05 < named / (len(instruct) + len(multi)) < 0.4
    assert any(e["answer"].startswith("<") and "</" not in e["answer"] for e in instruct)
    for e in multi:  # one or two closed parts, then the answer after an unclosed last tag
        *parts, last = re.findall(r"<(\w+)>", e["answer"])
        assert 1 <= len(parts) <= 2 and all(f"</{t}>" in e["answer"] for t in parts), e
        assert f"</{last}>" not in e["answer"] and f"after <{last}>" in e["prompt"], e
    assert any("bbox_2d" in e["answer"] for e in multi)


def test_length_grouped_batches_keep_the_mix_and_cut_padding():
    rng = random.Random(3)
    batches = tiny.length_grouped(rng, 8, pool=4)
    drawn = [next(batches) for _ in range(8)]
    assert all(len(b) == 8 for b in drawn)
    assert {e["kind"] for b in drawn for e in b} == set(tiny.TASK_MIX)

    def size(e):
        return len(e["prompt"]) + len(e["answer"])

    padded = sum(8 * max(map(size, b)) for b in drawn)
    plain = tiny.pretraining_examples(random.Random(3), 64, images=False)
    unsorted = sum(8 * max(map(size, plain[i : i + 8])) for i in range(0, 64, 8))
    assert padded < 0.8 * unsorted


def test_finetune_continues_a_saved_model_and_logs_the_stage(tmp_path):
    model, processor = tiny.build_tiny(seed=1, hidden=64, layers=2, vision_hidden=32)
    tiny.save_tiny(model, processor, tmp_path / "base")
    (tmp_path / "base" / tiny.LOG_NAME).write_text('{"seconds": 60, "skills": {"x": 1}}')
    tiny.main(["finetune", "--model", str(tmp_path / "base"), "--out", str(tmp_path / "two"),
               "--steps", "2", "--batch", "2", "--threads", "1"])  # fmt: skip
    log = json.loads((tmp_path / "two" / tiny.LOG_NAME).read_text())
    assert "skills" not in log  # measured on the stage-1 weights: dropped, not carried over
    assert log["seconds"] == 60 and log["finetune"]["steps"] == 2
    assert len(log["finetune"]["losses"]) == 2
    assert log["finetune"]["command"].startswith("python -m grit_lite.tiny finetune --model")
    before, _ = tiny.load_tiny(tmp_path / "base")
    after, _ = tiny.load_tiny(tmp_path / "two")
    moved = [
        not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True)
    ]
    assert any(moved)


def test_describe_lists_shapes_row_by_row():
    objects = (
        data.Obj("red", "circle", (120, 70, 150, 100)),  # row 1, column 2
        data.Obj("blue", "square", (10, 80, 40, 110)),  # row 1, column 0: lower, yet first
        data.Obj("green", "triangle", (180, 5, 210, 35)),  # row 0
    )
    scene = data.Scene(224, 224, objects, ((250, 250, 250), (220, 220, 220)))
    assert tiny.describe(scene) == "green triangle, blue square, red circle"
    # on a zoomed canvas (2 cells per side) rows are 112 px high
    zoomed = (
        data.Obj("red", "circle", (130, 60, 200, 110)),  # row 0, column 1, lower than ...
        data.Obj("blue", "square", (20, 150, 90, 220)),  # row 1
        data.Obj("green", "triangle", (10, 20, 80, 90)),  # ... row 0, column 0
    )
    scene = data.Scene(224, 224, zoomed, ((250, 250, 250), (220, 220, 220)))
    assert tiny.describe(scene, cell=112) == "green triangle, red circle, blue square"


def test_grounding_answer_is_qwen_json():
    rng = random.Random(3)
    scene = data.make_scene(rng, [("red", "circle"), ("red", "circle"), ("blue", "square")])
    reds = [o for o in scene.objects if o.label == "red circle"]
    answer = tiny.grounding_answer(reds)
    from grit_lite.boxes import parse_boxes

    # in the pixels the model sees (112 of the canvas's 224): half, rounded
    assert sorted(parse_boxes(answer)) == sorted(tuple(round(v / 2) for v in o.box) for o in reds)
    # in reading order: row of the grid first, then left to right, whatever the scene's order
    for _ in range(20):
        labels = [("red", "circle")] * 5 + [("blue", "square")]
        scene = data.make_scene(rng, labels)
        boxes = parse_boxes(tiny.grounding_answer(scene.objects))
        keys = [(b[1] * 2 // data.CELL, b[0]) for b in boxes]
        assert keys == sorted(keys) and len(boxes) == 6
    assert answer.count('"label": "red circle"') == 2


def test_collate_masks_everything_but_the_answer(tiny_pair):
    _, processor = tiny_pair
    examples = tiny.pretraining_examples(random.Random(2), 3)
    batch = tiny.collate(processor, examples)
    tok = processor.tokenizer
    for i, e in enumerate(examples):
        answer_ids = batch["labels"][i][batch["labels"][i] != -100].tolist()
        assert tok.decode(answer_ids) == e["answer"] + "<|im_end|>"
        assert int((batch["input_ids"][i] == processor.image_token_id).sum()) == 16
    assert batch["image_grid_thw"].shape == (3, 3)


def test_pretrain_runs_and_overfits():
    model, processor = tiny.build_tiny(seed=1, hidden=64, layers=2, vision_hidden=32)
    vision = [p.clone() for p in model.model.visual.parameters()]
    model, processor, losses = tiny.pretrain(
        steps=3, lr=1e-3, batch=2, model=model, processor=processor, warmup=1, progress=False,
        vision_steps=2,
    )  # fmt: skip
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    after = list(model.model.visual.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(vision, after, strict=True))  # stage 0 ran
    assert not any(p.requires_grad for p in after)  # and stage 1 left the tower frozen
    # overfit one fixed batch: the loss must fall
    batch = tiny.collate(processor, tiny.pretraining_examples(random.Random(0), 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    fixed = []
    for _ in range(8):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        fixed.append(loss.item())
    assert fixed[-1] < 0.7 * fixed[0], fixed


def test_3b_config_has_the_3b_shape():
    from transformers import Qwen2_5_VLForConditionalGeneration

    config = tiny.qwen25_vl_3b_config()
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    n = tiny.count_parameters(model)
    assert n == 3_754_622_976  # Qwen2.5-VL-3B-Instruct: 3.75 B (tied embeddings)
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight
    assert config.text_config.rope_parameters["mrope_section"] == [16, 24, 24]
    assert config.image_token_id == 151655 and config.vision_config.out_hidden_size == 2048


def test_tiny_config_scales_mrope_section():
    ids = {k: i for i, k in enumerate(["pad_token_id", "eos_token_id"])}
    ids |= {"vision_start_token_id": 2, "vision_end_token_id": 3}
    ids |= {"image_token_id": 4, "video_token_id": 5}
    for hidden, heads in ((128, 4), (192, 4), (256, 4), (256, 8)):
        config = tiny.tiny_config(64, ids, hidden=hidden, heads=heads)
        section = config.text_config.rope_parameters["mrope_section"]
        assert sum(section) == hidden // heads // 2
    # Qwen's theta: slow frequencies that barely turn over a prompt let attention match
    # words by content (copying a label); the image tokens' places live in their features
    theta = tiny.tiny_config(64, ids).text_config.rope_parameters["rope_theta"]
    assert theta == tiny.qwen25_vl_3b_config().text_config.rope_parameters["rope_theta"] == 1e6


def test_cell_targets_put_each_object_in_its_token():
    rng = random.Random(4)
    scene = data.make_scene(rng, [("red", "circle"), ("blue", "triangle")])
    target = tiny.cell_targets([scene])
    assert target["row"][0].tolist() == [r for r in range(4) for _ in range(4)]
    assert target["col"][0].tolist() == list(range(4)) * 4
    assert int((target["colour"] > 0).sum()) == 2 and int((target["shape"] > 0).sum()) == 2
    for obj in scene.objects:
        x1, y1, x2, y2 = obj.box
        token = tiny.merged_token_index(x1 / 2, y1 / 2, width=112)  # the 112 px image's token
        assert target["colour"][0, token] == list(data.COLOURS).index(obj.colour) + 1
        assert target["shape"][0, token] == list(data.SHAPES).index(obj.shape) + 1
        box = target["box"][0, token]  # inside its cell, as fractions of the cell
        assert 0 < box[0] < box[2] < 1 and 0 < box[1] < box[3] < 1
        assert math.isclose(float(box[2] - box[0]), (x2 - x1) / data.CELL, rel_tol=1e-5)


def test_pretrain_vision_learns_colours_of_tokens():
    """Stage 0 on a narrow tower: the loss on fresh scenes falls within a few dozen steps."""
    torch.manual_seed(0)
    model, processor = tiny.build_tiny(seed=2, hidden=64, layers=1, vision_hidden=32)
    losses = tiny.pretrain_vision(model, processor, steps=40, batch=8)
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses


def test_trl_grpo_trainer_one_step(tmp_path):
    """TRL's GRPOTrainer runs one step on the tiny model: the path notebook 06 builds on."""
    from trl import GRPOConfig, GRPOTrainer

    model, processor = tiny.build_tiny(seed=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    dataset = data.to_dataset(data.train_split()[:2])

    def length_reward(completions, **kwargs):
        return [float(len(str(c))) for c in completions]

    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=1,
        num_generations=2,
        per_device_train_batch_size=2,
        max_completion_length=16,
        learning_rate=1e-3,
        report_to="none",
        bf16=False,
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[length_reward],
        args=args,
        train_dataset=dataset,
        processing_class=processor,
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs and math.isfinite(logs[0]["loss"])
    changed = any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    assert changed


@pytest.fixture(scope="module")
def shipped():
    torch.set_num_threads(1)
    return tiny.load_tiny(tiny.SHIPPED)


def test_shipped_model_looks_at_the_image(shipped):
    """The failure of every earlier attempt: equal losses with the images shuffled."""
    model, processor = shipped
    # captions, boxes, counts and spatial answers all depend on the image
    for kind, margin in (("describe", 0.05), ("ground", 0.05), ("count", 0.05), ("spatial", 0.05)):
        examples = tiny.pretraining_examples(random.Random(5), 16, {kind: 1.0})
        shuffled = [dict(e, image=examples[i - 1]["image"]) for i, e in enumerate(examples)]
        with torch.no_grad():
            true_loss = model(**tiny.collate(processor, examples)).loss.item()
            shuffled_loss = model(**tiny.collate(processor, shuffled)).loss.item()
        assert true_loss < shuffled_loss - margin, (kind, true_loss, shuffled_loss)


def test_shipped_model_skills_match_its_card(shipped):
    """A 40-item held-out slice agrees with the card's 200-item numbers (binomial noise:
    one standard error of an accuracy near 0.5 on 20 items is 0.11)."""
    import json

    model, processor = shipped
    card = json.loads((tiny.SHIPPED / tiny.LOG_NAME).read_text())["skills"]
    assert card["n"] == 200
    skills = tiny.evaluate_skills(model, processor, n=40)
    assert abs(skills["grounding_iou"] - card["grounding_iou"]) < 0.15
    assert abs(skills["counting_acc"] - card["counting_acc"]) < 0.3
    assert abs(skills["spatial_acc"] - card["spatial_acc"]) < 0.3
    assert skills["zero_shot_format"] < 0.5  # GRIT's format is not already there
    # the course's bars (issue 4), on the card's 200 items: a model under them is not shipped
    assert card["grounding_iou"] >= 0.5 and card["counting_acc"] >= 0.6
    assert card["spatial_acc"] >= 0.75
    assert (tiny.SHIPPED / "README.md").read_text().count(f"{card['counting_acc']:.1%}") == 1


def test_model_card_is_written_from_the_log(tmp_path):
    """Every number in the card comes from ``pretrain_log.json``; none is retyped."""
    import shutil

    shutil.copytree(tiny.SHIPPED, tmp_path / "tiny")
    log_path = tmp_path / "tiny" / tiny.LOG_NAME
    log = json.loads(log_path.read_text())
    log.pop("finetune", None)  # the shipped model has a stage 2; this card starts without
    log["seconds"] = 3000.0
    log["phases"][0]["right_cell"] = [0.25, 0.875]
    log["skills"]["sampled_any_tag"] = 0.3125
    log["skills"]["sampled_tags"]["<rethink>"] = 0.4375
    log_path.write_text(json.dumps(log))
    card = tiny.write_model_card(tmp_path / "tiny").read_text()
    assert "**50.0 minutes**" in card
    assert "| look-up | 1 | ground 100% | 0.001 |" in card and "| 25% / 88% |" in card
    names = tuple(f"| {name} |" for name, *_ in tiny.RECIPE)
    rows = [line for line in card.splitlines() if line.startswith(names)]
    assert len(rows) == len(log["phases"])
    assert "31.2%" in card and "<rethink> 44%" in card
    assert "Stage 2" not in card  # no finetune in the log: no stage-2 paragraph
    command = "python -m grit_lite.tiny finetune --model a --out b"
    stage2 = {"steps": 300, "lr": 1e-3, "batch": 16, "seed": 1, "seconds": 126.0}
    log["finetune"] = {"command": command, **stage2}
    log_path.write_text(json.dumps(log))
    card = tiny.write_model_card(tmp_path / "tiny").read_text()
    assert "2.1 minutes" in card and f"{(3000 + 126) / 60:.1f} minutes in all" in card
    assert log["finetune"]["command"] in card


def test_where_questions_name_the_cells_of_unique_objects():
    rng = random.Random(5)
    for _ in range(200):
        scene = tiny._random_scene(rng)
        labels = [o.label for o in scene.objects]
        for n in (1, 2):
            asked = tiny._where(rng, scene, n)
            unique = [o for o in scene.objects if labels.count(o.label) == 1]
            if asked is None:
                assert len(unique) < n
                continue
            question, answer = asked
            named = [o for o in unique if f"the {o.label}" in question]
            assert len(named) == n and labels.count(named[0].label) == 1
            axis = 0 if "column" in question else 1
            named.sort(key=lambda o: question.index(o.label))
            cells = [str(o.box[axis] // data.CELL + 1) for o in named]
            assert answer == " and ".join(cells), (question, answer)
    kinds = {e["kind"] for e in tiny.pretraining_examples(rng, 40, {"where2": 1.0}, False)}
    assert kinds <= {"where2", "count"}  # a scene without two unique labels asks a count


def test_a_spatial_kind_can_ask_about_some_relations_only():
    rng = random.Random(3)
    asked = set()
    for _ in range(300):
        scene = tiny._random_scene(rng)
        question, answer = tiny._task(rng, scene, "spatial:left of,above")
        if not question.startswith("Is the "):
            continue  # no clear pair for these relations: a counting question instead
        first, relation, second = re.fullmatch(
            r"Is the (\w+ \w+) (left of|right of|above|below) the (\w+ \w+)\?", question
        ).groups()
        asked.add(relation)
        (a,) = [o for o in scene.objects if o.label == first]  # named: alone of its label
        (b,) = [o for o in scene.objects if o.label == second]
        assert answer == ("yes" if data.relation_holds(a, b, relation, 0) else "no"), question
    assert asked == {"left of", "above"}
    # unrestricted, all four relations are asked
    asked_all = [tiny._task(rng, tiny._random_scene(rng), "spatial")[0] for _ in range(300)]
    assert all(any(f" {r} the " in q for q in asked_all) for r in data.RELATIONS)


def test_first_box_cell_reads_the_centre_in_the_model_frame():
    # 112 px frame: a 28 px token per grid cell; the box [30, 60, 50, 80] is centred at
    # (40, 70), so in column 1 and row 2 (from 0)
    assert tiny.first_box_cell('[{"bbox_2d": [30, 60, 50, 80], "label": "red circle"}]') == (1, 2)
    assert tiny.first_box_cell("[1, 1, 20, 20] and then [90, 90, 100, 100]") == (0, 0)
    assert tiny.first_box_cell("no box here") is None
    assert tiny.first_box_cell(None) is None


def test_recipe_stops_the_look_up_phase_on_the_measured_check(monkeypatch, tmp_path):
    checks = iter([0.1, 0.5, 0.9])  # the third check passes: the look-up phase ends there
    # patched where they are looked up: the recipe in tiny.pretraining, main in tiny.cli
    monkeypatch.setattr(tiny.pretraining, "right_cell", lambda model, processor: next(checks))
    small = tiny.build_tiny
    monkeypatch.setattr(tiny.cli, "build_tiny", lambda seed: small(seed, hidden=64, layers=2,
                                                               vision_hidden=32))  # fmt: skip
    tiny.main(["pretrain", "--out", str(tmp_path), "--scale", "0.002", "--batch", "2",
               "--vision-steps", "1", "--threads", "1"])  # fmt: skip
    log = json.loads((tmp_path / tiny.LOG_NAME).read_text())
    phases = [(p["phase"], p["pass"]) for p in log["phases"]]
    # 3 steps a pass, a check every step: pass 0 checks twice (0.1, 0.5), then its end
    # is checked (0.9): the look-up is done after one pass, and the other phases follow
    names = ["look-up", "places", "compare", "all", "left", "left-right", "three", "vertical",
             "relations"]  # fmt: skip
    assert phases == [(name, 0) for name in names]
    assert log["phases"][0]["right_cell"] == [0.1, 0.5, 0.9]
    # 1500 steps scaled by 0.002 are 3; the 300- and 600-step spatial phases keep 1 step
    assert [p["steps"] for p in log["phases"]] == [3, 3, 3, 3, 1, 1, 1, 1, 1]
    assert log["command"].startswith("python -m grit_lite.tiny pretrain --out")
    assert len(log["vision_losses"]) == 1
    tiny.load_tiny(tmp_path)  # the saved model loads


def test_recipe_caps_the_look_up_phase_and_keeps_snapshots(monkeypatch, tmp_path):
    monkeypatch.setattr(tiny.pretraining, "right_cell", lambda model, processor: 0.0)
    monkeypatch.setattr(tiny.pretraining, "RECIPE", tiny.RECIPE[:2])
    model, processor = tiny.build_tiny(seed=1, hidden=64, layers=2, vision_hidden=32)
    log = tiny.pretrain_recipe(model, processor, batch=2, scale=0.002, snapshots=tmp_path)
    assert [p["pass"] for p in log[:-1]] == list(range(tiny.LOOKUP_PASSES))
    assert all(p["mix"] == {"ground": 1.0} for p in log[:-1]) and log[-1]["phase"] == "places"
    after_lookup, _ = tiny.load_tiny(tmp_path / "look-up")
    final = dict(model.named_parameters())
    moved = [not torch.equal(p, final[n]) for n, p in after_lookup.named_parameters()]
    assert any(moved)  # the snapshot is the model before the next phase, not after it


def test_a_multipart_kind_can_ask_spatial_questions_only():
    rng = random.Random(4)
    relations = set()
    for _ in range(200):
        scene = tiny._random_scene(rng)
        prompt, reply = tiny._task(rng, scene, "multipart:spatial:left of,below")
        question = re.match(r"(Is the .*?\?|How many .*?\?)", prompt).group(1)
        last = reply.rpartition("<")[2]
        if question.startswith("Is the "):  # a counting question only where no pair fits
            relations |= {r for r in data.RELATIONS if f" {r} the " in question}
            assert last.partition(">")[2] in ("yes", "no")
    assert relations == {"left of", "below"}


def test_after_parts_probe_reads_the_answer_after_the_last_tag(monkeypatch, shipped):
    model, processor = shipped

    def always(word):
        def fake(model, processor, prompts, images, max_new_tokens):
            tags = [re.search(r"answer the question after <(\w+)>", p).group(1) for p in prompts]
            return [f"<note>no</note> <{t}>{word}" for t in tags]  # a decoy before the tag

        return fake

    scores = {}
    for word in ("yes", "no", ""):
        monkeypatch.setattr("grit_lite.tiny.skills.generate", always(word))
        scores[word] = tiny.after_parts_accuracy(model, processor, n=40)
    assert scores["yes"] + scores["no"] == pytest.approx(1.0)
    assert 0 < scores["yes"] < 1 and scores[""] == 0.0
