"""Kodak image fitting (Table 5): the grid, PSNR, and that fitting improves the reconstruction."""
import json
import math

import pytest
import torch

from flexlib.paper.kodak_fitting import FitConfig
from flexlib.data.kodak_images import kodak_image
from flexlib.paper.fitting import coordinate_grid, fit_image, psnr
from flexlib.paper.kodak_fitting import run_fit


def test_grid_spans_the_square_in_image_order():
    g = coordinate_grid(3, 4)
    assert g.shape == (12, 2)
    assert torch.equal(g[0], torch.tensor([-1.0, -1.0])) and torch.equal(g[-1], torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(g[1], torch.tensor([-1.0, -1 + 2 / 3]))          # x runs fastest, as in a row-major image


def test_psnr_clamps_and_matches_the_definition():
    target = torch.full((10, 3), 0.5)
    assert math.isclose(psnr(target + 0.1, target), 10 * math.log10(1 / 0.01), rel_tol=1e-5)
    assert psnr(torch.full((10, 3), 7.0), torch.ones(10, 3)) == math.inf      # clamped to 1 before comparing


def test_kodak_ships_24_images():
    sizes = {tuple(kodak_image(n).shape) for n in range(1, 25)}
    assert sizes == {(3, 512, 768), (3, 768, 512)}


def test_fitting_beats_the_mean_color(tmp_path):
    rows = run_fit(FitConfig(rows=["magnet"], images=[23], iterations=60, downsample=32, out_dir=str(tmp_path)),
                   run_dir=tmp_path / "fit")
    image = torch.nn.functional.interpolate(kodak_image(23)[None], size=(16, 24), mode="bilinear",
                                            antialias=True)[0]
    baseline = psnr(image.mean(dim=(1, 2), keepdim=True).expand_as(image), image)
    assert rows[0]["psnr"] > baseline + 1
    summary = json.loads((tmp_path / "fit" / "summary.json").read_text())
    assert summary["mean_psnr"]["magnet"] == rows[0]["psnr"]


def test_fit_image_records_a_rising_psnr_curve_and_the_reconstruction():
    torch.manual_seed(0)
    image = torch.rand(3, 1, 1) * torch.linspace(0, 1, 12).view(1, 1, 12).expand(3, 8, 12)  # a smooth ramp
    net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 3))
    result = fit_image(net, image, iterations=200, lr=0.01, record_every=50)
    assert [step for step, _ in result.curve] == [0, 50, 100, 150, 200]
    assert result.curve[-1][1] == result.psnr and result.curve[-1][1] > result.curve[0][1] + 5
    assert result.reconstruction.shape == image.shape
    assert result.psnr == pytest.approx(psnr(result.reconstruction.reshape(3, -1).t(), image.reshape(3, -1).t()))


def test_the_alexnet_target_offline_is_one_error_and_prints_no_host_path(monkeypatch, capsys):
    """torch.hub announces a download on stdout with the cache's absolute path; an executed notebook must not show it."""
    import sys
    import urllib.error

    import torchvision

    from flexlib.paper import kernel_fitting

    def offline(**kwargs):
        sys.stdout.write('Downloading: "https://download.pytorch.org/models/x.pth" to /root/.cache/torch/hub/x.pth\n')
        sys.stderr.write("progress\n")
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models, "alexnet", offline)
    with pytest.raises(RuntimeError, match="pretrained AlexNet weights"):
        kernel_fitting.alexnet_target()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "", captured
