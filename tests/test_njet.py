"""N-Jet layer: Gaussian-derivative basis against numpy, the σ-tied kernel size, gradients."""
import math

import numpy as np
import pytest
import torch
from numpy.polynomial import hermite as H

from flexlib.models import ConvConfig, NJetConv, build_conv
from flexlib.models.njet import basis_orders, gaussian_derivatives, njet_kernel_size


def numpy_gaussian_derivative(x, sigma, n):
    """dⁿ/dxⁿ of exp(-x²/2σ²)/(√(2π)σ) via physicists' Hermite polynomials:
    (-1)ⁿ (σ√2)⁻ⁿ Hₙ(x/(σ√2)) G(x)."""
    u = x / (sigma * math.sqrt(2))
    coef = np.zeros(n + 1)
    coef[n] = 1
    gauss = np.exp(-x**2 / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)
    return (-1) ** n * (sigma * math.sqrt(2)) ** (-n) * H.hermval(u, coef) * gauss


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.5])
def test_basis_matches_numpy_hermite(sigma):
    x = np.linspace(-6, 6, 41)
    ours = gaussian_derivatives(torch.tensor(x), torch.tensor(sigma, dtype=torch.float64), 6).numpy()
    for n in range(7):
        np.testing.assert_allclose(ours[n], numpy_gaussian_derivative(x, sigma, n), rtol=1e-10, atol=1e-12)


def test_basis_orders_are_derivatives_of_each_other():
    x = torch.linspace(-4, 4, 2001, dtype=torch.float64)
    g = gaussian_derivatives(x, torch.tensor(1.3, dtype=torch.float64), 5)
    dx = x[1] - x[0]
    for n in range(5):
        numeric = (g[n, 2:] - g[n, :-2]) / (2 * dx)
        torch.testing.assert_close(numeric, g[n + 1, 1:-1], atol=1e-4, rtol=0)


def test_2d_basis_is_separable_products():
    layer = NJetConv(1, 1, data_dim=2, order=3, init_sigma=1.5)
    assert len(layer.orders) == 10 and basis_orders(1, 3) == [(0,), (1,), (2,), (3,)]
    basis = layer.basis(9)
    x = torch.arange(9.0) - 4
    g = gaussian_derivatives(x, torch.tensor(1.5), 3)
    for b, (n, m) in enumerate(layer.orders):     # scale-normalized: σⁿ gₙ(x) σᵐ gₘ(y)
        torch.testing.assert_close(basis[b], 1.5 ** (n + m) * torch.outer(g[n], g[m]))


def test_parameter_count():
    layer = NJetConv(5, 7, data_dim=2, order=4)
    assert sum(p.numel() for p in layer.parameters()) == 5 * 7 * 15 + 7 + 1


def test_kernel_size_tied_to_sigma():
    layer = NJetConv(2, 3, data_dim=2, init_sigma=3.0, truncation=2.0)
    assert layer.kernel_size() == njet_kernel_size(3.0, 2.0) == 13
    assert layer.sample_kernel().shape == (3, 2, 13, 13)
    with torch.no_grad():
        layer.log_sigma.fill_(math.log(0.4))
    assert layer.kernel_size() == 3


def test_forward_same_size_stride_and_sigma_gradient():
    layer = NJetConv(2, 3, data_dim=2, init_sigma=1.2)
    y = layer(torch.randn(1, 2, 10, 10))
    assert y.shape == (1, 3, 10, 10)
    y.square().sum().backward()
    assert layer.log_sigma.grad is not None and layer.log_sigma.grad != 0
    assert NJetConv(2, 3, stride=2)(torch.randn(1, 2, 10, 10)).shape == (1, 3, 5, 5)


def test_order_zero_is_a_normalised_blur():
    layer = NJetConv(1, 1, data_dim=2, order=0, init_sigma=1.0, truncation=5.0, bias=False)
    with torch.no_grad():
        layer.alpha.fill_(1.0)
    assert abs(layer.sample_kernel().sum().item() - 1.0) < 1e-3


def test_errors():
    with pytest.raises(ValueError, match="data_dim must be 1 or 2"):
        NJetConv(1, 1, data_dim=3)
    with pytest.raises(ValueError, match="no causal form"):
        build_conv(ConvConfig(type="njet"), 1, 1, data_dim=1, causal=True)
    with pytest.raises(ValueError, match=r"expected input \(B, 2"):
        NJetConv(2, 1)(torch.randn(1, 3, 5, 5))


def test_retarget_njets_keeps_the_continuous_kernel_at_the_new_resolution():
    """After a 16 -> 32 px change σ doubles, so every second sample of the new kernel is the old kernel, scaled by
    the Gaussian's normalisation (2^-(1 + n) per dim for a derivative of order n)."""
    from flexlib.models.njet import retarget_njets
    torch.manual_seed(0)
    conv = NJetConv(1, 1, data_dim=2, order=0, init_sigma=1.3, bias=False).double()
    before, sigma = conv.sample_kernel(9)[0, 0], conv.sigma.item()
    assert retarget_njets(torch.nn.Sequential(conv), 16, 32) == 1
    assert conv.sigma.item() == 2 * sigma and conv.kernel_size() > 9
    after = conv.sample_kernel(17)[0, 0]
    torch.testing.assert_close(after[::2, ::2] * 4, before)


def test_the_basis_is_scale_normalized_as_the_njet_code():
    """σⁿ gₙ: an order-9 basis function at σ = 5 px is as large as the Gaussian, not 5⁻⁹ times smaller."""
    from flexlib.models.njet import scale_normalized_derivatives
    x = torch.linspace(-16, 16, 33, dtype=torch.float64)
    sigma = torch.tensor(5.0, dtype=torch.float64)
    normalized = scale_normalized_derivatives(x, sigma, 9)
    plain = gaussian_derivatives(x, sigma, 9)
    for n in range(10):
        torch.testing.assert_close(normalized[n], sigma ** n * plain[n])
    peaks = normalized.abs().amax(dim=1)
    assert (peaks / peaks[0]).min() > 0.3 and (plain.abs().amax(dim=1) / peaks[0]).min() < 1e-3
    conv = NJetConv(1, 1, data_dim=2, order=9, init_sigma=5.0, bias=False).double()
    assert conv.basis(33).abs().amax(dim=(1, 2)).min() > 0.3 * conv.basis(33)[0].abs().max()
