"""The convolution inside every model, chosen by a typed `ConvConfig`.

One switch covers the layers the paper's tables compare: FlexConv (masked continuous kernel), CKConv (no mask),
a discrete nn.Conv ("w/ conv. (k = 3)" / "(k = 33)") and the N-Jet layer ("w/ N-Jet"), each with any kernel
network of flexlib.layers.kernelnets ("magnet", "gabor", "fourier", "siren").
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import checks
from ..layers.flexconv import CKConv, FlexConv
from ..layers.grids import GRIDS
from ..layers.kernelnets import KERNEL_NETS
from ..layers.mask import DEFAULT_EPS
from ..layers.path_choice import CONV_MODES
from .njet import NJetConv

CONV_TYPES = ("flexconv", "ckconv", "conv", "njet")


@dataclass
class ConvConfig:
    type: str = "flexconv"            # one of CONV_TYPES
    kernel_net: str = "magnet"        # "magnet" | "gabor" | "fourier" | "siren" (flexconv / ckconv)
    kernel_hidden: int = 32           # N_hid of the kernel network (paper: 32)
    kernel_layers: int = 3            # MFNs: hidden linears (filters = layers + 1); SIREN: all linear layers
    kernel_init: str | None = None    # MAGNet / Gabor: "layerwise" (§3.2) or "fathony"; None = the net's default
    input_scale: float = 25.6         # MFN sine-weight scale (App. D.1)
    omega_0: float = 30.0             # SIREN ω₀ (official CKCNN-16 command)
    kernel_weight_norm: bool = False  # weight norm on the kernel net's linears (Romero et al. 2021's CKCNN)
    kernel_size: int | None = None    # conv: its size; ckconv: a fixed size (CIFARResNet w/ CKConv, k = 3)
    bias: bool = True
    crop_threshold: float = 0.1       # flexconv dynamic cropping
    mask_init: str = "paper"          # flexconv: "paper" (σ² = 0.125) or "official" (σ = 0.075)
    mask_eps: float = DEFAULT_EPS     # flexconv: ε of the mask's σ² + ε (flexlib.layers.mask); 0.0 = the authors' arithmetic
    mask_init_mean: str | None = None  # flexconv: μ₀ "last" / "first" (§5's prior: the far past) / "center";
                                       # None = "last" for causal (sequences), "center" otherwise
    conv_mode: str = "auto"           # "auto" | "spatial" | "fft" | "benchmark"
    grid: str = "paper"               # flexconv/ckconv: "paper" (App. A.2) or "official" (causal: L points)
    njet_order: int = 4               # N-Jet: Gaussian derivatives up to this order
    njet_init_sigma: float = 1.0
    njet_truncation: float = 2.0      # N-Jet kernel size 2·ceil(truncation·σ) + 1

    def __post_init__(self):
        """Every value checked here, so that an error names the kwarg of `create` (ConvConfig's field)."""
        owner = "ConvConfig"
        for name in ("kernel_hidden", "kernel_layers"):
            checks.positive_int(owner, name, getattr(self, name))
        for name in ("bias", "kernel_weight_norm"):
            checks.one_of(owner, name, getattr(self, name), (True, False))
        for name in ("input_scale", "omega_0", "njet_init_sigma", "njet_truncation"):
            checks.real(owner, name, getattr(self, name), low=0.0)
        checks.real(owner, "mask_eps", self.mask_eps, low=0.0, low_open=False)
        if self.crop_threshold is not None:
            checks.real(owner, "crop_threshold", self.crop_threshold, 0.0, 1.0, allowed="lie in (0, 1) or be None")
        if self.kernel_init is not None:
            checks.one_of(owner, "kernel_init", self.kernel_init, ("layerwise", "fathony"))
        checks.one_of(owner, "mask_init", self.mask_init, ("paper", "official"))
        checks.one_of(owner, "conv_mode", self.conv_mode, CONV_MODES)
        checks.one_of(owner, "grid", self.grid, GRIDS)
        checks.non_negative_int(owner, "njet_order", self.njet_order)
        if self.type not in CONV_TYPES:
            raise ValueError(f"ConvConfig.type must be one of {CONV_TYPES}, got {self.type!r}")
        if self.kernel_net not in KERNEL_NETS:
            raise ValueError(f"ConvConfig.kernel_net must be one of {sorted(KERNEL_NETS)}, got {self.kernel_net!r}")
        if self.type == "conv" and self.kernel_size is None:
            raise ValueError("ConvConfig: type='conv' needs kernel_size (e.g. 3 or 33)")
        if self.kernel_size is not None and (self.kernel_size < 1 or self.kernel_size % 2 == 0):
            raise ValueError(f"ConvConfig.kernel_size must be a positive odd int, got {self.kernel_size!r}")
        if self.type in ("flexconv", "njet") and self.kernel_size is not None:
            raise ValueError(f"ConvConfig: type={self.type!r} learns its kernel size; leave kernel_size=None")
        if self.mask_init_mean not in (None, "last", "first", "center"):
            raise ValueError(f"ConvConfig.mask_init_mean must be None, 'last', 'first' or 'center', got "
                             f"{self.mask_init_mean!r}")

    def kernel_net_kwargs(self) -> dict:
        if self.kernel_net == "siren":
            return {"omega_0": self.omega_0}
        kwargs = {"input_scale": self.input_scale}
        if self.kernel_init is not None and self.kernel_net in ("magnet", "gabor"):
            kwargs["init"] = self.kernel_init
        return kwargs


def check_model_fields(cfg, positive: tuple[str, ...], dropout: bool = True, norm: bool = True) -> None:
    """The fields a model config shares, checked with the name of the kwarg of `create` in the message: positive
    integers, `dropout` a probability in [0, 1), `norm` a known normalization, `conv` a ConvConfig."""
    from .norm import NORMS
    owner = type(cfg).__name__
    for name in positive:
        checks.positive_int(owner, name, getattr(cfg, name))
    if dropout:
        checks.real(owner, "dropout", cfg.dropout, 0.0, 1.0, low_open=False, allowed="be a probability in [0, 1)")
    if norm:
        checks.one_of(owner, "norm", cfg.norm, NORMS)
    if not isinstance(cfg.conv, ConvConfig):
        raise TypeError(f"{owner}: conv must be a ConvConfig (or a mapping of its fields), got "
                        f"{type(cfg.conv).__name__}")


class FixedSizeCKConv(CKConv):
    """CKConv sampled on a fixed k-point grid over [-1, 1]^D instead of one as large as the input (the official
    code's `conv.horizon=3`, used for "CIFARResNet-44 w/ CKConv (k = 3)")."""

    def __init__(self, *args, kernel_size: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.kernel_size = kernel_size

    def kernel_for(self, input_size) -> torch.Tensor:
        self.last_kernel_size = (self.kernel_size,) * self.data_dim
        return self.scaled(self.sample_kernel(self.kernel_size))


class CausalConv1d(nn.Conv1d):
    """Discrete causal convolution: left padding only, so output t sees inputs ≤ t."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.kernel_size[0] - 1, 0)))


class Subsample(nn.Module):
    """Stride s after a stride-1 'same' convolution: y[..., ::s, ::s] equals a strided conv with padding k//2."""

    def __init__(self, conv: nn.Module, stride: int):
        super().__init__()
        self.conv = conv
        self.stride = stride

    def forward(self, x: torch.Tensor, kernel=None) -> torch.Tensor:
        y = self.conv(x) if kernel is None else self.conv(x, kernel=kernel)
        index = (...,) + (slice(None, None, self.stride),) * (y.dim() - 2)
        return y[index]


def add_weight_norm(module: nn.Module) -> nn.Module:
    """Weight-normalize every nn.Linear inside `module` (w = g·v/‖v‖, one g per output unit)."""
    for child in list(module.modules()):
        if isinstance(child, nn.Linear):
            nn.utils.parametrizations.weight_norm(child)
    return module


def build_conv(cfg: ConvConfig, in_channels: int, out_channels: int, data_dim: int, causal: bool = False,
               stride: int = 1) -> nn.Module:
    """The convolution of `cfg` from in_channels to out_channels: 'same' (images) or causal (sequences)."""
    if causal and data_dim != 1:
        raise ValueError(f"causal convolutions are for sequences (data_dim=1), got data_dim={data_dim}")
    if cfg.type == "conv":
        if causal:
            conv = CausalConv1d(in_channels, out_channels, cfg.kernel_size, stride=stride, bias=cfg.bias)
        else:
            conv_cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[data_dim]
            conv = conv_cls(in_channels, out_channels, cfg.kernel_size, stride=stride,
                            padding=cfg.kernel_size // 2, bias=cfg.bias)
        return conv
    if cfg.type == "njet":
        if causal:
            raise ValueError("the N-Jet layer is centred (Pintea et al. 2021); it has no causal form")
        return NJetConv(in_channels, out_channels, data_dim, order=cfg.njet_order, init_sigma=cfg.njet_init_sigma,
                        truncation=cfg.njet_truncation, bias=cfg.bias, stride=stride)
    common = dict(kernel_net=cfg.kernel_net, causal=causal, conv_mode=cfg.conv_mode, grid=cfg.grid,
                  hidden_features=cfg.kernel_hidden, num_layers=cfg.kernel_layers, bias=cfg.bias,
                  kernel_net_kwargs=cfg.kernel_net_kwargs())
    if cfg.type == "flexconv":
        conv = FlexConv(in_channels, out_channels, data_dim, crop_threshold=cfg.crop_threshold,
                        mask_init=cfg.mask_init, mask_eps=cfg.mask_eps, mask_init_mean=cfg.mask_init_mean, **common)
    elif cfg.kernel_size is not None:
        conv = FixedSizeCKConv(in_channels, out_channels, data_dim, kernel_size=cfg.kernel_size, **common)
    else:
        conv = CKConv(in_channels, out_channels, data_dim, **common)
    if cfg.kernel_weight_norm:
        add_weight_norm(conv.kernel_net)
    return Subsample(conv, stride) if stride != 1 else conv
