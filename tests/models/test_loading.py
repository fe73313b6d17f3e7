import pytest
import torch
from transformers import AutoModelForCausalLM

from lenskit.models import ModelLoadError, hf_model, load_model, model_info


def test_bridge_logits_match_native_hf(tiny_dirs, family, tiny_model):
    native = AutoModelForCausalLM.from_pretrained(tiny_dirs[family]).eval()
    toks = torch.randint(5, 700, (3, 17), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = native(toks).logits
        bridge = tiny_model(toks)
        plain = hf_model(tiny_model)(toks).logits
    assert (bridge - ref).abs().max() < 1e-4
    assert (plain - ref).abs().max() < 1e-4


def test_loaded_model_is_in_eval_mode_with_tokenizer(tiny_model):
    info = model_info(tiny_model)
    assert not tiny_model.training and not info.hf.training
    assert info.tokenizer.pad_token_id is not None
    assert info.tokenizer("Q: what is the capital of Brirul?")["input_ids"][0] == \
        info.tokenizer.bos_token_id


def test_plain_hf_model_shares_parameters_with_bridge(tiny_model):
    shared = {id(p) for p in tiny_model.parameters()}
    assert all(id(p) in shared for p in hf_model(tiny_model).parameters())


def test_local_directory_loads_offline(tiny_dirs, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = load_model(str(tiny_dirs["llama"]))
    assert model_info(model).path == str(tiny_dirs["llama"])


def test_unreachable_hub_name_explains_offline_use(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="offline"):
        load_model("lenskit-test/no-such-model-anywhere")


def test_directory_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        load_model(tmp_path)


def test_unknown_organism_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="organism"):
        load_model("organism-d7")


def test_model_info_rejects_foreign_models(tiny_dirs):
    native = AutoModelForCausalLM.from_pretrained(tiny_dirs["gpt2"])
    with pytest.raises(ValueError, match="load_model"):
        model_info(native)


def test_dtype_option(tiny_dirs):
    model = load_model(tiny_dirs["opt"], dtype=torch.float64)
    info = model_info(model)
    assert info.sites[0].weight().dtype == torch.float64
