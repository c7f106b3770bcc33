"""Write a merged Llama-architecture student as an F32 GGUF that llama.cpp loads (`backend = "embedded"`).

The `gguf` package writes the file; what it cannot derive is taken from the source GGUF the
student was loaded from (its tokenizer: vocabulary, merges, token types, special ids, chat template),
so export needs a student that came from a GGUF (the default does). Hugging Face stores the query and
key projections in the rotate-half layout; llama.cpp expects the interleaved one, so those two are
permuted back the way llama.cpp's own converter does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trainer.errors import TrainError


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Hugging Face rotate-half → llama.cpp interleaved rotary layout (rows of q_proj / k_proj)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


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


def export_gguf(merged_dir: Path, out_file: Path, tokenizer_gguf: Path) -> Path:
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((Path(merged_dir) / "config.json").read_text())
    if config.get("model_type") != "llama":
        raise TrainError(f"GGUF export writes Llama-architecture students only (this one is "
                         f"{config.get('model_type')}); use llama.cpp's convert_hf_to_gguf.py for others")
    if not Path(tokenizer_gguf).is_file():
        raise TrainError(f"GGUF export copies the tokenizer from the student's source GGUF; none at {tokenizer_gguf}")
    n_head = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads", n_head)
    n_layers = config["num_hidden_layers"]
    tensors: dict[str, np.ndarray] = {}
    for shard in sorted(Path(merged_dir).glob("*.safetensors")):
        tensors.update(load_file(str(shard)))
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)

    writer = gguf.GGUFWriter(str(out_file), "llama")
    writer.add_name(Path(merged_dir).name)
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_rope_dimension_count(config["hidden_size"] // n_head)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-5))
    # transformers >= 5 keeps the RoPE base under rope_parameters (SmolLM2: 100000, not the default 10000)
    rope_theta = config.get("rope_theta") or (config.get("rope_parameters") or {}).get("rope_theta") or 10000.0
    writer.add_rope_freq_base(float(rope_theta))
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
        if name.endswith("q_proj.weight"):
            data = _permute(data, n_head)
        elif name.endswith("k_proj.weight"):
            data = _permute(data, n_kv)
        writer.add_tensor(new_name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(out_file)
