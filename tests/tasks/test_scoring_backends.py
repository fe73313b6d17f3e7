"""The scorer's two backends (``scoring.HFBackend``, ``scoring.BridgeBackend``): logits at
chosen positions equal the model's own full logits there, the base model is found in every
layout, the cache is passed and read under the names the installed transformers uses, and
the pass-cost model reads what its docstring says from the config."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PretrainedConfig

from lenskit.models import load_model, make_tiny_model, model_info
from lenskit.tasks.encoding import pad_right
from lenskit.tasks.scoring import BridgeBackend, HFBackend

# right-padded rows of 6, 3 and 5 tokens; three positions per row inside its real tokens
# (repeated and out of order), so that padding is never read
ROWS = [[5, 9, 14, 3, 27, 8], [11, 6, 40], [7, 7, 19, 33, 12]]
POSITIONS = [[0, 5, 2], [2, 0, 2], [4, 1, 3]]


@pytest.fixture(scope="module")
def backend_dirs(tmp_path_factory) -> dict:
    """gpt2, llama and Llama-4's text model (whose causal LM is its own ``base_model``)."""
    root = tmp_path_factory.mktemp("backends")
    return {f: make_tiny_model(f, root / f) for f in ("gpt2", "llama", "llama4_text")}


def _at_positions(logits_of, rows, positions) -> torch.Tensor:
    """``[B, K, V]``: each unpadded row's own full logits, taken at its positions."""
    with torch.no_grad():
        return torch.stack([logits_of(torch.tensor([r]))[0, p]
                            for r, p in zip(rows, positions, strict=True)])


@pytest.mark.parametrize("family", ["gpt2", "llama", "llama4_text"])
def test_hf_logits_at_equal_the_full_logits_at_the_positions(backend_dirs, family):
    """The HF backend's logits at the positions equal the causal LM's own full logits of
    each unpadded row there, also where the causal LM is its own base model (Llama-4); the
    pass keeps no key-value cache (re-run decoding calls it once per step)."""
    hf = AutoModelForCausalLM.from_pretrained(backend_dirs[family]).eval()
    backend = HFBackend(hf)
    assert backend.hf is hf  # the runners read the model's limits from it
    ids, _ = pad_right(ROWS, 0)
    want = _at_positions(lambda x: hf(input_ids=x).logits, ROWS, POSITIONS)
    caches = []
    handle = backend.base.register_forward_hook(lambda m, a, out: caches.append(out.cache))
    try:
        with torch.no_grad():
            got = backend.logits_at(ids, torch.tensor(POSITIONS))
    finally:
        handle.remove()
    assert caches == [None]
    assert got.dtype == torch.float32 and got.shape == (3, 3, hf.config.vocab_size)
    torch.testing.assert_close(got, want.float(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_bridge_logits_at_and_full_logits_equal_the_models_own(backend_dirs, family):
    """Through the bridge: the logits at the positions equal plain HF's (same weights) and
    the HF backend's; its full logits too; a bfloat16 bridge's come out as float32, equal to
    its own logits."""
    bridge = load_model(backend_dirs[family])
    hf = model_info(bridge).hf
    vocab = hf.config.vocab_size
    backend = BridgeBackend(bridge, vocab)
    assert backend.vocab_size == vocab and backend.bridge is bridge
    ids, _ = pad_right(ROWS, 0)
    positions = torch.tensor(POSITIONS)
    want = _at_positions(lambda x: hf(input_ids=x).logits, ROWS, POSITIONS)
    with torch.no_grad():
        got = backend.logits_at(ids, positions)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got, HFBackend(hf).logits_at(ids, positions), atol=1e-5,
                                   rtol=1e-5)
        full = backend.full_logits(ids)
        assert full.shape == (3, 6, vocab)
        for r, row in enumerate(ROWS):  # the real tokens of each padded row
            torch.testing.assert_close(full[r, : len(row)],
                                       hf(input_ids=torch.tensor([row])).logits[0],
                                       atol=1e-5, rtol=1e-5)
        half = load_model(backend_dirs[family], dtype=torch.bfloat16)
        row = torch.tensor([ROWS[0]])
        own = half(row, return_type="logits")
        assert own.dtype == torch.bfloat16
        back = BridgeBackend(half, vocab)
        got = back.logits_at(row, positions[:1])
        assert got.dtype == torch.float32
        assert torch.equal(got[0], own[0, POSITIONS[0]].float())
        full = back.full_logits(row)
        assert full.dtype == torch.float32 and torch.equal(full, own.float())


def _documented_pass_cost(n_params: int, n_blocks: int) -> float:
    """The CPU model of ``scoring._pass_cost``'s docstring: a pass costs 0.3 ms of Python per
    block plus one read of the float32 weights (4 bytes each) at 10 GB/s; a token costs two
    FLOPs per parameter at 60 GFLOP/s. The pass's cost in tokens is their ratio."""
    per_pass = 0.3e-3 * n_blocks + 4 * n_params / 10e9
    per_token = 2 * n_params / 60e9
    return per_pass / per_token


def test_pass_cost_is_the_documented_cpu_model(backend_dirs):
    """``HFBackend.pass_cost`` counts every parameter once (tied embeddings once) and reads
    the depth from ``num_hidden_layers`` (``n_layer`` or ``num_layers`` in configs that name
    it so, a value that is not an int skipped, 1 without any); SmolLM2-135M's shape gives
    the ~14 tokens of the docstring, the tiny test models hundreds."""
    smol = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                       num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                       tie_word_embeddings=True)
    with torch.device("meta"):  # the shape only: no memory, no initialisation
        model = LlamaForCausalLM(smol)
    n = model.num_parameters()
    assert n == 134_515_008  # SmolLM2-135M
    cost = HFBackend(model).pass_cost
    assert cost == pytest.approx(_documented_pass_cost(n, 30), rel=1e-12)
    assert 13.5 < cost < 14.5
    # configs that name the depth otherwise (remote-code configs without transformers'
    # attribute map), a depth that is not an int, and none at all
    for cfg, depth in ((PretrainedConfig(n_layer=30), 30), (PretrainedConfig(num_layers=7), 7),
                       (PretrainedConfig(num_hidden_layers=None, n_layer=5), 5),
                       (PretrainedConfig(n_layer="30", num_layers=4), 4),
                       (PretrainedConfig(), 1)):
        model.config = cfg
        assert HFBackend(model).pass_cost == pytest.approx(_documented_pass_cost(n, depth),
                                                           rel=1e-12), cfg
    for family in ("gpt2", "llama"):
        hf = AutoModelForCausalLM.from_pretrained(backend_dirs[family])
        cost = HFBackend(hf).pass_cost
        assert cost == pytest.approx(_documented_pass_cost(hf.num_parameters(), 2), rel=1e-12)
        assert cost > 100


def test_the_cache_is_passed_and_read_under_the_installed_names(backend_dirs):
    """transformers 5.x takes and returns the key-value cache as ``cache`` (the older
    ``past_key_values`` still works but is deprecated, to be removed in 5.40): the backend
    passes it under the new name (no deprecation warning in a prefix pass or a decoding
    step) and reads it from an output of any layout: both names (5.x today), only
    ``past_key_values`` (4.x), only ``cache`` (after the removal)."""
    hf = AutoModelForCausalLM.from_pretrained(backend_dirs["llama"]).eval()
    backend = HFBackend(hf)
    ids = torch.tensor([[8, 9, 10], [11, 12, 0]])
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = backend.prefix_state([5, 6, 7])
        _, cache = backend.hidden(ids, state)
        mask = torch.ones((2, 3 + 3 + 1), dtype=torch.long)
        backend.step(cache, torch.tensor([13, 14]), mask, torch.tensor([6, 5]))
        out = backend.base(input_ids=ids, use_cache=True)
    assert not [w for w in caught if "past_key_values" in str(w.message)]
    assert out.cache is not None
    assert HFBackend._cache_of(out) is out.cache
    # the layout of transformers < 5: the cache only as past_key_values
    assert HFBackend._cache_of(SimpleNamespace(past_key_values=out.cache)) is out.cache
    assert HFBackend._cache_of(SimpleNamespace(cache=None, past_key_values=out.cache)) \
        is out.cache
    assert HFBackend._cache_of(SimpleNamespace(cache=out.cache)) is out.cache
