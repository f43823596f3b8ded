"""The layer library: FlexConv and everything it is made of. Depends on torch only.

flexconv.py     FlexConv, CKConv (§3.1)                       mask.py        the Gaussian mask, eq. 1, its crop
kernelnets/     MAGNet, Gabor and Fourier MFNs, SIREN (§3.2)  grids.py       kernel grids (App. A.2), crop ranges
conv.py         spatial and FFT convolution functions         path_choice.py which of the two a layer runs
fused.py        all of a model's kernels at once              stacking.py    its batched-parameter autograd helpers
crops.py        many layers' crops in one read; bucketed static boxes under torch.compile
alias.py        f⁺ and the alias-free regularizer (§3.3)      resolution.py  resolution transfer (eq. 9)
bake.py         FlexConvs → plain nn.ConvNd for deployment    params.py      optimizer groups (mask at 0.1× lr)
checks.py       argument checks with messages that name the problem
"""
from . import alias, resolution
from .bake import bake
from .flexconv import CKConv, FlexConv
from .fused import SampledKernel, call, fused_kernels, model_crops, model_kernels
from .kernelnets import KERNEL_NETS, MFN, SIREN, FourierMFN, GaborMFN, MAGNet, build_kernel_net
from .mask import GaussianMask
from .params import mask_parameters, param_groups
from .resolution import retarget

__all__ = ["FlexConv", "CKConv", "GaussianMask", "MAGNet", "GaborMFN", "FourierMFN", "SIREN", "MFN", "KERNEL_NETS",
           "build_kernel_net", "mask_parameters", "param_groups", "bake", "retarget", "alias", "resolution",
           "SampledKernel", "call", "fused_kernels", "model_crops", "model_kernels"]
