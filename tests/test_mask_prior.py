"""§5's mask prior in the models: a FlexConv's mask μ₀ set through ConvConfig (every layer) or TCNConfig (the layer
that reads the input), and what each lets reach a TCN's last step."""
import pytest
import torch

from flexlib import FlexConv
from flexlib.models import create


def test_first_position_mask_init_reaches_the_model_layers():
    model = create("flextcn-2", 1, 4, width=4, mask_init_mean="first")
    assert all(float(c.mask.mean.detach()) == -1.0 for c in model.modules() if isinstance(c, FlexConv))
    assert all(float(c.mask.mean.detach()) == 1.0 for c in create("flextcn-2", 1, 4, width=4).modules()
               if isinstance(c, FlexConv))
    with pytest.raises(ValueError, match="mask_init_mean"):
        create("flextcn-2", 1, 4, mask_init_mean="middle")


@pytest.mark.parametrize("where, reaches", [("input", True), ("every", False), ("none", False)])
def test_only_a_far_past_mask_on_the_input_layer_carries_the_first_steps_to_the_last_one(where, reaches):
    """§5's prior in a TCN read at its last step: the first steps reach the output through the input layer's mask on
    the far past; a deeper layer's far-past mask reads activations that saw only padding, and a mask on the last
    step (σ = 0.075) does not reach back 300 steps."""
    kwargs = {"input": {"input_mask_init_mean": "first"}, "every": {"mask_init_mean": "first"}, "none": {}}[where]
    torch.manual_seed(0)
    model = create("flextcn-2", 2, 3, width=4, mask_init="official", conv_mode="spatial", **kwargs).eval()
    means = [float(c.mask.mean.detach()) for c in model.modules() if isinstance(c, FlexConv)]
    assert means == {"input": [-1.0, 1.0, 1.0, 1.0], "every": [-1.0] * 4, "none": [1.0] * 4}[where]
    x = torch.randn(2, 2, 300, requires_grad=True)
    model(x).sum().backward()
    first_steps = x.grad[:, :, :20].abs().sum()
    assert (first_steps > 0) == reaches
