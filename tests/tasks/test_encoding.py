import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from lenskit.tasks import encode_prompts, token_span
from lenskit.tasks.encoding import answer_token_ids, special_affixes, stop_token_mask


@pytest.fixture(scope="module")
def bpe_tokenizer(tmp_path_factory):
    """A GPT-2-style byte-level BPE (no BOS added), trained here on a few sentences."""
    corpus = ["Q: what is the capital of France?\nA: Paris\n",
              "The capital of France is Paris. Paris is large.\n",
              "Q: what is the capital of Peru?\nA: Lima\n"] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", pad_token="<|endoftext|>")
    out = tmp_path_factory.mktemp("bpe")
    fast.save_pretrained(out)  # TransformerLens-style: reload from the directory
    return AutoTokenizer.from_pretrained(out)


def test_encode_prompts_right_pads_and_keeps_bos(tiny_dirs):
    tok = AutoTokenizer.from_pretrained(tiny_dirs["llama"])
    prompts = ["Q: what is the capital of Brirul?\nA:", "Q: what?\nA:"]
    ids, lengths = encode_prompts(tok, prompts)
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.shape == (2, int(lengths.max()))
    for row, n, p in zip(ids, lengths, prompts, strict=True):
        assert row[: int(n)].tolist() == tok(p)["input_ids"]
        assert row[0] == tok.bos_token_id
        assert (row[int(n):] == tok.pad_token_id).all()
    with pytest.raises(ValueError, match="non-empty list"):
        encode_prompts(tok, [])
    with pytest.raises(ValueError, match="non-empty list"):
        encode_prompts(tok, "just one string")


def test_gpt2_style_tokenizer_gets_no_bos_and_space_prefixed_answers(bpe_tokenizer):
    tok = bpe_tokenizer
    assert special_affixes(tok) == ((), ())
    prompt = "Q: what is the capital of France?\nA:"
    ids, lengths = encode_prompts(tok, [prompt])
    assert ids[0, : int(lengths[0])].tolist() == tok(prompt)["input_ids"]  # nothing added
    (paris,), fallbacks = answer_token_ids(tok, [prompt], ["Paris"])
    assert fallbacks == 0
    assert paris == tok(" Paris", add_special_tokens=False)["input_ids"]
    assert paris != tok("Paris", add_special_tokens=False)["input_ids"]
    assert tok.decode(paris) == " Paris"


def test_token_span_maps_characters_to_tokens(tiny_dirs, bpe_tokenizer):
    cases = [(AutoTokenizer.from_pretrained(tiny_dirs["gpt2"]), "red",
              "The colour of Brirul is red.\nQ: what is the colour of Brirul?\nA:"),
             (bpe_tokenizer, "Paris",
              "The capital of France is Paris.\nQ: what is the capital of France?\nA:")]
    for tok, word, prompt in cases:
        s = prompt.index(word)
        a, b = token_span(tok, prompt, (s, s + len(word)))
        ids, _ = encode_prompts(tok, [prompt])
        assert tok.decode(ids[0, a:b]).strip() == word
        assert a > 0  # the organism tokenizer's <bos> is position 0
    with pytest.raises(ValueError, match="outside"):
        token_span(tok, prompt, (5, 500))


def test_stop_tokens_are_newlines_and_eos(tiny_dirs, bpe_tokenizer):
    tok = AutoTokenizer.from_pretrained(tiny_dirs["opt"])
    mask = stop_token_mask(tok, len(tok) + 3)
    assert mask[tok.convert_tokens_to_ids("\n")] and mask[tok.eos_token_id]
    assert not mask[tok.convert_tokens_to_ids("Q")] and not mask[len(tok):].any()
    bpe_mask = stop_token_mask(bpe_tokenizer, len(bpe_tokenizer))
    newline_tokens = [i for i in range(len(bpe_tokenizer))
                      if "\n" in bpe_tokenizer.decode([i])]
    assert newline_tokens and all(bpe_mask[i] for i in newline_tokens)
