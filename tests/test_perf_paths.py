"""The fast paths give the live layer's outputs: the real-arithmetic FFT convolution against a direct sum, the
eval-mode kernel cache against a fresh kernel, and the cache's invalidation on every change the kernel depends on."""
import numpy as np
import pytest
import torch

from flexlib import CKConv, FlexConv
from flexlib.layers.conv import conv_nd, fft_conv_nd, fft_lengths, fft_size
from flexlib.layers.path_choice import PathTimer, prefer_fft


def direct_correlation_1d(x, w, causal):
    """numpy reference: y[b, o, t] = Σ_i Σ_j x[b, i, t + j - h] w[o, i, j], zeros outside, h = k-1 or k//2."""
    b, c_in, n = x.shape
    c_out, _, k = w.shape
    h = k - 1 if causal else k // 2
    y = np.zeros((b, c_out, n))
    for t in range(n):
        for j in range(k):
            s = t + j - h
            if 0 <= s < n:
                y[:, :, t] += x[:, :, s] @ w[:, :, j].T
    return y


@pytest.mark.parametrize("batch", [2, 6])
@pytest.mark.parametrize("n, k, causal", [(20, 5, False), (20, 20, True), (21, 41, False), (7, 1, True), (16, 33, False)])
def test_fft_conv_1d_matches_a_direct_sum(n, k, causal, batch):
    x = np.random.default_rng(0).standard_normal((batch, 3, n))
    w = np.random.default_rng(1).standard_normal((4, 3, k))
    y = fft_conv_nd(torch.from_numpy(x), torch.from_numpy(w), None, causal)
    np.testing.assert_allclose(y.numpy(), direct_correlation_1d(x, w, causal), atol=1e-10)


@pytest.mark.parametrize("batch", [2, 6])  # B ≤ C_out shifts the input, B > C_out the kernel
@pytest.mark.parametrize("n, k", [((12, 9), (7, 3)), ((8, 8), (17, 17)), ((5, 6, 7), (3, 5, 7))])
def test_fft_conv_nd_matches_spatial_with_gradients(n, k, batch):
    x = torch.randn(batch, 3, *n, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, *k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64)
    torch.testing.assert_close(fft_conv_nd(x, w, b, False), conv_nd(x, w, b, False))
    assert torch.autograd.gradcheck(lambda x, w: fft_conv_nd(x, w, None, False), (x[:1, :2], w[:2, :2]))


def test_fft_lengths_are_5_smooth_and_long_enough():
    assert [fft_size(n) for n in (1, 7, 11, 49, 97, 1025)] == [1, 8, 12, 50, 100, 1080]
    assert fft_lengths((32, 32), (33, 33), causal=False) == [48, 48]
    assert fft_lengths((1024,), (1025,), causal=True) == [2048]


def test_auto_choice_is_spatial_for_small_kernels_and_fft_for_global_long_ones():
    assert not prefer_fft(64, 24, 24, (32, 32), (3, 3))
    assert prefer_fft(8, 30, 30, (16000,), (16001,), causal=True)


def _slowed_paths(monkeypatch, delay: dict[str, float]) -> list[str]:
    """Make the spatial and FFT paths the timer runs sleep `delay[name]` s per run; returns the list of runs."""
    import time

    import flexlib.layers.path_choice as path_choice
    calls = []

    def slowed(name, fn):
        def run(*args):
            calls.append(name)
            time.sleep(delay[name])
            return fn(*args)
        return run

    monkeypatch.setattr(path_choice, "conv_nd", slowed("spatial", conv_nd))
    monkeypatch.setattr(path_choice, "fft_conv_nd", slowed("fft", fft_conv_nd))
    monkeypatch.setattr(path_choice, "TIMER", PathTimer())
    return calls


@pytest.mark.parametrize("slow", ["fft", "spatial"])
def test_benchmark_mode_times_both_paths_once_per_signature_and_keeps_the_faster(monkeypatch, slow):
    import flexlib.layers.path_choice as path_choice
    fast = "spatial" if slow == "fft" else "fft"
    calls = _slowed_paths(monkeypatch, {slow: 0.03, fast: 0.01})            # close paths: both are timed
    conv = FlexConv(3, 4, 1, conv_mode="benchmark")
    x = torch.randn(2, 3, 40)
    conv(x)
    assert conv.last_conv_mode == fast
    assert calls.count("fft") == calls.count("spatial") == 4       # a warm-up and 3 timed runs each
    conv(x)
    assert len(path_choice.TIMER.choices) == 1 and len(calls) == 8   # same signature: no new measurement
    conv(torch.randn(2, 3, 41))
    assert len(path_choice.TIMER.choices) == 2


@pytest.mark.parametrize("slow", ["fft", "spatial"])
def test_a_hopeless_path_is_run_once_not_timed_again(monkeypatch, slow):
    fast = "spatial" if slow == "fft" else "fft"
    calls = _slowed_paths(monkeypatch, {slow: 2.0, fast: 0.0})   # > 20x the other's warm-up, even under load
    conv = FlexConv(3, 4, 1, conv_mode="benchmark")
    conv(torch.randn(2, 3, 40))
    assert conv.last_conv_mode == fast
    assert calls == ["spatial", "fft"]                     # one warm-up run each, no timed repeats


def _eval_conv(**kwargs):
    conv = FlexConv(3, 4, 2, **kwargs).eval()
    return conv, torch.randn(2, 3, 15, 15)


def _fresh_output(conv, x):
    """What a new layer with `conv`'s state gives on x: the reference for a layer that must not be stale."""
    import copy
    fresh = copy.deepcopy(conv).unfreeze()
    with torch.no_grad():
        return fresh(x)


@pytest.mark.parametrize("change", ["mul_", "fill_", "data_fill", "causal", "crop_threshold", "conv_mode",
                                    "grid", "sampling_rate_norm", "load_state_dict", "optimizer", "dtype"])
def test_an_eval_forward_never_uses_a_stale_kernel(change):
    """After any change to what the kernel depends on, the next eval forward uses the new kernel."""
    dim = 1 if change in ("causal", "grid") else 2
    conv = FlexConv(3, 4, dim).eval()
    x = torch.randn(2, 3, *(16,) * dim)
    with torch.no_grad():
        before = conv(x)
    p = conv.kernel_net.output_linear.weight
    if change == "mul_":
        p.data.mul_(1.5)
    elif change == "fill_":
        with torch.no_grad():
            conv.mask.sigma_param.fill_(0.2)
    elif change == "data_fill":
        conv.mask.mean_param.data.fill_(0.3)
    elif change == "causal":
        conv.causal = True
    elif change == "crop_threshold":
        conv.crop_threshold = 0.5
    elif change == "conv_mode":
        conv.conv_mode = "fft"
    elif change == "grid":
        conv.causal, conv.grid = True, "official"
    elif change == "sampling_rate_norm":
        conv.sampling_rate_norm = 0.5
    elif change == "load_state_dict":
        conv.load_state_dict(FlexConv(3, 4, dim).state_dict())
    elif change == "optimizer":
        conv.train()
        conv(x).square().mean().backward()
        torch.optim.SGD(conv.parameters(), lr=0.5).step()
        conv.eval()
    elif change == "dtype":
        conv.double()
        x = x.double()
    with torch.no_grad():
        after = conv(x)
    if change != "conv_mode":
        assert not torch.allclose(after.to(before.dtype), before)
    torch.testing.assert_close(after, _fresh_output(conv, x), atol=1e-5, rtol=0)


def test_freeze_reuses_the_kernel_until_unfreeze():
    conv, x = _eval_conv()
    with torch.no_grad():
        live = conv(x)
        conv.freeze()
        frozen = conv(x)
        assert len(conv._frozen) == 1
        kernel = next(iter(conv._frozen.values()))[0]
        conv(x)
        assert next(iter(conv._frozen.values()))[0] is kernel
        conv.kernel_net.output_linear.weight.mul_(2.0)      # a frozen layer keeps its snapshot, as documented
        torch.testing.assert_close(conv(x), frozen, atol=0, rtol=0)
        conv.unfreeze()
        assert not torch.allclose(conv(x), frozen)
    torch.testing.assert_close(frozen, live, atol=0, rtol=0)


def test_a_frozen_layer_moved_to_another_dtype_samples_its_kernel_again():
    conv, x = _eval_conv()
    conv.freeze()
    with torch.no_grad():
        y = conv(x)
        y64 = conv.double()(x.double())
    assert y64.dtype == torch.float64
    torch.testing.assert_close(y64.float(), y, atol=1e-5, rtol=0)


def test_frozen_layer_restores_last_kernel_size_per_input_size():
    conv = CKConv(2, 2, 1).eval().freeze()
    with torch.no_grad():
        conv(torch.randn(1, 2, 10))
        conv(torch.randn(1, 2, 30))
        conv(torch.randn(1, 2, 10))
    assert conv.last_kernel_size == (11,)


def test_auto_measures_in_3d_and_asks_the_cost_model_in_1d_and_2d(monkeypatch):
    import flexlib.layers.path_choice as path_choice
    monkeypatch.setattr(path_choice, "TIMER", PathTimer())
    FlexConv(2, 2, 1, causal=True)(torch.randn(1, 2, 30))
    FlexConv(2, 2, 2)(torch.randn(1, 2, 9, 9))
    assert path_choice.TIMER.choices == {}
    FlexConv(2, 2, 3)(torch.randn(1, 2, 5, 5, 5))
    assert len(path_choice.TIMER.choices) == 1


def test_auto_measures_the_near_ties_of_its_cost_model_and_trusts_the_clear_cases(monkeypatch):
    import flexlib.layers.path_choice as path_choice
    from flexlib.layers.path_choice import NEAR_TIE, path_costs, uses_fft
    asked = []
    monkeypatch.setattr(path_choice, "_timed", lambda x, *args: asked.append(tuple(x.shape)) or True)
    shapes = {(64, 48, 64): (9,), (64, 24, 32, 32): (3, 3), (8, 30, 16000): (16001,)}
    for shape, k in shapes.items():
        x, w = torch.randn(*shape), torch.randn(shape[1], shape[1], *k)
        causal = len(k) == 1
        spatial, fft = path_costs(shape[0], shape[1], shape[1], shape[2:], k, causal)
        near = max(spatial, fft) < NEAR_TIE * min(spatial, fft)
        assert uses_fft("auto", x, w, None, causal) == (True if near else fft < spatial)
        assert (tuple(x.shape) in asked) == near
    assert asked == [(64, 48, 64)]                            # the 1-D layer whose two paths are within 1.5x

