"""The layer API's values are checked with flexlib's own messages, one regression test per case, each
written as a user would hit it; and state that must survive a state dict does."""
import math

import pytest
import torch
from torch import nn

import flexlib
from flexlib import CKConv, FlexConv, GaussianMask, MAGNet, SIREN
from flexlib.layers.resolution import retarget


@pytest.mark.parametrize("source, target, bad", [(math.nan, 32, "source_res"), (16, math.inf, "target_res"),
                                                 ("16", 32, "source_res"), (16, "32", "target_res"),
                                                 (16, (32, "32"), "target_res"), (True, 32, "source_res")])
def test_retarget_refuses_non_finite_or_non_numeric_resolutions(source, target, bad):
    model = nn.Sequential(FlexConv(1, 2, 2), FlexConv(2, 2, 2))
    with pytest.raises(ValueError, match=f"retarget: {bad} must be a finite positive number or 2 of them.*got"):
        retarget(model, source, target)
    assert all(c.sampling_rate_norm == 1.0 for c in model)        # nothing half-applied


def test_sampling_rate_norm_survives_a_state_dict_round_trip():
    model = nn.Sequential(FlexConv(1, 2, 2), CKConv(2, 2, 2))
    retarget(model, 16, 32)
    fresh = nn.Sequential(FlexConv(1, 2, 2), CKConv(2, 2, 2))
    fresh.load_state_dict(model.state_dict())
    assert [c.sampling_rate_norm for c in fresh] == [0.25, 0.25]
    x = torch.randn(1, 1, 32, 32)
    torch.testing.assert_close(fresh(x), model(x))


def test_a_corrupt_sampling_rate_norm_in_a_state_dict_is_refused():
    model = FlexConv(1, 2, 2)
    state = model.state_dict()
    state["_extra_state"] = {"sampling_rate_norm": math.nan}
    with pytest.raises(ValueError, match="sampling_rate_norm must be a finite real number.*nan"):
        model.load_state_dict(state)


def test_a_baked_model_refuses_another_input_size():
    model = nn.Sequential(FlexConv(3, 4, 2), nn.ReLU(), FlexConv(4, 2, 2)).eval()
    baked = flexlib.bake(model, torch.randn(1, 3, 16, 16))
    baked(torch.randn(5, 3, 16, 16))                                 # another batch size is fine
    with pytest.raises(ValueError, match=r"baked for inputs of spatial size \(16, 16\), got \(32, 32\).*bake"):
        baked(torch.randn(1, 3, 32, 32))


def test_a_baked_causal_layer_refuses_another_length():
    baked = flexlib.bake(FlexConv(1, 2, 1, causal=True), torch.randn(1, 1, 50))
    with pytest.raises(ValueError, match=r"\(50,\), got \(60,\)"):
        baked(torch.randn(1, 1, 60))


@pytest.mark.parametrize("value", [2.0, True, "2", 4])
def test_data_dim_must_be_the_int_1_2_or_3(value):
    with pytest.raises(ValueError, match=f"FlexConv: data_dim must be one of 1, 2, 3, got {value!r}"):
        FlexConv(3, 4, value)


@pytest.mark.parametrize("kwargs, message", [({"init_variance": -1}, "init_variance must be a finite real"),
                                             ({"init_variance": math.nan}, "init_variance"),
                                             ({"init_sigma": 0.0}, "init_sigma must be a finite real"),
                                             ({"init_sigma": "0.075"}, "init_sigma")])
def test_mask_init_must_be_a_positive_number(kwargs, message):
    with pytest.raises(ValueError, match=f"GaussianMask: {message}"):
        GaussianMask(2, **kwargs)


@pytest.mark.parametrize("value", ["0.1", math.nan, 1.0, True])
def test_crop_threshold_must_be_a_number_in_0_1(value):
    with pytest.raises(ValueError, match=f"FlexConv: crop_threshold must lie in \\(0, 1\\) or be None, got"):
        FlexConv(3, 4, 2, crop_threshold=value)
    conv = FlexConv(3, 4, 2)
    with pytest.raises(ValueError, match="crop_threshold must lie in"):
        conv.crop_threshold = value                                  # on a live layer too


def test_conv_mode_and_grid_are_checked():
    with pytest.raises(ValueError, match="FlexConv: conv_mode must be one of 'auto', 'spatial', 'fft', 'benchmark'"):
        FlexConv(3, 4, 2).conv_mode = "FFT"
    with pytest.raises(ValueError, match="FlexConv: grid must be one of 'paper', 'official', got 'authors'"):
        FlexConv(3, 4, 1, causal=True, grid="authors")


def test_a_custom_kernel_net_of_the_wrong_width_is_refused_when_built():
    with pytest.raises(ValueError, match=r"out_channels·in_channels = 12 values.*Linear has out_features=5"):
        FlexConv(3, 4, 2, kernel_net=nn.Linear(2, 5))
    with pytest.raises(ValueError, match=r"take 2-D coordinates.*Linear takes 3"):
        FlexConv(3, 4, 2, kernel_net=nn.Linear(3, 12))


def test_a_custom_kernel_net_of_the_wrong_width_is_refused_at_its_first_kernel():
    conv = FlexConv(3, 4, 2, kernel_net=nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 5)))
    with pytest.raises(ValueError, match=r"must map \(N, 2\) coordinates to.*\(N, 12\), got \(\d+, 5\)"):
        conv(torch.randn(1, 3, 9, 9))


@pytest.mark.parametrize("module", [MAGNet(2, 4), SIREN(2, 4), GaussianMask(2)], ids=["magnet", "siren", "mask"])
def test_integer_coordinates_are_refused_with_a_hint(module):
    coords = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(TypeError, match=r"coords must be floating point.*int64.*coords.float\(\)"):
        module(coords)
    with pytest.raises(TypeError, match="coords must be a torch.Tensor"):
        module([[0.0, 1.0]])


def test_importing_the_layer_library_loads_neither_the_paper_support_nor_pandas_or_matplotlib():
    import subprocess
    import sys
    code = ("import sys, flexlib\n"
            "from flexlib import FlexConv\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'matplotlib', 'seaborn')\n"
            "             or m.startswith('flexlib.paper')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
