"""Attention metrics gathered during an evaluation (:class:`AttentionProbe`): no extra
forward pass; the evaluation's own prompt passes hand each layer's pattern to the probe."""

from __future__ import annotations

import pandas as pd
import torch

from lenskit.analysis.attention_inputs import prompt_rows
from lenskit.analysis.attention_stats import BatchLayout, PatternStats
from lenskit.errors import UsageError
from lenskit.models import model_info

__all__ = ["AttentionProbe"]


class AttentionProbe:
    """Pattern metrics gathered *during* an evaluation: no extra forward pass.

    Pass it to :func:`lenskit.tasks.evaluate` (``probe=``): the evaluation's prompt passes
    run with eager attention and hand every layer's pattern to this probe, which reduces it
    at once (the same per-(layer, head) metrics as :func:`attention_metrics` without a
    reference: ``entropy`` and ``sink`` at ``all`` and ``answer`` queries, ``span_mass`` at
    the answer). Read them with :meth:`frame` (columns :data:`ATTENTION_COLUMNS` plus the
    task's name, kind and category). The JS divergence to the dense model needs the dense
    pattern of the same batch: :func:`attention_drift` computes it.

        probe = AttentionProbe(model, task)
        result = evaluate(model, task, probe=probe)
        metrics = probe.frame()
    """

    def __init__(self, model, task, label: str = "model") -> None:
        info = model_info(model)
        n_heads = int(model.cfg.n_heads)
        vocab = int(info.hf.get_output_embeddings().weight.shape[0])
        self._src = prompt_rows(info, task, None, vocab)
        if not self._src.answers:
            raise UsageError(f"AttentionProbe needs a QA or function task; {self._src.name!r} "
                             f"is {self._src.kind!r}")
        self.stats = PatternStats(info.n_layers, n_heads)
        self.label = label
        self._layout: BatchLayout | None = None

    def begin_batch(self, rows, lengths: torch.Tensor) -> None:
        rows = [int(r) for r in rows]
        mine = [len(self._src.rows[r]) for r in rows]
        if mine != [int(v) for v in lengths]:
            raise ValueError("the evaluation's prompt lengths differ from this probe's "
                             "tokenisation of the task (a probe belongs to one task set)")
        span = None
        if any(self._src.spans[r] is not None for r in rows):
            span = torch.zeros((len(rows), max(mine)), dtype=torch.bool)
            for k, r in enumerate(rows):
                if self._src.spans[r] is not None:
                    s, e = self._src.spans[r]
                    span[k, s:e] = True
        self._layout = BatchLayout(lengths.cpu(), span)

    def pattern(self, layer: int, pattern: torch.Tensor) -> None:
        if self._layout is None:
            raise RuntimeError("pattern() before begin_batch()")
        self.stats.add(layer, pattern, self._layout)

    def frame(self) -> pd.DataFrame:
        """Tidy per-(layer, head) metrics accumulated so far."""
        df = pd.DataFrame(list(self.stats.records()), columns=["layer", "head", "metric",
                                                                "queries", "value", "n"])
        df.insert(4, "model", self.label)
        return df.assign(task=self._src.name, kind=self._src.kind, category=self._src.category)
