"""The block walker (``lenskit.pruning.statistics.BlockWalker``) against plain HF forward
passes: every statistic it hands out equals the one gathered here with forward pre-hooks on
one full forward pass of the model (for routed experts: the tokens the router sent to each,
from the experts module's own arguments), in one-shot and sequential mode, for sweeps of
several levels, with early-stopped passes, per-layer attention arguments (Gemma-2/3), tuple
outputs (BLOOM), positional block arguments (GPT-2) and blocks called by keyword; and its
errors. Small and fast: it runs once per mutant in ``tools/mutate.py statistics``."""

from __future__ import annotations

import contextlib
import functools
import weakref

import pytest
import torch
from transformers.integrations.moe import batched_mm_experts_forward

from lenskit.models import load_model, make_tiny_model, model_info
from lenskit.pruning import statistics
from lenskit.pruning.statistics import BlockWalker, GroupStats

N, SEQ, BATCH = 7, 6, 3  # 3 batches (3, 3, 1); SEQ > the sliding windows (4) of gemma
N_BATCHES = 3
KINDS = ("norms", "hessian")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """``models(family, n_layers=2)``: a tiny model of ``family``, built once per module."""
    root = tmp_path_factory.mktemp("walker")
    built: dict = {}

    def get(family: str, n_layers: int = 2):
        if (family, n_layers) not in built:
            path = make_tiny_model(family, root / f"{family}-{n_layers}", n_layers=n_layers)
            # GPT-2 with eager attention: its causal mask is a positional block argument
            # (with sdpa every positional argument after the hidden states is None)
            attn = "eager" if family == "gpt2" else "sdpa"
            built[family, n_layers] = load_model(path, attn_implementation=attn)
        return model_info(built[family, n_layers])
    return get


def tokens_for(info, n: int = N, seq: int = SEQ, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, info.hf.config.vocab_size, (n, seq), generator=gen)


def groups_of(info, layers, keep=lambda s: True) -> dict[int, dict[str, tuple]]:
    """``layer -> {input group: (its first site, kind)}`` for ``layers``; kinds alternate so
    that both statistics are checked in every layer."""
    out: dict[int, dict[str, tuple]] = {}
    for s in info.sites:
        if s.layer in layers and keep(s):
            wanted = out.setdefault(s.layer, {})
            if s.input_group not in wanted:
                wanted[s.input_group] = (s, KINDS[len(wanted) % 2])
    return out


def _expert_input(xs: list, site, m, args) -> None:
    """Expert ``e``'s input from the experts module's own arguments: Mixtral's (hidden,
    top_k_index, top_k_weights) -> the rows routed to ``e``; Llama-4's ``[E * T, d]`` -> the
    ``e``-th block of rows (every token, scaled by its router score). For ``out``: the
    gated product ``act(gate x) * (up x)`` computed here from the expert's weights."""
    e = site.route[1]
    if len(args) > 1:
        x = args[0][(args[1] == e).any(-1)].detach().double()
        w = m.gate_up_proj[e].detach().double().T  # [d, 2 * d_ffn]
    else:
        x = args[0].view(m.gate_up_proj.shape[0], -1, args[0].shape[-1])[e].detach().double()
        w = m.gate_up_proj[e].detach().double()  # stored transposed: [d, 2 * d_ffn]
    if site.component == "out":
        gate, up = (x @ w).chunk(2, dim=-1)
        x = m.act_fn(gate) * up
    xs.append(x)


def reference_inputs(info, tokens, groups) -> dict[str, torch.Tensor]:
    """Each wanted group's input ``[tokens, d_in]`` (float64) from one full forward pass of
    the plain HF model on all ``tokens`` at once, read by forward pre-hooks."""
    xs: dict[str, list] = {}
    handles = []
    for wanted in groups.values():
        for g, (site, _) in wanted.items():
            xs[g] = []
            module = info.hf.get_submodule(site.hf_path)
            if site.route is None:
                def pre(_m, args, out=xs[g], d=site.shape[1]):
                    out.append(args[0].detach().reshape(-1, d).double())
            else:
                pre = functools.partial(_expert_input, xs[g], site)
            handles.append(module.register_forward_pre_hook(pre))
    try:
        with torch.no_grad():
            info.hf(input_ids=tokens, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return {g: torch.cat(v) for g, v in xs.items()}


def check(got: dict[str, GroupStats], want: dict[str, torch.Tensor], n: int = N) -> None:
    for g, st in got.items():
        x = want[g]
        assert (st.n_sequences, st.n_tokens) == (n, x.shape[0]), g
        torch.testing.assert_close(st.norms().double(), x.square().sum(0).sqrt(), rtol=1e-4,
                                   atol=1e-5, msg=lambda m, g=g: f"{g} norms: {m}")
        if st.kind == "hessian":
            torch.testing.assert_close(st.hessian().double(), 2 / n * x.T @ x, rtol=1e-4,
                                       atol=1e-5, msg=lambda m, g=g: f"{g} hessian: {m}")


def snapshot(stats: dict[str, GroupStats]) -> dict:
    return {g: (st.n_sequences, st.n_tokens, st.norms(),
                st.hessian() if st.kind == "hessian" else None) for g, st in stats.items()}


def assert_equal_snapshots(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for g in a:
        assert a[g][:2] == b[g][:2], g
        assert torch.equal(a[g][2], b[g][2]), g
        assert (a[g][3] is None) == (b[g][3] is None) and (
            a[g][3] is None or torch.equal(a[g][3], b[g][3])), g


@contextlib.contextmanager
def restored(info):
    """Put every parameter of the model back afterwards (tests here modify blocks)."""
    saved = {n: p.detach().clone() for n, p in info.hf.named_parameters()}
    try:
        yield
    finally:
        with torch.no_grad():
            for n, p in info.hf.named_parameters():
                p.copy_(saved[n])


def blocks(info):
    return info.hf.get_submodule(info.arch.blocks)


def prune_block(info, layer: int, seed: int = 0) -> None:
    """Zero about half of every matrix of block ``layer`` (a fixed random mask per seed)."""
    gen = torch.Generator().manual_seed(1000 * seed + layer)
    with torch.no_grad():
        for p in blocks(info)[layer].parameters():
            if p.ndim >= 2:
                p.mul_(torch.rand(p.shape, generator=gen) < 0.5)


@contextlib.contextmanager
def counting(modules):
    """``counts[i]``: completed forward calls of ``modules[i]`` meanwhile (a pass ended
    early inside a module does not complete it)."""
    counts = [0] * len(modules)
    handles = [m.register_forward_hook(lambda *_, i=i: counts.__setitem__(i, counts[i] + 1))
               for i, m in enumerate(modules)]
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize("family", ["llama", "gpt2", "bloom", "gemma2", "gemma3_text"])
def test_walk_statistics_equal_a_full_forward_pass(models, family):
    # gpt2 calls its blocks with positional arguments after the hidden states, bloom's
    # blocks return tuples, gemma2/3 give sliding and global layers their own masks (and
    # gemma3 its own rotary embeddings); sequences longer than the window make them matter.
    info = models(family)
    tokens = tokens_for(info)
    groups = groups_of(info, range(info.n_layers))
    want = reference_inputs(info, tokens, groups)
    seen = []

    def on_block(layer, stats):
        seen.append(layer)
        assert list(stats) == list(groups[layer])
        check(stats, want)
        prune_block(info, layer)  # one-shot: later blocks still see the dense model

    head = info.hf.get_output_embeddings()
    with restored(info), counting([head]) as head_calls:
        BlockWalker(info, tokens, batch_size=BATCH).walk(groups, on_block)
    assert seen == list(range(info.n_layers))
    assert head_calls == [0]  # the capture stops at the last block: no logits computed
    assert all("forward" not in b.__dict__ for b in blocks(info))


def test_sequential_walk_feeds_each_pruned_block_to_the_next(models):
    info = models("llama", 3)
    tokens = tokens_for(info)
    groups = groups_of(info, range(3))
    want, dense = {}, reference_inputs(info, tokens, groups)
    with restored(info):  # a hand-written loop: prune block by block, re-run the whole model
        for layer in range(3):
            want.update(reference_inputs(info, tokens, {layer: groups[layer]}))
            prune_block(info, layer)
    assert not torch.allclose(want["blocks.2.mlp_out"], dense["blocks.2.mlp_out"])
    seen = []

    def on_block(layer, stats):
        seen.append(layer)
        check(stats, want)
        prune_block(info, layer)

    with restored(info):
        BlockWalker(info, tokens, batch_size=BATCH).walk(groups, on_block, sequential=True)
    assert seen == [0, 1, 2]


def test_walk_stops_at_last_layer_and_skips_blocks_without_groups(models):
    info = models("llama", 3)
    tokens = tokens_for(info)
    walker = BlockWalker(info, tokens, batch_size=BATCH)
    emb = info.hf.get_input_embeddings()
    with counting([emb, *blocks(info)]) as calls:
        walker.walk({}, lambda *_: pytest.fail("no groups, no call"))
    assert calls == [0, 0, 0, 0]  # nothing wanted: nothing runs

    for sequential in (False, True):
        gap = groups_of(info, [1])  # block 0 has no groups; nothing after block 1 runs
        want = reference_inputs(info, tokens, gap)
        seen = []
        with counting(list(blocks(info))) as calls:
            walker.walk(gap, lambda layer, stats: (seen.append(layer), check(stats, want)),  # noqa: B023
                        sequential=sequential)
        assert seen == [1] and calls[2] == 0, (sequential, calls)

        first = groups_of(info, [0])
        want = reference_inputs(info, tokens, first)
        seen = []
        walker.walk(first, lambda layer, stats: (seen.append(layer), check(stats, want)),  # noqa: B023
                    sequential=sequential)
        assert seen == [0]

        cut = groups_of(info, [0, 2])
        want = reference_inputs(info, tokens, cut)
        seen = []
        with counting(list(blocks(info))) as calls:
            walker.walk(cut, lambda layer, stats: (seen.append(layer), check(stats, want)),  # noqa: B023
                        sequential=sequential, last_layer=1)
        assert seen == [0] and calls[2] == 0


@pytest.mark.parametrize("sequential", [False, True])
def test_early_stopped_passes_skip_the_rest_of_the_block_and_give_the_same_statistics(
        models, monkeypatch, sequential):
    info = models("llama", 3)
    tokens = tokens_for(info)
    # wanted: attention's and the FFW's inputs; the FFW's output projection is never needed
    groups = groups_of(info, range(3), keep=lambda s: s.input_group.endswith(("attn_in",
                                                                              "mlp_in")))
    downs = [b.mlp.down_proj for b in blocks(info)]
    runs = {}
    for early in (True, False):
        monkeypatch.setattr(statistics, "EARLY_STOP", early)
        got = {}
        with restored(info), counting(downs) as calls:
            BlockWalker(info, tokens, batch_size=BATCH).walk(
                groups, lambda layer, stats: (got.update(snapshot(stats)),  # noqa: B023
                                              prune_block(info, layer)),
                sequential=sequential)
        runs[early] = got, calls
    (fast, fast_calls), (full, full_calls) = runs[True], runs[False]
    assert_equal_snapshots(fast, full)
    # one-shot: blocks 0 and 1 run whole once per batch (their outputs are kept), block 2
    # stops at its last wanted input. Sequential: each statistics pass stops early and
    # blocks 0 and 1 run whole once more, pruned. Without early stops every pass runs whole.
    assert fast_calls == [N_BATCHES, N_BATCHES, 0]
    assert full_calls == ([2 * N_BATCHES, 2 * N_BATCHES, N_BATCHES] if sequential
                          else [N_BATCHES] * 3)


def test_walk_levels_gives_each_level_its_own_sequential_walk(models):
    info = models("llama", 4)
    tokens = tokens_for(info)
    walker = BlockWalker(info, tokens, batch_size=BATCH)
    # block 0: dense in every level, run once for all; block 2 is pruned and re-run within
    # each level before block 3 sees it
    groups = groups_of(info, [1, 2, 3])
    events, got, first_stats, alive = [], {}, [], []
    calls_1: list[weakref.ref] = []
    inputs: list[weakref.ref] = []  # block 1's inputs in the shared statistics pass

    def pre(_m, args):
        calls_1.append(weakref.ref(args[0]))  # the capture's calls come first
        if N_BATCHES < len(calls_1) <= 2 * N_BATCHES:
            inputs.append(calls_1[-1])

    def on_block(level, layer, stats):
        events.append((level, layer))
        got[level, layer] = snapshot(stats)
        if layer == 1:
            first_stats.append(stats)
        elif layer == 3:
            alive.append([r() is not None for r in inputs])
        prune_block(info, layer, seed=level)

    def end_level(level):
        events.append(("end", level))
        with torch.no_grad():
            for n, p in info.hf.named_parameters():
                p.copy_(saved[n])

    saved = {n: p.detach().clone() for n, p in info.hf.named_parameters()}
    handle = blocks(info)[1].register_forward_pre_hook(pre)
    try:
        with counting(list(blocks(info))) as calls:
            walker.walk_levels(groups, 3, on_block, end_level)
    finally:
        handle.remove()
    assert events == [e for lv in range(3) for e in ((lv, 1), (lv, 2), (lv, 3), ("end", lv))]
    assert first_stats[0] is first_stats[1] is first_stats[2]  # one pass for all levels
    # completed block calls: the capture completes every block but the last (each hands its
    # input on); then block 0 runs once for all levels; the statistics passes of blocks 1-3
    # stop early, and blocks 1 and 2 are re-run once per level
    assert calls == [2 * N_BATCHES, 4 * N_BATCHES, 4 * N_BATCHES, 0]
    # the last level consumes the shared inputs: earlier levels keep them, it frees them
    assert alive == [[True] * N_BATCHES, [True] * N_BATCHES, [False] * N_BATCHES]
    for n, p in info.hf.named_parameters():
        assert torch.equal(p, saved[n]), n
    for level in range(3):
        own = {}

        def on_own(layer, stats, level=level, own=own):
            own[layer] = snapshot(stats)
            prune_block(info, layer, seed=level)

        with restored(info):
            walker.walk(groups, on_own, sequential=True)
        for layer in (1, 2, 3):  # bit for bit
            assert_equal_snapshots(got[level, layer], own[layer])
    assert not torch.equal(got[0, 3]["blocks.3.mlp_in"][2], got[1, 3]["blocks.3.mlp_in"][2])

    # one calibrated block: its statistics pass only, no re-run; no groups: nothing
    events.clear()
    with counting(list(blocks(info))) as calls:
        walker.walk_levels(groups_of(info, [1]), 2, lambda lv, layer, st: events.append(
            (lv, layer, id(st))), lambda lv: events.append(("end", lv)))
    assert calls == [2 * N_BATCHES, N_BATCHES, N_BATCHES, 0]  # the capture's, block 0's run
    assert [e[:2] for e in events] == [(0, 1), ("end", 0), (1, 1), ("end", 1)]
    assert events[0][2] == events[2][2]
    with counting([info.hf.get_input_embeddings()]) as calls:
        walker.walk_levels({}, 2, lambda *_: pytest.fail("no call"),
                           lambda *_: pytest.fail("no call"))
    assert calls == [0]


def test_a_model_that_skips_a_block_is_refused_and_forwards_are_put_back(models):
    info = models("llama", 3)
    walker = BlockWalker(info, tokens_for(info), batch_size=BATCH)
    info.hf.config.num_hidden_layers = 2  # the model's loop now never calls block 2
    try:
        with pytest.raises(RuntimeError, match=r"^the model did not call every block once per "
                           r"batch; lenskit cannot run its blocks one at a time$"):
            walker.walk(groups_of(info, [0, 1]), lambda *_: None)
    finally:
        info.hf.config.num_hidden_layers = 3
    assert all("forward" not in b.__dict__ for b in blocks(info))


def test_an_instance_forward_is_put_back_and_used(models):
    # Accelerate's device hooks wrap a block's forward in an instance attribute
    info = models("llama")
    tokens = tokens_for(info)
    groups = groups_of(info, range(2))
    want = reference_inputs(info, tokens, groups)
    calls = [0, 0]
    wrappers = []
    for i, b in enumerate(blocks(info)):
        def wrapper(*args, i=i, inner=b.forward, **kwargs):
            calls[i] += 1
            return inner(*args, **kwargs)
        b.forward = wrapper
        wrappers.append(wrapper)
    try:
        BlockWalker(info, tokens, batch_size=BATCH).walk(
            groups, lambda _l, stats: check(stats, want))
        assert [b.__dict__.get("forward") for b in blocks(info)] == wrappers
        assert calls == [N_BATCHES, N_BATCHES]  # the blocks ran through them
    finally:
        for b in blocks(info):
            b.__dict__.pop("forward", None)


def test_blocks_called_with_hidden_states_by_keyword(models):
    info = models("llama")
    tokens = tokens_for(info)
    groups = groups_of(info, range(2))
    want = reference_inputs(info, tokens, groups)

    def by_keyword(_m, args, kwargs):
        if args:  # llama passes nothing else by position
            return (), {**kwargs, "hidden_states": args[0]}
        return None

    handles = [b.register_forward_pre_hook(by_keyword, with_kwargs=True)
               for b in blocks(info)]
    seen = []
    try:
        for sequential in (False, True):
            BlockWalker(info, tokens, batch_size=BATCH).walk(
                groups, lambda layer, stats: (seen.append(layer), check(stats, want)),
                sequential=sequential)
    finally:
        for h in handles:
            h.remove()
    assert seen == [0, 1, 0, 1]


@pytest.fixture
def mixtral(models):
    info = models("mixtral")
    before = info.hf.config._experts_implementation
    yield info
    info.hf.set_experts_implementation(before)


def test_routed_experts_see_the_tokens_their_router_sent(mixtral):
    info = mixtral
    hf = info.hf
    tokens = tokens_for(info)
    groups = groups_of(info, range(2))
    want = reference_inputs(info, tokens, groups)
    hf.set_experts_implementation("batched_mm")  # not the default, to see it put back
    impl = []

    def on_block(layer, stats):
        impl.append(hf.config._experts_implementation)
        check(stats, want)

    BlockWalker(info, tokens, batch_size=BATCH).walk(groups, on_block)
    assert impl == ["eager", "eager"]  # per-expert products, while the walk runs
    assert hf.config._experts_implementation == "batched_mm"
    # the experts of layer 0 run inside the capture; their outputs feed layer 1's statistics
    assert 0 < sum(want[f"blocks.1.mlp_in.e{e}"].shape[0] for e in range(4)) == 2 * N * SEQ

    dense = groups_of(info, range(2), keep=lambda s: s.route is None)  # attention only
    impl.clear()
    BlockWalker(info, tokens, batch_size=BATCH).walk(
        dense, lambda _l, _s: impl.append(hf.config._experts_implementation))
    assert impl == ["batched_mm", "batched_mm"]  # nothing to capture, nothing switched


def test_a_sweep_of_levels_calibrates_routed_experts(mixtral):
    info = mixtral
    hf = info.hf
    tokens = tokens_for(info)
    groups = groups_of(info, [1], keep=lambda s: s.route is not None)
    want = reference_inputs(info, tokens, groups)
    hf.set_experts_implementation("batched_mm")
    seen = []

    def on_block(level, layer, stats):
        seen.append((level, layer, hf.config._experts_implementation))
        check(stats, want)

    BlockWalker(info, tokens, batch_size=BATCH).walk_levels(groups, 2, on_block,
                                                            lambda _lv: None)
    assert seen == [(0, 1, "eager"), (1, 1, "eager")]
    assert hf.config._experts_implementation == "batched_mm"


def test_an_expert_with_as_many_tokens_as_its_weight_has_rows(mixtral):
    # 64 tokens in one batch, top-2 of 4 experts: about 32 per expert. The first seed that
    # sends exactly 32 (= d_model) to an expert of layer 1, as many as its down projection
    # has rows: its products are still per-expert ones, not the batched kind.
    info = mixtral
    rows = info.hf.get_submodule("model.layers.1.mlp.experts").down_proj.shape[1]
    groups = groups_of(info, [1], keep=lambda s: s.route is not None)
    for seed in range(100):
        tokens = tokens_for(info, n=8, seq=8, seed=seed)
        want = reference_inputs(info, tokens, groups)
        if any(want[f"blocks.1.mlp_in.e{e}"].shape[0] == rows for e in range(4)):
            break
    else:
        pytest.fail(f"no seed sends exactly {rows} tokens to one expert")
    BlockWalker(info, tokens, batch_size=8).walk(groups, lambda _l, st: check(st, want, n=8))


def test_an_expert_no_token_reaches_gets_empty_statistics(mixtral):
    info = mixtral
    one = tokens_for(info, n=1, seq=1)  # one token, top-2 of 4 experts: two get nothing
    groups = groups_of(info, [1], keep=lambda s: s.route is not None)
    want = reference_inputs(info, one, groups)
    assert sorted(x.shape[0] for x in want.values()) == [0] * 4 + [1] * 4
    got = {}
    BlockWalker(info, one).walk(groups, lambda _l, stats: got.update(stats))
    check(got, want, n=1)


def test_experts_stacked_inside_a_larger_storage(mixtral):
    # a stacked parameter that starts inside its storage (a view, as packed weights can be):
    # each slice's expert is counted from the parameter's own start
    info = mixtral
    experts = info.hf.get_submodule("model.layers.1.mlp.experts")
    original = experts.gate_up_proj
    experts.gate_up_proj = torch.nn.Parameter(torch.cat([original[:2], original.detach()])[2:])
    assert experts.gate_up_proj.storage_offset() > 0
    try:
        tokens = tokens_for(info)
        groups = groups_of(info, [1], keep=lambda s: s.route is not None)
        want = reference_inputs(info, tokens, groups)
        BlockWalker(info, tokens, batch_size=BATCH).walk(groups, lambda _l, st: check(st, want))
    finally:
        experts.gate_up_proj = original


def test_experts_that_never_multiply_by_one_slice_are_refused(mixtral):
    info = mixtral
    experts = info.hf.get_submodule("model.layers.1.mlp.experts")
    # transformers' batched_mm gathers each token's expert weights: no product with a slice
    experts.forward = functools.partial(batched_mm_experts_forward, experts)
    try:
        with pytest.raises(RuntimeError, match=r"^block 1: no expert input was seen; the experts "
                           r"module does not multiply by one expert's slice of its stacked "
                           r"parameters, so lenskit cannot tell which tokens each expert "
                           r"received$"):
            BlockWalker(info, tokens_for(info), batch_size=BATCH).walk(
                groups_of(info, [1]), lambda *_: None)
    finally:
        del experts.forward


def test_llama4_experts_from_the_batched_product(models):
    # Llama-4 multiplies [expert, tokens, d] by the whole stack (one bmm); layer 0 is dense
    info = models("llama4_text")
    tokens = tokens_for(info)
    groups = groups_of(info, range(2))
    want = reference_inputs(info, tokens, groups)
    assert {x.shape[0] for g, x in want.items() if ".e" in g} == {N * SEQ}
    seen = []
    BlockWalker(info, tokens, batch_size=BATCH).walk(
        groups, lambda layer, stats: (seen.append(layer), check(stats, want)),
        sequential=True)
    assert seen == [0, 1]
