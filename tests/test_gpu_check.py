"""The GPU check script runs end to end (``--smoke``: tiny sizes on the CPU), so it cannot rot
between the runs on a GPU."""

from __future__ import annotations

from benchmarks.gpu_check import main


def test_gpu_check_smoke(tmp_path, capsys):
    assert main(["--smoke", "--out", str(tmp_path / "check.md")]) == 0
    text = (tmp_path / "check.md").read_text()
    assert text in capsys.readouterr().out
    assert "| wanda attn 50% | 1.000000 | 0.00e+00 |" in text  # CPU against CPU: identical
    for row in ("| float32 | sparsegpt sequential", "| bfloat16 | wanda sequential",
                "| 96 x 64 |"):
        assert row in text
