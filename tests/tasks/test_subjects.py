"""Subject spans: the entity a fact question names, found in its prompt."""

from __future__ import annotations

import pytest

from lenskit.synthetic.world import WorldConfig
from lenskit.tasks import countries_suite, organism_suite, subject_of, subject_span
from lenskit.tasks.core import TaskInstance


def test_organism_questions_name_their_entity():
    suite = organism_suite(WorldConfig().build(), size="small", seed=0)
    for name in ("closed_book", "open_book", "overriding"):
        for inst in suite[name].instances[:20]:
            s, e = subject_span(inst)
            assert inst.prompt[s:e] == inst.meta["entity"]
            # the question, last in the prompt, is where the subject is read
            assert inst.prompt.rindex(inst.meta["entity"]) == s


def test_country_prompts_use_the_query_not_the_demonstrations():
    suite = countries_suite("small", 0, attributes=("capital",), shots=3)
    for inst in suite["countries_capital_closed_book"].instances:
        s, e = subject_span(inst)
        assert inst.prompt[s:e] == inst.meta["country"]
        assert "\n" not in inst.prompt[s:]  # inside the final query line


def test_word_boundaries_and_explicit_subjects():
    inst = TaskInstance("x", "Nigeria is big. The capital of Niger is", ("Niamey",),
                        meta={"country": "Niger"})
    assert subject_span(inst) == (31, 36)
    own = TaskInstance("y", "Where was Ada Lovelace born?", ("London",),
                       meta={"subject": "Ada Lovelace", "entity": "Ada"})
    assert subject_of(own) == "Ada Lovelace"
    assert subject_span(own) == (10, 22)


def test_missing_subjects_are_clear_errors():
    with pytest.raises(ValueError, match="names no subject"):
        subject_span(TaskInstance("z", "Q: hello?\nA:", ("hi",)))
    with pytest.raises(ValueError, match="does not occur"):
        subject_span(TaskInstance("z", "Q: hello?\nA:", ("hi",), meta={"entity": "Nigeria"}))
