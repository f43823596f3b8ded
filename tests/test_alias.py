"""§3.3 / App. A: eq. 16, 21, 22, 24, 25, 26–27 against numpy, and the spectrum claim of Fig. 8."""
import numpy as np
import pytest
import torch

from flexlib import CKConv, FlexConv
from flexlib.layers.alias import (alias_loss, filter_max_frequencies, flexconv_max_frequency, magnet_max_frequency,
                           mask_max_frequency, nyquist_frequency)
from flexlib.layers.kernelnets import FourierMFN, SIREN


def np_gabor_fplus(f, sigma_cut=2.0):
    w = f.linear.weight.detach().double().numpy()
    gamma = f.gamma.detach().double().numpy()
    return np.abs(w).max(axis=1) / (2 * np.pi) + sigma_cut * np.abs(gamma).min(axis=1) / (2 * np.pi)


def np_magnet_fplus(net, sigma_cut=2.0):
    return sum(np_gabor_fplus(f, sigma_cut).max() for f in net.filters)


def make_conv(dim=2, seed=0):
    torch.manual_seed(seed)
    conv = FlexConv(2, 3, dim)
    with torch.no_grad():
        conv.mask.sigma_param.copy_(torch.linspace(0.15, 0.4, dim))
        for f in conv.kernel_net.filters:  # signed weights: the frequency is |W|
            f.linear.weight.mul_(torch.sign(torch.randn_like(f.linear.weight)))
    return conv


def test_eq24_nyquist():
    assert nyquist_frequency(33) == 8.0 and nyquist_frequency(65) == 16.0 and nyquist_frequency(1) == 0.0


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_eq16_per_unit(dim):
    conv = make_conv(dim)
    for f in conv.kernel_net.filters:
        np.testing.assert_allclose(filter_max_frequencies(f).detach().numpy(), np_gabor_fplus(f), rtol=1e-5)
        np.testing.assert_allclose(filter_max_frequencies(f, sigma_cut=1.0).detach().numpy(),
                                   np_gabor_fplus(f, 1.0), rtol=1e-5)


@pytest.mark.parametrize("dim", [1, 2])
def test_eq21_and_eq22(dim):
    conv = make_conv(dim)
    f_magnet = np_magnet_fplus(conv.kernel_net)
    assert magnet_max_frequency(conv.kernel_net).item() == pytest.approx(f_magnet, rel=1e-5)
    sigma = conv.mask.sigma.detach().numpy()
    f_mask = 2.0 / (sigma.max() * 2 * np.pi)  # σ_cut / (max σ · 2π)
    assert mask_max_frequency(conv.mask).item() == pytest.approx(f_mask, rel=1e-5)
    assert flexconv_max_frequency(conv).item() == pytest.approx(f_magnet + f_mask, rel=1e-5)
    assert flexconv_max_frequency(conv, include_mask=False).item() == pytest.approx(f_magnet, rel=1e-5)


def test_fourier_mfn_has_only_sine_terms_and_siren_is_refused():
    net = FourierMFN(2, 1)
    expected = sum(np.abs(f.linear.weight.detach().numpy()).max() / (2 * np.pi) for f in net.filters)
    assert magnet_max_frequency(net).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(TypeError, match="SIREN"):
        magnet_max_frequency(SIREN(2, 1))


@pytest.mark.parametrize("include_mask", [False, True])
@pytest.mark.parametrize("size", [9, 33])
def test_eq25_summed_and_eq26_27_together(include_mask, size):
    conv = make_conv(2)
    conv(torch.randn(1, 2, size, size))
    k = size  # odd input: k = input size
    f_nyq = (k - 1) / 4
    layer_f = [np_gabor_fplus(f).max() for f in conv.kernel_net.filters]
    sigma = conv.mask.sigma.detach().numpy()
    f_env = 2.0 / (sigma.max() * 2 * np.pi) if include_mask else 0.0
    summed = max(sum(layer_f) + f_env, f_nyq) - f_nyq
    L = len(layer_f)
    together = sum((max(fl + f_env / L, f_nyq / L) - f_nyq / L) ** 2 for fl in layer_f)
    assert alias_loss(conv, "summed", include_mask).item() == pytest.approx(summed**2, rel=1e-4)
    assert alias_loss(conv, "together", include_mask).item() == pytest.approx(together, rel=1e-4)


def test_loss_is_zero_below_nyquist_and_sums_over_convs():
    model = torch.nn.Sequential(FlexConv(2, 3, 2), FlexConv(3, 3, 2))
    with torch.no_grad():
        for f in (f for conv in model for f in conv.kernel_net.filters):
            f.linear.weight.mul_(1e-3)
            f.gamma.mul_(1e-3)
    model(torch.randn(1, 2, 65, 65))
    assert alias_loss(model).item() == 0.0
    with torch.no_grad():
        model[0].kernel_net.filters[0].linear.weight.mul_(1e6)
    assert alias_loss(model).item() > 0
    assert alias_loss(model).item() == pytest.approx(alias_loss(model[0]).item())
    with torch.no_grad():
        model[1].kernel_net.filters[0].linear.weight.mul_(1e6)
    total = alias_loss(model[0]).item() + alias_loss(model[1]).item()
    assert alias_loss(model).item() == pytest.approx(total, rel=1e-6)


def test_alias_loss_gradient_reduces_frequency():
    conv = make_conv(2)
    conv(torch.randn(1, 2, 17, 17))
    before = magnet_max_frequency(conv.kernel_net).item()
    opt = torch.optim.SGD(conv.parameters(), lr=1e-3)
    for _ in range(5):
        opt.zero_grad()
        alias_loss(conv).backward()
        opt.step()
    assert magnet_max_frequency(conv.kernel_net).item() < before


def test_alias_loss_errors():
    with pytest.raises(RuntimeError, match="forward pass"):
        alias_loss(FlexConv(1, 1, 2))
    with pytest.raises(ValueError, match="method"):
        conv = FlexConv(1, 1, 1)
        conv(torch.randn(1, 1, 9))
        alias_loss(conv, method="mean")
    with pytest.raises(ValueError, match="no FlexConv"):
        alias_loss(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_spectrum_has_no_energy_above_analytic_fplus(seed):
    """Fig. 8's claim: a densely sampled FlexConv kernel holds (almost) no energy above f⁺_FlexConv, while the
    bound is not vacuous (energy remains above f⁺/2)."""
    torch.manual_seed(seed)
    conv = FlexConv(1, 1, 1, kernel_net_kwargs={"input_scale": 256.0})
    with torch.no_grad():
        conv.mask.sigma_param.fill_(0.2)
    n = 8193
    k = conv.sample_kernel(n).detach().double().numpy()[0, 0]
    power = np.abs(np.fft.fft(k)) ** 2
    freqs = np.abs(np.fft.fftfreq(n, d=2 / (n - 1)))  # cycles per unit of the [-1, 1] coordinate
    f_plus = flexconv_max_frequency(conv).item()
    assert f_plus < freqs.max()
    assert power[freqs > f_plus].sum() / power.sum() < 1e-6
    assert power[freqs > f_plus / 2].sum() / power.sum() > 1e-8


def test_ckconv_has_no_mask_term():
    conv = CKConv(1, 1, 2)
    assert flexconv_max_frequency(conv).item() == pytest.approx(magnet_max_frequency(conv.kernel_net).item())
