"""torch.compile of flexlib's models (flexlib.layers.crops): a compiled model trains as in eager mode (loss to 1e-5
relative, gradients to 1e-4 of the largest), also across a step where a crop outgrows its compiled box; the crops
reach the graph as a few static box sizes that only grow, so a run compiles a bounded number of times.

The tests marked `compile` run the inductor backend (a minute or two each on 2 CPU cores; `-m "not compile"`
deselects them); the others compile with dynamo and AOTAutograd only ("aot_eager") or count dynamo's graphs."""
import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flexlib import CKConv, FlexConv
from flexlib.layers import crops
from flexlib.layers.conv import conv_nd
from flexlib.layers.fused import fused_kernels, model_crops, model_recompile_bound
from flexlib.models import create
from flexlib.models.njet import NJetConv


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    with torch._dynamo.config.patch(recompile_limit=64):
        yield
    torch._dynamo.reset()


# -- the buckets and the compiled crop, without compiling -------------------------------------------------------
def test_buckets_round_up_by_at_most_1_5x_and_keep_the_crop_centred_or_causal():
    sizes = [crops.bucket(n) for n in range(200)]
    assert sizes[:6] == [0, 1, 2, 3, 4, 6] and sizes == sorted(sizes)
    assert all(n <= b <= max(4, 1.5 * n) for n, b in enumerate(sizes))
    assert len(set(sizes)) == 17                                   # 0-4, then 6, 8, 12, ..., 192, 256
    for full in (17, 33):
        for start in range(full // 2 + 1):
            a, b = crops.bucketed_range(full, start, full - start, causal=False)
            assert a <= start and b >= full - start and a + b == full     # contains the crop, centred
        assert crops.box_sizes(full, False) == sorted({b - a for a, b in (
            crops.bucketed_range(full, s, full - s, False) for s in range(full // 2 + 1))})
    for start in range(40):
        a, b = crops.bucketed_range(40, start, 40, causal=True)
        assert a <= start and b == 40                                 # ends at the current step


def _convs():
    torch.manual_seed(0)
    convs = [FlexConv(2, 3, 2), FlexConv(3, 3, 2, rotated_mask=True), FlexConv(3, 2, 2, kernel_net="siren"),
             FlexConv(2, 2, 2, mask_init="official", crop_threshold=None), CKConv(2, 3, 2)]
    with torch.no_grad():
        for i, conv in enumerate(convs):
            if conv.mask is not None:
                conv.mask.sigma_param.copy_(torch.tensor([0.11 + 0.05 * i, 0.3 - 0.04 * i]))
                if conv.mask.theta is not None:
                    conv.mask.theta.fill_(0.5)
    return [c.double() for c in convs]


def _zero_padded(kernel, box):
    """`kernel` centred in a zero tensor of spatial size `box`."""
    pad = []
    for k, b in zip(reversed(kernel.shape[2:]), reversed(box)):
        pad += [(b - k) // 2, (b - k) // 2]
    return F.pad(kernel, pad)


def test_a_compiled_crop_gives_the_exact_kernel_zero_padded_and_the_same_convolution():
    """The kernel of a compiled crop (sampled on a bucketed box, times the 0/1 crop) is the exact kernel padded with
    zeros; convolving with it gives the same output and gradients. Computed in eager mode, layer by layer and fused."""
    convs, size = _convs(), (23, 19)
    fulls = [c.full_kernel_size(size) for c in convs]
    compiled = crops.read_crops(convs, fulls, compiled=True)
    assert compiled[-1] is None and compiled[3] is None          # CKConv, crop_threshold=None: uncropped
    assert all(c._dynamo_static_indices == set(range(c.dim())) for c in compiled[:3])   # torch._dynamo.mark_static
    for conv, full, crop, (fused, _) in zip(convs, fulls, compiled, fused_kernels(convs, size, compiled)):
        exact = conv.kernel_for(size)
        own = conv.kernel_on_crop(full, crop)
        box = exact.shape[2:] if crop is None else crop.shape
        assert own.shape[2:] == box and all(b >= e for b, e in zip(box, exact.shape[2:]))
        torch.testing.assert_close(own, _zero_padded(exact, box), rtol=0, atol=1e-13)
        torch.testing.assert_close(fused, own, rtol=0, atol=1e-12)
        x = torch.randn(2, conv.in_channels, *size, dtype=torch.float64)
        y_exact, y_box = conv_nd(x, exact, conv.bias, False), conv_nd(x, fused, conv.bias, False)
        torch.testing.assert_close(y_box, y_exact, rtol=1e-12, atol=1e-12)
        g_exact = torch.autograd.grad(y_exact.square().sum(), list(conv.parameters()), allow_unused=True)
        g_box = torch.autograd.grad(y_box.square().sum(), list(conv.parameters()), allow_unused=True,
                                    retain_graph=True)      # the fused kernels share one graph
        for a, b in zip(g_box, g_exact):
            if b is not None:
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_a_compiled_causal_crop_is_zero_padded_in_the_past():
    torch.manual_seed(0)
    conv = FlexConv(2, 3, 1, causal=True).double()
    with torch.no_grad():
        conv.mask.sigma_param.fill_(0.3)
    exact = conv.kernel_for((50,))
    crop = crops.read_crops([conv], [conv.full_kernel_size((50,))], compiled=True)[0]
    own = conv.kernel_on_crop(conv.full_kernel_size((50,)), crop)
    assert own.shape[-1] == crops.bucket(exact.shape[-1]) > exact.shape[-1]
    torch.testing.assert_close(own, F.pad(exact, (own.shape[-1] - exact.shape[-1], 0)), rtol=0, atol=1e-13)
    x = torch.randn(2, 2, 50, dtype=torch.float64)
    torch.testing.assert_close(conv_nd(x, own, conv.bias, True), conv_nd(x, exact, conv.bias, True))


def test_a_layers_box_only_grows_and_the_bound_counts_the_boxes_above():
    torch.manual_seed(0)
    conv = FlexConv(1, 1, 2, mask_init="official")
    full = conv.full_kernel_size((32, 32))
    shapes = []
    for sigma in (0.075, 0.2, 0.1, 0.075, 0.45):
        with torch.no_grad():
            conv.mask.sigma_param.fill_(sigma)
        shapes.append(tuple(crops.read_crops([conv], [full], compiled=True)[0].shape))
    assert shapes == [(5, 5), (13, 13), (13, 13), (13, 13), (33, 33)]   # 5×5, 13×13, shrinks to 7×7 and 5×5, 31×31
    fresh = FlexConv(1, 1, 2, mask_init="official")
    assert model_recompile_bound(nn.Sequential(fresh), (32, 32)) == 1 + 2 * 6   # 5 → 7, 9, 13, 17, 25, 33 per dim


# -- compiled = eager ----------------------------------------------------------------------------------------------
def _without_dropout(model):
    for m in model.modules():       # compiled code draws other random numbers than eager code
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model


def _sized(model):
    return [m for m in model.modules() if (isinstance(m, FlexConv) and m.has_crop) or isinstance(m, NJetConv)]


def _grow(model, index=0, to=0.3):
    """Raise one layer's mask σ (N-Jet: log σ) so that its crop outgrows its compiled box."""
    layer = _sized(model)[index]
    with torch.no_grad():
        if isinstance(layer, NJetConv):
            layer.log_sigma.fill_(to)
        else:
            layer.mask.sigma_param.fill_(to)


def _train_both(eager, compiled, x, y, changes, lr=1e-2):
    """Train both models with Adam, `changes[i](model)` applied to both before step i; the largest relative loss
    difference and gradient difference (relative to the largest gradient) over the steps."""
    opts = [torch.optim.Adam(m.parameters(), lr=lr) for m in (eager, compiled)]
    loss_err = grad_err = 0.0
    for change in changes:
        out = []
        for model, opt in zip((eager, compiled), opts):
            if change is not None:
                change(model)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            out.append((loss.detach(), [p.grad.clone() if p.grad is not None else torch.zeros_like(p)
                                        for p in model.parameters()]))
            opt.step()
        (le, ge), (lc, gc) = out
        loss_err = max(loss_err, ((lc - le).abs() / le.abs()).item())
        largest = max(g.abs().max() for g in ge)
        grad_err = max(grad_err, (max((a - b).abs().max() for a, b in zip(gc, ge)) / largest).item())
    return loss_err, grad_err


def _crop_sizes(model, size):
    return [tuple(b - a for a, b in r) for r in
            crops.read_crops(_sized(model), [m.full_kernel_size(size) for m in _sized(model)])]


def _graphs() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


@pytest.mark.compile
def test_a_flexnet_compiled_after_an_eager_run_trains_as_eager_through_a_crop_change():
    """The issue's sequence: a FlexNet trained in eager mode (filling the path timer and the coordinate cache),
    then a fresh one compiled in the same process; inductor, train mode, two Adam steps, the second after one
    crop outgrew its box (a recompile)."""
    def make():
        torch.manual_seed(0)
        return _without_dropout(create("flexnet-16", 3, 10, mask_init="official", width=4, width_factors=(1.0,)))

    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    warm = make()
    _train_both(warm, make(), x, y, [None] * 3)               # eager only: both are eager models
    eager, compiled = make(), make()
    compiled.compile()
    before = _crop_sizes(eager, (16, 16))
    loss_err, grad_err = _train_both(eager, compiled, x, y, [None, _grow])
    assert _crop_sizes(eager, (16, 16))[0] != before[0]
    assert loss_err < 1e-5 and grad_err < 1e-4, (loss_err, grad_err)
    assert 2 <= _graphs() <= 6


@pytest.mark.compile
def test_a_flextcn_compiles_and_trains_as_eager_through_a_crop_change():
    def make():
        torch.manual_seed(0)
        return _without_dropout(create("flextcn-2", 1, 10, width=4))

    x, y = torch.randn(4, 1, 64), torch.randint(0, 10, (4,))
    eager, compiled = make(), make()
    compiled = torch.compile(compiled)
    before = _crop_sizes(eager, (64,))
    loss_err, grad_err = _train_both(eager, compiled, x, y, [None, lambda m: _grow(m, 1, 0.2)])
    assert _crop_sizes(eager, (64,))[1] != before[1]
    assert loss_err < 1e-5 and grad_err < 1e-4, (loss_err, grad_err)


FAMILY_BACKEND = "eager"     # dynamo's graphs run as captured; AOTAutograd and inductor: the two tests above
FAMILIES = {   # FlexNet with the official init and FlexTCN with the paper's: the inductor tests above
    "flexnet, paper init": (lambda: create("flexnet-16", 3, 10, width=4, width_factors=(1.0,)), (4, 3, 16, 16)),
    "ckcnn-16 (no masks)": (lambda: create("ckcnn-16", 3, 10, width=4, width_factors=(1.0,)), (4, 3, 12, 12)),
    "flexnet n-jet": (lambda: create("flexnet-16-njet", 3, 10, width=4, width_factors=(1.0,)), (4, 3, 16, 16)),
    "flextcn, official init and grid": (lambda: create("flextcn-2", 1, 10, width=4, mask_init="official",
                                                       grid="official"), (4, 1, 48)),
    "ckcnn-2 (weight-normed SIREN)": (lambda: create("ckcnn-2", 1, 10, width=4), (4, 1, 32)),
    "cifarresnet flexconv": (lambda: create("cifarresnet-44-flexconv", 3, 10, depth=8, widths=(4, 8, 8)),
                             (4, 3, 16, 16)),
    "cifarresnet ckconv k=3": (lambda: create("cifarresnet-44-ckconv", 3, 10, depth=8, widths=(4, 8, 8)),
                               (4, 3, 16, 16)),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_compiles_and_trains_and_evaluates_as_eager(family):
    """dynamo + AOTAutograd (the graphs inductor would get), forward and backward over two Adam steps (the second
    after a crop outgrew its box, where the model crops), then eval mode at another batch size."""
    make, shape = FAMILIES[family]
    torch.manual_seed(0)
    eager = _without_dropout(make())
    compiled = copy.deepcopy(eager)
    compiled.compile(backend=FAMILY_BACKEND)
    x, y = torch.randn(*shape), torch.randint(0, 10, (shape[0],))
    grow = (lambda m: _grow(m, -1, 0.3 if isinstance(_sized(m)[-1], NJetConv) else 0.35)) if _sized(eager) else None
    loss_err, grad_err = _train_both(eager, compiled, x, y, [None, grow])
    assert loss_err < 1e-5 and grad_err < 1e-4, (loss_err, grad_err)
    eager.load_state_dict(compiled.state_dict())   # Adam's first steps follow the sign of gradients that are 0 ± ε
    eager.eval(), compiled.eval()                  # (conv biases before a BatchNorm): eval mode shows their noise
    with torch.no_grad():
        x = torch.randn(3, *shape[1:])
        ref = eager(x)
        assert ((compiled(x) - ref).abs().max() / ref.abs().max()).item() < 1e-5


class _Counting:
    """A dynamo backend that counts the graphs it is handed and runs them as they are."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


def test_a_run_compiles_once_per_new_crop_configuration_within_the_bound():
    """σ of two layers walking up and down: a new compile only when some layer's box grows; never more than the
    bound; the forward's only graph break is the crops' read."""
    torch.manual_seed(0)
    model = create("flexnet-16", 3, 10, width=4, width_factors=(1.0,), mask_init="official")
    backend = _Counting()
    compiled = torch.compile(model, backend=backend)
    x = torch.randn(2, 3, 32, 32)
    bound = model_recompile_bound(model, (32, 32))
    layers = _sized(model)
    walk = [(0.075, 0.075), (0.1, 0.075), (0.075, 0.075), (0.2, 0.09), (0.12, 0.2), (0.2, 0.2), (0.45, 0.075)]
    boxes, compiles = set(), []
    for s0, s1 in walk:
        with torch.no_grad():
            layers[0].mask.sigma_param.fill_(s0)
            layers[1].mask.sigma_param.fill_(s1)
        before = backend.graphs
        compiled(x).sum().backward()
        config = tuple(tuple(c.shape) for c in model_crops(model, (32, 32), compiled=True) if c is not None)
        compiles.append(backend.graphs > before)
        assert compiles[-1] == (config not in boxes)
        boxes.add(config)
    assert compiles == [True, True, False, True, True, False, True]
    assert sum(compiles) < bound == 1 + 3 * 2 * 6
    breaks = torch._dynamo.utils.counters["graph_break"]
    assert breaks and all("_compiled_crops" in reason for reason in breaks)    # the one read, nested in 4 frames


def test_the_engine_compiles_the_model_and_reports_the_compile_time(tmp_path, monkeypatch):
    from flexlib.engine import distributed as compiling
    from flexlib.engine.config import load_config
    from flexlib.engine.run import run_experiment
    monkeypatch.setattr(compiling, "BACKEND", "eager")     # dynamo alone: the engine's plumbing is tested here
    params = tmp_path / "seq.yaml"
    params.write_text(
        "full:\n"
        "  data: {dataset: smnist, offline: true, train_size: 64, test_size: 40}\n"
        "  model: {name: flextcn-2, kwargs: {width: 4, mask_init: official}}\n"
        "  optim: {lr: 0.01, warmup_epochs: 0}\n"
        f"  train: {{epochs: 2, batch_size: 32, compile: true, device: cpu, out_dir: {tmp_path / 'runs'}}}\n")
    result = run_experiment(load_config(params), "compiled")
    assert result.finished
    rows = json.loads((result.run_dir / "metrics.json").read_text())
    assert all(r["compile_seconds"] > 0 and r["compiled_graphs"] >= 2 for r in rows)
    assert rows[1]["compiled_graphs"] >= rows[0]["compiled_graphs"]
    meta = result.metadata
    assert meta["config"]["train"]["compile"] is True
    assert meta["compile"]["compile_seconds"] == rows[-1]["compile_seconds"]
    assert meta["compile"]["crop_configuration_bound"] >= 1
