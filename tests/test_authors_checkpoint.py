"""Loading the authors' (rjbruin/flexconv) checkpoints: layout, exact round trip, the authors' forward pass, the
cross-resolution protocol, safe loading, and `python -m flexlib evaluate` end to end on offline data.

The reference below re-derives the authors' FlexNet (their `Img_ResNet` with FlexConv/MAGNet layers) from their
code's math, with their module names, so that its `state_dict()` is their checkpoint layout: 1×1 convolutions as
linears, `mask_params` (D, 2) = (mean, σ) per dimension, the buffers `train_length`, `temperature`,
`mask_threshold`; kernels sampled on `meshgrid(linspace(-1, 1, train_length))`, cropped symmetrically to the
largest |root| of the mask at the threshold, masked with exp(-½((x - mean)/σ)²) per dimension.
"""
from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flexlib.engine.cli import main
from flexlib.engine.config import ConfigError, load_config
from flexlib.engine.evaluate import RELEASED, plan_resolutions, resolve_checkpoint
from flexlib.layers.mask import DEFAULT_EPS as EPS
from flexlib.models import (AuthorsCheckpointError, create, from_authors_checkpoint, to_authors_state_dict)
from flexlib.models.authors import load_authors_state_dict

ROOT = Path(__file__).resolve().parents[1]
CIFAR10 = ROOT / "params" / "experiments" / "cifar10.yaml"
ALIAS_FREE = ROOT / "params" / "experiments" / "cifar10_alias_free.yaml"


def expand(pairs):
    """The authors' `block_width_factors` (factor, count) pairs → one factor per block."""
    return [f for f, n in zip(pairs[::2], pairs[1::2]) for _ in range(int(n))]


# -- the authors' FlexNet, re-derived (2-D) -----------------------------------------------------------------------
class RefFilter(nn.Module):
    """A MAGNet (anisotropic γ), Gabor (one γ per unit) or Fourier filter on a (1, D, h, w) grid."""

    def __init__(self, hidden, kind):
        super().__init__()
        self.kind = kind
        self.linear = nn.Conv2d(2, hidden, 1)
        nn.init.uniform_(self.linear.weight, -12.0, 12.0)        # stored weights carry the input scale
        nn.init.uniform_(self.linear.bias, -math.pi, math.pi)
        if kind != "fourier":
            self.mu = nn.Parameter(torch.rand(hidden, 2) - 0.5)
            self.gamma = nn.Parameter(torch.rand(hidden, 2 if kind == "magnet" else 1) * 4 + 0.5)

    def forward(self, g):
        sine = torch.sin(self.linear(g))
        if self.kind == "fourier":
            return sine
        z = self.gamma[None, :, :, None, None] * (g[:, None] - self.mu[None, :, :, None, None])
        return torch.exp(-0.5 * (z ** 2).sum(2)) * sine


class RefKernelNet(nn.Module):
    def __init__(self, out, hidden, layers, kind):
        super().__init__()
        self.filters = nn.ModuleList(RefFilter(hidden, kind) for _ in range(layers + 1))
        self.linear = nn.ModuleList(nn.Conv2d(hidden, hidden, 1) for _ in range(layers))
        self.output_linear = nn.Conv2d(hidden, out, 1)

    def forward(self, g):
        h = self.filters[0](g)
        for g_l, lin in zip(self.filters[1:], self.linear):
            h = g_l(g) * lin(h)
        return self.output_linear(h)


class RefFlexConv(nn.Module):
    def __init__(self, cin, cout, hidden, layers, kind, trained_at):
        super().__init__()
        self.cin, self.cout = cin, cout
        self.Kernel = RefKernelNet(cin * cout, hidden, layers, kind)
        self.bias = nn.Parameter(torch.randn(cout) * 0.1)
        sign = torch.where(torch.rand(2) < 0.5, -1.0, 1.0)                     # σ may be stored negative
        self.mask_params = nn.Parameter(torch.stack([(torch.rand(2) - 0.5) * 0.3,
                                                     sign * (0.08 + 0.4 * torch.rand(2))], dim=1))
        self.register_buffer("train_length", torch.tensor([trained_at + 1], dtype=torch.int32))
        self.register_buffer("temperature", torch.tensor([15.0]))
        self.register_buffer("mask_threshold", torch.tensor([0.1]))
        self.horizon = trained_at + 1
        self.sampling_rate_norm = 1.0
        self.eps = 0.0              # 0: the authors' mask; flexlib's guard 1e-8 reproduces flexlib exactly

    def kernel(self):
        if int(self.train_length) == 0:                                      # run_crossres resets it to 0
            self.train_length[0] = self.horizon
        k = int(self.train_length)
        pos = torch.linspace(-1, 1, k, dtype=self.bias.dtype)
        axes = []
        for mean, sigma in self.mask_params:                                 # row d: mean, σ of axis d
            aux = sigma * torch.sqrt(-2 * torch.log(self.mask_threshold[0].to(pos.dtype)))
            root = max(abs(mean - aux), abs(mean + aux))
            if root >= 1.0:
                axes.append(pos)
            else:
                first = int(torch.nonzero(pos[: k // 2 + 1] > -root)[0])
                axes.append(pos[first: k - first])
        g = torch.stack(torch.meshgrid(*axes, indexing="ij"))[None]          # (1, 2, h, w): channel d = axis d
        kernel = self.Kernel(g).view(self.cout, self.cin, *g.shape[2:]) * self.sampling_rate_norm
        mask = 1.0
        for d, (mean, sigma) in enumerate(self.mask_params):
            mask = mask * torch.exp(-0.5 * (g[0, d] - mean) ** 2 / (sigma ** 2 + self.eps))
        return kernel * mask

    def forward(self, x):
        kernel = self.kernel()
        return F.conv2d(x, kernel, self.bias, padding=(kernel.shape[2] // 2, kernel.shape[3] // 2))


def _norm(c):
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.normal_(0, 0.1)
        bn.running_mean.normal_(0, 0.1), bn.running_var.uniform_(0.5, 2.0)
        bn.num_batches_tracked.fill_(1234)
    return bn


class RefBlock(nn.Module):
    def __init__(self, cin, cout, conv):
        super().__init__()
        self.cconv1, self.cconv2 = conv(cin, cout), conv(cout, cout)
        self.norm1, self.norm2 = _norm(cout), _norm(cout)
        self.dp = nn.Dropout(0.2)
        self.shortcut = nn.Sequential(*([nn.Conv2d(cin, cout, 1)] if cin != cout else []))

    def forward(self, x):
        out = self.dp(torch.relu(self.norm1(self.cconv1(x))))
        return torch.relu(self.norm2(self.cconv2(out)) + self.shortcut(x))


class RefFlexNet(nn.Module):
    def __init__(self, cin, classes, width, pairs, hidden=8, layers=2, kind="magnet", trained_at=32):
        super().__init__()
        conv = lambda a, b: RefFlexConv(a, b, hidden, layers, kind, trained_at)   # noqa: E731
        widths = [int(width * f) for f in expand(pairs)]
        self.cconv1, self.norm1 = conv(cin, width), _norm(width)
        self.blocks = nn.Sequential(*(RefBlock(a, b, conv) for a, b in zip([width] + widths[:-1], widths)))
        self.out_layer = nn.Conv2d(widths[-1], classes, 1)

    def convs(self):
        return [m for m in self.modules() if isinstance(m, RefFlexConv)]

    def forward(self, x):
        out = self.blocks(torch.relu(self.norm1(self.cconv1(x))))
        return self.out_layer(F.adaptive_avg_pool2d(out, 1))[:, :, 0, 0]


SMALL = dict(width=4, pairs=[1.0, 1, 1.5, 1])                    # two blocks, a 1×1 shortcut between them
SMALL_OURS = dict(width=4, width_factors=(1.0, 1.5), kernel_hidden=8, kernel_layers=2)


def _ours(state, kind="magnet", **kwargs):
    return from_authors_checkpoint(state, "flexnet-3", 3, 5, kernel_net=kind, **SMALL_OURS, **kwargs)


@pytest.fixture
def float64():
    """Build both models in float64, so the comparisons see the math, not float32 rounding."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# -- layout --------------------------------------------------------------------------------------------------------
def test_released_configurations_have_the_authors_keys_and_shapes():
    for name, classes, width, pairs in (("flexnet-16", 10, 24, [1.0, 2, 1.5, 3, 2.0, 2]),
                                        ("flexnet-5", 1000, 22, [1.0, 1, 1.5, 2, 2.0, 2])):
        theirs = RefFlexNet(3, classes, width, pairs, hidden=32, layers=3).state_dict()
        ours = to_authors_state_dict(create(name, 3, classes))
        assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
        assert len(theirs) == {"flexnet-16": 516, "flexnet-5": 380}[name]      # 516: counted on the authors' code


# -- the authors' forward pass -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["magnet", "gabor", "fourier"])
def test_loaded_model_reproduces_the_authors_forward_pass(kind, float64):
    ref = RefFlexNet(3, 5, kind=kind, **SMALL).eval()
    ref.convs()[1].mask_params.data[:, 1] = torch.tensor([0.9, -0.45])       # one mask wider than the grid
    ours = _ours(ref.state_dict(), kind)
    x = torch.randn(3, 3, 32, 32)
    for ref_conv in ref.convs():
        ref_conv.eps = EPS
    with torch.no_grad():
        for conv, ref_conv in zip([ours.stem, ours.blocks[0].conv1, ours.blocks[0].conv2, ours.blocks[1].conv1],
                                  ref.convs()):
            assert torch.allclose(conv.kernel_for((32, 32)), ref_conv.kernel(), rtol=1e-10, atol=1e-12)
        exact_eps = ref(x)
        for ref_conv in ref.convs():
            ref_conv.eps = 0.0
        authors = ref(x)
        got = ours(x)
    assert torch.allclose(got, exact_eps, rtol=1e-9, atol=1e-9 * exact_eps.abs().max())
    # flexlib's mask divides by σ² + 1e-8: a relative change of at most ~1e-5 here
    assert torch.allclose(got, authors, rtol=1e-4, atol=1e-4 * authors.abs().max())
    with torch.no_grad():   # mask_eps=0.0 through the public API: the authors' arithmetic
        exact = _ours(ref.state_dict(), kind, mask_eps=0.0)(x)
    assert torch.allclose(exact, authors, rtol=1e-9, atol=1e-9 * authors.abs().max())


def test_mask_layout_sign_and_threshold_come_from_the_checkpoint(float64):
    ref = RefFlexNet(3, 5, **SMALL).eval()
    ref.cconv1.mask_params.data = torch.tensor([[0.1, -0.2], [-0.05, 0.3]])
    ref.cconv1.mask_threshold.fill_(0.3)
    ref.cconv1.eps = EPS
    ours = _ours(ref.state_dict())
    assert ours.stem.mask.mean.tolist() == [0.1, -0.05]
    assert ours.stem.mask.sigma.tolist() == [0.2, 0.3]
    assert ours.stem.crop_threshold == pytest.approx(0.3) and ours.blocks[0].conv1.crop_threshold == pytest.approx(0.1)
    kernel = ours.stem.kernel_for((32, 32))
    assert kernel.shape[2:] != (33, 33) and torch.allclose(kernel, ref.cconv1.kernel(), rtol=1e-10, atol=1e-12)


def test_cross_resolution_follows_run_crossres(float64):
    """Source checkpoints: trained at 16 px (17-point kernels). run_crossres.py rebuilds the model with
    horizon 33, loads the weights, resets train_length and scales kernels by (16/32)^2."""
    ref = RefFlexNet(3, 5, trained_at=16, **SMALL).eval()
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    x16, x32 = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        at_source = ref(x16)
        for conv in ref.convs():
            conv.train_length.zero_()
            conv.horizon, conv.sampling_rate_norm = 33, (16 / 32) ** 2
        at_target = ref(x32)
        assert torch.allclose(_ours(state)(x16), at_source, rtol=1e-4, atol=1e-4 * at_source.abs().max())
        moved = _ours(state, source_res=16, target_res=32)
        assert torch.allclose(moved(x32), at_target, rtol=1e-4, atol=1e-4 * at_target.abs().max())
        assert not torch.allclose(_ours(state)(x32), at_target, rtol=1e-2)     # the factor matters
    assert moved.stem.kernel_for((32, 32)).shape == ref.cconv1.kernel().shape


# -- round trip ----------------------------------------------------------------------------------------------------
def test_flexlib_to_authors_to_flexlib_is_exact(tmp_path):
    model = create("flexnet-3", 3, 10, width=6, kernel_hidden=8).eval()
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "sigma_param"):
                m.sigma_param.uniform_(-0.5, 0.5), m.mean_param.uniform_(-0.2, 0.2)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(), m.running_var.uniform_(0.5, 2)
    torch.save({"model": to_authors_state_dict(model, train_length=33), "optimizer": {"state": {}, "param_groups": []},
                "lr_scheduler": {}, "epoch": 350}, tmp_path / "ckpt.pt")
    back = from_authors_checkpoint(tmp_path / "ckpt.pt", "flexnet-3", 3, 10, width=6, kernel_hidden=8)
    for (k, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and (a == b if isinstance(a, dict) else torch.equal(a, b)), k
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), back(x))
    again = to_authors_state_dict(back, train_length=33)
    assert all(torch.equal(v, again[k]) for k, v in load_authors_state_dict(tmp_path / "ckpt.pt").items())


# -- mismatches and unsafe files -----------------------------------------------------------------------------------
def test_wrong_shapes_and_keys_fail_with_their_names():
    state = RefFlexNet(3, 5, **SMALL).state_dict()
    bad = dict(state, **{"blocks.1.cconv2.Kernel.filters.0.gamma": torch.ones(8, 1)})
    with pytest.raises(AuthorsCheckpointError, match=r"blocks\.1\.cconv2\.Kernel\.filters\.0\.gamma: checkpoint "
                                                     r"\(8, 1\), flexnet-3 \(8, 2\)"):
        _ours(bad)
    bad = {k: v for k, v in state.items() if k != "blocks.0.norm2.running_var"}
    bad["blocks.0.extra.weight"] = torch.ones(1)
    with pytest.raises(AuthorsCheckpointError) as err:
        _ours(bad)
    assert "1 missing key(s): blocks.0.norm2.running_var" in str(err.value)
    assert "1 unexpected key(s): blocks.0.extra.weight" in str(err.value)


def test_another_architecture_fails_naming_what_it_looks_like():
    flexnet5 = RefFlexNet(3, 1000, 22, [1.0, 1, 1.5, 2, 2.0, 2], hidden=32, layers=3).state_dict()
    with pytest.raises(AuthorsCheckpointError) as err:
        from_authors_checkpoint(flexnet5, "flexnet-16", 3, 10)
    message = str(err.value)
    assert "looks like a FlexNet with 5 blocks (stem width 22, block widths [22, 33, 33, 44, 44])" in message
    assert "1000 classes = flexlib flexnet-5" in message and "'flexnet-16' is a FlexNet with 7 blocks" in message
    with pytest.raises(AuthorsCheckpointError, match="gabor kernels.*flexlib flexnet-16-gabor"):
        from_authors_checkpoint(RefFlexNet(3, 10, 24, [1.0, 2, 1.5, 3, 2.0, 2], hidden=32, layers=3,
                                           kind="gabor").state_dict(), "flexnet-16", 3, 10)
    with pytest.raises(AuthorsCheckpointError, match="no authors' FlexNet"):
        from_authors_checkpoint(create("cifarresnet-20", 3, 10).state_dict(), "flexnet-16", 3, 10)
    with pytest.raises(AuthorsCheckpointError, match="FlexNet family"):
        from_authors_checkpoint(flexnet5, "cifarresnet-20", 3, 10)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": RefFlexNet(3, 5, **SMALL).state_dict(), "payload": _RunsCode(marker)}, path)
    torch.load(path, weights_only=False)                  # the control: unpickling runs the payload
    assert marker.exists()
    marker.unlink()
    with pytest.raises(AuthorsCheckpointError, match=r"evil.pt holds Python objects other than tensors "
                                                     r"\(.*pathlib.Path.*\); refused without running it$"):
        from_authors_checkpoint(path, "flexnet-3", 3, 5, **SMALL_OURS)
    assert not marker.exists()


def test_checkpoint_containers(tmp_path):
    state = RefFlexNet(3, 5, **SMALL).state_dict()
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pt")      # DataParallel, bare
    assert set(load_authors_state_dict(tmp_path / "dp.pt")) == set(state)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(AuthorsCheckpointError, match="holds no model state dict"):
        load_authors_state_dict(tmp_path / "list.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(AuthorsCheckpointError, match="junk.pt is a text file, not a torch checkpoint"):
        load_authors_state_dict(tmp_path / "junk.pt")


# -- evaluation: resolutions, preprocessing, the command -----------------------------------------------------------
def test_resolution_plan_follows_the_released_runs():
    plain, cross = load_config(CIFAR10), load_config(ALIAS_FREE)
    src, final = (RELEASED[f"cross-res-cifar10-flexnet-7-gabor-seed2-{s}"] for s in ("source", "final"))
    assert plan_resolutions(plain, RELEASED["cifar10-flexnet-7-seed2"], None, 33) == (32, 32)
    assert plan_resolutions(cross, RELEASED["cifar10-flexnet-7-seed2"], None, 33) == (32, 32)   # trained at 32 px
    assert plan_resolutions(cross, RELEASED["cifar10-flexnet-7-seed2"], "16", 33) == (16, 32)
    assert plan_resolutions(cross, src, None, 17) == (16, 16)          # Table 4's 16 px column
    assert plan_resolutions(cross, src, "target", 17) == (32, 16)      # Δ: at 32 px, kernels × (16/32)²
    assert plan_resolutions(plain, src, "target", 17) == (32, 16)      # the released entry knows its resolutions
    assert plan_resolutions(cross, final, None, 33) == (32, 16)        # fine-tuned with the factor applied
    assert plan_resolutions(cross, None, None, 33) == (32, 16) and plan_resolutions(cross, None, "24", 33) == (24, 16)
    with pytest.raises(ConfigError, match="--at source needs a cross-resolution"):
        plan_resolutions(plain, None, "source", 33)
    with pytest.raises(ConfigError, match="experiment says 8 -> 32"):
        plan_resolutions(load_config(ALIAS_FREE, overrides=["resolution.source=8"]), src, None, 17)
    for name, entry in RELEASED.items():
        assert entry.url == f"https://github.com/rjbruin/flexconv/raw/master/experiments/checkpoints/{name}.pt"


@pytest.mark.parametrize("resolution", [32, 16])
def test_cifar10_test_inputs_are_the_authors(resolution):
    """The authors' CIFAR-10 test transform (datasets/cifar10.py, augment="None"): Resize(r, bilinear) of the PIL
    image when r is not 32, ToTensor, Normalize with the ImageNet mean/std. Evaluating their weights needs it."""
    from PIL import Image
    from torchvision import transforms as T

    from flexlib.data import vision
    image = Image.fromarray(torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8).numpy())
    resize = [T.Resize(resolution, interpolation=T.InterpolationMode.BILINEAR)] if resolution != 32 else []
    authors = T.Compose(resize + [T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    ours = vision.image_transform(*vision.STATS["cifar10"], False, 32, resolution)
    assert torch.equal(ours(image), authors(image))


def _quick_checkpoint(path, trained_at=32):
    """An authors'-format checkpoint of the quick profile's model (flexnet-3, c = 8, MAGNet 32 × 3)."""
    ref = RefFlexNet(3, 10, 8, [1.0, 1, 1.5, 1, 2.0, 1], hidden=32, layers=3, trained_at=trained_at).eval()
    for conv in ref.convs():
        conv.mask_params.data[:, 1] *= 0.25                                     # small kernels: a fast test
    torch.save({"model": ref.state_dict(), "optimizer": {"state": {}, "param_groups": []}, "lr_scheduler": {},
                "epoch": 3}, path)
    return ref


def test_cli_evaluate_end_to_end_on_offline_data(tmp_path, capsys):
    ref = _quick_checkpoint(tmp_path / "authors.pt")
    out = tmp_path / "result.json"
    assert main(["evaluate", str(CIFAR10), "--profile", "quick", "--authors-checkpoint", str(tmp_path / "authors.pt"),
                 "--set", "data.test_size=120", "--batch-size", "50", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()
    assert len(line) == 1 and "images at 32 px: acc" in line[0]
    result = json.loads(out.read_text())
    from flexlib.data import build
    cfg = load_config(CIFAR10, "quick", ["data.test_size=120"])
    test = build(replace(cfg.data, augment=False, resolution=32), cfg.train.seed).test
    x, y = map(torch.stack, zip(*[(a, torch.tensor(b)) for a, b in (test[i] for i in range(len(test)))]))
    with torch.no_grad():
        logits = ref(x)
    assert result["test_images"] == len(y) == 120
    assert result["test_acc"] == pytest.approx((logits.argmax(1) == y).double().mean().item(), abs=1.01 / 120)
    assert result["test_loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-4)
    assert result["test_top5"] >= result["test_acc"] and result["kernel_factor"] == 1.0


def test_cli_evaluate_released_names_cache_and_offline_message(tmp_path, capsys, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    args = ["evaluate", str(CIFAR10), "--profile", "quick", "--set", "data.test_size=20", "--cache-dir", str(tmp_path),
            "--authors-checkpoint"]
    assert main(args + ["cifar10-flexnet-7-seed2"]) == 2
    err = capsys.readouterr().err
    assert RELEASED["cifar10-flexnet-7-seed2"].url in err and str(tmp_path / "cifar10-flexnet-7-seed2.pt") in err
    assert main(args + ["flexnet-99"]) == 2
    assert "released: cifar10-flexnet-7-seed2, cross-res-cifar10" in capsys.readouterr().err
    _quick_checkpoint(tmp_path / "cifar10-flexnet-7-seed2.pt")                  # already in the cache: no download
    assert main(args + ["cifar10-flexnet-7-seed2.pt"]) == 0
    assert "authors report 92.31 % at 32 px; Table 3" in capsys.readouterr().out
    _quick_checkpoint(tmp_path / "cross-res-cifar10-flexnet-7-gabor-seed2-final.pt", trained_at=16)
    assert main(args + ["cross-res-cifar10-flexnet-7-gabor-seed2-final"]) == 2
    assert "last sampled on 17 points" in capsys.readouterr().err
    assert resolve_checkpoint(str(tmp_path / "cifar10-flexnet-7-seed2.pt"), tmp_path)[1] is RELEASED[
        "cifar10-flexnet-7-seed2"]
