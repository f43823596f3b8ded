"""Fig. 3's fits (flexlib.paper.dynamic_sizes): the target holds the real flower where it says, the masked fit
evaluates its network only inside the crop and predicts zero outside, windows localize, and every fit learns."""
import pytest
import torch

from flexlib.paper import dynamic_sizes


def test_flower_sits_in_an_empty_frame():
    image, region = dynamic_sizes.flower_in_frame(frame=40, flower=16)
    inside = torch.zeros(40, 40, dtype=torch.bool)
    inside[region] = True
    assert image.shape == (3, 40, 40) and region == (slice(12, 28), slice(12, 28))
    assert (image[:, ~inside] == 0).all() and image[:, inside].mean() > 0.2 and image.max() <= 1


def test_windows_and_the_learned_mask_fit_what_they_say_and_every_fit_learns():
    image, region = dynamic_sizes.flower_in_frame(frame=32, flower=12)
    kwargs = dict(iterations=30, lr=0.01, seed=0, hidden=8, layers=2, record_every=10)
    fits = {w: dynamic_sizes.fit(image, region, window=w, **kwargs) for w in (12, 20, 32)}
    masked = dynamic_sizes.fit(image, region, learned_mask=True, **kwargs)
    assert [f.points_per_iteration for f in fits.values()] == [144, 400, 1024]
    assert fits[12].reconstruction.shape == (3, 12, 12)
    assert masked.params == fits[32].params + 4 and masked.window == 32            # μ and σ of a 2-D mask
    assert 0 < masked.points_per_iteration < 32 * 32                              # σ² = 0.125 crops to ±0.76
    (mu, sigma), recon = masked.mask, masked.reconstruction
    radius = (-2 * torch.log(torch.tensor(0.1))).sqrt().item()
    outside = (torch.linspace(-1, 1, 32) - mu[1]).abs() > radius * sigma[1]
    assert (recon[:, :, outside] == 0).all()                                      # zero where the crop cut the grid
    assert all(f.region_mse[-1][1] < f.region_mse[0][1] for f in [*fits.values(), masked])
    assert [i for i, _ in masked.region_mse] == [0, 10, 20, 30]
    with pytest.raises(ValueError, match="window"):
        dynamic_sizes.fit(image, region, window=15, **kwargs)
