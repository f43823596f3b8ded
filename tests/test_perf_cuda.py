"""The CUDA side of the speed work (skipped without a GPU; scripts/gpu_check.sh runs them): FFT = spatial with gradients,
CUDA = CPU, the batched kernels and their single host synchronization per forward, bf16 autocast."""
import warnings

import pytest
import torch
from torch import nn

from flexlib import FlexConv
from flexlib.layers.conv import conv_nd, fft_conv_nd
from flexlib.models import create
from test_perf_batched import _reference_and_batched

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = "cuda"


@pytest.mark.parametrize("batch", [2, 9])                   # B ≤ C_out shifts the input, B > C_out the kernel
@pytest.mark.parametrize("n, k, causal", [((300,), (301,), True), ((64,), (17,), False), ((20, 24), (9, 5), False),
                                          ((8, 7, 6), (5, 3, 7), False)])
def test_fft_equals_spatial_on_cuda_with_gradients(n, k, causal, batch):
    torch.manual_seed(0)
    x = torch.randn(batch, 3, *n, device=CUDA, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, *k, device=CUDA, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, device=CUDA, dtype=torch.float64)
    g = torch.randn(batch, 4, *n, device=CUDA, dtype=torch.float64)
    outs = []
    for conv in (conv_nd, fft_conv_nd):
        y = conv(x, w, b, causal)
        outs.append((y, *torch.autograd.grad(y, (x, w), g)))
    for a, ref in zip(outs[1], outs[0]):
        torch.testing.assert_close(a, ref, atol=1e-9, rtol=1e-9)


def test_fft_in_float32_on_cuda_stays_close_to_spatial():
    torch.manual_seed(0)
    x = torch.randn(4, 16, 1000, device=CUDA)
    w = torch.randn(16, 16, 1001, device=CUDA) / 100
    y_fft, y = fft_conv_nd(x, w, None, True), conv_nd(x, w, None, True)
    assert ((y_fft - y).abs().max() / y.abs().max()).item() < 1e-4


def test_flexconv_on_cuda_equals_cpu():
    torch.manual_seed(0)
    conv = FlexConv(3, 4, 2).double()
    with torch.no_grad():
        conv.mask.sigma_param.fill_(0.3)
    x = torch.randn(2, 3, 17, 17, dtype=torch.float64)
    y_cpu = conv(x)
    torch.testing.assert_close(conv.to(CUDA)(x.to(CUDA)).cpu(), y_cpu, atol=1e-10, rtol=1e-10)


def _syncs(fn) -> int:
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@pytest.mark.parametrize("name, shape", [("flexnet-16", (8, 3, 32, 32)), ("flextcn-6", (8, 1, 784))])
def test_a_cuda_forward_synchronizes_for_one_read_of_all_crops(name, shape):
    torch.manual_seed(0)
    model = create(name, shape[1], 10).to(CUDA)
    x = torch.randn(*shape, device=CUDA)
    model(x)                                                  # warm-up: cuDNN, grids
    batched = _syncs(lambda: model(x))
    model.batch_kernels = False
    per_layer = _syncs(lambda: model(x))
    n_convs = sum(isinstance(m, FlexConv) for m in model.modules())
    assert 1 <= batched and batched * n_convs <= per_layer     # one read, as many syncs as one layer's read


def test_batched_kernels_on_cuda_give_the_per_layer_outputs_and_gradients():
    torch.manual_seed(0)
    model = create("flexnet-16", 3, 10, mask_init="official", dropout=0.0).to(CUDA)
    x = torch.randn(8, 3, 32, 32, device=CUDA)
    (y_ref, g_ref), (y, g) = _reference_and_batched(model, x)
    assert ((y - y_ref).abs().max() / y_ref.abs().max()).item() < 1e-5
    floor = 1e-6 * max(b.abs().max() for b in g_ref)
    assert max(((a - b).abs().max() / b.abs().max().clamp_min(floor)).item() for a, b in zip(g, g_ref)) < 1e-4


@pytest.mark.parametrize("conv_mode", ["spatial", "fft", "auto"])
@pytest.mark.parametrize("name, shape", [("flexnet-16", (8, 3, 32, 32)), ("flextcn-2", (8, 1, 784))])
def test_bf16_autocast_training_step_is_finite_and_close_to_float32(name, shape, conv_mode):
    torch.manual_seed(0)
    model = create(name, shape[1], 10, conv_mode=conv_mode, dropout=0.0).to(CUDA)
    x = torch.randn(*shape, device=CUDA)
    y32 = model(x)
    with torch.autocast(CUDA, dtype=torch.bfloat16):
        y16 = model(x)
        loss = nn.functional.cross_entropy(y16.float(), torch.zeros(shape[0], dtype=torch.long, device=CUDA))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters()
                                        if p.grad is not None)
    assert ((y16.float() - y32).abs().max() / y32.abs().max()).item() < 0.1


def test_auto_on_cuda_times_both_paths_once_per_shape(monkeypatch):
    import flexlib.layers.path_choice as path_choice
    monkeypatch.setattr(path_choice, "TIMER", path_choice.PathTimer())
    conv = FlexConv(4, 4, 1, causal=True).to(CUDA)
    x = torch.randn(2, 4, 300, device=CUDA)
    conv(x)
    conv(x)
    assert len(path_choice.TIMER.choices) == 1 and conv.last_conv_mode in ("fft", "spatial")
