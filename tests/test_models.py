"""Models: parameter counts against the paper's tables, forward/backward for every name, causality, errors."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F
import yaml

import flexlib.models as M
from flexlib import CKConv, FlexConv, GaussianMask
from flexlib.models.conv import ConvConfig, FixedSizeCKConv, Subsample, build_conv
from flexlib.paper.sizes import DATASETS, PAPER_ROWS, TOLERANCE


def _row_param(row):
    marks = [pytest.mark.xfail(strict=True, reason=row.deviation)] if row.deviation else []
    return pytest.param(row, id=f"T{row.table}-{row.paper_name}-{row.dataset}", marks=marks)


@pytest.mark.parametrize("row", [_row_param(r) for r in PAPER_ROWS])
def test_parameter_count_matches_paper(row):
    n = row.measure()
    assert abs(n / row.paper_params - 1) <= TOLERANCE, f"{row.paper_name}: {n:,} vs paper {row.paper_params:,}"


def _magnet_flexconv_params(cin, cout, d, h=32, layers=3, mask=True):
    """Closed form: (L+1) filters [W_g (h×D), b_g, γ (h×D), μ (h×D)], L hidden (h×h + h), output (h·cin·cout
    + cin·cout), conv bias, mask (μ, σ per dim)."""
    return (layers + 1) * (3 * h * d + h) + layers * (h * h + h) + (h + 1) * cin * cout + cout + (2 * d if mask else 0)


def test_flexnet16_count_equals_closed_form():
    widths = [24, 24, 36, 36, 36, 48, 48]
    n = _magnet_flexconv_params(3, 24, 2) + 2 * 24
    prev = 24
    for w in widths:
        n += _magnet_flexconv_params(prev, w, 2) + _magnet_flexconv_params(w, w, 2) + 4 * w
        n += prev * w + w if prev != w else 0
        prev = w
    n += 48 * 10 + 10
    assert M.count_parameters(M.create("flexnet-16", 3, 10)) == n


def test_flextcn_count_equals_closed_form():
    n, prev = 0, 1
    for _ in range(2):
        n += _magnet_flexconv_params(prev, 30, 1) + _magnet_flexconv_params(30, 30, 1) + 4 * 30
        n += prev * 30 + 30 if prev != 30 else 0
        prev = 30
    assert M.count_parameters(M.create("flextcn-2", 1, 10)) == n + 30 * 10 + 10


def test_flexnet_16_is_flexnet_7():
    assert M.model_config("flexnet-16") == M.model_config("flexnet-7")
    assert len(M.create("flexnet-16").blocks) == 7


def _tiny_input(cfg, batch=2):
    if isinstance(cfg, M.TCNConfig):
        return torch.randn(batch, cfg.in_channels, 12)
    return torch.randn(batch, cfg.in_channels, 8, 8)


@pytest.mark.parametrize("name", M.available())
def test_forward_backward_every_name(name):
    in_channels, num_classes = (2, 5)
    cfg = M.model_config(name, in_channels, num_classes)
    model = M.build(cfg)
    y = model(_tiny_input(cfg))
    assert y.shape == (2, num_classes)
    assert torch.isfinite(y).all()
    y.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"{name}: parameters without gradient: {missing[:5]}"


@pytest.mark.parametrize("name", ["flextcn-2", "cktcn-2", "ckcnn-2", "flextcn-2-conv"])
def test_sequence_models_are_causal(name):
    # ckcnn-2's own norm, the authors' LayerNorm, normalizes over the whole sequence (see the next test); its
    # convolutions are causal, shown with the per-position LayerNorm
    model = (M.create("flextcn-2", 3, 4, type="conv", kernel_size=5) if name == "flextcn-2-conv"
             else M.create(name, 3, 4, norm="channel_layer") if name == "ckcnn-2" else M.create(name, 3, 4)).eval()
    x = torch.randn(2, 3, 40)
    t0 = 25
    x2 = x.clone()
    x2[:, :, t0:] += torch.randn(2, 3, 40 - t0)
    with torch.no_grad():
        a, b = model.features(x), model.features(x2)
    torch.testing.assert_close(a[:, :, :t0], b[:, :, :t0], atol=1e-5, rtol=1e-5)
    assert (a[:, :, t0:] - b[:, :, t0:]).abs().max() > 1e-3, "later steps should see the perturbation"


def test_ckcnn_normalizes_as_the_authors_layer_norm_over_channels_and_positions():
    """The authors' CKCNN LayerNorm (ckconv/nn/norm.py) is a GroupNorm with one group: per example, the mean and
    the biased variance over (C, L), then a scale and shift per channel."""
    model = M.create("ckcnn-2", 3, 4)
    norm = model.blocks[0].norm1
    assert isinstance(norm, torch.nn.GroupNorm) and norm.num_groups == 1
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    x = torch.randn(2, 30, 17, dtype=torch.float64) * 3 + 1
    mean = x.mean(dim=(1, 2), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(1, 2), keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * norm.weight.double()[:, None] + norm.bias.double()[:, None]
    torch.testing.assert_close(norm.double()(x), expected, rtol=1e-12, atol=1e-12)
    x2 = x.clone()
    x2[:, :, -1] += 5.0                   # a change at the last step moves every position's normalization
    assert (norm(x2)[:, :, 0] - norm(x)[:, :, 0]).abs().max() > 1e-3


def test_classification_reads_the_last_step():
    model = M.create("flextcn-2", 1, 3).eval()
    x = torch.randn(1, 1, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.head(model.features(x)[:, :, -1]))


def test_kernel_net_and_mask_selectable_by_argument():
    model = M.create("flexnet-3", 3, 10, kernel_net="siren", mask=False)
    convs = [m for m in model.modules() if isinstance(m, FlexConv)]
    assert convs and all(isinstance(c, CKConv) and c.mask is None for c in convs)
    assert not any(isinstance(m, GaussianMask) for m in model.modules())
    assert all(type(c.kernel_net).__name__ == "SIREN" for c in convs)
    gabor = M.create("flexnet-3", 3, 10, kernel_net="gabor", kernel_init="layerwise")
    conv = next(m for m in gabor.modules() if isinstance(m, FlexConv))
    assert conv.kernel_net.filters[0].gamma.shape == (32, 1)  # isotropic envelope


def test_ckcnn_uses_weight_normalised_siren_kernels():
    model = M.create("ckcnn-2", 1, 10)
    conv = model.blocks[0].conv1
    linears = [m for m in conv.kernel_net.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in linears)


def test_strided_continuous_conv_equals_strided_discrete_conv():
    conv = FixedSizeCKConv(3, 4, 2, kernel_size=3)
    strided = Subsample(conv, 2)
    x = torch.randn(1, 3, 9, 9)
    expected = F.conv2d(x, conv.sample_kernel(3), conv.bias, stride=2, padding=1)
    torch.testing.assert_close(strided(x), expected, atol=1e-5, rtol=1e-5)


def test_cifarresnet_option_a_shortcuts_have_no_parameters():
    # He et al. (2016): 0.27M / 0.46M / 0.66M for depth 20 / 32 / 44; each basic block adds 2 convs + 2 BNs.
    def closed_form(depth):
        n, total, prev = (depth - 2) // 6, 3 * 16 * 9 + 32, 16
        for w in (16, 32, 64):
            for _ in range(n):
                total += 9 * prev * w + 9 * w * w + 4 * w
                prev = w
        return total + 64 * 10 + 10
    for depth in (20, 32, 44):
        assert M.count_parameters(M.create(f"cifarresnet-{depth}", 3, 10)) == closed_form(depth)


def test_resnet_spatial_sizes_halve_between_stages():
    model = M.create("cifarresnet-20", 3, 10)
    x = torch.randn(1, 3, 16, 16)
    sizes = []
    hook = lambda m, i, o: sizes.append(o.shape[-1])
    for block in model.blocks:
        block.register_forward_hook(hook)
    model(x)
    assert sizes == [16] * 3 + [8] * 3 + [4] * 3


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="available: .*flexnet-16"):
        M.create("flexnet-17")


def test_unknown_override_lists_valid_keys():
    with pytest.raises(ValueError, match="unknown override.*'widht'.*valid keys"):
        M.create("flexnet-16", 3, 10, widht=3)


def test_bad_channels_and_shapes_give_clear_errors():
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        M.create("flexnet-3", 0, 10)
    with pytest.raises(ValueError, match=r"expected input \(B, 3, \*, \*\)"):
        M.create("flexnet-3", 3, 10)(torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"expected a sequence \(B, 1, T\)"):
        M.create("flextcn-2", 1, 10)(torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="type='conv' needs kernel_size"):
        M.create("flexnet-3", 3, 10, type="conv")
    with pytest.raises(ValueError, match="depth must be 6n"):
        M.create("cifarresnet-20", 3, 10, depth=21)


def test_config_from_yaml_refuses_unknown_keys():
    text = "width: 8\nwidth_factors: [1, 2]\nconv: {type: ckconv, kernel_net: fourier}\n"
    cfg = M.config_from_dict(M.FlexNetConfig, yaml.safe_load(text))
    assert cfg.widths == [8, 16] and cfg.conv == ConvConfig(type="ckconv", kernel_net="fourier")
    assert M.config_from_dict(M.FlexNetConfig, dataclasses.asdict(cfg)) == cfg
    with pytest.raises(ValueError, match="unknown FlexNetConfig key.*'blocks'"):
        M.config_from_dict(M.FlexNetConfig, {"blocks": 3})
    with pytest.raises(ValueError, match="unknown ConvConfig key.*'kernel'"):
        M.config_from_dict(M.FlexNetConfig, {"conv": {"kernel": "magnet"}})


def test_kodak_configs():
    net = M.kodak_kernel_net_config("magnet").build(2, 3)
    assert net(torch.rand(5, 2)).shape == (5, 3)
    with pytest.raises(ValueError, match="available"):
        M.kodak_kernel_net_config("mlp")


def test_build_conv_refuses_causal_images():
    with pytest.raises(ValueError, match="causal convolutions are for sequences"):
        build_conv(ConvConfig(), 2, 2, data_dim=2, causal=True)


def test_datasets_table_is_consistent():
    assert {r.dataset for r in PAPER_ROWS} <= set(DATASETS)
