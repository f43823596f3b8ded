"""FlexConv/CKConv: kernel size rule, causality, FFT = spatial, gradcheck, eq. 9, bad input."""
import math

import numpy as np
import pytest
import torch

from flexlib import CKConv, FlexConv, param_groups
from flexlib.layers.resolution import retarget


@pytest.mark.parametrize("n, k", [(32, 33), (33, 33), (1, 1), (784, 785)])
def test_kernel_size_follows_input(n, k):
    conv = CKConv(1, 1, 1)
    conv(torch.randn(1, 1, n))
    assert conv.last_kernel_size == (k,)


def test_sample_kernel_is_mask_times_kernel_net():
    conv = FlexConv(2, 3, 2)
    kernel = conv.sample_kernel((5, 7))
    assert kernel.shape == (3, 2, 5, 7)
    xs, ys = torch.linspace(-1, 1, 5), torch.linspace(-1, 1, 7)
    i, j = 3, 6
    coord = torch.tensor([[xs[i], ys[j]]])
    expected = conv.kernel_net(coord).reshape(3, 2) * conv.mask(coord)
    torch.testing.assert_close(kernel[:, :, i, j], expected)


def test_causal_outputs_do_not_see_the_future():
    conv = FlexConv(2, 3, 1, causal=True, crop_threshold=None)
    x = torch.randn(2, 2, 50)
    y = conv(x)
    x2 = x.clone()
    x2[..., 30:] = torch.randn(2, 2, 20)
    y2 = conv(x2)
    torch.testing.assert_close(y[..., :30], y2[..., :30])
    assert not torch.allclose(y[..., 30:], y2[..., 30:])


def test_same_padding_keeps_size_and_centres_the_kernel():
    conv = CKConv(1, 1, 2, bias=False).double()
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    x[0, 0, 4, 4] = 1.0
    y = conv(x)
    kernel = conv.sample_kernel(9)
    # an impulse returns the kernel, flipped (cross-correlation)
    torch.testing.assert_close(y[0, 0], kernel[0, 0].flip(0, 1))


@pytest.mark.parametrize("dim, size, causal", [(1, (37,), False), (1, (64,), True), (2, (12, 9), False),
                                               (3, (6, 5, 7), False)])
def test_fft_and_spatial_agree(dim, size, causal):
    torch.manual_seed(1)
    conv = FlexConv(3, 4, dim, causal=causal).double()
    with torch.no_grad():
        conv.mask.sigma_param.fill_(0.6)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    conv.conv_mode = "spatial"
    y_spatial = conv(x)
    conv.conv_mode = "fft"
    y_fft = conv(x)
    torch.testing.assert_close(y_fft, y_spatial, atol=1e-5, rtol=0)


def test_auto_mode_picks_fft_for_long_global_kernels_and_spatial_for_small():
    conv = CKConv(8, 8, 1, causal=True)
    conv(torch.randn(4, 8, 4000))
    assert conv.last_conv_mode == "fft"
    flex = FlexConv(8, 8, 2)
    with torch.no_grad():
        flex.mask.sigma_param.fill_(0.02)
    flex(torch.randn(4, 8, 32, 32))
    assert flex.last_conv_mode == "spatial"


def test_gradcheck_through_mask_and_kernel_net():
    conv = FlexConv(2, 2, 2, hidden_features=4, num_layers=2, crop_threshold=None).double()
    names = [n for n, _ in conv.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in conv.parameters())
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)

    def f(x, *ps):
        return torch.func.functional_call(conv, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5)
    assert any("mask" in n for n in names)


def test_mask_parameter_group_at_tenth_of_lr():
    conv = torch.nn.Sequential(FlexConv(2, 2, 2), FlexConv(2, 2, 2))
    groups = param_groups(conv, lr=0.01)
    opt = torch.optim.Adam(groups)
    by_name = {g["name"]: g for g in opt.param_groups}
    assert by_name["mask"]["lr"] == pytest.approx(0.001) and by_name["default"]["lr"] == 0.01
    assert len(by_name["mask"]["params"]) == 4
    n_total = sum(1 for _ in conv.parameters())
    assert len(by_name["default"]["params"]) + 4 == n_total


def test_cropping_shrinks_the_kernel_and_tracks_sigma():
    conv = FlexConv(1, 1, 2)
    sizes = []
    for sigma in (0.05, 0.1, 0.2, 0.4):
        with torch.no_grad():
            conv.mask.sigma_param.fill_(sigma)
        sizes.append(conv.kernel_for((33, 33)).shape[-1])
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] <= 33


def test_eq9_resolution_transfer_on_a_smooth_kernel():
    """f_r2 * ψ_r2 ≈ (r1/r2)^D (f_r1 * ψ_r1): run a smooth kernel at 2× the resolution, compare at common points."""
    torch.manual_seed(0)
    conv = FlexConv(1, 1, 1, bias=False, crop_threshold=None, kernel_net_kwargs={"input_scale": 2.0}).double()
    with torch.no_grad():
        conv.mask.sigma_param.fill_(0.3)
    r1, r2 = 65, 129
    t1, t2 = torch.linspace(-1, 1, r1, dtype=torch.float64), torch.linspace(-1, 1, r2, dtype=torch.float64)
    signal = lambda t: torch.sin(2.5 * t) + 0.5 * torch.cos(4 * t)
    y1 = conv(signal(t1).view(1, 1, -1))
    y2_raw = conv(signal(t2).view(1, 1, -1))
    retarget(conv, source_res=r1, target_res=r2)
    assert conv.sampling_rate_norm == pytest.approx(r1 / r2)
    y2 = conv(signal(t2).view(1, 1, -1))
    common1, common2 = y1[..., 16:49], y2[..., 32:97:2]  # interior points shared by both grids
    rel = ((common2 - common1).norm() / common1.norm()).item()
    rel_raw = ((y2_raw[..., 32:97:2] - common1).norm() / common1.norm()).item()
    assert rel < 0.05
    assert rel_raw > 0.5  # without the (r1/r2)^D factor the response doubles


def test_retarget_2d_factor_and_errors():
    model = torch.nn.Sequential(FlexConv(1, 2, 2), FlexConv(2, 2, 2))
    retarget(model, 16, 32)
    assert all(c.sampling_rate_norm == pytest.approx(0.25) for c in model)
    retarget(model, (32, 32), (16, 32))
    assert model[0].sampling_rate_norm == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no FlexConv"):
        retarget(torch.nn.Linear(1, 1), 16, 32)
    with pytest.raises(ValueError, match="target_res"):
        retarget(model, 16, (32, 32, 32))


def test_bad_inputs_give_clear_errors():
    conv = FlexConv(3, 4, 2)
    with pytest.raises(ValueError, match="rank 4"):
        conv(torch.randn(2, 3, 32))
    with pytest.raises(ValueError, match="expected 3 input channels, got 5"):
        conv(torch.randn(2, 5, 8, 8))
    with pytest.raises(TypeError, match="floating-point.*int64"):
        conv(torch.ones(2, 3, 8, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="floating-point.*complex64"):
        conv(torch.ones(2, 3, 8, 8, dtype=torch.complex64))
    with pytest.raises(ValueError, match="empty input"):
        conv(torch.randn(2, 3, 0, 8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        conv(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="unknown kernel_net 'mlp'"):
        FlexConv(3, 4, 2, kernel_net="mlp")
    for t in (0.0, 1.0, -0.5, 2):
        with pytest.raises(ValueError, match="crop_threshold must lie in"):
            FlexConv(3, 4, 2, crop_threshold=t)
    with pytest.raises(ValueError, match="hidden_features must be a positive integer"):
        FlexConv(3, 4, 2, hidden_features=0)
    with pytest.raises(ValueError, match="in_channels must be a positive integer"):
        FlexConv(0, 4, 2)
    with pytest.raises(ValueError, match="causal=True is for sequences"):
        FlexConv(3, 4, 2, causal=True)
    with pytest.raises(ValueError, match="conv_mode"):
        FlexConv(3, 4, 2, conv_mode="winograd")
    with pytest.raises(TypeError, match="CKConv has no mask"):
        CKConv(3, 4, 2, crop_threshold=0.1)


def test_official_mask_init_draws_gabor_centres_as_the_authors_flexconv():
    """The authors' FlexConv draws the MAGNet/Gabor centres μ ~ U(±1.667·σ₀) (ckconv/nn/ckconv.py:
    init_spatial_value = 1.667 · mask_init_value; ck/magnet.py: μ = init_spatial_value · U(-1, 1)), = U(±0.125) for
    σ₀ = 0.075. The paper variant, CKConv and an explicit mu_range keep theirs."""
    bound = 1.667 * 0.075

    def centres(conv):
        return torch.cat([f.mu.flatten() for f in conv.kernel_net.filters]).abs()

    for net in ("magnet", "gabor"):
        mu = centres(FlexConv(8, 8, 2, kernel_net=net, mask_init="official"))
        assert mu.max() <= bound and mu.max() > 0.9 * bound
    assert centres(FlexConv(8, 8, 2)).max() > 0.9 and centres(CKConv(8, 8, 2)).max() > 0.9
    explicit = FlexConv(8, 8, 2, mask_init="official", kernel_net_kwargs={"mu_range": 0.5})
    assert 0.45 < centres(explicit).max() <= 0.5


def _authors_causal_flexconv(conv, x):
    """The authors' causal FlexConv with horizon="same", written from their code (ckconv/nn/ckconv.py,
    ckconv/nn/functional/causal_conv.py): L = len(x) positions over [-1, 1]; if the mask's lower root
    μ - σ·sqrt(-2 ln t) lies in (-1, 1), keep the positions above it; kernel = MLP(positions) · exp(-½((x-μ)/σ)²);
    an even kernel gets one zero tap in front; the input is padded by K - 1 on the left."""
    import torch.nn.functional as F
    pos = torch.linspace(-1, 1, x.shape[-1], dtype=x.dtype)
    mean, sigma = conv.mask.mean_param[0], conv.mask.sigma_param[0]
    aux = sigma * math.sqrt(-2 * math.log(conv.crop_threshold))
    root = min(mean - aux, mean + aux)
    if abs(root) < 1.0:
        pos = pos[torch.nonzero(root < pos)[0]:]
    kernel = conv.kernel_net(pos[:, None]).T.reshape(conv.out_channels, conv.in_channels, -1)
    kernel = kernel * torch.exp(-0.5 * ((pos - mean) / sigma) ** 2)
    if kernel.shape[-1] % 2 == 0:
        kernel = F.pad(kernel, [1, 0])
    return F.conv1d(F.pad(x, [kernel.shape[-1] - 1, 0]), kernel, conv.bias)


@pytest.mark.parametrize("length", [50, 51])
@pytest.mark.parametrize("sigma", [0.3, 1.0])
def test_official_grid_reproduces_the_authors_causal_construction(length, sigma):
    torch.manual_seed(0)
    conv = FlexConv(2, 3, 1, causal=True, grid="official", mask_eps=0.0).double()   # the authors' mask has no ε
    with torch.no_grad():
        conv.mask.sigma_param.fill_(sigma)
        conv.bias.normal_()
    x = torch.randn(2, 2, length, dtype=torch.float64)
    y = conv(x)
    assert conv.last_kernel_size == (length,)
    torch.testing.assert_close(y, _authors_causal_flexconv(conv, x), atol=1e-12, rtol=1e-10)
    paper = FlexConv(2, 3, 1, causal=True, mask_eps=0.0).double()
    paper.load_state_dict(conv.state_dict())
    same = torch.allclose(paper(x), y, atol=1e-9)
    assert same == (length % 2 == 1)                 # the grids differ only on even lengths (App. A.2: L + 1)


def test_official_grid_reaches_the_models_through_conv_config():
    from flexlib.models import create
    model = create("flextcn-2", 1, 10, grid="official")
    model(torch.randn(2, 1, 50))
    sizes = {m.last_kernel_size for m in model.modules() if isinstance(m, FlexConv)}
    assert sizes == {(50,)}
