"""flexlib.bake: a copy of a model with every FlexConv replaced by the plain nn.ConvNd it computes, giving the
same outputs and exporting to ONNX."""
import io

import pytest
import torch
from torch import nn

import flexlib
from flexlib import CKConv, FlexConv


class TwoScales(nn.Module):
    """FlexConvs at two input sizes (a pooling in between), with a BatchNorm in eval mode."""

    def __init__(self):
        super().__init__()
        self.conv1 = FlexConv(3, 6, 2)
        self.norm = nn.BatchNorm2d(6)
        self.convs = nn.Sequential(FlexConv(6, 6, 2, conv_mode="fft"), nn.ReLU(), CKConv(6, 5, 2))
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        x = torch.relu(self.norm(self.conv1(x)))
        x = self.convs(nn.functional.avg_pool2d(x, 2))
        return self.head(x.mean((2, 3)))


def _trained(model):
    with torch.no_grad():
        for conv in model.modules():
            if isinstance(conv, FlexConv) and conv.mask is not None:
                conv.mask.sigma_param.uniform_(0.1, 0.4)
    return model.eval()


@pytest.mark.parametrize("dim, causal, size", [(1, True, (50,)), (1, False, (40,)), (2, False, (17, 12)),
                                               (3, False, (6, 7, 5))])
def test_baked_layer_equals_the_live_layer(dim, causal, size):
    model = _trained(nn.Sequential(FlexConv(3, 4, dim, causal=causal), nn.ReLU(), FlexConv(4, 2, dim, causal=causal)))
    x = torch.randn(2, 3, *size)
    baked = flexlib.bake(model, x)
    assert not any(isinstance(m, FlexConv) for m in baked.modules())
    assert any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in baked.modules())
    with torch.no_grad():
        torch.testing.assert_close(baked(x), model(x), atol=1e-5, rtol=0)


def test_bake_follows_each_layers_input_size_and_keeps_the_original():
    model = _trained(TwoScales())
    x = torch.randn(4, 3, 16, 16)
    baked = flexlib.bake(model, x)
    with torch.no_grad():
        torch.testing.assert_close(baked(x), model(x), atol=1e-5, rtol=0)
    assert baked.conv1.weight.shape[2:] == model.conv1.kernel_for((16, 16)).shape[2:]
    assert baked.convs[2].weight.shape[2:] == (9, 9)  # CKConv at 8×8: the global 9×9 kernel
    assert isinstance(model.conv1, FlexConv) and not baked.training


def test_baked_model_from_the_factory_matches():
    models = pytest.importorskip("flexlib.models")
    model = _trained(models.create("flexnet-3", in_channels=3, num_classes=10))
    x = torch.randn(2, 3, 12, 12)
    baked = flexlib.bake(model, x)
    with torch.no_grad():
        torch.testing.assert_close(baked(x), model(x), atol=1e-5, rtol=0)


def test_bake_refuses_ambiguous_or_missing_layers():
    conv = FlexConv(2, 2, 1)
    shared = nn.Sequential(conv, nn.Upsample(scale_factor=2), conv)
    with pytest.raises(ValueError, match="input sizes"):
        flexlib.bake(shared, torch.randn(1, 2, 8))
    with pytest.raises(ValueError, match="no FlexConv"):
        flexlib.bake(nn.Linear(2, 2), torch.randn(1, 2))


def test_baked_model_exports_to_onnx_and_runs_there():
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    model = _trained(TwoScales())
    x = torch.randn(2, 3, 16, 16)
    baked = flexlib.bake(model, x)
    buffer = io.BytesIO()
    # dynamo=False: the TorchScript exporter needs only `onnx`; the default dynamo exporter also needs onnxscript
    torch.onnx.export(baked, (x,), buffer, dynamo=False, input_names=["x"], output_names=["y"])
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto)
    (y,) = ReferenceEvaluator(proto).run(None, {"x": x.numpy()})
    assert y.shape == (2, 2)
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(y), model(x), atol=1e-4, rtol=0)
