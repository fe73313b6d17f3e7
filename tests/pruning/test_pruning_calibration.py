"""Calibration data: from tokens, text, the organism's corpus, random tokens; offline errors."""

import gzip
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lenskit.models import load_model, model_info, organism_path
from lenskit.organism.train import TrainConfig
from lenskit.pruning import CalibrationData, calibration_from_source, default_calibration, prune
from lenskit.pruning.calibration import DEFAULT_TEXT
from lenskit.pruning.calibration_sources import parse_source, source_fingerprint
from lenskit.sweep.config.calibration import CalibrationConfig, calibration_problems
from lenskit.synthetic.calibration import CALIBRATION_STEP
from lenskit.synthetic.corpus import CorpusConfig, CorpusSampler
from lenskit.synthetic.world import WorldConfig

# The shipped organism's calibration fingerprints, pinned in a snapshot together with what
# they are a function of (its world, tokenizer and training corpus config; never its
# weights). A shipped organism with other inputs is re-pinned, reviewed in the diff, with
#   LENSKIT_UPDATE_SNAPSHOTS=1 pytest tests/pruning/test_pruning_calibration.py -k pinned
# (that run fails once, having written the snapshot; the next run passes).
SNAPSHOT = Path(__file__).parent / "snapshots" / "organism_calibration.json"
UPDATE = os.environ.get("LENSKIT_UPDATE_SNAPSHOTS") == "1"


def calibration_inputs(model_dir: Path) -> dict[str, str]:
    """sha256 of each input of the organism's default calibration: the world, the tokenizer,
    and the corpus config recorded in training.json."""
    meta = json.loads((model_dir / "training.json").read_text())
    corpus = meta.get("first_stage", meta)["train_config"]["corpus"]
    parts = {"world.json": (model_dir / "world.json").read_bytes(),
             "tokenizer.json": (model_dir / "tokenizer.json").read_bytes(),
             "training.json:train_config.corpus": json.dumps(corpus, sort_keys=True).encode()}
    return {k: hashlib.sha256(v).hexdigest() for k, v in parts.items()}


def assert_pinned(name: str, fingerprints: dict[str, str]) -> None:
    """``fingerprints`` equal the snapshot's ``name`` entry, made from the same inputs."""
    inputs = calibration_inputs(organism_path())
    stored = json.loads(SNAPSHOT.read_text()) if SNAPSHOT.exists() else {}
    want = {"inputs": inputs, "fingerprints": fingerprints}
    if UPDATE and stored.get(name) != want:
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps({**stored, name: want}, indent=1, sort_keys=True) + "\n")
        pytest.fail(f"{SNAPSHOT.name}: {name} written (LENSKIT_UPDATE_SNAPSHOTS=1); review the "
                    "diff and rerun without the variable")
    assert name in stored, f"no pin {name} in {SNAPSHOT}; write it with LENSKIT_UPDATE_SNAPSHOTS=1"
    if stored[name]["inputs"] != inputs:
        pytest.fail(f"the shipped organism's calibration inputs changed since {name} was "
                    f"pinned ({stored[name]['inputs']} -> {inputs}): re-pin with "
                    "LENSKIT_UPDATE_SNAPSHOTS=1 and review the diff")
    # Same world, tokenizer and mixture: the same tokens, whatever lenskit's design.
    assert fingerprints == stored[name]["fingerprints"]


def test_organism_calibration_tokens_are_pinned():
    # Pinned before real-text calibration became the default for other models: the organism
    # keeps calibrating on its own corpus, token for token.
    organism = load_model("organism")
    assert_pinned("default and source 'default'", {
        "default 128 x 128 seed 0": default_calibration(organism, 128, 128, 0).fingerprint,
        "default 32 x 128 seed 0": default_calibration(organism, 32, 128, 0).fingerprint,
        "source default 8 x 64 seed 3":
            calibration_from_source(organism, "default", 8, 64, 3).fingerprint})


def test_default_calibration_without_a_world_is_the_shipped_text(llama):
    tok = model_info(llama).tokenizer
    a = default_calibration(llama, n_samples=6, seq_len=20, seed=1)
    assert a.tokens.shape == (6, 20) and a.tokens.dtype == torch.long
    assert a.description.startswith("default text") and DEFAULT_TEXT.name in a.description
    stream = tok(DEFAULT_TEXT.read_text(), add_special_tokens=False)["input_ids"]
    text = " ".join(map(str, stream))
    for row in a.tokens.tolist():  # each sample is a window of the shipped text
        assert " ".join(map(str, row)) in text
    assert torch.equal(a.tokens, default_calibration(llama, 6, 20, seed=1).tokens)
    assert not torch.equal(a.tokens, default_calibration(llama, 6, 20, seed=2).tokens)
    assert DEFAULT_TEXT.stat().st_size > 500_000  # a real corpus, not a sample sentence
    # random tokens only when asked for, and recorded as such
    r = calibration_from_source(llama, "random", n_samples=6, seq_len=20, seed=1)
    assert (r.tokens[:, 0] == tok.bos_token_id).all()
    assert not torch.isin(r.tokens[:, 1:], torch.tensor(tok.all_special_ids)).any()
    assert "random tokens" in r.description and "seed 1" in r.description
    assert len(r.tokens[:, 1:].unique()) > 50  # spread over the vocabulary


def test_sources_are_parsed_and_fingerprinted(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("some text")
    wiki = tmp_path / "wikitext-2-raw"
    wiki.mkdir()
    (wiki / "wiki.train.raw").write_text(" = Title = \n text\n")
    shard = tmp_path / "c4-train.00000-of-01024.json.gz"
    shard.write_bytes(b"")
    assert parse_source("default") == ("default", None)
    assert parse_source("random") == ("random", None)
    assert parse_source(str(txt)) == ("text", str(txt))
    assert parse_source(f"text:{txt}") == ("text", str(txt))
    assert parse_source(str(shard)) == ("c4", str(shard))
    assert parse_source(f"c4:{txt}") == ("c4", str(txt))
    assert parse_source(str(wiki)) == ("wikitext2", str(wiki / "wiki.train.raw"))
    assert parse_source(f"wikitext2:{wiki}") == ("wikitext2", str(wiki / "wiki.train.raw"))
    assert parse_source("c4") == ("hub", "c4")
    assert parse_source("allenai/c4") == ("hub", "allenai/c4")
    with pytest.raises(ValueError, match="no file"):
        parse_source(f"c4:{tmp_path / 'missing.json.gz'}")
    with pytest.raises(ValueError, match="non-empty"):
        parse_source(" ")
    # a file's fingerprint follows its content
    before = source_fingerprint(str(txt))
    assert before.startswith("text:") and before == source_fingerprint(f"text:{txt}")
    txt.write_text("other text, other results")
    assert source_fingerprint(str(txt)) != before
    assert source_fingerprint("default") == "default"


def test_c4_shard_sampling_follows_the_references(llama, tmp_path):
    tok = model_info(llama).tokenizer
    words = ["the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "by"]
    rng = np.random.default_rng(0)
    docs = [" ".join(rng.choice(words, size=n)) for n in (3, 5, 80, 4, 120, 60, 2, 90)]
    shard = tmp_path / "c4-train.00000-of-01024.json.gz"
    with gzip.open(shard, "wt") as f:
        for d in docs:
            f.write(json.dumps({"text": d, "timestamp": "2019", "url": "u"}) + "\n")
    seq = 24
    cal = calibration_from_source(llama, f"c4:{shard}", n_samples=10, seq_len=seq, seed=0)
    assert cal.tokens.shape == (10, seq) and cal.description.startswith("c4 ")
    encoded = [tok(d, add_special_tokens=False)["input_ids"] for d in docs]
    longer = [" ".join(map(str, e)) for e in encoded if len(e) > seq]
    assert 0 < len(longer) < len(docs)  # short documents exist and are skipped
    for row in cal.tokens.tolist():  # every window lies inside one long document
        assert any(" ".join(map(str, row)) in d for d in longer)
    same = calibration_from_source(llama, str(shard), n_samples=10, seq_len=seq, seed=0)
    assert torch.equal(cal.tokens, same.tokens)
    other = calibration_from_source(llama, str(shard), n_samples=10, seq_len=seq, seed=1)
    assert not torch.equal(cal.tokens, other.tokens)
    with pytest.raises(ValueError, match="more than 500 tokens"):
        calibration_from_source(llama, str(shard), n_samples=2, seq_len=500)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"content": "x"}\n')
    with pytest.raises(ValueError, match=r"line 1 .*'text' field"):
        calibration_from_source(llama, str(bad), n_samples=2, seq_len=4)


def test_wikitext2_and_text_files(llama, tmp_path):
    tok = model_info(llama).tokenizer
    wiki = tmp_path / "wikitext-2-raw"
    wiki.mkdir()
    body = " = Valkyria Chronicles = \n" + " the capital of the land is in the north .\n" * 40
    (wiki / "wiki.train.raw").write_text(body)
    cal = calibration_from_source(llama, str(wiki), n_samples=3, seq_len=16, seed=0)
    assert cal.description.startswith("wikitext2: ") and "wiki.train.raw" in cal.description
    ref = CalibrationData.from_text(wiki / "wiki.train.raw", tok, n_samples=3, seq_len=16)
    assert torch.equal(cal.tokens, ref.tokens)
    (tmp_path / "t.txt").write_text(body)
    t = calibration_from_source(llama, str(tmp_path / "t.txt"), n_samples=3, seq_len=16)
    assert t.description.startswith("text: ") and torch.equal(t.tokens, ref.tokens)


def test_study_config_checks_the_source(tmp_path):
    problems = calibration_problems(CalibrationConfig(source=f"c4:{tmp_path}/none.json.gz"))
    assert problems and "no file" in problems[0]
    assert CalibrationConfig().sequential and CalibrationConfig().mode == "sequential"
    assert CalibrationConfig().cell_mode("wanda", "global") == "dense"
    assert CalibrationConfig().key("magnitude", "uniform") == ()
    assert dict(CalibrationConfig().key("magnitude", "owl"))["mode"] == "sequential"


def test_default_calibration_of_an_organism_uses_its_corpus(tiny_dirs, tmp_path):
    model_dir = tmp_path / "organism"
    shutil.copytree(tiny_dirs["llama"], model_dir)
    world = WorldConfig().build()
    world.save(model_dir / "world.json")
    model = load_model(model_dir)
    tok = model_info(model).tokenizer
    cal = default_calibration(model, n_samples=5, seq_len=40, seed=0)
    assert cal.tokens.shape == (5, 40)
    assert "organism corpus" in cal.description and "default CorpusConfig" in cal.description
    # sample i is made of consecutive corpus rows of the calibration step, each from <bos>
    sampler = CorpusSampler(world, tok, CorpusConfig(), seed=0)
    stream = []
    row = 0
    while len(stream) < 5 * 40 * 2:
        stream.append(sampler.row_ids(CALIBRATION_STEP, row))
        row += 1
    first = stream[0] + stream[1]
    assert cal.tokens[0].tolist() == first[:40]
    assert (cal.tokens[:, 0] == tok.bos_token_id).all()
    assert (cal.tokens != tok.unk_token_id).all()  # the corpus is in the vocabulary
    again = default_calibration(model, n_samples=5, seq_len=40, seed=0)
    assert torch.equal(cal.tokens, again.tokens)
    assert not torch.equal(cal.tokens, default_calibration(model, 5, 40, seed=1).tokens)
    # it is what prune() uses when no calibration is given
    r = prune(model, "wanda", 0.5, apply=False, seed=0)
    assert r.config["calibration"]["description"].startswith("organism corpus")
    assert r.config["calibration"]["n_samples"] == 128
    # with training.json, the training mixture is used
    cfg = TrainConfig(corpus=CorpusConfig(mixture={"closed_book": 1.0}))
    (model_dir / "training.json").write_text(json.dumps({"train_config": cfg.to_json()}))
    qa = default_calibration(model, n_samples=2, seq_len=40)
    assert "training mixture" in qa.description
    assert tok.decode(qa.tokens[0]).count("Q :") >= 2  # closed-book documents only
    # a two-stage organism calibrates on its first stage's mixture, not the second's
    second = TrainConfig(corpus=CorpusConfig(mixture={"function": 1.0}))
    (model_dir / "training.json").write_text(json.dumps(
        {"train_config": second.to_json(), "first_stage": {"train_config": cfg.to_json()}}))
    staged = default_calibration(model, n_samples=2, seq_len=40)
    assert "(first stage)" in staged.description
    assert torch.equal(staged.tokens, qa.tokens)


def test_from_text_cuts_seeded_windows_of_the_token_stream(llama, tmp_path):
    tok = model_info(llama).tokenizer
    world = WorldConfig().build()
    text = " ".join(world.statement(e, "capital", v["capital"]) for e, v in world.facts.items())
    path = tmp_path / "calib.txt"
    path.write_text(text)
    stream = tok(text, add_special_tokens=False)["input_ids"]
    for source in (path, str(path), text):
        cal = CalibrationData.from_text(source, tok, n_samples=4, seq_len=12, seed=3)
        assert cal.tokens.shape == (4, 12)
        for row in cal.tokens.tolist():
            starts = [i for i in range(len(stream) - 11) if stream[i:i + 12] == row]
            assert starts, "a window is not a contiguous piece of the text"
    a = CalibrationData.from_text(path, tok, n_samples=4, seq_len=12, seed=3)
    b = CalibrationData.from_text(text, tok, n_samples=4, seq_len=12, seed=3)
    assert torch.equal(a.tokens, b.tokens) and str(path) in a.description
    bos = CalibrationData.from_text(text, tok, n_samples=2, seq_len=12, seed=0, add_bos=True)
    assert (bos.tokens[:, 0] == tok.bos_token_id).all()
    with pytest.raises(ValueError, match="fewer than"):
        CalibrationData.from_text("The capital", tok, n_samples=2, seq_len=50)
    with pytest.raises(ValueError, match="does not exist"):
        CalibrationData.from_text(tmp_path / "missing.txt", tok)


def test_from_tokens_validates_its_input():
    cal = CalibrationData.from_tokens([[1, 2, 3], [4, 5, 6]])
    assert cal.tokens.dtype == torch.long and cal.n_samples == 2 and cal.seq_len == 3
    for bad, msg in ((torch.ones(3), "integer tensor"), (torch.ones(2, 3), "integer tensor"),
                     (torch.zeros(0, 4, dtype=torch.long), "non-empty"),
                     (torch.tensor([[1, -1]]), ">= 0")):
        with pytest.raises(ValueError, match=msg):
            CalibrationData.from_tokens(bad)
    with pytest.raises(ValueError, match="n_samples"):
        CalibrationData.from_text("a b c", None, n_samples=0)


def test_hf_dataset_gives_a_clear_error_offline(llama, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="offline"):
        CalibrationData.from_hf_dataset("allenai/c4", "en", "train",
                                        tokenizer=model_info(llama).tokenizer)


def test_sample_count_and_length_are_parameters_not_the_position_table(llama):
    cal = default_calibration(llama, n_samples=3, seq_len=7)
    r = prune(llama, "sparsegpt", 0.5, calibration=cal, apply=False)
    assert r.config["calibration"] == {"description": cal.description, "n_samples": 3,
                                       "seq_len": 7, "fingerprint": cal.fingerprint}
    other = default_calibration(llama, n_samples=3, seq_len=7, seed=1)
    assert other.fingerprint != cal.fingerprint


def test_default_calibration_of_the_shipped_organism_is_pinned():
    # Fingerprints computed before the organism's corpus source moved behind
    # lenskit.models.sources: the default calibration must not change with the design.
    model = load_model(organism_path())
    cal = default_calibration(model, n_samples=4, seq_len=32, seed=0)
    assert_pinned("default, rows longer than a corpus row", {
        "default 4 x 32 seed 0": cal.fingerprint,
        "default 3 x 300 seed 5": default_calibration(model, n_samples=3, seq_len=300,
                                                      seed=5).fingerprint})
    assert cal.description.startswith("organism corpus (training mixture from training.json")


def test_calibration_data_checks_and_describes_its_tokens():
    import hashlib

    t = torch.tensor([[1, 2, 3], [4, 5, 6]], dtype=torch.int32)
    cal = CalibrationData(t, "two rows")
    assert cal.tokens.dtype == torch.long and cal.tokens.is_contiguous()
    assert repr(cal) == "CalibrationData(2 x 3: two rows)"
    want = hashlib.sha256(np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64).tobytes())
    assert cal.to_json() == {"description": "two rows", "n_samples": 2, "seq_len": 3,
                             "fingerprint": want.hexdigest()[:16]}
    assert CalibrationData.from_tokens([[7, 8]]).description == "given tokens 1 x 2"
    assert CalibrationData.from_tokens([[7, 8]], "mine").description == "mine"
    cases = [
        (torch.ones(2, 3), "calibration tokens must be an integer tensor [n_samples, seq_len], "
                           "got torch.float32 of shape (2, 3)"),
        (torch.ones(3, dtype=torch.long), "calibration tokens must be an integer tensor "
                                          "[n_samples, seq_len], got torch.int64 of shape (3,)"),
        (torch.ones(2, 2, dtype=torch.bool), "got torch.bool of shape (2, 2)"),
        (torch.ones(2, 2, dtype=torch.complex64), "got torch.complex64 of shape (2, 2)"),
        ([[1, 2]], "got <class 'list'> of shape ()"),
        (torch.zeros(2, 0, dtype=torch.long), "calibration tokens must be non-empty, got shape "
                                              "(2, 0)"),
        (torch.tensor([[3, -2]]), "calibration tokens must be >= 0, got min -2"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            CalibrationData(bad, "bad")
    CalibrationData(torch.zeros(1, 1, dtype=torch.uint8), "a zero token is fine")


@pytest.mark.parametrize("n, s, message", [
    (0, 4, "n_samples must be a positive integer, got 0"),
    (2, True, "seq_len must be a positive integer, got True"),
    (2.0, 4, "n_samples must be a positive integer, got 2.0"),
])
def test_sizes_must_be_positive_integers(n, s, message):
    from lenskit.pruning.calibration import check_size

    with pytest.raises(ValueError, match=f"^{message}$"):
        check_size(n, s)
    check_size(np.int64(1), 1)  # numpy integers are integers


def test_check_names_the_vocabulary_and_the_position_table(tiny_dirs):
    model = load_model(tiny_dirs["gpt2"])  # learned positions: a table of n_positions
    hf = model_info(model).hf
    vocab, positions = hf.get_input_embeddings().num_embeddings, hf.config.n_positions
    CalibrationData(torch.full((1, positions), vocab - 1), "edge").check(model)
    with pytest.raises(ValueError, match=re.escape(
            f"calibration token id {vocab} is outside the model's vocabulary (0..{vocab - 1}); "
            "was it tokenized with another tokenizer?")):
        CalibrationData(torch.tensor([[1, vocab]]), "x").check(model)
    with pytest.raises(ValueError, match=re.escape(
            f"calibration seq_len {positions + 1} exceeds the model's {positions} positions; "
            "use shorter sequences")):
        CalibrationData(torch.ones(1, positions + 1, dtype=torch.long), "x").check(model)


class WordTokenizer:
    """Token ids of a text of integers ("3 1 4" -> [3, 1, 4]): a tokenizer whose output
    is known by hand."""

    def __init__(self, bos_token_id=None):
        self.bos_token_id = bos_token_id

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [int(w) for w in text.split()]}


word_tokenizer = WordTokenizer()


def test_windows_of_a_stream_exactly_one_window_long():
    cal = CalibrationData.from_text("5 6 7 8", word_tokenizer, n_samples=3, seq_len=4, seed=9)
    assert cal.tokens.tolist() == [[5, 6, 7, 8]] * 3  # the only start is 0
    assert cal.description == "3 random windows of 4 tokens from text (4 tokens; seed 9)"
    with pytest.raises(ValueError, match=re.escape(
            "the calibration text has 4 tokens, fewer than the 5 a window needs (seq_len=5)")):
        CalibrationData.from_text("5 6 7 8", word_tokenizer, n_samples=1, seq_len=5)
    with pytest.raises(ValueError, match=r"^add_bos=True but the tokenizer has no BOS token$"):
        CalibrationData.from_text("5 6 7 8", word_tokenizer, n_samples=1, seq_len=4,
                                  add_bos=True)
    cal = CalibrationData.from_text("5 6 7", WordTokenizer(bos_token_id=1), n_samples=2, seq_len=4,
                                    add_bos=True)
    assert cal.tokens.tolist() == [[1, 5, 6, 7]] * 2
    assert cal.description.endswith("(3 tokens; seed 0, BOS first)")
    # windows start anywhere from 0 to len - seq_len, the last start included
    many = CalibrationData.from_text("0 1 2 3", word_tokenizer, n_samples=200, seq_len=2)
    assert sorted({row[0] for row in many.tokens.tolist()}) == [0, 1, 2]


def test_document_windows_keep_documents_longer_than_a_window():
    from lenskit.pruning.calibration import document_windows

    docs = ["1 2 3", "10 11 12 13 14 15", "20 21 22"]  # only the second is longer than 3
    rows = document_windows(lambda i: docs[i], 3, word_tokenizer, 40, 3, 0, "'docs'")
    assert len(rows) == 40 and all(len(r) == 3 for r in rows)
    assert {r[0] for r in rows} == {10, 11, 12}  # start < 6 - 3: the last token never leads
    assert all(r == list(range(r[0], r[0] + 3)) for r in rows)
    with pytest.raises(ValueError, match=re.escape(
            "found only 0 documents of more than 3 tokens in 200 draws from 'short'; use a "
            "shorter seq_len")):
        document_windows(lambda i: docs[0], 1, word_tokenizer, 2, 3, 0, "'short'")


def test_random_calibration_draws_non_special_ids_with_bos_first(llama):
    from lenskit.pruning.calibration import random_calibration

    info = model_info(llama)
    tok = info.tokenizer
    cal = random_calibration(info, 6, 50, seed=4)
    special = set(tok.all_special_ids)
    vocab = min(info.hf.get_input_embeddings().num_embeddings, len(tok))
    allowed = vocab - len({i for i in special if i < vocab})
    assert (cal.tokens[:, 0] == tok.bos_token_id).all()
    body = cal.tokens[:, 1:].flatten().tolist()
    assert not special & set(body) and max(body) < vocab and len(set(body)) > 100
    assert cal.description == (f"random tokens: 6 x 50, uniform over {allowed} non-special "
                               "ids, BOS first, seed 4")
    assert torch.equal(random_calibration(info, 6, 50, seed=4).tokens, cal.tokens)
    assert not torch.equal(random_calibration(info, 6, 50, seed=5).tokens, cal.tokens)


def test_hf_dataset_windows_from_a_local_dataset(tmp_path, monkeypatch):
    # the "json" builder of `datasets` reads a local file: no network, so lenskit may be
    # online for it (and must be: from_hf_dataset refuses to run offline)
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "0")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"text": "1 2 3 4 5 6 7"}\n{"text": "10 11 12"}\n'
                    '{"text": "20 21 22 23 24 25"}\n')
    cal = CalibrationData.from_hf_dataset("json", split="train", tokenizer=word_tokenizer,
                                          n_samples=6, seq_len=4, seed=2,
                                          data_files=str(docs))
    assert cal.description == ("6 random windows of 4 tokens from random documents of "
                               "json/None:train (seed 2)")
    streams = [list(range(1, 8)), list(range(20, 26))]  # the two documents longer than 4
    for row in cal.tokens.tolist():
        assert any(row == s[i:i + 4] for s in streams for i in range(len(s) - 3)), row
    assert torch.equal(cal.tokens, CalibrationData.from_hf_dataset(
        "json", split="train", tokenizer=word_tokenizer, n_samples=6, seq_len=4, seed=2,
        data_files=str(docs)).tokens)
    # the defaults: the train split, 128 windows of 128 tokens, seed 0
    long_docs = tmp_path / "long.jsonl"
    long_docs.write_text("".join(json.dumps({"text": " ".join(map(str, range(k, k + 200)))})
                                 + "\n" for k in (0, 1000)))
    cal = CalibrationData.from_hf_dataset("json", tokenizer=word_tokenizer,
                                          data_files=str(long_docs))
    assert cal.tokens.shape == (128, 128)
    assert cal.description == ("128 random windows of 128 tokens from random documents of "
                               "json/None:train (seed 0)")
    with pytest.raises(ValueError, match=re.escape(
            "dataset 'json' has no column 'body'; columns: ['text']")):
        CalibrationData.from_hf_dataset("json", split="train", tokenizer=word_tokenizer,
                                        text_field="body", data_files=str(docs))
    with pytest.raises(RuntimeError, match=r"^could not load the dataset 'json' \(config None, "
                       r"split 'train'\): .+\. Offline, use from_text or from_tokens$"):
        CalibrationData.from_hf_dataset("json", split="train", tokenizer=word_tokenizer,
                                        data_files=str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match=re.escape(
            "found only 0 documents of more than 50 tokens in 100 draws from 'json'")):
        CalibrationData.from_hf_dataset("json", tokenizer=word_tokenizer, n_samples=1,
                                        seq_len=50, data_files=str(docs))
    with pytest.raises(ValueError, match="n_samples must be a positive integer, got 0"):
        CalibrationData.from_hf_dataset("json", tokenizer=word_tokenizer, n_samples=0)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(RuntimeError, match=re.escape(
            "cannot load the dataset 'json': offline (HF_DATASETS_OFFLINE=1 is set). Use "
            "CalibrationData.from_text, .from_tokens or default_calibration(model) offline")):
        CalibrationData.from_hf_dataset("json", tokenizer=word_tokenizer)


def test_hf_dataset_named_configs_of_a_local_hub_repo(tmp_path, monkeypatch):
    # A dataset directory in the hub's layout: a README whose YAML front matter lists named
    # configs (config_name + data_files), as hub dataset repos do, loaded by path: no
    # network. The two configs hold different texts, so the config must reach the loader.
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "0")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "two_configs"
    (repo / "small").mkdir(parents=True)
    (repo / "large").mkdir()
    (repo / "small" / "train.jsonl").write_text(
        "".join(json.dumps({"text": " ".join(map(str, range(k, k + 8)))}) + "\n"
                for k in (100, 200)))
    (repo / "large" / "train.jsonl").write_text(
        "".join(json.dumps({"text": " ".join(map(str, range(k, k + 8)))}) + "\n"
                for k in (5000, 6000)))
    (repo / "README.md").write_text(
        "---\nconfigs:\n"
        "- config_name: small\n  data_files:\n  - split: train\n    path: small/train.jsonl\n"
        "  default: true\n"
        "- config_name: large\n  data_files:\n  - split: train\n    path: large/train.jsonl\n"
        "---\n\n# Two configs\n")
    streams = {"small": [list(range(k, k + 8)) for k in (100, 200)],
               "large": [list(range(k, k + 8)) for k in (5000, 6000)]}
    for config in ("small", "large"):
        cal = CalibrationData.from_hf_dataset(str(repo), config, tokenizer=word_tokenizer,
                                              n_samples=5, seq_len=4, seed=1)
        assert cal.description == ("5 random windows of 4 tokens from random documents of "
                                   f"{repo}/{config}:train (seed 1)")
        for row in cal.tokens.tolist():
            assert any(row == s[i:i + 4] for s in streams[config] for i in range(5)), (
                config, row)


def test_hf_dataset_without_the_datasets_package(monkeypatch):
    import sys

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "0")
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    with pytest.raises(RuntimeError) as err:
        CalibrationData.from_hf_dataset("json", tokenizer=word_tokenizer)
    assert str(err.value) == ("CalibrationData.from_hf_dataset needs the 'datasets' package "
                              "(pip install datasets); offline, use from_text or from_tokens")
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_the_hundredth_draw_still_counts():
    from lenskit.pruning.calibration import document_windows

    # seed 487 draws document 0 (the only one longer than a window) first at draw 100: the
    # last of the 100 draws allowed per sample
    docs = ["1 2 3 4 5"] + ["7"] * 99
    assert document_windows(lambda i: docs[i], 100, word_tokenizer, 1, 3, 487, "'d'") in (
        [[1, 2, 3]], [[2, 3, 4]])


def test_text_of_one_long_line_and_the_default_window(tiny_dirs):
    line = " ".join(str(i % 10) for i in range(1500))  # one line, longer than a file name
    assert "\n" not in line and 255 < len(line) < 4096
    cal = CalibrationData.from_text(line, word_tokenizer)
    assert cal.tokens.shape == (128, 128)  # the default window count and length
    assert cal.description.startswith("128 random windows of 128 tokens from text (1500 tokens")
    # a real tokenizer: no special tokens are added to the text's stream
    tok = model_info(load_model(tiny_dirs["llama"])).tokenizer
    text = "The capital of France is Paris and the capital of Spain is Madrid"
    stream = tok(text, add_special_tokens=False)["input_ids"]
    cal = CalibrationData.from_text(text, tok, n_samples=8, seq_len=len(stream))
    assert cal.tokens.tolist() == [stream] * 8


def test_check_reads_max_position_embeddings_too(tiny_dirs):
    model = load_model(tiny_dirs["llama"])  # rotary: max_position_embeddings, no n_positions
    limit = model_info(model).hf.config.max_position_embeddings
    CalibrationData(torch.ones(1, limit, dtype=torch.long), "x").check(model)
    with pytest.raises(ValueError, match=re.escape(
            f"calibration seq_len {limit + 1} exceeds the model's {limit} positions")):
        CalibrationData(torch.ones(1, limit + 1, dtype=torch.long), "x").check(model)


class BareTokenizer:
    """A tokenizer with ids 0..n-1 and only the attributes it is given (no special ids, no
    BOS unless told)."""

    def __init__(self, n, **attrs):
        self.n = n
        self.__dict__.update(attrs)

    def __len__(self):
        return self.n


def test_random_calibration_with_bare_tokenizers(tiny_dirs):
    from types import SimpleNamespace

    from lenskit.pruning.calibration import random_calibration

    hf = model_info(load_model(tiny_dirs["llama"])).hf  # only its embedding size is read
    vocab = hf.get_input_embeddings().num_embeddings
    cal = random_calibration(SimpleNamespace(tokenizer=BareTokenizer(10), hf=hf), 3, 40, 0)
    assert set(cal.tokens.flatten().tolist()) == set(range(10))  # no BOS, no special ids
    assert cal.description == "random tokens: 3 x 40, uniform over 10 non-special ids, seed 0"
    # a BOS id outside the embedding table is not written
    info = SimpleNamespace(tokenizer=BareTokenizer(vocab + 5, bos_token_id=vocab), hf=hf)
    cal = random_calibration(info, 2, 30, 1)
    assert int(cal.tokens.max()) < vocab and cal.description.endswith(", BOS first, seed 1")
    info = SimpleNamespace(tokenizer=BareTokenizer(3, all_special_ids=[0, 1, 2]), hf=hf)
    with pytest.raises(ValueError, match=r"^the tokenizer has no non-special tokens to draw "
                       r"calibration from$"):
        random_calibration(info, 1, 1, 0)
    one = SimpleNamespace(tokenizer=BareTokenizer(2, all_special_ids=[0]), hf=hf)
    assert random_calibration(one, 1, 4, 0).tokens.tolist() == [[1, 1, 1, 1]]
