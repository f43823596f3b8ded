"""Eq. 1 (Gaussian mask), its gradients, its initialization and the crop it implies."""
import math

import numpy as np
import pytest
import torch

from flexlib import FlexConv, GaussianMask
from flexlib.layers.grids import crop_range


def test_eq1_matches_numpy_anisotropic():
    mask = GaussianMask(2)
    with torch.no_grad():
        mask.mean_param.copy_(torch.tensor([0.3, -0.2]))
        mask.sigma_param.copy_(torch.tensor([0.25, 0.6]))
    coords = torch.rand(50, 2) * 2 - 1
    ours = mask(coords).detach().numpy()
    c = coords.numpy()
    ref = np.exp(-0.5 * ((c[:, 0] - 0.3) / 0.25) ** 2) * np.exp(-0.5 * ((c[:, 1] + 0.2) / 0.6) ** 2)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_mean_and_sigma_in_paper_units(dim):
    mask = GaussianMask(dim)
    assert mask.mean.shape == (dim,) and mask.sigma.shape == (dim,)
    np.testing.assert_allclose(mask.sigma.detach().numpy() ** 2, 0.125, rtol=1e-6)  # App. D.1
    official = GaussianMask(dim, init_sigma=0.075)
    np.testing.assert_allclose(official.sigma.detach().numpy(), 0.075, rtol=1e-6)


def test_sequence_mask_starts_at_last_position_and_first_as_option():
    assert FlexConv(1, 1, 1, causal=True).mask.mean.item() == 1.0
    assert FlexConv(1, 1, 1, causal=True, mask_init_mean="first").mask.mean.item() == -1.0
    assert FlexConv(1, 1, 2).mask.mean.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("sigma", [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0])
def test_gradients_finite_as_sigma_shrinks(sigma):
    mask = GaussianMask(2)
    with torch.no_grad():
        mask.sigma_param.fill_(sigma)
        mask.mean_param.fill_(0.01)
    coords = torch.linspace(-1, 1, 65)
    coords = torch.stack(torch.meshgrid(coords, coords, indexing="ij"), -1).reshape(-1, 2)
    mask(coords).sum().backward()
    assert torch.isfinite(mask.sigma_param.grad).all() and torch.isfinite(mask.mean_param.grad).all()


def test_gradcheck_float64():
    mask = GaussianMask(2, rotated=True).double()
    with torch.no_grad():
        mask.theta.fill_(0.3)
    coords = (torch.rand(20, 2, dtype=torch.float64) * 2 - 1)

    def f(mu, sigma, theta):
        return torch.func.functional_call(mask, {"mean_param": mu, "sigma_param": sigma, "theta": theta}, (coords,))

    args = (torch.tensor([0.1, -0.3], dtype=torch.float64, requires_grad=True),
            torch.tensor([0.4, 0.2], dtype=torch.float64, requires_grad=True),
            torch.tensor(0.3, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(f, args)


def test_rotated_mask_is_eq1_in_rotated_frame():
    mask = GaussianMask(2, rotated=True)
    with torch.no_grad():
        mask.sigma_param.copy_(torch.tensor([0.1, 0.5]))
        mask.theta.fill_(math.pi / 2)  # a quarter turn swaps the axes' widths
    coords = torch.rand(30, 2) * 2 - 1
    swapped = GaussianMask(2)
    with torch.no_grad():
        swapped.sigma_param.copy_(torch.tensor([0.5, 0.1]))
    torch.testing.assert_close(mask(coords), swapped(coords), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1, 0.2, 0.35, 0.45, 1.0])
@pytest.mark.parametrize("size", [33, 65])
def test_crop_keeps_exactly_the_points_above_threshold(sigma, size):
    """A centred mask: the crop keeps the grid points where w_gauss ≥ 0.1, and the kernel stays odd."""
    conv = FlexConv(1, 1, 2)
    with torch.no_grad():
        conv.mask.sigma_param.fill_(sigma)
    axes = conv.crop_axes((size, size))
    x = np.linspace(-1, 1, size)
    expected = int((np.exp(-0.5 * (x / sigma) ** 2) >= 0.1).sum())
    assert [len(a) for a in axes] == [expected, expected]
    assert expected % 2 == 1


def test_crop_off_centre_is_symmetric_to_the_largest_root():
    start, stop = crop_range(33, low=0.05, high=0.55, causal=False)
    kept = np.linspace(-1, 1, 33)[start:stop]
    assert (stop - start) % 2 == 1
    assert kept.max() <= 0.55 + 1e-9 and kept.max() > 0.55 - 2 / 32
    assert kept.min() == -kept.max()


def test_causal_crop_cuts_only_the_past():
    conv = FlexConv(1, 1, 1, causal=True)
    with torch.no_grad():
        conv.mask.sigma_param.fill_(0.1)
    (axis,) = conv.crop_axes((101,))
    x = np.linspace(-1, 1, 101)
    assert axis[-1].item() == 1.0
    assert len(axis) == int((np.exp(-0.5 * ((x - 1) / 0.1) ** 2) >= 0.1).sum())


def test_bad_mask_arguments():
    with pytest.raises(ValueError, match="data_dim"):
        GaussianMask(4)
    with pytest.raises(ValueError, match="init_mean"):
        GaussianMask(1, init_mean="middle")
    with pytest.raises(ValueError, match="rotated"):
        GaussianMask(1, rotated=True)


@pytest.mark.parametrize("eps", [0.0, 1e-8, 1e-3])
def test_eps_enters_eq1_and_the_crop_as_sigma_squared_plus_eps(eps):
    """w = exp(-½ (x - μ)² / (σ² + ε)) and the crop keeps exactly the grid points where that w ≥ 0.1, for the ε the
    mask holds (FlexConv(mask_eps=...) passes it on)."""
    conv = FlexConv(1, 1, 2, mask_eps=eps).double()
    assert conv.mask.eps == eps
    sigma, size = 0.05, 129
    with torch.no_grad():
        conv.mask.sigma_param.fill_(sigma)
    x = np.linspace(-1, 1, size)
    w = np.exp(-0.5 * x**2 / (sigma**2 + eps))
    coords = torch.tensor(np.stack([x, np.zeros_like(x)], -1))
    np.testing.assert_allclose(conv.mask(coords).detach().numpy(), w, rtol=1e-12)
    expected = int((w >= 0.1).sum())
    assert [len(a) for a in conv.crop_axes((size, size))] == [expected, expected]


def test_mask_eps_must_be_a_non_negative_number():
    for bad in (-1e-8, float("nan"), "0"):
        with pytest.raises(ValueError, match="eps"):
            GaussianMask(2, eps=bad)
    with pytest.raises(TypeError, match="mask_eps"):
        from flexlib import CKConv
        CKConv(1, 1, 1, mask_eps=0.0)
