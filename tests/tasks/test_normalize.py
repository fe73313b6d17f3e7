import pytest

from lenskit.tasks import exact_match, normalize_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Paris", "paris"),
        ("  The   Eiffel Tower. ", "eiffel tower"),
        ("an apple a day", "apple day"),
        ("Porto-Novo", "porto novo"),
        ("Porto - Novo", "porto novo"),
        ("N'Djamena", "n djamena"),
        ("“Quoted”, said he…", "quoted said he"),
        ("Theatre", "theatre"),  # "the" inside a word is not an article
        ("A", ""),
        ("Bogotá", "bogotá"),  # accents are kept; aliases carry folded spellings
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("prediction", "answers", "expected"),
    [
        ("Paris", ["Paris"], True),
        ("paris.", ["Paris"], True),
        ("The Paris", ["Paris"], True),
        ("Paris, France", ["Paris"], False),
        ("Lyon", ["Paris", "Lutetia"], False),
        ("Lutetia", ["Paris", "Lutetia"], True),
        ("Washington", "Washington D.C.", False),
        ("Washington D C", ["Washington D.C."], True),
        ("", ["Paris"], False),
        ("Bogota", ["Bogotá", "Bogota"], True),
        ("Bogota", ["Bogotá"], False),
    ],
)
def test_exact_match_with_aliases(prediction, answers, expected):
    assert exact_match(prediction, answers) is expected


def test_exact_match_needs_an_answer():
    with pytest.raises(ValueError, match="at least one gold answer"):
        exact_match("Paris", [])


def test_normalize_rejects_non_strings():
    with pytest.raises(ValueError, match="string"):
        normalize_answer(None)  # type: ignore[arg-type]
