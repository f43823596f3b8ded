"""The fast paths give the live layer's outputs: the real-arithmetic FFT convolution against a direct sum, the
eval-mode kernel cache against a fresh kernel, and the cache's invalidation on every change the kernel depends on."""
import numpy as np
import pytest
import torch

from flexlib import CKConv, FlexConv
from flexlib.functional import conv_nd, fft_conv_nd, fft_lengths, fft_size, prefer_fft


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


@pytest.mark.parametrize("n, k, causal", [(20, 5, False), (20, 20, True), (21, 41, False), (7, 1, True), (16, 33, False)])
def test_fft_conv_1d_matches_a_direct_sum(n, k, causal):
    x = np.random.default_rng(0).standard_normal((2, 3, n))
    w = np.random.default_rng(1).standard_normal((4, 3, k))
    y = fft_conv_nd(torch.from_numpy(x), torch.from_numpy(w), None, causal)
    np.testing.assert_allclose(y.numpy(), direct_correlation_1d(x, w, causal), atol=1e-10)


@pytest.mark.parametrize("n, k", [((12, 9), (7, 3)), ((8, 8), (17, 17)), ((5, 6, 7), (3, 5, 7))])
def test_fft_conv_nd_matches_spatial_with_gradients(n, k):
    x = torch.randn(2, 3, *n, dtype=torch.float64, requires_grad=True)
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


def _eval_conv(**kwargs):
    conv = FlexConv(3, 4, 2, **kwargs).eval()
    return conv, torch.randn(2, 3, 15, 15)


def test_cached_kernel_gives_the_live_output_and_is_reused():
    conv, x = _eval_conv()
    with torch.no_grad():
        live = conv(x)
        cached = conv(x)
        assert conv._kernel_cache is not None
        kernel = conv._kernel_cache[1]
        conv(x)
        assert conv._kernel_cache[1] is kernel
    torch.testing.assert_close(cached, live, atol=0, rtol=0)
    uncached = FlexConv(3, 4, 2, cache_kernel=False).eval()
    uncached.load_state_dict(conv.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(uncached(x), live, atol=0, rtol=0)
        assert uncached._kernel_cache is None


def test_no_cache_in_training_or_with_autograd():
    conv, x = _eval_conv()
    conv(x).sum().backward()  # eval mode, grad enabled: the kernel must stay in the graph
    assert conv._kernel_cache is None and conv.mask.sigma_param.grad is not None
    conv.train()
    with torch.no_grad():
        conv(x)
    assert conv._kernel_cache is None


def test_optimizer_step_invalidates_the_cache():
    conv, x = _eval_conv()
    opt = torch.optim.SGD(conv.parameters(), lr=0.1)
    with torch.no_grad():
        before = conv(x)
    conv.train()
    conv(x).square().mean().backward()
    opt.step()
    conv.eval()
    with torch.no_grad():
        after = conv(x)
        conv.cache_kernel = False
        live = conv(x)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, live, atol=0, rtol=0)


@pytest.mark.parametrize("change", ["fill_", "load_state_dict", "input_size", "sampling_rate_norm",
                                    "crop_threshold", "dtype"])
def test_every_change_the_kernel_depends_on_invalidates_the_cache(change):
    conv, x = _eval_conv()
    with torch.no_grad():
        conv(x)
        if change == "fill_":
            conv.mask.sigma_param.fill_(0.2)
        elif change == "load_state_dict":
            other = FlexConv(3, 4, 2)
            conv.load_state_dict(other.state_dict())
        elif change == "input_size":
            x = torch.randn(2, 3, 21, 21)
        elif change == "sampling_rate_norm":
            conv.sampling_rate_norm = 0.5
        elif change == "crop_threshold":
            conv.crop_threshold = 0.5
        elif change == "dtype":
            conv.double()
            x = x.double()
        cached = conv(x)
        kernel_size = conv.last_kernel_size
        conv.cache_kernel = False
        live = conv(x)
    torch.testing.assert_close(cached, live, atol=0, rtol=0)
    assert conv.last_kernel_size == kernel_size


def test_cache_restores_last_kernel_size_on_a_hit():
    conv = CKConv(2, 2, 1).eval()
    with torch.no_grad():
        conv(torch.randn(1, 2, 10))
        conv(torch.randn(1, 2, 30))
        conv(torch.randn(1, 2, 10))
    assert conv.last_kernel_size == (11,)
