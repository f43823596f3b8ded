"""flexlib trains the paper's network exactly as the authors' trainer does: 20 steps of their FlexNet-7, step by step.

The data, `tests/data/authors_flexnet7_trajectory.pt`, was made by running the official FlexConv code
(rjbruin/flexconv, commit 0f355d1), not flexlib: their `Img_ResNet` of the README's CIFAR-10 FlexNet-7 command
(7 blocks, 24 hidden, MAGNet 32 × 3, input scale 25.6, mask σ = 0.075, cropping at 0.1, BatchNorm), built with
`torch.manual_seed(0)`, dropout 0 and every CKConv/FlexConv bias set to 0.1·N(0, 1) (generator seed 1); then, in
float64 and train mode, their optimizer (`optim.construct_optimizer`: Adam, lr 0.01, `mask_params` at 0.1× lr) and
their loss (`trainer.py`: cross-entropy + `ckconv.nn.LnLoss(1e-5, 2)`), at a constant learning rate, for 20 steps
on random uint8 images / 255 (batch 8). It holds the initial state dict (their key layout), the loss and
cross-entropy of every step, the state after the last step and the eval-mode logits of a 21st batch. The fixture's
README in the project's shared folder says exactly what was run and measured.

Here flexlib does the same through its public API only: `from_authors_checkpoint(..., mask_eps=0.0)` (the authors'
mask divides by σ², flexlib's by σ² + ε; see flexlib.layers.mask), `flexlib.engine.build_optimizer` and
`flexlib.engine.train_step` with the kernel-norm weight decay. This test must stay green through every refactor of
the engine and the layers.
"""
from pathlib import Path

import pytest
import torch

from flexlib.engine import OptimConfig, build_optimizer, train_step, training_objective
from flexlib.models import from_authors_checkpoint, to_authors_state_dict

FIXTURE = Path(__file__).parent / "data" / "authors_flexnet7_trajectory.pt"


@pytest.fixture(scope="module")
def fixture():
    return torch.load(FIXTURE, weights_only=True)


def _model(state, **kwargs):
    return from_authors_checkpoint(state, "flexnet-16", 3, 10, dropout=0.0, **kwargs).double().train()


def _inputs(fixture, step):
    return fixture["images"][step].double() / 255, fixture["labels"][step]


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (1 where b is all zeros): the error at the scale of the tensor."""
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1.0))


@pytest.fixture(scope="module")
def trained(fixture):
    """flexlib's run of the fixture's 20 steps, with the authors' arithmetic of eq. 1 (mask_eps=0.0)."""
    settings = fixture["settings"]
    assert settings["weight_decay_form"] == "kernel_norm" and settings["schedule"] == "constant"
    model = _model(fixture["initial"]["model"], mask_eps=0.0)
    optimizer = build_optimizer(model, OptimConfig(lr=settings["lr"], mask_lr_factor=settings["mask_lr_factor"],
                                                   weight_decay=settings["weight_decay"],
                                                   weight_decay_form="kernel_norm"))
    losses, cross_entropies = [], []
    for step in range(settings["steps"]):
        x, y = _inputs(fixture, step)
        loss = train_step(model, optimizer, x, y, kernel_weight_decay=settings["weight_decay"],
                          before_update=lambda objective: cross_entropies.append(objective.cross_entropy.detach()))
        losses.append(loss)
    model.eval()
    with torch.no_grad():
        logits = model(_inputs(fixture, settings["steps"])[0])
    return model, torch.stack(losses), torch.stack(cross_entropies), logits


def test_every_loss_of_the_20_steps_equals_the_authors(fixture, trained):
    _, losses, cross_entropies, _ = trained
    assert losses.dtype == torch.float64                       # a float64 model's loss stays float64
    assert ((losses - fixture["losses"]).abs() / fixture["losses"].abs()).max() < 1e-9
    assert ((cross_entropies - fixture["cross_entropies"]).abs() / fixture["cross_entropies"].abs()).max() < 1e-9
    assert (fixture["losses"] > fixture["cross_entropies"]).all()   # the kernel-norm decay is in both objectives
    assert losses[-1] < losses[0]                                    # it trained


def test_the_final_state_equals_the_authors(fixture, trained):
    model = trained[0]
    ours = to_authors_state_dict(model)
    theirs = fixture["final"]["model"]
    float_keys = [k for k, v in theirs.items() if v.is_floating_point() and not k.endswith(
        ("train_length", "temperature", "mask_threshold"))]
    errors = {k: _relative(ours[k], theirs[k]) for k in float_keys}
    assert max(errors.values()) < 1e-6, sorted(errors.items(), key=lambda kv: -kv[1])[:3]
    moved = _relative(to_authors_state_dict(_model(fixture["initial"]["model"]))["cconv1.mask_params"],
                      theirs["cconv1.mask_params"])
    assert moved > 1e-4                                        # the masks trained, so the comparison means something
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs if k.endswith("num_batches_tracked"))
    # and the public loader reads the authors' final state into the same network
    loaded = from_authors_checkpoint(theirs, "flexnet-16", 3, 10, mask_eps=0.0).double()
    assert max(_relative(a, model.state_dict()[k]) for k, a in loaded.state_dict().items()
               if isinstance(a, torch.Tensor) and a.is_floating_point()) < 1e-6


def test_the_eval_logits_after_training_equal_the_authors(fixture, trained):
    assert _relative(trained[3], fixture["eval_logits"]) < 1e-6


def test_with_the_default_eps_the_first_loss_equals_the_authors(fixture):
    """ε = 1e-8 changes the mask's exponent by a relative 1e-8/σ² ≈ 2e-6 (σ = 0.075): the forward pass agrees; the
    trajectories part later, as Adam's first steps (≈ lr·sign(g)) turn tiny gradient changes into other updates."""
    model = _model(fixture["initial"]["model"])
    assert {m.eps for m in model.modules() if hasattr(m, "sigma_param")} == {1e-8}
    x, y = _inputs(fixture, 0)
    with torch.no_grad():
        objective = training_objective(model, x, y, kernel_weight_decay=fixture["settings"]["weight_decay"])
    assert abs(objective.loss.item() - fixture["losses"][0].item()) / fixture["losses"][0].item() < 1e-9
