"""The registered tasks: country facts, TriviaQA, WebQuestions, NaturalQuestions, DisentQA,
function learning and perplexity (see :mod:`lenskit.tasks.registry` for specs).

QA tasks use fixed few-shot demonstrations (:func:`lenskit.tasks.templates.templated_task`);
hub datasets load from a local file in their published format when ``path`` is given (no
network), else from the Hugging Face hub through ``datasets`` (the ``hub`` extra).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lenskit.errors import UsageError
from lenskit.models import model_info
from lenskit.synthetic.formats import FunctionFormat
from lenskit.synthetic.functions import FUNCTION_KINDS, FunctionSpec
from lenskit.tasks import loaders
from lenskit.tasks.builders import function_spec_name, function_task, perplexity_task
from lenskit.tasks.core import TaskSet
from lenskit.tasks.countries import COUNTRY_ATTRIBUTES, country_items, gazetteer_text
from lenskit.tasks.items import QAItems
from lenskit.tasks.published import read_wikitext
from lenskit.tasks.registry import PARTS, Param, TaskBuilder, register, select_part
from lenskit.tasks.templates import TEMPLATES, templated_task, with_passages

__all__: list[str] = []

_KINDS = ("closed_book", "open_book", "overriding")


def _qa_params(n: int | None, template: str = "qa", shots: int = 3) -> tuple[Param, ...]:
    return (
        Param("n", "int?", n, "items evaluated (seeded draw; all = every item of the part)"),
        Param("seed", "int", 0, "seeds the item draw and the demonstrations"),
        Param("shots", "int", shots, "fixed demonstrations before every question"),
        Param("template", "str", template, "prompt wording", tuple(TEMPLATES)),
        Param("stop", "list", (), "strings that end an answer besides the newline, | between"),
        Param("fold_accents", "bool", False, "exact match on accent-free forms"),
        Param("part", "str", "eval", "item split: eval (~80%), select (~20%, for choosing "
              "templates) or all", PARTS),
    )


_PASSAGE = (
    Param("passage_chars", "int?", None, "cut passages to this many characters around the "
          "answer (none: whole)"),
    Param("distractors", "int", 0, "passages of other items mixed into each passage"),
)


def _qa(kind: str, items: QAItems, p: dict[str, Any], name: str,
        demo_items: QAItems | None = None, counterfactual_demos: bool = False) -> TaskSet:
    if kind != "closed_book" and (p.get("passage_chars") or p.get("distractors")):
        items = QAItems(items.name, tuple(with_passages(
            items, passage_chars=p.get("passage_chars"), distractors=p.get("distractors", 0),
            seed=p["seed"])), items.source, items.split, items.config)
    part = select_part(items, p["part"])
    if not part:
        raise UsageError(f"{name}: the {p['part']!r} part of {len(items)} items is empty")
    held = QAItems(items.name, tuple(part), items.source, items.split,
                   {**items.config, "part": p["part"]})
    demos = None
    if demo_items is not None:
        demos = select_part(demo_items, p["part"])
    task = templated_task(kind, held, template=p["template"], shots=p["shots"], n=p["n"],
                          seed=p["seed"], name=name, demo_items=demos,
                          counterfactual_demos=counterfactual_demos, stop=p["stop"],
                          fold_accents=p["fold_accents"])
    return replace(task, config={**task.config, "params": _plain(p)})


def _plain(p: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in p.items()}


# ----------------------------------------------------------------------------- countries


def _countries(attribute: str, kind: str):
    def build(p: dict[str, Any], model) -> TaskSet:
        items = country_items(attribute, kind, seed=p["seed"], n_distractors=p.get("distractors", 0))
        demo_items = None
        if kind == "overriding":
            demo_items = country_items(attribute, "open_book", seed=p["seed"],
                                       n_distractors=p.get("distractors", 0))
        # the distractors are the country sentences above, not other items' passages
        task = _qa(kind, items, {**p, "distractors": 0}, f"countries_{attribute}_{kind}",
                   demo_items, p.get("counterfactual_demos", False))
        return replace(task, config={**task.config, "params": _plain(p)})
    return build


for _attr in COUNTRY_ATTRIBUTES:
    for _kind in _KINDS:
        _extra: tuple[Param, ...] = ()
        if _kind != "closed_book":
            _extra = (Param("distractors", "int", 0,
                            "true sentences about other countries around the gold one"),)
        if _kind == "overriding":
            _extra += (Param("counterfactual_demos", "bool", False,
                             "demonstrate with counterfactual passages (default: true facts)"),)
        register(TaskBuilder(
            f"countries_{_attr}_{_kind}", _kind,
            f"{_attr} of ~237 countries (countryinfo, offline), {_kind.replace('_', '-')}",
            _qa_params(100, template="cloze") + _extra, _countries(_attr, _kind)))


# ----------------------------------------------------------------------------- hub QA

_PATH = Param("path", "str?", None, "local file in the dataset's published format "
              "(none: the Hugging Face hub)")


def _triviaqa(p: dict[str, Any], model) -> TaskSet:
    items = loaders.load_triviaqa(p["path"], split=p["split"])
    return _qa("closed_book", items, p, "triviaqa")


def _triviaqa_open(p: dict[str, Any], model) -> TaskSet:
    items = loaders.load_triviaqa(p["path"], split=p["split"], evidence=True,
                                  evidence_chars=p["evidence_chars"],
                                  evidence_dir=p["evidence_dir"])
    return _qa("open_book", items, p, "triviaqa_open")


def _popqa(bucket: str | None):
    def build(p: dict[str, Any], model) -> TaskSet:
        bins = _popqa_bins(p["bins"])
        items = loaders.load_popqa(p["path"], split=p["split"], bins=bins)
        name = "popqa" if bucket is None else f"popqa_{bucket}"
        if bucket is not None:
            # Buckets are cut over the whole file, then each is a task of its own, as the
            # organism's closed_book_head/torso/tail: thresholds and figures per bucket.
            items = QAItems(items.name, tuple(it for it in items
                                              if it.meta["bucket"] == bucket),
                            items.source, items.split, {**items.config, "bucket": bucket})
        return _qa("closed_book", items, p, name)
    return build


def _popqa_bins(text: str) -> tuple[float, float] | None:
    if text in ("", "terciles"):
        return None
    try:
        low, high = (float(v) for v in text.split("|"))
    except ValueError as err:
        raise UsageError(f"popqa bins {text!r}: use 'terciles' or two page-view edges "
                         "'LOW|HIGH' (e.g. 1000|100000)") from err
    return low, high


def _webquestions(p: dict[str, Any], model) -> TaskSet:
    return _qa("closed_book", loaders.load_webquestions(p["path"], split=p["split"]), p,
               "webquestions")


def _natural_questions(p: dict[str, Any], model) -> TaskSet:
    return _qa("open_book", loaders.load_natural_questions(p["path"], split=p["split"]), p,
               "natural_questions")


def _disentqa(p: dict[str, Any], model) -> TaskSet:
    raw = loaders.load_disentqa(p["path"], types=("counterfactual",))
    # Rows whose parametric answer equals the contextual one have nothing to override:
    # they would count a correct answer as memorised too.
    kept = tuple(it for it in raw if it.memorised_answer is not None)
    if not kept:
        raise UsageError(f"{p['path']}: no counterfactual row whose contextual answer differs "
                         "from the parametric one")
    items = QAItems(raw.name, kept, raw.source, raw.split,
                    {**raw.config, "n_same_answer_dropped": len(raw) - len(kept)})
    demos = None
    if not p["counterfactual_demos"] and p["shots"]:
        try:
            demos = loaders.load_disentqa(p["path"], types=("factual",))
        except ValueError as err:
            raise UsageError(f"{p['path']}: true demonstrations come from the file's "
                             "'factual' rows and it has none; set counterfactual_demos=true "
                             "or shots=0") from err
    return _qa("overriding", items, p, "disentqa", demos, p["counterfactual_demos"])


_SPLIT_HELP = ("hub split (default: the study's); a local file's split comes from its name "
               "and this must not contradict it")
register(TaskBuilder(
    "triviaqa", "closed_book",
    "TriviaQA rc questions with aliases (closed-book; hub: rc.wikipedia.nocontext)",
    (*_qa_params(500), _PATH, Param("split", "str?", None, _SPLIT_HELP)), _triviaqa))
register(TaskBuilder(
    "triviaqa_open", "open_book",
    "TriviaQA questions with the paragraph of their own entity page that holds an answer",
    (*_qa_params(500), _PATH, Param("split", "str?", None, _SPLIT_HELP),
     Param("evidence_dir", "str?", None, "the rc 'evidence' folder (default: next to qa/)"),
     Param("evidence_chars", "int?", 2000, "cut of the evidence paragraph around the answer"),
     *_PASSAGE), _triviaqa_open))
register(TaskBuilder(
    "webquestions", "closed_book", "WebQuestions (Freebase answers as aliases)",
    (*_qa_params(500), _PATH, Param("split", "str?", None, _SPLIT_HELP)), _webquestions))
register(TaskBuilder(
    "natural_questions", "open_book", "NaturalQuestions with the gold (long-answer) passage",
    (*_qa_params(500), _PATH, Param("split", "str?", None, _SPLIT_HELP), *_PASSAGE),
    _natural_questions))
_POPQA_PARAMS = (*_qa_params(500), _PATH, Param("split", "str", "test", "hub split"),
                 Param("bins", "str", "terciles", "popularity buckets: terciles of s_pop, "
                       "or page-view edges LOW|HIGH (tail < LOW <= torso < HIGH <= head)"))
register(TaskBuilder(
    "popqa", "closed_book", "PopQA long-tail entity questions, every popularity (closed-book)",
    _POPQA_PARAMS, _popqa(None)))
for _bucket in loaders.POPQA_BUCKETS:
    register(TaskBuilder(
        f"popqa_{_bucket}", "closed_book",
        f"PopQA questions of the {_bucket} popularity bucket (s_pop), closed-book",
        _POPQA_PARAMS, _popqa(_bucket)))
register(TaskBuilder(
    "disentqa", "overriding",
    "DisentQA counterfactual passages; memorised_rate = answers from memory",
    (*_qa_params(500), _PATH,
     Param("counterfactual_demos", "bool", False,
           "demonstrate with counterfactual rows (default: the file's factual rows)"),
     *_PASSAGE), _disentqa))


# ----------------------------------------------------------------------------- functions


def _function_spec(kind: str, p: dict[str, Any]) -> FunctionSpec:
    """The spec of a function task's parameters (``FunctionSpec`` checks them together)."""
    return FunctionSpec(kind=kind, n_dims=p["d"], n_exemplars=p["exemplars"],
                        n_classes=p["k"], decimals=p["decimals"], margin=p["margin"],
                        fmt=FunctionFormat(decimals=p["decimals"]))


def _function(kind: str):
    def build(p: dict[str, Any], model) -> TaskSet:
        spec = _function_spec(kind, p)
        return function_task(spec, p["n"], seed=p["seed"], name=function_spec_name(spec))
    return build


def _function_check(kind: str):
    def check(p: dict[str, Any]) -> None:
        try:
            _function_spec(kind, p)
        except UsageError as e:  # name the task's own parameters, not the spec's fields
            given = ", ".join(f"{k}={p[k]}" for k in ("d", "exemplars", "k", "decimals",
                                                        "margin"))
            raise UsageError(f"task fn_{kind} ({given}): {e}") from None
    return check


_FN_HELP = {"linear": "linear classifier", "mlp": "2-layer ReLU net", "tree": "decision tree"}
for _fk in FUNCTION_KINDS:
    register(TaskBuilder(
        f"fn_{_fk}", "function", f"in-context learning of a random {_FN_HELP[_fk]}",
        (Param("n", "int", 64, "prompts (class-balanced query labels)"),
         Param("seed", "int", 0, "seeds the functions and inputs"),
         Param("d", "int", 4, "input dimensions D"),
         Param("exemplars", "int", 32, "labelled examples per prompt N"),
         Param("k", "int", 2, "classes K"),
         Param("decimals", "int", 0, "digits after the point of inputs (number format)"),
         Param("margin", "float", 0.0, "minimum distance of inputs to a decision boundary")),
        _function(_fk), check=_function_check(_fk)))


# ----------------------------------------------------------------------------- perplexity


def _tokenizer_and_window(model, window: int, name: str):
    if model is None:
        raise UsageError(f"{name} tokenises text: build_suite needs the model")
    info = model_info(model)
    cfg = info.hf.config
    limit = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings",
                                                         None) or 512
    return info.tokenizer, int(min(window, limit - 1))


def _perplexity(name: str, read, source: str):
    def build(p: dict[str, Any], model) -> TaskSet:
        tok, window = _tokenizer_and_window(model, p["window"], name)
        text = read(p)
        return perplexity_task(text, tok, window=window, stride=p["stride"], name=name,
                               max_windows=p["max_windows"],
                               source=p.get("path") or source)
    return build


def _ppl_params(path_required: bool = False) -> tuple[Param, ...]:
    return (
        Param("window", "int", 256, "tokens per window (capped by the model's context)"),
        Param("stride", "int?", None, "start-to-start distance (none: the window)"),
        Param("max_windows", "int?", 64, "keep the first windows only (all: every one)"),
        Param("path", "str?", None, "a local text file" if path_required else
              "local file in the published format (none: the hub)"),
    )


def _read_text(p: dict[str, Any]) -> str:
    if not p["path"]:
        raise UsageError("perplexity_text needs path=<a UTF-8 text file>")
    return read_wikitext(p["path"])


register(TaskBuilder(
    "perplexity", "perplexity", "perplexity on a generated gazetteer of countries (offline)",
    _ppl_params()[:3], _perplexity("perplexity", lambda p: gazetteer_text(),
                                   "countryinfo gazetteer (generated)")))
register(TaskBuilder(
    "perplexity_c4", "perplexity", "perplexity on C4 English validation documents",
    (*_ppl_params(), Param("max_docs", "int", 256, "documents read")),
    _perplexity("perplexity_c4", lambda p: loaders.load_c4(p["path"], max_docs=p["max_docs"]),
                "allenai/c4:en validation")))
register(TaskBuilder(
    "perplexity_wikitext2", "perplexity", "perplexity on WikiText-2 (raw) test",
    _ppl_params(), _perplexity("perplexity_wikitext2",
                               lambda p: loaders.load_wikitext2(p["path"]),
                               "Salesforce/wikitext:wikitext-2-raw-v1 test")))
register(TaskBuilder(
    "perplexity_text", "perplexity", "perplexity on a local text file",
    _ppl_params(path_required=True), _perplexity("perplexity_text", _read_text, "text")))
