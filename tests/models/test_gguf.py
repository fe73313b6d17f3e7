"""GGUF files as models: a tiny Llama written here with the gguf package's GGUFWriter loads
through lenskit.load_model with the weights it was written with (float) or their dequantised
values (Q8_0), and its record says which."""

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lenskit.models import load_model, model_info
from lenskit.models.gguf import gguf_source
from lenskit.models.loading import ModelLoadError

gguf = pytest.importorskip("gguf")
quants = pytest.importorskip("gguf.quants")

N_HEAD, N_KV = 4, 2


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    # llama.cpp stores q/k rows in rotary-interleaved order (what its converter writes and
    # transformers undoes on loading).
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def _vocab() -> list[str]:
    # Byte-level BPE spells each byte as a printable character: printable Latin-1 bytes as
    # themselves, the others shifted past 255 in order.
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1),
                 *range(0xAE, 0xFF + 1)]
    spelled, extra = {}, 0
    for b in range(256):
        if b in printable:
            spelled[b] = chr(b)
        else:
            spelled[b] = chr(256 + extra)
            extra += 1
    return [*spelled.values(), "he", "<|endoftext|>"]


def write_tiny_gguf(path, quantise: bool = False) -> LlamaForCausalLM:
    """A random tiny Llama (d_model 64, 2 layers) written as GGUF with a byte-level BPE
    tokenizer (256 bytes, one merge); returns the HF model it was written from."""
    tokens = _vocab()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokens), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=N_HEAD,
                      num_key_value_heads=N_KV, max_position_embeddings=128,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                      bos_token_id=len(tokens) - 1, eos_token_id=len(tokens) - 1)
    hf = LlamaForCausalLM(cfg).eval()
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.add_context_length(128)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_KV)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(64 // N_HEAD)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if quantise else gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.NORMAL] * (len(tokens) - 1) + [gguf.TokenType.CONTROL])
    w.add_token_merges(["h e"])
    w.add_bos_token_id(len(tokens) - 1)
    w.add_eos_token_id(len(tokens) - 1)
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in hf.state_dict().items()}
    names = {"model.embed_tokens.weight": "token_embd.weight",
             "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    per_layer = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
                 "post_attention_layernorm": "ffn_norm"}
    for i in range(2):
        for hf_name, g in per_layer.items():
            names[f"model.layers.{i}.{hf_name}.weight"] = f"blk.{i}.{g}.weight"
    for hf_name, g in names.items():
        t = sd[hf_name]
        if hf_name.endswith("q_proj.weight"):
            t = _permute(t, N_HEAD)
        elif hf_name.endswith("k_proj.weight"):
            t = _permute(t, N_KV)
        if quantise and t.ndim == 2:
            q = quants.quantize(t, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(g, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(g, np.ascontiguousarray(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return hf


@pytest.mark.parametrize("quantise", [False, True], ids=["f32", "q8_0"])
def test_a_gguf_file_loads_as_a_model(tmp_path, monkeypatch, quantise):
    monkeypatch.setenv("LENSKIT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "tiny.gguf"
    ref = write_tiny_gguf(path, quantise)
    model = load_model(path)
    info = model_info(model)
    src = info.source
    assert src["format"] == "gguf" and src["file"] == str(path.resolve())
    assert src["architecture"] == "llama" and src["quantised"] is quantise
    assert src["quantisation"] == ("Q8_0" if quantise else None)
    assert src == gguf_source(path)
    got = info.hf.state_dict()
    for name, want in ref.state_dict().items():
        if quantise and want.ndim == 2:
            # dequantised Q8_0: within one quantisation step of the float weights
            step = want.abs().reshape(-1, 32).amax(1, keepdim=True) / 127
            err = (got[name] - want).abs().reshape(-1, 32)
            assert (err <= step + 1e-6).all(), name  # the scale is stored in f16
            assert not torch.equal(got[name], want), name
        else:
            assert torch.equal(got[name], want), name
    # the bridge computes what the source model computes (the tokenizer came along too)
    ids = info.tokenizer("hello there", return_tensors="pt")["input_ids"]
    assert ids.shape[1] == len("hello there") - 2  # byte level, one merge: "he"
    with torch.no_grad():
        logits = model(ids)
        expected = ref(ids).logits
    if not quantise:
        torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    assert len(info.sites) == 2 * 7
    # converted once: a second load reuses the cache
    cached = list((tmp_path / "cache" / "gguf").iterdir())
    load_model(path)
    assert list((tmp_path / "cache" / "gguf").iterdir()) == cached and len(cached) == 1


def test_a_broken_gguf_file_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LENSKIT_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError, match="not a readable GGUF file"):
        load_model(bad)
    assert not (tmp_path / "cache" / "gguf").exists() or not any(
        (tmp_path / "cache" / "gguf").iterdir())


def test_a_sweep_checks_a_gguf_model_before_loading_it(tmp_path, monkeypatch):
    from lenskit.models.gguf import gguf_n_layers
    from lenskit.sweep import ConfigError, load_config
    from lenskit.sweep.preflight import preflight

    monkeypatch.setenv("LENSKIT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, False)
    assert gguf_n_layers(path) == 2
    base = {"models": str(path), "methods": "magnitude", "sparsities": "0.5",
            "matched": "false", "out_dir": str(tmp_path / "run")}
    preflight(load_config(None, {**base, "scopes": "mlp@1"}))  # in range: no problem
    with pytest.raises(ConfigError, match=r"layer\(s\) \[2\] out of range.*2 layers"):
        preflight(load_config(None, {**base, "scopes": "mlp@2"}))
    assert not (tmp_path / "cache").exists()  # checked from the header: nothing converted
