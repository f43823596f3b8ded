"""FlexConv (§3.1): a continuous kernel ψ(x) = w_gauss(x; μ, σ) · MLP^ψ(x) with a learnable size, and CKConv.

The kernel is sampled on a grid over [-1, 1]^D whose length follows the input (odd sizes as they are, even
sizes + 1; App. A.2), cropped to where the mask exceeds `crop_threshold` (dynamic cropping, §5), and applied as a
'same' convolution (images) or a causal one (sequences), spatially or through the FFT.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .functional import conv_nd, fft_conv_nd, prefer_fft
from .kernelnets import build_kernel_net
from .mask import OFFICIAL_INIT_SIGMA, PAPER_INIT_VARIANCE, GaussianMask

CONV_MODES = ("auto", "spatial", "fft")


def kernel_size_for(input_size: int) -> int:
    """Kernel size that follows the input: odd sizes as they are, even sizes + 1 (App. A.2)."""
    return input_size if input_size % 2 == 1 else input_size + 1


def grid(size: int, device=None, dtype=None) -> torch.Tensor:
    """`size` equidistant kernel positions over [-1, 1]."""
    return torch.linspace(-1.0, 1.0, size, device=device, dtype=dtype)


def crop_range(size: int, low: float, high: float, causal: bool) -> tuple[int, int]:
    """Index range [start, stop) of the `size`-point grid over [-1, 1] kept by the crop to [low, high].

    Non-causal: symmetric around the centre to the largest |root|, so the kernel stays odd and centred.
    Causal: only the past side (x < low) is cut; position +1 (the current step) is always kept."""
    if size == 1:
        return 0, 1
    step = 2.0 / (size - 1)
    tol = 1e-6
    if causal:
        start = max(0, min(size - 1, math.ceil((low + 1.0) / step - tol)))
        return start, size
    half = max(abs(low), abs(high))
    keep = min(size // 2, math.floor(half / step + tol))
    centre = size // 2
    return centre - keep, centre + keep + 1


class FlexConv(nn.Module):
    """Flexible Size Continuous Kernel Convolution.

    Args:
        in_channels, out_channels: channels of the input and output.
        data_dim: D, 1 (sequences), 2 (images) or 3 (volumes).
        kernel_net: "magnet" (default), "gabor", "fourier", "siren", or an nn.Module mapping (N, D) coordinates
            to (N, out_channels·in_channels).
        causal: causal convolution for sequences (D = 1): output t sees inputs ≤ t.
        crop_threshold: dynamic cropping keeps the part of the kernel where the mask exceeds this value
            (0.1 in the paper); None disables cropping.
        conv_mode: "spatial", "fft", or "auto" (chosen per call from the cropped kernel and input sizes).
        hidden_features, num_layers: kernel network size (paper: 32 and 3).
        mask: use the Gaussian mask (False gives CKConv: a global kernel).
        mask_init: "paper" (σ² = 0.125, App. D.1) or "official" (σ = 0.075, the official code's commands).
        mask_init_mean: "last" (default for causal; §4.2), "first" (§5) or "center" (default otherwise).
        rotated_mask: learn a rotation of the 2-D mask (App. D.3).
        kernel_net_kwargs: further arguments of the kernel network (e.g. init="fathony", omega_0=...).
        cache_kernel: in eval mode without autograd, reuse the sampled kernel while the parameters, the input
            size, `sampling_rate_norm` and `crop_threshold` are unchanged (see `_cache_key`).

    `sampling_rate_norm` multiplies the kernel: (r₁/r₂)^D after resolution transfer (eq. 9, see
    flexlib.resolution). `last_kernel_size` is the uncropped kernel size of the latest forward pass: the k of
    f_Nyq(k) (eq. 24).
    """

    def __init__(self, in_channels: int, out_channels: int, data_dim: int, kernel_net="magnet", causal: bool = False,
                 crop_threshold: float | None = 0.1, conv_mode: str = "auto", hidden_features: int = 32,
                 num_layers: int = 3, mask: bool = True, bias: bool = True, mask_init: str = "paper",
                 mask_init_mean=None, rotated_mask: bool = False, kernel_net_kwargs: dict | None = None,
                 cache_kernel: bool = True):
        super().__init__()
        name = type(self).__name__
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: {arg} must be a positive integer, got {value!r}")
        if data_dim not in (1, 2, 3):
            raise ValueError(f"{name}: data_dim must be 1, 2 or 3, got {data_dim!r}")
        if causal and data_dim != 1:
            raise ValueError(f"{name}: causal=True is for sequences (data_dim=1), got data_dim={data_dim}")
        if conv_mode not in CONV_MODES:
            raise ValueError(f"{name}: conv_mode must be one of {CONV_MODES}, got {conv_mode!r}")
        if crop_threshold is not None and not 0.0 < crop_threshold < 1.0:
            raise ValueError(f"{name}: crop_threshold must lie in (0, 1) or be None, got {crop_threshold!r}")
        if mask_init not in ("paper", "official"):
            raise ValueError(f"{name}: mask_init must be 'paper' or 'official', got {mask_init!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.data_dim = data_dim
        self.causal = causal
        self.crop_threshold = crop_threshold
        self.conv_mode = conv_mode
        if isinstance(kernel_net, nn.Module):
            self.kernel_net = kernel_net
        else:
            self.kernel_net = build_kernel_net(kernel_net, data_dim, out_channels * in_channels,
                                               hidden_features=hidden_features, num_layers=num_layers,
                                               **(kernel_net_kwargs or {}))
        if mask:
            init_mean = mask_init_mean or ("last" if causal else "center")
            sigma_kw = {"init_sigma": OFFICIAL_INIT_SIGMA} if mask_init == "official" else \
                {"init_variance": PAPER_INIT_VARIANCE}
            self.mask = GaussianMask(data_dim, init_mean=init_mean, rotated=rotated_mask, **sigma_kw)
        else:
            self.mask = None
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.sampling_rate_norm = 1.0
        self.last_kernel_size: tuple[int, ...] | None = None
        self.last_conv_mode: str | None = None
        self.cache_kernel = cache_kernel
        self._kernel_cache: tuple | None = None

    # -- kernel --------------------------------------------------------------------------------------------
    def _kernel_on(self, axes: list[torch.Tensor]) -> torch.Tensor:
        """ψ on the product grid of the 1-D positions `axes`: (out, in, *len(axes))."""
        mesh = torch.meshgrid(*axes, indexing="ij")
        coords = torch.stack([m.reshape(-1) for m in mesh], dim=-1)
        values = self.kernel_net(coords)
        if self.mask is not None:
            values = values * self.mask(coords).unsqueeze(-1)
        size = [len(a) for a in axes]
        values = values.reshape(*size, self.out_channels, self.in_channels)
        return values.movedim((-2, -1), (0, 1))

    def crop_axes(self, kernel_size, device=None, dtype=None) -> list[torch.Tensor]:
        """The kernel positions kept by dynamic cropping for an uncropped `kernel_size` (one tensor per dim)."""
        axes = [grid(k, device, dtype) for k in kernel_size]
        if self.mask is None or self.crop_threshold is None:
            return axes
        low, high = self.mask.support(self.crop_threshold)
        kept = []
        for axis, k, lo, hi in zip(axes, kernel_size, low.tolist(), high.tolist()):
            start, stop = crop_range(k, lo, hi, self.causal)
            kept.append(axis[start:stop])
        return kept

    def sample_kernel(self, size) -> torch.Tensor:
        """The masked kernel (out, in, *size) on `size` points per dim over [-1, 1]^D, uncropped and without the
        resolution factor."""
        size = (size,) * self.data_dim if isinstance(size, int) else tuple(size)
        if len(size) != self.data_dim or any(s < 1 for s in size):
            raise ValueError(f"{type(self).__name__}.sample_kernel: size must be {self.data_dim} positive ints, "
                             f"got {size}")
        p = next(self.kernel_net.parameters())
        return self._kernel_on([grid(s, p.device, p.dtype) for s in size])

    def kernel_for(self, input_size) -> torch.Tensor:
        """The cropped kernel used on an input of spatial size `input_size`, resolution factor included."""
        kernel_size = tuple(kernel_size_for(n) for n in input_size)
        p = next(self.kernel_net.parameters())
        kernel = self._kernel_on(self.crop_axes(kernel_size, p.device, p.dtype))
        self.last_kernel_size = kernel_size
        return kernel * self.sampling_rate_norm if self.sampling_rate_norm != 1.0 else kernel

    # -- forward -------------------------------------------------------------------------------------------
    def _check_input(self, x) -> None:
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name}: expected a real floating-point input, got dtype {x.dtype}")
        if x.dim() != self.data_dim + 2:
            raise ValueError(f"{name}: data_dim={self.data_dim} expects input (B, C, {', '.join('*' * self.data_dim)})"
                             f" of rank {self.data_dim + 2}, got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{name}: expected {self.in_channels} input channels, got {x.shape[1]} "
                             f"(input shape {tuple(x.shape)})")
        if any(n == 0 for n in x.shape[2:]) or x.shape[0] == 0:
            raise ValueError(f"{name}: empty input, shape {tuple(x.shape)}")

    def _cache_key(self, input_size) -> tuple:
        """Everything the kernel depends on. A parameter's `_version` counts its in-place updates (optimizer
        steps, load_state_dict, fill_); its storage pointer changes when it is replaced or moved (.to, .data=)."""
        params = tuple((id(p), p.data_ptr(), p._version, p.dtype, p.device) for p in self.parameters())
        return tuple(input_size), self.sampling_rate_norm, self.crop_threshold, params

    def _kernel(self, input_size) -> torch.Tensor:
        if not self.cache_kernel or self.training or torch.is_grad_enabled():
            self._kernel_cache = None
            return self.kernel_for(input_size)
        key = self._cache_key(input_size)
        if self._kernel_cache is not None and self._kernel_cache[0] == key:
            _, kernel, self.last_kernel_size = self._kernel_cache
            return kernel
        kernel = self.kernel_for(input_size)
        self._kernel_cache = (key, kernel, self.last_kernel_size)
        return kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        kernel = self._kernel(x.shape[2:])
        use_fft = self.conv_mode == "fft" or (
            self.conv_mode == "auto"
            and prefer_fft(x.shape[0], self.in_channels, self.out_channels, x.shape[2:], kernel.shape[2:],
                           self.causal))
        self.last_conv_mode = "fft" if use_fft else "spatial"
        conv = fft_conv_nd if use_fft else conv_nd
        return conv(x, kernel, self.bias, self.causal)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, data_dim={self.data_dim}, causal={self.causal}, "
                f"crop_threshold={self.crop_threshold}, conv_mode={self.conv_mode!r}")


class CKConv(FlexConv):
    """Continuous Kernel Convolution (Romero et al. 2021): FlexConv without the mask, a global kernel as large
    as the input."""

    def __init__(self, in_channels: int, out_channels: int, data_dim: int, kernel_net="magnet", **kwargs):
        for arg in ("mask", "crop_threshold", "mask_init", "mask_init_mean", "rotated_mask"):
            if arg in kwargs:
                raise TypeError(f"CKConv has no mask: argument {arg!r} is not accepted (use FlexConv)")
        super().__init__(in_channels, out_channels, data_dim, kernel_net=kernel_net, mask=False,
                         crop_threshold=None, **kwargs)
