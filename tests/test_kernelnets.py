"""Eq. 2–8 (MFNs, MAGNet), the initializations of §3.2/App. D.1, SIREN, against numpy references."""
import math

import numpy as np
import pytest
import torch

from flexlib import SIREN, FourierMFN, GaborMFN, MAGNet, build_kernel_net


def numpy_mfn(net, coords, anisotropic=True, fourier=False):
    """Independent eq. 2–4 with eq. 7 (or eq. 5 / Fourier) filters, from the parameters only."""
    x = coords.astype(np.float64)

    def g(f):
        w = f.linear.weight.detach().double().numpy()
        b = f.linear.bias.detach().double().numpy()
        s = np.sin(x @ w.T + b)
        if fourier:
            return s
        gamma = f.gamma.detach().double().numpy()  # (h, D) or (h, 1)
        mu = f.mu.detach().double().numpy()
        env = np.zeros((x.shape[0], w.shape[0]))
        for d in range(x.shape[1]):
            gd = gamma[:, d] if anisotropic else gamma[:, 0]
            env += (gd[None, :] * (x[:, d:d + 1] - mu[None, :, d])) ** 2
        return np.exp(-0.5 * env) * s

    h = g(net.filters[0])
    for lin, f in zip(net.linears, net.filters[1:]):
        h = (h @ lin.weight.detach().double().numpy().T + lin.bias.detach().double().numpy()) * g(f)
    out = net.output_linear
    return h @ out.weight.detach().double().numpy().T + out.bias.detach().double().numpy()


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_magnet_eq7_matches_numpy(dim):
    net = MAGNet(dim, 6, hidden_features=16, num_layers=3)
    coords = np.random.default_rng(0).uniform(-1, 1, (40, dim))
    ours = net(torch.tensor(coords, dtype=torch.float32)).detach().double().numpy()
    np.testing.assert_allclose(ours, numpy_mfn(net, coords), rtol=1e-4, atol=1e-5)


def test_gabor_mfn_eq5_is_isotropic_and_matches_numpy():
    net = GaborMFN(2, 4, hidden_features=16)
    assert all(f.gamma.shape == (16, 1) for f in net.filters)
    coords = np.random.default_rng(1).uniform(-1, 1, (40, 2))
    ours = net(torch.tensor(coords, dtype=torch.float32)).detach().double().numpy()
    np.testing.assert_allclose(ours, numpy_mfn(net, coords, anisotropic=False), rtol=1e-4, atol=1e-5)


def test_fourier_mfn_matches_numpy():
    net = FourierMFN(2, 4, hidden_features=16)
    coords = np.random.default_rng(2).uniform(-1, 1, (40, 2))
    ours = net(torch.tensor(coords, dtype=torch.float32)).detach().double().numpy()
    np.testing.assert_allclose(ours, numpy_mfn(net, coords, fourier=True), rtol=1e-4, atol=1e-5)


def test_magnet_structure_is_three_layers_of_the_paper():
    net = MAGNet(2, 10)
    assert len(net.filters) == 4 and len(net.linears) == 3  # 3 hidden linears, 4 Gabor filters
    assert net.linears[0].in_features == 32


def _gamma_means(init, n=4000):
    net = MAGNet(2, 1, hidden_features=n, num_layers=3, init=init)
    return [f.gamma.mean().item() for f in net.filters]


def test_layerwise_gamma_init_follows_gamma_alpha_over_l():
    """§3.2: γ ~ Gamma(α/l, β) at layer l: mean α/(lβ) = 6/l. Fathony et al.: Gamma(α/L, β) everywhere: 6/4."""
    torch.manual_seed(0)
    np.testing.assert_allclose(_gamma_means("layerwise"), [6.0, 3.0, 2.0, 1.5], rtol=0.06)
    np.testing.assert_allclose(_gamma_means("fathony"), [1.5] * 4, rtol=0.06)


def test_sine_weights_scaled_by_gamma_and_biases_uniform_pi():
    net = MAGNet(1, 1, hidden_features=5000, num_layers=3, input_scale=25.6)
    f = net.filters[0]
    ratio = (f.linear.weight / (f.gamma * 25.6 / math.sqrt(4))).detach()
    assert ratio.abs().max() <= 1.0 + 1e-5  # U(-1/√D, 1/√D) with D = 1
    assert ratio.abs().mean().item() == pytest.approx(0.5, abs=0.03)
    b = f.linear.bias.detach()
    assert b.min() >= -math.pi and b.max() <= math.pi and b.std().item() == pytest.approx(math.pi / math.sqrt(3), rel=0.05)


def test_siren_matches_numpy():
    net = SIREN(2, 3, hidden_features=16, num_layers=3, omega_0=10.0)
    x = np.random.default_rng(3).uniform(-1, 1, (30, 2))
    h = x
    for layer in net.hidden:
        h = np.sin(10.0 * (h @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()))
    ref = h @ net.output_linear.weight.detach().double().numpy().T + net.output_linear.bias.detach().double().numpy()
    np.testing.assert_allclose(net(torch.tensor(x, dtype=torch.float32)).detach().numpy(), ref, rtol=1e-4, atol=1e-5)
    assert len(net.hidden) == 2  # "3 layers" = D→h, h→h, h→out (CKConv's convention)


def test_bad_kernel_net_arguments():
    with pytest.raises(ValueError, match="unknown kernel_net 'mlp'.*available"):
        build_kernel_net("mlp", 2, 4)
    with pytest.raises(ValueError, match="hidden_features must be a positive integer"):
        MAGNet(2, 4, hidden_features=0)
    with pytest.raises(ValueError, match="num_layers"):
        SIREN(2, 4, num_layers=-1)
    with pytest.raises(ValueError, match="init must be"):
        MAGNet(2, 4, init="xavier")
    with pytest.raises(ValueError, match=r"coords must have shape \(N, 2\)"):
        MAGNet(2, 4)(torch.zeros(5, 3))
