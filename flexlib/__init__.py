"""flexlib: FlexConv (Romero, Bruintjes et al., ICLR 2022) — continuous kernel convolutions with differentiable
kernel sizes, MAGNet kernel networks, the analytic alias-free regularizer and resolution transfer."""
from .bake import bake
from .flexconv import CKConv, FlexConv
from .kernelnets import SIREN, FourierMFN, GaborMFN, MAGNet, build_kernel_net
from .mask import GaussianMask
from .params import mask_parameters, param_groups

__version__ = "0.1.0"

__all__ = ["FlexConv", "CKConv", "GaussianMask", "MAGNet", "GaborMFN", "FourierMFN", "SIREN", "build_kernel_net",
           "mask_parameters", "param_groups", "bake"]
