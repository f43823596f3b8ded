"""The controlled tasks (flexlib.data.controlled) hold their answer where they say; the receptive field, Fig. 7's
steps and the compute settings count what a model sees and uses; a variant run is its own row."""
import pytest
import torch

from flexlib import FlexConv
from flexlib.data.controlled import PulseTask, SamePhotoTask, StartDigitTask
from flexlib.models import create
from flexlib.paper.analysis import receptive_field


def test_pulse_task_puts_the_signs_at_the_stated_lags_and_nothing_elsewhere():
    task = PulseTask(length=64, lag=10, width=3, noise=0.0)
    x, y = task.batch(200, torch.Generator().manual_seed(0))
    seq = x[:, 0]
    first, second = seq[:, 64 - 10 - 3:64 - 10], seq[:, 64 - 16 - 3:64 - 16]     # lags [10, 13) and [16, 19)
    assert (first.abs() == 1).all() and (second.abs() == 1).all()
    assert (first == first[:, :1]).all() and (second == second[:, :1]).all()
    assert seq.abs().sum() == 200 * 6                                            # nothing else
    assert torch.equal(y, 2 * (first[:, 0] > 0).long() + (second[:, 0] > 0).long())
    assert task.needed_receptive_field == 19 and set(y.tolist()) == {0, 1, 2, 3}


def test_pulse_task_refuses_pulses_outside_the_sequence():
    with pytest.raises(ValueError, match="more than the length"):
        PulseTask(length=100, lag=90, width=8)


def test_a_causal_model_whose_receptive_field_misses_the_pulses_cannot_tell_the_classes_apart():
    """Outputs at the last step depend on the pulses only if the receptive field reaches them (causality)."""
    task = PulseTask(length=128, lag=60, width=4, noise=0.0)
    x, _ = task.batch(8, torch.Generator().manual_seed(1))
    small = create("flextcn-2", 1, 4, width=4, type="conv", kernel_size=5).eval()     # sees 17 steps
    big = create("cktcn-2", 1, 4, width=4).eval()
    assert receptive_field(small, 128) == 17 < task.needed_receptive_field <= receptive_field(big, 128)
    with torch.no_grad():
        assert torch.allclose(small(x), small(torch.zeros_like(x)), atol=1e-6)
        assert not torch.allclose(big(x), big(torch.zeros_like(x)), atol=1e-6)


def test_same_photo_task_is_balanced_and_leaves_the_canvas_empty_between_the_patches():
    task = SamePhotoTask()
    x, y = task.batch(400, torch.Generator().manual_seed(0))
    assert x.shape == (400, 3, 32, 32) and 0.4 < y.float().mean() < 0.6
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[:8, :8] = inside[-8:, -8:] = True
    assert (x[:, :, ~inside] == 0).all() and (x[:, :, inside].abs().sum(1) > 0).float().mean() > 0.99
    assert task.corner_distance == 16


def test_same_photo_task_uses_disjoint_parts_of_the_photos_for_training_and_test():
    from flexlib.data.controlled import photo_pools
    train, test = photo_pools(96)
    for a, b in zip(train, test):
        assert a.shape[-2] == b.shape[-2] and a.shape[-1] + b.shape[-1] in range(96, 200)
        assert not any(torch.equal(a[..., -1], b[..., j]) for j in range(b.shape[-1]))


def test_start_digit_task_puts_a_digit_first_and_noise_after():
    task = StartDigitTask(length=64, noise=0.0)
    x, y = task.batch(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, 28, 64) and y.min() >= 0 and y.max() <= 9
    assert (x[:, :, 28:] == 0).all() and x[:, :, :28].std() > 0.5


def test_receptive_field_of_flexconv_follows_its_crop():
    model = create("flextcn-2", 1, 4, width=4, mask_init="official")                 # σ = 0.075 at the last step
    convs = [m for m in model.modules() if isinstance(m, FlexConv)]
    sizes = [len(c.crop_axes(c.full_kernel_size((512,)))[0]) for c in convs]
    assert receptive_field(model, 512) == 1 + sum(k - 1 for k in sizes)
    assert 4 * 40 < receptive_field(model, 512) < 4 * 43                              # 2.146 σ of [-1, 1] ≈ 41 steps
    net = create("flexnet-3", 3, 10, width=4, type="conv", kernel_size=3)
    assert receptive_field(net, (32, 32)) == (15, 15)                                 # stem + 3 blocks × 2 convs


def test_fig7_steps_compose_to_the_kernel_the_layer_uses_also_from_the_authors_format():
    """(a) MLP × (b) mask = (c); (d) is (c) where the mask exceeds 0.1 and equals the layer's own cropped kernel; the
    same through the authors' checkpoint format (the `authors` profile's path, here on a synthetic state dict)."""
    from flexlib.models import from_authors_checkpoint, to_authors_state_dict
    from flexlib.paper.analysis import kernel_steps
    torch.manual_seed(0)
    model = create("flexnet-3", 3, 10, width=4, kernel_hidden=8, mask_init="official").eval()
    back = from_authors_checkpoint(to_authors_state_dict(model, train_length=33), "flexnet-3", 3, 10, width=4,
                                   kernel_hidden=8)
    for net in (model, back):
        conv = net.blocks[1].conv2
        with torch.no_grad():
            conv.mask.sigma_param.copy_(torch.tensor([0.2, 0.1]))
            steps = kernel_steps(conv, 32)
            kernel = conv.kernel_for((32, 32))[steps["pair"]]
        assert steps["mlp"].shape == steps["mask"].shape == steps["product"].shape == (33, 33)
        assert torch.allclose(steps["product"], steps["mlp"] * steps["mask"])
        assert torch.allclose(steps["cropped"], kernel, atol=1e-6)
        assert steps["cropped"].shape == (2 * int(0.2 * 2.146 * 16) + 1, 2 * int(0.1 * 2.146 * 16) + 1)


def test_a_variant_run_is_its_own_row_without_a_paper_number():
    """cifar's cpu profile: T9's FlexNet beside stand-ins the paper has no row for; each is grouped on its own."""
    import pandas as pd
    from flexlib.paper import runs
    plan = runs.plan(["9"], [["T9 FlexNet-16", "flexnet-3", {}],
                             ["T9 FlexNet-16", "flexnet-3", {"type": "conv", "kernel_size": 3}, "w/ conv. (k = 3)"]],
                     seeds=[0, 1])
    assert [r.key for r in plan] == ["T9 FlexNet-16"] * 2 + ["T9 FlexNet-16 w/ conv. (k = 3)"] * 2
    assert all(r.experiment == "mnist" for r in plan) and plan[2].settings == plan[0].settings[:1] + (
        'model.kwargs={"type": "conv", "kernel_size": 3}',) + plan[0].settings[2:]
    per_run = pd.DataFrame([{"row": r.key, "protocol_row": r.row, "seed": r.seed, "reported_acc": 90.0 + i,
                             "final_acc": 89.0, "our_model": r.model, "our_data": "digits"} for i, r in enumerate(plan)])
    table = runs.summary_table(per_run).set_index("row")
    assert table.loc["T9 FlexNet-16", "paper"] == 99.7 and table.loc["T9 FlexNet-16", "ours_mean"] == 90.5
    assert pd.isna(table.loc["T9 FlexNet-16 w/ conv. (k = 3)", "paper"])
    assert table.loc["T9 FlexNet-16 w/ conv. (k = 3)", "ours_mean"] == 92.5


def test_compute_times_a_sequence_setting_and_cropping_shortens_its_kernels():
    """§5 on sequences: the timed FlexTCN-2 runs on (batch, 1, length) inputs; cropped, its kernels are 8 % long."""
    from flexlib.paper.compute import Setting, time_settings
    settings = [Setting(f"{name}", "flextcn-2", 400, (("mask_init", "official"), ("conv_mode", "spatial"),
                                                      ("crop_threshold", crop), ("width", 2)), channels=1, data_dim=1)
                for name, crop in (("cropped", 0.1), ("uncropped", None))]
    rows = time_settings(settings, batch=1, rounds=1, warmup=0)
    assert [r["input"] for r in rows] == ["400", "400"] and all(r["median_s"] > 0 for r in rows)
    cropped = create("flextcn-2", 1, 10, width=2, mask_init="official", crop_threshold=0.1)
    assert receptive_field(cropped, 400) == 1 + 4 * (len(cropped.blocks[0].conv1.crop_axes((400,))[0]) - 1)
    assert len(cropped.blocks[0].conv1.crop_axes((400,))[0]) < 0.1 * 401


def test_convergence_measures_read_the_curves():
    import pandas as pd
    from flexlib.paper.controlled import curve_area, steps_to
    curves = pd.DataFrame({"task": "t", "model": ["fast"] * 3 + ["slow"] * 3, "seed": 0, "step": [0, 50, 100] * 2,
                           "test_acc": [10, 80, 90, 10, 20, 60]})
    assert steps_to(curves, 50).set_index("model")["steps_to_target"].to_dict() == {"fast": 50.0, "slow": 100.0}
    area = curve_area(curves).set_index("model")["test_acc_over_training"]
    assert area["fast"] == (45 * 50 + 85 * 50) / 100 and area["slow"] == (15 * 50 + 40 * 50) / 100


def test_crop_taps_from_mu_and_sigma_match_the_layer():
    from flexlib.paper.analysis import centred_crop_taps, mask_table, single_tap_sigma
    model = create("flexnet-3", 3, 10, width=4)
    convs = [m for m in model.modules() if isinstance(m, FlexConv)]
    with torch.no_grad():
        for conv, (mu, sigma) in zip(convs, [(0.0, 0.05), (0.02, 0.0581), (0.0, 0.0583), (-0.1, 0.2), (0.3, 0.01)]):
            conv.mask.mean_param.fill_(mu)
            conv.mask.sigma_param.fill_(sigma)
    for row, conv in zip(mask_table(model, 16), convs):
        mu, sigma = conv.mask.mean.detach().tolist(), conv.mask.sigma.detach().tolist()
        taps = [centred_crop_taps(mu[d], sigma[d], 16) for d in range(2)]
        assert row["cropped_size"] == "x".join(map(str, taps))
    threshold = single_tap_sigma(16)
    assert centred_crop_taps(0.0, 0.999 * threshold, 16) == 1 < centred_crop_taps(0.0, 1.001 * threshold, 16)
