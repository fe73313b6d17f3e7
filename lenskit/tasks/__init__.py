"""Tasks: fact recall versus in-context learning, evaluated exactly and fast.

Build task sets (closed-book, open-book and overriding QA, in-context function learning,
perplexity), or take a ready suite (:func:`organism_suite`, :func:`countries_suite`,
:func:`default_suite`), then :func:`evaluate` a loaded model on them: tidy per-instance rows
and bootstrapped aggregates.
"""

from lenskit.synthetic.formats import FunctionFormat, QAFormat
from lenskit.synthetic.functions import (
    DEFAULT_LABELS,
    FUNCTION_KINDS,
    FunctionSpec,
    sample_function_instances,
)
from lenskit.tasks import catalog as _catalog  # noqa: F401  (registers the named tasks)
from lenskit.tasks.builders import (
    closed_book_task,
    function_spec_name,
    function_task,
    open_book_task,
    overriding_task,
    perplexity_task,
    qa_task,
)
from lenskit.tasks.core import (
    CATEGORIES,
    KIND_CATEGORY,
    TASK_KINDS,
    TaskInstance,
    TaskSet,
    TextWindow,
)
from lenskit.tasks.countries import (
    COUNTRY_ATTRIBUTES,
    CountryFact,
    country_facts,
    country_items,
    gazetteer_text,
)
from lenskit.tasks.encoding import encode_prompts, token_span
from lenskit.tasks.evaluate import BACKENDS, ROW_COLUMNS, evaluate, evaluate_suite
from lenskit.tasks.items import QAItem, QAItems, find_answer_span
from lenskit.tasks.loaders import (
    DatasetUnavailableError,
    load_disentqa,
    load_natural_questions,
    load_triviaqa,
    load_webquestions,
)
from lenskit.tasks.normalize import exact_match, normalize_answer
from lenskit.tasks.registry import (
    TASKS,
    build_suite,
    build_task,
    describe_tasks,
    parse_spec,
    parse_specs,
)
from lenskit.tasks.results import EvalResult
from lenskit.tasks.select import format_template_report, template_report
from lenskit.tasks.suites import (
    countries_suite,
    default_suite,
    organism_suite,
    study_function_specs,
)
from lenskit.tasks.templates import TEMPLATES, split_demos, templated_task, with_passages

__all__ = [
    "BACKENDS",
    "CATEGORIES",
    "COUNTRY_ATTRIBUTES",
    "DEFAULT_LABELS",
    "FUNCTION_KINDS",
    "KIND_CATEGORY",
    "ROW_COLUMNS",
    "TASKS",
    "TASK_KINDS",
    "TEMPLATES",
    "CountryFact",
    "DatasetUnavailableError",
    "EvalResult",
    "FunctionFormat",
    "FunctionSpec",
    "QAFormat",
    "QAItem",
    "QAItems",
    "TaskInstance",
    "TaskSet",
    "TextWindow",
    "build_suite",
    "build_task",
    "closed_book_task",
    "countries_suite",
    "country_facts",
    "country_items",
    "default_suite",
    "describe_tasks",
    "encode_prompts",
    "evaluate",
    "evaluate_suite",
    "exact_match",
    "find_answer_span",
    "format_template_report",
    "function_spec_name",
    "function_task",
    "gazetteer_text",
    "load_disentqa",
    "load_natural_questions",
    "load_triviaqa",
    "load_webquestions",
    "normalize_answer",
    "open_book_task",
    "organism_suite",
    "overriding_task",
    "parse_spec",
    "parse_specs",
    "perplexity_task",
    "qa_task",
    "sample_function_instances",
    "split_demos",
    "study_function_specs",
    "template_report",
    "templated_task",
    "token_span",
    "with_passages",
]
