"""Fig. 3: why a continuous kernel needs a learned size. A coordinate network fitted to a localized signal — the
flower of scikit-learn's flower.jpg inside a larger empty frame — with and without a learned Gaussian mask:

- "MAGNet on a w px window": MAGNet alone predicts every pixel of a w × w window centred on the flower, from the
  whole frame (no localization: it spends capacity on the zeros around the flower) down to the flower itself
  (perfect localization): Fig. 3(b)'s "varying degrees of localization";
- "MAGNet × learned mask": ψ(x) = w_gauss(x; μ, σ) · MAGNet(x) (eq. 1) on the whole frame, μ and σ learned with the
  network, and the network evaluated only where the mask exceeds the crop threshold (dynamic cropping, §5); outside
  it predicts 0: a localization learned, not given.

All have the same MAGNet (the mask adds 4 parameters); each is fitted with full-batch Adam. Recorded: the MSE
inside the flower's region against iterations, the time per iteration and the points the network is evaluated on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..layers.kernelnets import MAGNet
from ..layers.mask import GaussianMask
from .fitting import coordinate_grid

FLOWER_BOX = (80, 360, 165, 445)      # rows, columns of the flower in flower.jpg (427 × 640), a 280 px square
MASKED = "MAGNet × learned mask (cropped)"


def window_label(window: int) -> str:
    return f"MAGNet on a {window} px window"


def flower_in_frame(frame: int = 96, flower: int = 32) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """A (3, frame, frame) image in [0, 1]: zeros with flower.jpg's flower shrunk to flower × flower px at its centre;
    and the flower's region as (row slice, column slice)."""
    from sklearn.datasets import load_sample_image
    top, bottom, left, right = FLOWER_BOX
    photo = torch.from_numpy(load_sample_image("flower.jpg")[top:bottom, left:right].copy()).permute(2, 0, 1)
    small = F.interpolate(photo[None].float() / 255.0, size=(flower, flower), mode="bilinear", antialias=True)[0]
    image = torch.zeros(3, frame, frame)
    start = (frame - flower) // 2
    region = (slice(start, start + flower), slice(start, start + flower))
    image[:, region[0], region[1]] = small.clamp(0, 1)
    return image, region


@dataclass
class Fit:
    variant: str                                # window_label(w) or MASKED
    window: int                                 # the grid fitted (the frame for the learned mask)
    seed: int
    params: int
    region_mse: list[tuple[int, float]] = field(default_factory=list)   # (iteration, MSE inside the flower)
    seconds_per_iteration: float = 0.0
    points_per_iteration: float = 0.0           # coordinates the network is evaluated on (mean over iterations)
    reconstruction: torch.Tensor | None = None  # (3, frame, frame) in [0, 1]
    mask: tuple[list[float], list[float]] | None = None   # learned μ, σ (learned mask only)

    @property
    def final_region_mse(self) -> float:
        return self.region_mse[-1][1]


class MaskedMAGNet(torch.nn.Module):
    """w_gauss(x; μ, σ) · MAGNet(x), evaluated only on the coordinates inside the mask's crop box (a 2-D FlexConv's
    kernel, §3.1 and §5, with the frame as its grid)."""

    def __init__(self, net: MAGNet, init_variance: float, crop_threshold: float = 0.1):
        super().__init__()
        self.net, self.mask = net, GaussianMask(2, init_variance=init_variance)
        self.crop_threshold = crop_threshold

    def forward(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(values at the kept coordinates, boolean index of the kept coordinates)."""
        low, high = (coords.new_tensor(v) for v in self.mask.support(self.crop_threshold))
        keep = ((coords >= low) & (coords <= high)).all(dim=1)
        inside = coords[keep]
        return self.net(inside) * self.mask(inside).unsqueeze(-1), keep


def fit(image: torch.Tensor, region, *, window: int | None = None, learned_mask: bool = False, iterations: int,
        lr: float, seed: int, hidden: int = 32, layers: int = 3, input_scale: float = 25.6,
        mask_init_variance: float = 0.125, record_every: int = 25) -> Fit:
    """Fit MAGNet to the `window` × `window` part of `image` (3, H, W) centred on the flower (default: the whole
    frame), or, with `learned_mask`, MAGNet × a learned Gaussian mask to the whole frame; record the MSE inside
    `region` (the flower)."""
    frame = image.shape[-1]
    window = frame if window is None or learned_mask else window
    flower = region[0].stop - region[0].start
    if not flower <= window <= frame or (window - flower) % 2:
        raise ValueError(f"window must lie between the flower ({flower}) and the frame ({frame}) px, centred on the "
                         f"flower (same parity), got {window}")
    torch.manual_seed(seed)
    net = MAGNet(2, 3, hidden_features=hidden, num_layers=layers, input_scale=input_scale)
    start = (frame - window) // 2
    target_image = image[:, start:start + window, start:start + window]
    coords = coordinate_grid(window, window)
    target = target_image.reshape(3, -1).t()
    model = MaskedMAGNet(net, mask_init_variance) if learned_mask else net
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    in_region = torch.zeros(window, window, dtype=torch.bool)
    offset = region[0].start - start
    in_region[offset:offset + flower, offset:offset + flower] = True
    in_region = in_region.reshape(-1)

    def predict() -> tuple[torch.Tensor, int]:
        if not learned_mask:
            return model(coords), len(coords)
        values, keep = model(coords)
        return torch.zeros_like(target).index_put((keep.nonzero().squeeze(1),), values), int(keep.sum())

    result = Fit(MASKED if learned_mask else window_label(window), window, seed,
                 sum(p.numel() for p in model.parameters()))
    seconds, points = 0.0, 0
    for step in range(iterations + 1):
        begin = time.perf_counter()
        out, n = predict()
        loss = F.mse_loss(out, target)
        if step % record_every == 0 or step == iterations:
            result.region_mse.append((step, float(F.mse_loss(out.detach()[in_region], target[in_region]))))
        if step == iterations:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds += time.perf_counter() - begin
        points += n
    result.seconds_per_iteration = seconds / max(1, iterations)
    result.points_per_iteration = points / max(1, iterations)
    result.reconstruction = out.detach().clamp(0, 1).t().reshape(3, window, window)
    if learned_mask:
        result.mask = (model.mask.mean.detach().tolist(), model.mask.sigma.detach().tolist())
    return result


def run(image: torch.Tensor, region, seeds: list[int], windows: list[int], **kwargs) -> list[Fit]:
    """MAGNet on every window, and MAGNet × a learned mask on the whole frame, with every seed."""
    fits = [fit(image, region, window=w, seed=s, **kwargs) for w in windows for s in seeds]
    return fits + [fit(image, region, learned_mask=True, seed=s, **kwargs) for s in seeds]
