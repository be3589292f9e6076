#!/usr/bin/env python3
"""medvqa's whole `eval` process against transformers' batched `generate` loop (issue 17).

    cargo build --release
    python3.11 -m venv .venv-fixtures
    .venv-fixtures/bin/pip install -r tests/fixtures/requirements-export.txt
    .venv-fixtures/bin/python benches/peer_eval.py                 # all four models, 2 rounds
    .venv-fixtures/bin/python benches/peer_eval.py --models llava --rounds 1

For each model (the three decoder families' tiny fixtures and the reference VLM), on the same
questions (`medvqa phantom --set all --seed 7 --n 16`: 48 questions, all five kinds, 1-5
images), greedy, batch 8, the same thread count on both sides:

- **medvqa**: the wall time of the whole `medvqa eval` process (start, model load, decode,
  preprocess, generate, score, report, exit), clean images only.
- **transformers**: the batched loop alone, as a user writes it: for each batch of 8, the
  processor (chat template, images, tokens) and `model.generate`. Imports, model building and
  processor loading are excluded.

The answers of both sides are compared question by question; the table counts differences.

The torch models are the ones the committed ONNX graphs were exported from:
- fixtures: `tests/fixtures/make_models.py` builds each from a fixed seed, so this script builds
  the same model class from the folder's `config.json` under the same seed, and checks every
  named ONNX initializer against the torch weights (exact equality) before timing anything;
- the reference VLM ships no torch weights, so they are read back from its ONNX graphs (named
  initializers by name, the exported `Linear` weights, which ONNX stores transposed and
  unnamed, in graph order) and checked against the graphs' outputs.

Only the release binary `target/release/medvqa` and the model folders are read; nothing is
downloaded. Results print as a Markdown table (BENCHMARKS.md, "The eval process against
transformers").
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(FIXTURES))

import export_common as ec  # noqa: E402

# name: (folder, seed make_models.py builds it with (None: weights from ONNX), box frame,
# max new tokens)
MODELS = {
    "llava": (FIXTURES / "models" / "llava", 11, "normalized", 16),
    "idefics3": (FIXTURES / "models" / "idefics3", 3, "normalized", 16),
    "qwen2_vl": (FIXTURES / "models" / "qwen2_vl", 21, "grid:1000", 16),
    "reference": (ROOT / "assets" / "reference-vlm", None, "normalized", 64),
}

BATCH = 8

# Qwen2-VL's box markup: special tokens that medvqa keeps in the answer text because its box
# parser reads them (src/infer/families/qwen2_vl.rs, MARKUP); every other special token is
# skipped. The transformers side decodes the same way, so that answers compare.
QWEN_MARKUP = ["<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
               "<|quad_start|>", "<|quad_end|>"]


# ---------------------------------------------------------------------------------------------
# Torch models


def onnx_initializers(path: Path) -> dict:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    return {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}


def build_fixture(folder: Path, seed: int):
    """The fixture model as make_models.py built it: same class, config and seed."""
    import numpy as np
    from transformers import AutoConfig, AutoModelForImageTextToText

    ec.seed_everything(seed)
    config = AutoConfig.from_pretrained(str(folder))
    model = AutoModelForImageTextToText.from_config(config).eval()
    emb = onnx_initializers(folder / "onnx" / "embed_tokens.onnx")
    want = next(v for v in emb.values() if v.ndim == 2)
    got = model.get_input_embeddings().weight.detach().numpy()
    if not np.array_equal(want, got):
        raise SystemExit(f"{folder}: the rebuilt torch model's embeddings differ from the ONNX export "
                         "(torch or transformers version differs from tests/fixtures/requirements-export.txt?)")
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    checked = 1
    for graph in ("decoder_model_merged", "vision_encoder"):
        for name, arr in onnx_initializers(folder / "onnx" / f"{graph}.onnx").items():
            for key, val in sd.items():
                if key.endswith(name) and val.shape == arr.shape:
                    if not np.array_equal(val, arr):
                        raise SystemExit(f"{folder}: {name} differs from the torch weights")
                    checked += 1
                    break
    print(f"  {folder.name}: rebuilt from seed {seed}; {checked} named tensors equal the ONNX export", flush=True)
    return model


def build_reference(folder: Path):
    """The reference VLM's torch weights, read back from its ONNX graphs."""
    import numpy as np
    import torch
    from transformers import AutoConfig, LlavaForConditionalGeneration

    config = AutoConfig.from_pretrained(str(folder))
    model = LlavaForConditionalGeneration(config).eval()
    sd = model.state_dict()
    new = {}

    def put(key, arr):
        if key not in sd:
            raise SystemExit(f"reference VLM: no torch parameter {key}")
        if tuple(sd[key].shape) != arr.shape:
            raise SystemExit(f"reference VLM: {key} is {tuple(sd[key].shape)}, ONNX has {arr.shape}")
        new[key] = torch.from_numpy(np.array(arr, copy=True))

    onnx_dir = folder / "onnx"
    emb = onnx_initializers(onnx_dir / "embed_tokens.onnx")
    put("model.language_model.embed_tokens.weight", emb["embedding.weight"])

    text = config.text_config
    dec = onnx_initializers(onnx_dir / "decoder_model_merged.onnx")
    unnamed = []
    for name, arr in dec.items():
        if name.startswith("text_model."):
            if name.endswith("rotary_emb.inv_freq"):
                continue
            put("model.language_model." + name[len("text_model."):], arr)
        elif name.startswith("val_") and arr.ndim == 2:
            unnamed.append(arr)
    order = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
    want = len(order) * text.num_hidden_layers + 1
    if len(unnamed) != want:
        raise SystemExit(f"reference VLM decoder: {len(unnamed)} unnamed matrices, expected {want}")
    for layer in range(text.num_hidden_layers):
        for j, part in enumerate(order):
            put(f"model.language_model.layers.{layer}.{part}.weight", unnamed[layer * len(order) + j].T)
    put("lm_head.weight", unnamed[-1].T)

    vis = onnx_initializers(onnx_dir / "vision_encoder.onnx")
    unnamed = []
    for name, arr in vis.items():
        if name.startswith("vision_tower."):
            put("model." + name, arr)
        elif name.startswith("projector."):
            put("model.multi_modal_projector." + name[len("projector."):], arr)
        elif name == "embedding":
            put("model.vision_tower.vision_model.embeddings.position_embedding.weight"
                if "model.vision_tower.vision_model.embeddings.position_embedding.weight" in sd
                else "model.vision_tower.embeddings.position_embedding.weight", arr[0])
        elif name.startswith("val_") and arr.ndim == 2:
            unnamed.append(arr)
    vorder = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
              "mlp.fc1", "mlp.fc2"]
    layers = len(unnamed) - 2
    if layers % len(vorder):
        raise SystemExit(f"reference VLM vision: {len(unnamed)} unnamed matrices")
    prefix = "model.vision_tower.vision_model" if any(k.startswith("model.vision_tower.vision_model.") for k in sd) \
        else "model.vision_tower"
    for layer in range(layers // len(vorder)):
        for j, part in enumerate(vorder):
            put(f"{prefix}.encoder.layers.{layer}.{part}.weight", unnamed[layer * len(vorder) + j].T)
    put("model.multi_modal_projector.linear_1.weight", unnamed[-2].T)
    put("model.multi_modal_projector.linear_2.weight", unnamed[-1].T)

    missing, _ = model.load_state_dict(new, strict=False)
    check_reference(model, onnx_dir)
    print(f"  reference: {len(new)} tensors read from ONNX; {len(missing)} torch tensors unused by the export",
          flush=True)
    return model


def check_reference(model, onnx_dir: Path) -> None:
    """The rebuilt torch model must compute what the ONNX graphs compute."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from families.llava import _vision_module

    torch.manual_seed(0)
    pv = torch.randn(2, 3, model.config.vision_config.image_size, model.config.vision_config.image_size)
    with torch.no_grad():
        got = _vision_module(model)(pv).numpy()
    sess = ort.InferenceSession(str(onnx_dir / "vision_encoder.onnx"), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"pixel_values": pv.numpy()})[0]
    err = float(np.abs(got - want).max())
    if err > 1e-3:
        raise SystemExit(f"reference VLM: vision features differ from the ONNX graph by {err}")
    ids = torch.randint(0, model.config.text_config.vocab_size, (2, 20))
    with torch.no_grad():
        logits = model(input_ids=ids).logits.numpy()
    embed = ort.InferenceSession(str(onnx_dir / "embed_tokens.onnx"), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(onnx_dir / "decoder_model_merged.onnx"), providers=["CPUExecutionProvider"])
    text = model.config.text_config
    layers, kv_heads, head_dim = ec.kv_geometry(text)
    feeds = {"inputs_embeds": embed.run(None, {"input_ids": ids.numpy()})[0],
             "attention_mask": np.ones((2, 20), dtype=np.int64),
             "position_ids": np.tile(np.arange(20, dtype=np.int64), (2, 1))}
    feeds.update(ec.empty_past(layers, 2, kv_heads, head_dim))
    names = {i.name for i in dec.get_inputs()}
    out = dec.run(None, {k: v for k, v in feeds.items() if k in names})[0]
    err = float(np.abs(out - logits).max())
    if err > 1e-3:
        raise SystemExit(f"reference VLM: decoder logits differ from the ONNX graph by {err}")


# ---------------------------------------------------------------------------------------------
# The two sides


def load_questions(root: Path) -> list[dict]:
    with open(root / "manifest.jsonl", encoding="utf-8") as f:
        return [d for d in map(json.loads, f) if "id" in d]


def run_medvqa(binary: Path, folder: Path, data: Path, out: Path, threads: int, max_new: int):
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(binary), "eval", "--dataset", f"jsonl:{data / 'manifest.jsonl'}", "--model", str(folder),
         "--batch-size", str(BATCH), "--max-new-tokens", str(max_new), "--perturbation", "none",
         "--out", str(out), "--threads", str(threads), "-q"],
        capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"medvqa eval failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    answers = {}
    with open(out / "predictions.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            answers[d["id"]] = d["response"]
    timing = json.loads((out / "timing.json").read_text())
    return wall, answers, timing


def decode(tok, ids: list[int], markup: dict[int, str]) -> str:
    """`skip_special_tokens=True`, except for the markup tokens, which stay as text."""
    out, start = [], 0
    for i, t in enumerate(ids):
        if t in markup:
            out.append(tok.decode(ids[start:i], skip_special_tokens=True))
            out.append(markup[t])
            start = i + 1
    out.append(tok.decode(ids[start:], skip_special_tokens=True))
    return "".join(out)


def run_transformers(model, processor, questions, root: Path, frame: str, max_new: int, gen_cfg, name: str):
    import torch

    tok = processor.tokenizer
    markup = {}
    if name == "qwen2_vl":
        for m in QWEN_MARKUP:
            tid = tok.convert_tokens_to_ids(m)
            if tid is not None and tid != tok.unk_token_id:
                markup[tid] = m
    tok.padding_side = "left"
    eos = gen_cfg.eos_token_id if isinstance(gen_cfg.eos_token_id, list) else [gen_cfg.eos_token_id]
    answers = {}
    t0 = time.perf_counter()
    for i in range(0, len(questions), BATCH):
        batch = questions[i:i + BATCH]
        images = [[ec.load_image(root / p) for p in q["images"]] for q in batch]
        prompts = [
            processor.apply_chat_template(
                ec.user_messages(len(ims), ec.question_text(q["question"], q["kind"], q.get("options") or [], frame)),
                add_generation_prompt=True,
            )
            for q, ims in zip(batch, images)
        ]
        enc = processor(images=images, text=prompts, return_tensors="pt", padding=True)
        with torch.no_grad():
            gen = model.generate(**enc, generation_config=gen_cfg)
        new = gen[:, enc["input_ids"].shape[1]:]
        for q, row in zip(batch, new.tolist()):
            answers[q["id"]] = decode(tok, ec.strip_after_eos(row, eos), markup)
    return time.perf_counter() - t0, answers


def load_processor(name: str, folder: Path):
    if name == "idefics3":
        from families.idefics3 import VARIANTS, _load_processor

        return _load_processor(next(v for v in VARIANTS if v.model_type == "idefics3"), folder)
    if name in ("llava", "reference"):
        from families.llava import load_processor as lp

        return lp(folder)
    from families.qwen2_vl import load_processor as lq

    return lq(folder)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds per model (medians reported)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--medvqa", default=str(ROOT / "target" / "release" / "medvqa"))
    p.add_argument("--json", help="also write the raw results here")
    args = p.parse_args()

    import torch
    from transformers import GenerationConfig

    torch.set_num_threads(args.threads)
    binary = Path(args.medvqa)
    if not binary.exists():
        raise SystemExit(f"{binary} is missing: run `cargo build --release` first")

    rows = []
    with tempfile.TemporaryDirectory(prefix="medvqa-peer-eval-") as tmp:
        tmp = Path(tmp)
        data = tmp / "phantom"
        subprocess.run([str(binary), "phantom", "--set", "all", "--seed", "7", "--n", "16", "--out", str(data), "-q"],
                       check=True)
        questions = load_questions(data)
        print(f"{len(questions)} questions, {args.threads} threads, batch {BATCH}", flush=True)
        for name in args.models:
            folder, seed, frame, max_new = MODELS[name]
            model = build_reference(folder) if seed is None else build_fixture(folder, seed)
            processor = load_processor(name, folder)
            gen_cfg = GenerationConfig.from_pretrained(str(folder))
            gen_cfg.max_new_tokens = max_new
            gen_cfg.do_sample = False
            walls, loops, computes, diffs = [], [], [], []
            for r in range(args.rounds):
                out = tmp / f"{name}-{r}"
                wall, m_answers, timing = run_medvqa(binary, folder, data, out, args.threads, max_new)
                loop, t_answers = run_transformers(model, processor, questions, data, frame, max_new, gen_cfg, name)
                walls.append(wall)
                loops.append(loop)
                computes.append(timing["stages"]["model_compute"])
                diff = [k for k in t_answers if m_answers.get(k) != t_answers[k]]
                diffs.append(len(diff))
                print(f"  {name} round {r + 1}: medvqa process {wall:.2f} s, transformers loop {loop:.2f} s, "
                      f"{len(diff)} of {len(t_answers)} answers differ", flush=True)
                for k in diff[:3]:
                    print(f"    {k}: medvqa {m_answers.get(k)!r} / transformers {t_answers[k]!r}", flush=True)
            rows.append({
                "model": name,
                "medvqa_process_s": statistics.median(walls),
                "transformers_loop_s": statistics.median(loops),
                "medvqa_model_compute_s": computes,
                "answers": len(questions),
                "differ": max(diffs),
                "rounds": {"medvqa": walls, "transformers": loops},
            })

    print()
    print("| model | medvqa `eval` process (s) | of which the graphs (`model_compute`) "
          "| transformers batch-8 loop (s) | transformers / medvqa | answers differing |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = r["transformers_loop_s"] / r["medvqa_process_s"]
        compute = statistics.median(r["medvqa_model_compute_s"])
        print(f"| {r['model']} | {r['medvqa_process_s']:.2f} | {compute:.2f} | {r['transformers_loop_s']:.2f} "
              f"| {ratio:.1f}× | {r['differ']} of {r['answers']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
