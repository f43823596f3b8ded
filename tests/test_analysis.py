"""flexlib.paper.analysis: spectra in cycles per unit of [-1, 1], masks on a grid (eq. 1), frequencies per layer (eq. 21-24)."""
import math

import pytest
import torch

from flexlib import FlexConv
from flexlib.layers.alias import flexconv_max_frequency, magnet_max_frequency, nyquist_frequency
from flexlib.paper.analysis import (amplitude_spectrum, flexconv_layers, frequency_table, mask_on_grid, mask_table,
                              strongest_kernel)
from flexlib.models import create


@pytest.mark.parametrize("k, f", [(33, 3.0), (65, 5.0), (17, 2.0)])
def test_spectrum_of_a_cosine_peaks_at_its_frequency(k, f):
    x = torch.linspace(-1, 1, k)
    kernel = torch.cos(2 * math.pi * f * x)[:, None] * torch.ones(k)[None, :]
    spectrum, freqs = amplitude_spectrum(kernel)
    peak_row = spectrum.sum(dim=1).argmax()
    # the bin spacing is (k - 1) / (2 k): the peak lies within one bin of f, and the axis ends at f_Nyq(k)
    assert abs(abs(float(freqs[peak_row])) - f) <= (k - 1) / (2 * k)
    assert float(freqs.abs().max()) == pytest.approx(nyquist_frequency(k), rel=1 / k + 1e-6)


def test_mask_on_grid_is_eq1():
    conv = FlexConv(2, 3, data_dim=2)
    with torch.no_grad():
        conv.mask.mean_param.copy_(torch.tensor([0.2, -0.1]))
        conv.mask.sigma_param.copy_(torch.tensor([0.3, 0.5]))
    grid = mask_on_grid(conv, 9)
    x = torch.linspace(-1, 1, 9)
    expected = torch.exp(-0.5 * (x[:, None] - 0.2) ** 2 / 0.09) * torch.exp(-0.5 * (x[None, :] + 0.1) ** 2 / 0.25)
    torch.testing.assert_close(grid, expected, atol=1e-6, rtol=1e-5)


def test_frequency_table_matches_the_alias_functions_layer_by_layer():
    torch.manual_seed(0)
    model = create("flexnet-3", 3, 10, width=4)
    layers = flexconv_layers(model)
    rows = frequency_table(model, 16)
    assert [r["layer"] for r in rows] == [n for n, _ in layers] and len(rows) == 7
    for row, (_, conv) in zip(rows, layers):
        assert row["k"] == 17 and row["f_nyquist"] == 4.0
        assert row["f_magnet"] == pytest.approx(float(magnet_max_frequency(conv.kernel_net).detach()))
        assert row["f_flexconv"] == pytest.approx(float(flexconv_max_frequency(conv).detach()))
        assert row["f_flexconv"] > row["f_magnet"]


def test_strongest_kernel_and_mask_table():
    torch.manual_seed(0)
    conv = FlexConv(2, 3, data_dim=2)
    kernel, (o, i) = strongest_kernel(conv, 9)
    full = conv.sample_kernel(9).detach()
    torch.testing.assert_close(kernel, full[o, i])
    assert kernel.norm() == pytest.approx(float(full.flatten(2).norm(dim=-1).max()))
    model = create("flexnet-3", 3, 10, width=4, mask_init="official")
    table = mask_table(model, 32)
    assert len(table) == 7 and all(r["sigma[0]"] == pytest.approx(0.075) for r in table)
    assert all(r["cropped_size"] == "5x5" for r in table)   # σ = 0.075: ±0.16 of [-1, 1] on a 33-point grid
