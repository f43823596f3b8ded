"""flexlib: FlexConv (Romero, Bruintjes et al., ICLR 2022) — continuous kernel convolutions with differentiable
kernel sizes, MAGNet kernel networks, the analytic alias-free regularizer and resolution transfer.

`import flexlib` loads the layer library (flexlib.layers) only; the models (flexlib.models), data (flexlib.data),
experiment engine (flexlib.engine) and the paper's notebook support (flexlib.paper) are imported on demand.
See docs/architecture.md for the map."""
from .layers import (CKConv, FlexConv, FourierMFN, GaborMFN, GaussianMask, MAGNet, SIREN, alias, bake,
                     build_kernel_net, mask_parameters, param_groups, resolution, retarget)

__version__ = "0.1.0"

__all__ = ["FlexConv", "CKConv", "GaussianMask", "MAGNet", "GaborMFN", "FourierMFN", "SIREN", "build_kernel_net",
           "mask_parameters", "param_groups", "bake", "retarget", "alias", "resolution"]
