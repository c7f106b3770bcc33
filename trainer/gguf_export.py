"""Write a merged student as an F32 GGUF that llama.cpp loads (`backend = "embedded"`).

The `gguf` package writes the file; what it cannot derive is taken from the source GGUF the
student was loaded from (its tokenizer: vocabulary, merges, token types, special ids, chat template),
so export needs a student that came from a GGUF (the default does). Architectures: Llama (SmolLM2,
Llama 3), Mistral (written as Llama, as llama.cpp's own converter does), Qwen2 and Qwen3; where each
tensor goes, q/k's rotary layout included, is engine/student/gguf_layout.py. Anything this writer
does not reproduce (rope scaling, sliding windows) is refused rather than written wrong, and
`check_gguf` compares the written file's scores with the merged model's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.student.gguf_layout import ARCHITECTURES, permute_rotary, rotary_heads
from engine.student.loader import HF_CONFIG
from trainer.errors import TrainError

# An export whose llama.cpp log-probabilities differ more than this from the merged model's is broken
# (a wrong layout or hyperparameter gives differences of order one). The check keeps llama.cpp's KV
# cache in F32, so that it measures the file: with its default F16 cache, as the embedded backend runs,
# SmolLM2-135M's 30 layers differ by up to ~0.013 nats (mean ~0.0026) against ~7e-5 in F32.
GGUF_TOLERANCE = 1e-3
PROBE_MESSAGES = [{"role": "user", "content": "Add a docstring to this function:\n\ndef add(a, b):\n    return a + b\n"}]
PROBE_RESPONSE = 'REASONING: a one-line docstring.\n```python\ndef add(a, b):\n    """Return a + b."""\n    return a + b\n```\n'


def _copy_tokenizer(reader, writer) -> int:
    import gguf

    copied = 0
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        vtype = gguf.GGUFValueType(field.types[0])
        value = field.contents()
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(name, value, vtype, sub_type=gguf.GGUFValueType(field.types[-1]))
        else:
            writer.add_key_value(name, value, vtype)
        copied += 1
    return copied


def _rope_theta(config: dict) -> float:
    rope = config.get("rope_parameters") or {}
    kind = rope.get("rope_type", "default")
    scaling = config.get("rope_scaling") or {}
    if kind != "default" or scaling.get("rope_type", scaling.get("type", "default")) != "default":
        raise TrainError(f"GGUF export writes plain rotary embeddings only; this student uses rope type "
                         f"'{kind if kind != 'default' else scaling}': use llama.cpp's convert_hf_to_gguf.py")
    return float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))


def export_gguf(merged_dir: Path, out_file: Path, tokenizer_gguf: Path) -> Path:
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((Path(merged_dir) / HF_CONFIG).read_text())
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise TrainError(f"GGUF export writes {', '.join(ARCHITECTURES)} students (this one is {model_type}); "
                         "use llama.cpp's convert_hf_to_gguf.py for others")
    if config.get("use_sliding_window") or any(t != "full_attention" for t in config.get("layer_types") or []):
        raise TrainError("GGUF export does not write sliding-window attention; use llama.cpp's convert_hf_to_gguf.py")
    if not Path(tokenizer_gguf).is_file():
        raise TrainError(f"GGUF export copies the tokenizer from the student's source GGUF; none at {tokenizer_gguf}")
    arch_name, interleave = ARCHITECTURES[model_type]
    arch = next(a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == arch_name)
    n_head = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_head
    n_layers = config["num_hidden_layers"]
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    tensors: dict[str, np.ndarray] = {}
    for shard in sorted(Path(merged_dir).glob("*.safetensors")):
        tensors.update(load_file(str(shard)))
    name_map = gguf.get_tensor_name_map(arch, n_layers)

    writer = gguf.GGUFWriter(str(out_file), arch_name)
    writer.add_name(Path(merged_dir).name)
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_rope_dimension_count(head_dim)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    if head_dim != config["hidden_size"] // n_head:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-5))
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if _copy_tokenizer(gguf.GGUFReader(str(tokenizer_gguf)), writer) == 0:
        raise TrainError(f"{tokenizer_gguf} holds no tokenizer metadata")
    for name, data in tensors.items():
        if name.endswith("rotary_emb.inv_freq"):
            continue
        new_name = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise TrainError(f"GGUF export does not know where the tensor {name} goes")
        data = data.astype(np.float32)
        heads = rotary_heads(name, n_head, n_kv) if interleave else None
        if heads is not None:
            data = permute_rotary(data, heads)
        writer.add_tensor(new_name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(out_file)


def check_gguf(gguf_file: Path, model, tokenizer) -> float:
    """llama.cpp on the written GGUF against the merged model in transformers, on one probe conversation:
    the same token ids, and log-probabilities of each next token within `GGUF_TOLERANCE`. Returns the
    largest difference."""
    import torch
    from llama_cpp import GGML_TYPE_F32, Llama

    text = tokenizer.apply_chat_template(PROBE_MESSAGES, tokenize=False, add_generation_prompt=True) + PROBE_RESPONSE
    ids = tokenizer(text, add_special_tokens=False).input_ids
    llm = Llama(model_path=str(gguf_file), n_ctx=max(64, len(ids) + 8), n_batch=512, logits_all=True, verbose=False,
                type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32)
    try:
        if llm.tokenize(text.encode("utf-8"), add_bos=False, special=True) != ids:
            raise TrainError(f"{gguf_file} tokenizes text unlike the student's tokenizer; the export is not usable")
        llm.eval(ids)
        cpp = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
    finally:
        llm.close()
    with torch.no_grad():
        hf = model(torch.tensor([ids])).logits[0].double().log_softmax(-1).numpy()
    top = cpp.max(-1, keepdims=True)
    cpp = cpp - top - np.log(np.exp(cpp - top).sum(-1, keepdims=True))
    nxt = np.asarray(ids[1:])
    rows = np.arange(len(ids) - 1)
    diff = float(np.abs(cpp[rows, nxt] - hf[rows, nxt]).max())
    if not diff <= GGUF_TOLERANCE:
        raise TrainError(f"{gguf_file} scores text {diff:.3g} nats away from the merged model in transformers "
                         f"(more than {GGUF_TOLERANCE}); the export is not usable")
    return diff
