"""FlexConv (§3.1): a continuous kernel ψ(x) = w_gauss(x; μ, σ) · MLP^ψ(x) with a learnable size, and CKConv.

The kernel is sampled on a grid over [-1, 1]^D whose length follows the input (odd sizes as they are, even
sizes + 1; App. A.2), cropped to where the mask exceeds `crop_threshold` (dynamic cropping, §5), and applied as a
'same' convolution (images) or a causal one (sequences), spatially or through the FFT.
"""
from __future__ import annotations

import torch
from torch import nn

from . import checks
from .conv import conv_nd, fft_conv_nd
from .crops import box_ranges, read_crops
from .grids import GRIDS, coordinates, crop_range, grid, kernel_size_for
from .kernelnets import build_kernel_net
from .mask import DEFAULT_EPS, OFFICIAL_INIT_SIGMA, PAPER_INIT_VARIANCE, GaussianMask, support_interval
from .path_choice import CONV_MODES, uses_fft

__all__ = ["FlexConv", "CKConv"]

OFFICIAL_MU_FACTOR = 1.667  # the authors' FlexConv: MAGNet/Gabor centres μ ~ U(±1.667·σ₀) of its mask's σ₀


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
        conv_mode: "spatial", "fft", "auto" (chosen per call: for 1-D and 2-D on CPU by a cost model fitted
            there, timing both paths once per shape where it predicts a near tie; in 3-D and on a GPU by timing
            both paths once per shape) or "benchmark" (always timed, as cudnn.benchmark); see
            flexlib.layers.path_choice.
        hidden_features, num_layers: kernel network size (paper: 32 and 3).
        mask: use the Gaussian mask (False gives CKConv: a global kernel).
        mask_init: "paper" (σ² = 0.125, App. D.1; Gabor centres μ ~ U(±1)) or "official" (the authors' code:
            σ = 0.075 and, for "magnet"/"gabor" kernel nets, μ ~ U(±1.667·σ) = U(±0.125)).
        mask_init_mean: "last" (default for causal; §4.2), "first" (§5) or "center" (default otherwise).
        rotated_mask: learn a rotation of the 2-D mask (App. D.3).
        mask_eps: ε of the mask's σ² + ε (flexlib.layers.mask.GaussianMask; default 1e-8, finite gradients as σ → 0;
            0.0 computes eq. 1 as the authors' code does).
        grid: "paper" (App. A.2: an even input of n samples gets an (n + 1)-point kernel) or "official" (the
            authors' `horizon="same"`: a causal kernel has n points; see flexlib.layers.grids.kernel_size_for).
        kernel_net_kwargs: further arguments of the kernel network (e.g. init="fathony", omega_0=..., mu_range=...).

    `sampling_rate_norm` multiplies the kernel: (r₁/r₂)^D after resolution transfer (eq. 9, see
    flexlib.layers.resolution); it is saved in the state dict. `last_kernel_size` is the uncropped kernel size of the
    latest forward pass: the k of f_Nyq(k) (eq. 24). Every forward samples the kernel from the current
    parameters, or takes the one a model computed for it together with its other layers (`forward(x, kernel=...)`,
    flexlib.layers.fused); `freeze()` reuses kernels for inference, `flexlib.bake` turns the layer into a plain
    nn.ConvNd.
    """

    def __init__(self, in_channels: int, out_channels: int, data_dim: int, kernel_net="magnet", causal: bool = False,
                 crop_threshold: float | None = 0.1, conv_mode: str = "auto", hidden_features: int = 32,
                 num_layers: int = 3, mask: bool = True, bias: bool = True, mask_init: str = "paper",
                 mask_init_mean=None, rotated_mask: bool = False, kernel_net_kwargs: dict | None = None,
                 grid: str = "paper", mask_eps: float = DEFAULT_EPS):
        super().__init__()
        name = type(self).__name__
        self.in_channels = checks.positive_int(name, "in_channels", in_channels)
        self.out_channels = checks.positive_int(name, "out_channels", out_channels)
        checks.one_of(name, "data_dim", data_dim, (1, 2, 3))
        checks.one_of(name, "causal", causal, (False, True))
        if causal and data_dim != 1:
            raise ValueError(f"{name}: causal=True is for sequences (data_dim=1), got data_dim={data_dim}")
        checks.one_of(name, "mask_init", mask_init, ("paper", "official"))
        checks.one_of(name, "grid", grid, GRIDS)
        self.data_dim = data_dim
        self.causal = causal
        self.crop_threshold = crop_threshold
        self.conv_mode = conv_mode
        self.grid = grid
        if isinstance(kernel_net, nn.Module):
            _check_custom_kernel_net(name, kernel_net, data_dim, out_channels * in_channels)
            self.kernel_net = kernel_net
        else:
            kwargs = dict(kernel_net_kwargs or {})
            if mask and mask_init == "official" and kernel_net in ("magnet", "gabor"):
                kwargs.setdefault("mu_range", OFFICIAL_MU_FACTOR * OFFICIAL_INIT_SIGMA)
            self.kernel_net = build_kernel_net(kernel_net, data_dim, out_channels * in_channels,
                                               hidden_features=hidden_features, num_layers=num_layers, **kwargs)
        if mask:
            init_mean = mask_init_mean or ("last" if causal else "center")
            sigma_kw = {"init_sigma": OFFICIAL_INIT_SIGMA} if mask_init == "official" else \
                {"init_variance": PAPER_INIT_VARIANCE}
            self.mask = GaussianMask(data_dim, init_mean=init_mean, rotated=rotated_mask, eps=mask_eps, **sigma_kw)
        else:
            self.mask = None
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.sampling_rate_norm = 1.0
        self.last_kernel_size: tuple[int, ...] | None = None
        self.last_conv_mode: str | None = None
        self._frozen: dict | None = None

    # -- checked settings ----------------------------------------------------------------------------------
    @property
    def crop_threshold(self) -> float | None:
        return self._crop_threshold

    @crop_threshold.setter
    def crop_threshold(self, value) -> None:
        if value is not None:
            value = checks.real(type(self).__name__, "crop_threshold", value, low=0.0, high=1.0,
                                allowed="lie in (0, 1) or be None")
        self._crop_threshold = value

    @property
    def conv_mode(self) -> str:
        return self._conv_mode

    @conv_mode.setter
    def conv_mode(self, value) -> None:
        checks.one_of(type(self).__name__, "conv_mode", value, CONV_MODES)
        self._conv_mode = value

    def get_extra_state(self) -> dict:
        return {"sampling_rate_norm": float(self.sampling_rate_norm)}

    def set_extra_state(self, state) -> None:
        value = state.get("sampling_rate_norm") if isinstance(state, dict) else None
        self.sampling_rate_norm = checks.real(f"{type(self).__name__}.load_state_dict", "sampling_rate_norm",
                                              value, low=0.0)

    # -- kernel --------------------------------------------------------------------------------------------
    def full_kernel_size(self, input_size) -> tuple[int, ...]:
        """The uncropped kernel size for an input of spatial size `input_size` (see `grid`)."""
        return tuple(kernel_size_for(int(n), self.grid, self.causal) for n in input_size)

    def crop_ranges(self, kernel_size, support=None) -> list[tuple[int, int]]:
        """[start, stop) per dim of the grid of `kernel_size` kept by dynamic cropping. `support`: the mask's
        (low, high) as lists, if already read from the device (flexlib.layers.fused reads all layers' at once)."""
        if self.mask is None or self.crop_threshold is None:
            return [(0, k) for k in kernel_size]
        if support is None:
            support = self.mask.support(self.crop_threshold)
        return [crop_range(k, lo, hi, self.causal) for k, lo, hi in zip(kernel_size, *support)]

    @property
    def has_crop(self) -> bool:
        """Whether dynamic cropping applies: a mask and a crop threshold."""
        return self.mask is not None and self.crop_threshold is not None

    def crop_parameters(self) -> list[torch.Tensor]:
        """The parameters the crop is decided by (read by flexlib.layers.crops): the mask's μ, σ (and θ)."""
        return self.mask.raw_parameters()

    def crop_from(self, values, kernel_size) -> list[tuple[int, int]]:
        """`crop_ranges` from the values of `crop_parameters()`, read from the device as floats."""
        d = self.data_dim
        theta = values[2 * d] if self.mask.theta is not None else None
        support = support_interval(values[:d], values[d:2 * d], self.crop_threshold, theta, self.mask.eps)
        return self.crop_ranges(kernel_size, support)

    def crop_axes(self, kernel_size, device=None, dtype=None) -> list[torch.Tensor]:
        """The kernel positions kept by dynamic cropping for an uncropped `kernel_size` (one tensor per dim)."""
        return [grid(k, device, dtype)[a:b] for k, (a, b) in zip(kernel_size, self.crop_ranges(kernel_size))]

    def kernel_at(self, coords: torch.Tensor, size) -> torch.Tensor:
        """ψ at the points `coords` (N, D) of a product grid of `size` points per dim: (out, in, *size)."""
        values = self.kernel_net(coords)
        width = self.out_channels * self.in_channels
        if values.dim() != 2 or values.shape[-1] != width:
            raise ValueError(f"{type(self).__name__}: the kernel net must map (N, {self.data_dim}) coordinates to "
                             f"(N, out_channels·in_channels) = (N, {width}), got {tuple(values.shape)}")
        if self.mask is not None:
            values = values * self.mask(coords).unsqueeze(-1)
        values = values.reshape(*size, self.out_channels, self.in_channels)
        return values.movedim((-2, -1), (0, 1))

    def sample_kernel(self, size) -> torch.Tensor:
        """The masked kernel (out, in, *size) on `size` points per dim over [-1, 1]^D, uncropped and without the
        resolution factor."""
        size = (size,) * self.data_dim if isinstance(size, int) else tuple(size)
        if len(size) != self.data_dim or any(not isinstance(s, int) or s < 1 for s in size):
            raise ValueError(f"{type(self).__name__}.sample_kernel: size must be {self.data_dim} positive ints, "
                             f"got {size}")
        device, dtype = self.device_dtype()
        return self.kernel_at(coordinates(size, [(0, s) for s in size], device, dtype), size)

    def scaled(self, kernel: torch.Tensor) -> torch.Tensor:
        """`kernel` × the resolution factor (r₁/r₂)^D of eq. 9 (`sampling_rate_norm`, 1 unless retargeted)."""
        return kernel * self.sampling_rate_norm if self.sampling_rate_norm != 1.0 else kernel

    def kernel_for(self, input_size) -> torch.Tensor:
        """The cropped kernel used on an input of spatial size `input_size`, resolution factor included."""
        full = self.full_kernel_size(input_size)
        ranges = self.crop_ranges(full)
        device, dtype = self.device_dtype()
        kernel = self.kernel_at(coordinates(full, ranges, device, dtype), [b - a for a, b in ranges])
        self.last_kernel_size = full
        return self.scaled(kernel)

    def kernel_on_crop(self, full, crop) -> torch.Tensor:
        """The kernel for uncropped size `full` and a crop read by flexlib.layers.crops: exact ranges, or a compiled
        crop (a 0/1 tensor: the kernel sampled on its box, zero outside the exact crop; None: uncropped).
        Resolution factor included."""
        if isinstance(crop, torch.Tensor) or crop is None:
            ranges = [(0, k) for k in full] if crop is None else box_ranges(full, crop.shape, self.causal)
        else:
            ranges, crop = crop, None
        device, dtype = self.device_dtype()
        kernel = self.kernel_at(coordinates(full, ranges, device, dtype), [b - a for a, b in ranges])
        return self.scaled(kernel if crop is None else kernel * crop)

    def _compiled_crop(self) -> bool:
        """Whether a compiled forward reads its crop as a compiled crop (flexlib.layers.crops): a cropping layer
        that samples its own kernel with FlexConv.kernel_for and is not frozen."""
        return self.has_crop and self._frozen is None and type(self).kernel_for is FlexConv.kernel_for

    def device_dtype(self) -> tuple[torch.device, torch.dtype]:
        """Where the layer's parameters live and their dtype (CPU and the default dtype without parameters)."""
        p = next(self.parameters(), None)
        return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.get_default_dtype())

    # -- kernel reuse --------------------------------------------------------------------------------------
    def freeze(self) -> "FlexConv":
        """Reuse kernels: from now on the kernel for each input size is sampled once (without autograd) and
        reused in every forward, whatever the mode, until `unfreeze()`. For inference on fixed parameters:
        later changes to the parameters, `crop_threshold`, `causal`, `grid` or `sampling_rate_norm` are not seen
        (`flexlib.bake` gives the same as a plain nn.ConvNd)."""
        self._frozen = {}
        return self

    def unfreeze(self) -> "FlexConv":
        """Back to sampling the kernel from the current parameters in every forward."""
        self._frozen = None
        return self

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def _kernel(self, input_size: tuple, given=None) -> torch.Tensor:
        if given is not None:
            full = self.full_kernel_size(input_size)
            if tuple(given.full_size) != full:
                raise ValueError(f"{type(self).__name__}: the kernel handed to forward was sampled for an uncropped "
                                 f"size {tuple(given.full_size)}, but an input of spatial size {input_size} needs "
                                 f"{full}; compute the kernels for this input size")
            self.last_kernel_size = full
            return given.weight
        if self._frozen is None:
            return self.kernel_for(input_size)
        if input_size not in self._frozen:
            with torch.no_grad():
                self._frozen[input_size] = (self.kernel_for(input_size).contiguous(), self.last_kernel_size)
        kernel, self.last_kernel_size = self._frozen[input_size]
        return kernel

    def _apply(self, fn, *args, **kwargs):
        if getattr(self, "_frozen", None):  # .to(), .double(), ...: frozen kernels are sampled again there
            self._frozen = {}
        return super()._apply(fn, *args, **kwargs)

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

    def forward(self, x: torch.Tensor, kernel=None) -> torch.Tensor:
        """Convolve x (B, C_in, *spatial) with the layer's kernel for its size; `kernel`: a
        flexlib.layers.fused.SampledKernel computed for this input size by the model (all layers together)."""
        self._check_input(x)
        size = tuple(x.shape[2:])
        if kernel is None and torch.compiler.is_compiling() and self._compiled_crop():
            full = self.full_kernel_size(size)
            crop = read_crops([self], [full], compiled=True)[0]   # the graph break, before any tensor work
            self.last_kernel_size = full
            kernel = self.kernel_on_crop(full, crop)
        else:
            kernel = self._kernel(size, kernel)
        use_fft = uses_fft(self.conv_mode, x, kernel, self.bias, self.causal)
        self.last_conv_mode = "fft" if use_fft else "spatial"
        conv = fft_conv_nd if use_fft else conv_nd
        return conv(x, kernel, self.bias, self.causal)

    def extra_repr(self) -> str:
        grid = f", grid={self.grid!r}" if self.grid != "paper" else ""
        return (f"{self.in_channels}, {self.out_channels}, data_dim={self.data_dim}, causal={self.causal}, "
                f"crop_threshold={self.crop_threshold}, conv_mode={self.conv_mode!r}{grid}")


class CKConv(FlexConv):
    """Continuous Kernel Convolution (Romero et al. 2021): FlexConv without the mask, a global kernel as large
    as the input."""

    def __init__(self, in_channels: int, out_channels: int, data_dim: int, kernel_net="magnet", **kwargs):
        for arg in ("mask", "crop_threshold", "mask_init", "mask_init_mean", "rotated_mask", "mask_eps"):
            if arg in kwargs:
                raise TypeError(f"CKConv has no mask: argument {arg!r} is not accepted (use FlexConv)")
        super().__init__(in_channels, out_channels, data_dim, kernel_net=kernel_net, mask=False,
                         crop_threshold=None, **kwargs)


def _check_custom_kernel_net(owner: str, net: nn.Module, data_dim: int, width: int) -> None:
    """A custom kernel net that declares its sizes (like nn.Linear or flexlib's nets) must fit the layer; one
    that does not is checked on its first output (FlexConv.kernel_at)."""
    out = getattr(net, "out_features", None)
    if isinstance(out, int) and out != width:
        raise ValueError(f"{owner}: the kernel net must output out_channels·in_channels = {width} values per "
                         f"position, but {type(net).__name__} has out_features={out}")
    inp = getattr(net, "data_dim", getattr(net, "in_features", None))
    if isinstance(inp, int) and inp != data_dim:
        raise ValueError(f"{owner}: the kernel net must take {data_dim}-D coordinates (data_dim={data_dim}), but "
                         f"{type(net).__name__} takes {inp}")
