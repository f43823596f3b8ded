"""The models of the FlexConv paper and its baselines, built by name: `create("flexnet-16", 3, 10)`."""
from .authors import AuthorsCheckpointError, from_authors_checkpoint, to_authors_state_dict
from .conv import ConvConfig, build_conv
from .export import load
from .flexnet import FlexNet, FlexNetConfig
from .image_nets import KODAK_NETS, KernelNetConfig, kodak_kernel_net_config
from .njet import NJetConv
from .registry import (available, build, config_from_dict, count_parameters, create, model_config)
from .resnet import CIFARResNet, CIFARResNetConfig
from .tcn import TCN, TCNConfig

__all__ = ["create", "available", "count_parameters", "model_config", "build", "config_from_dict", "load",
           "from_authors_checkpoint", "to_authors_state_dict", "AuthorsCheckpointError", "ConvConfig", "build_conv", "FlexNet", "FlexNetConfig", "TCN", "TCNConfig", "CIFARResNet", "CIFARResNetConfig",
           "NJetConv", "KernelNetConfig", "KODAK_NETS", "kodak_kernel_net_config"]
