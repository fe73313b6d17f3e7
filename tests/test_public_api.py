import subprocess
import sys

import lenskit


def test_every_public_name_resolves():
    missing = [name for name in lenskit.__all__ if getattr(lenskit, name, None) is None]
    assert not missing


def test_unknown_name_is_an_attribute_error():
    try:
        lenskit.no_such_thing  # noqa: B018
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:
        raise AssertionError("expected AttributeError")


def test_import_is_lazy():
    code = "import sys, lenskit; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
