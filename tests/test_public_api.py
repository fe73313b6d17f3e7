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


def test_reprs_are_short_and_informative(tmp_path):
    import pandas as pd

    from lenskit.models import describe, load_model, make_tiny_model, model_info
    from lenskit.pruning import Pruner
    from lenskit.study.runner import SweepOutcome

    model = load_model(make_tiny_model("gpt2", tmp_path / "tiny"))
    info = model_info(model)
    text = describe(model)
    # the bridge's own repr (TransformerLens's module tree) is left alone; ours is one line
    assert len(repr(model)) > 2000 and "\n" not in text and len(text) < 300
    assert f"{info.total_params:,} block weights" in text and "2 layers" in text
    assert repr(info) == f"LoadedModel({text})"
    pruner = Pruner(model, "magnitude", scope="attn")
    r = repr(pruner)
    attn = sum(s.numel for s in info.select("attn"))
    assert r.startswith("Pruner('magnitude'") and " at 0x" not in r and len(r) < 300
    assert f"scope 'attn' ({len(info.select('attn'))} sites, {attn:,} weights)" in r
    outcome = SweepOutcome(tmp_path, pd.DataFrame({"a": range(7)}), pd.DataFrame(),
                           pd.DataFrame(), cells_run=3, cells_skipped=1, seconds=2.5)
    assert repr(outcome) == (f"SweepOutcome({str(tmp_path)!r}: 3 cells run, 1 skipped "
                             "(already done) in 2.5 s; 7 result rows, 0 thresholds, "
                             "0 instance rows)")
