"""The protocol of every paper row flexlib reproduces: one source of truth for the `full` profiles.

Each `Row` says what the authors ran for one row of a table (model, data, epochs, batch size, learning rate, weight
decay and its form, augmentation, mask init, seeds, alias regularization, resolution change) and where that comes
from. Where the authors published a command (rjbruin/flexconv, `experiments/readme.md`, commit 384f3ce), the row
follows the command, because it made the paper's numbers; where they did not (the sequence tasks of Tables 1 and 2,
some Table 3/6 ablations), it follows App. D.2 of the paper and says so.

The engine's experiment files (params/experiments/*.yaml) hold in their `full` profile the row named in
`DEFAULT_ROWS`; `overrides(row)` turns that profile into any other row of the same experiment, and
`tests/test_protocol.py` checks both, so that an edit of a params file cannot drift from this table silently.

Settings every row shares (App. D.2 and every command): Adam, cosine schedule after 5 warmup epochs, mask
parameters at 0.1x the learning rate, MAGNet kernels of 32 hidden units and 3 layers with input scale 25.6,
dropout 0.2 (images) / 0.1 (sequences), BatchNorm, alias regularizer (when on) with method "together" and
σ_cut = 2.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

README = "rjbruin/flexconv experiments/readme.md"
D2 = "paper App. D.2 (the authors published no command for this row)"
OFFICIAL = {"mask_init": "official"}                 # σ = 0.075 (every command: mask.init_value=0.075)
SEQUENCE_FLEX = {"mask_init": "official", "grid": "official"}   # + the authors' L-point TCN grid (horizon="same")
KERNEL_NORM = "kernel_norm"  # the authors' weight decay: wd · Σ(‖generated kernel‖₂ + ‖bias‖₂) added to the loss
THREE_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Row:
    key: str                          # unique id, e.g. "T3 FlexNet-16"
    table: str                        # "1", "2", "3", "4", "6", "7", "8", "9", "10" or "F5" (Fig. 5)
    label: str                        # the paper's row label (flexlib.paper.results)
    experiment: str                   # params/experiments/<experiment>.yaml
    model: str                        # flexlib.models.create name
    model_kwargs: dict = field(default_factory=dict)
    epochs: int = 350
    batch_size: int = 64
    lr: float = 0.01
    weight_decay: float = 0.0
    weight_decay_form: str = KERNEL_NORM
    augment: bool = False
    seeds: tuple[int, ...] = THREE_SEEDS
    source: str = D2
    alias_lambda: float = 0.0
    alias_include_mask: bool = False
    resolution: tuple[int, int, int] | None = None   # (source px, target px, fine-tuning epochs)
    notes: str = ""

    @property
    def mask_init(self) -> str | None:
        return self.model_kwargs.get("mask_init")


def _seq(table: str, experiment: str, model: str, label: str, epochs: int, batch: int, lr: float, wd: float,
         kwargs: dict, notes: str = "") -> Row:
    return Row(f"T{table} {experiment} {model}", table, label, experiment, model, dict(kwargs), epochs, batch, lr, wd,
               seeds=(0,), notes=notes)


# Tables 1 and 2 (no commands; App. D.2 per dataset: epochs, batch, lr, weight decay). Single runs (no ± printed).
_SEQ_SETTINGS = {"smnist": (200, 64, 0.01, 1e-5), "pmnist": (200, 64, 0.01, 1e-5), "scifar10": (200, 64, 0.001, 1e-5),
                 "npcifar10": (300, 32, 0.01, 0.0), "char_trajectories": (300, 32, 0.001, 1e-5),
                 "speech_commands_mfcc": (300, 32, 0.001, 0.0), "speech_commands_raw": (300, 32, 0.001, 0.0)}
_T1_MODELS = ["ckcnn-2", "ckcnn-2-big", "cktcn-2-fourier", "cktcn-2-gabor", "cktcn-2", "flextcn-2", "flextcn-4",
              "flextcn-6", "flextcn-6-siren", "flextcn-6-fourier", "flextcn-6-gabor"]
_T2_MODELS = {"char_trajectories": ["ckcnn-2", "cktcn-2", "flextcn-2", "flextcn-4", "flextcn-6"],
              "speech_commands_mfcc": ["ckcnn-2", "cktcn-2-fourier", "cktcn-2-gabor", "cktcn-2", "flextcn-2",
                                       "flextcn-4", "flextcn-6", "flextcn-6-siren", "flextcn-6-fourier",
                                       "flextcn-6-gabor"]}
_T2_MODELS["speech_commands_raw"] = _T2_MODELS["speech_commands_mfcc"]
_CKCNN_NOTE = "the paper takes CKCNN rows from Romero et al. (2021); flexlib runs them under App. D.2's protocol"


def _sequence_rows() -> list[Row]:
    rows = []
    for table, experiments in (("1", {e: _T1_MODELS for e in ("smnist", "pmnist", "scifar10", "npcifar10")}),
                               ("2", _T2_MODELS)):
        for experiment, models in experiments.items():
            epochs, batch, lr, wd = _SEQ_SETTINGS[experiment]
            for model in models:
                kwargs = SEQUENCE_FLEX if model.startswith("flextcn") else {"grid": "official"}   # CKConvs: L points
                rows.append(_seq(table, experiment, model, model, epochs, batch, lr, wd, kwargs,
                                 _CKCNN_NOTE if model.startswith("ckcnn") else ""))
    return rows


def _cifar(label: str, model: str, source: str = D2, kwargs: dict | None = None, lr: float = 0.01, wd: float = 0.0,
           table: str = "3", seeds=THREE_SEEDS, notes: str = "") -> Row:
    return Row(f"T{table} {label}", table, label, "cifar10", model, dict(OFFICIAL if kwargs is None else kwargs),
               lr=lr, weight_decay=wd, augment=True, seeds=seeds, source=source, notes=notes)


_NJET_NOTE = ("the command sets weight_decay=1e-05; in the authors' code weight decay acts only on CKConv/FlexConv "
              "kernels, so for an N-Jet network it changes nothing")
_SINGLE = "marked * in Table 6 (a single run of the authors)"

IMAGE_ROWS = [
    _cifar("FlexNet-16", "flexnet-16", f"{README}: CIFAR-10, FlexNet-7"),
    _cifar("FlexNet-16 w/ conv. (k = 3)", "flexnet-16-conv3", f"{README}: CIFAR-10, FlexNet-7 with convolutions (k=3)",
           kwargs={}),
    _cifar("FlexNet-16 w/ conv. (k = 33)", "flexnet-16-conv33",
           f"{README}: CIFAR-10, FlexNet-7 with convolutions (k=33)", kwargs={}),
    _cifar("FlexNet-16 w/ N-Jet", "flexnet-16-njet", f"{README}: CIFAR-10, FlexNet-7 with N-Jet layers", kwargs={},
           wd=1e-5, notes=_NJET_NOTE),
    _cifar("CKCNN-16", "ckcnn-16", f"{README}: CIFAR-10, FlexNet-7 with SIREN kernels and without FlexConv mask",
           kwargs={}, lr=0.001),
    _cifar("CKCNN_MAGNet-16", "ckcnn-16-magnet", f"{README}: CIFAR-10, FlexNet-7 with MAGNet kernels and without "
           "FlexConv mask", kwargs={}),
    _cifar("FlexNet_SIREN-16", "flexnet-16-siren", f"{README}: CIFAR-10, FlexNet-7 with SIREN kernels", lr=0.001),
    _cifar("FlexNet_Gabor-16", "flexnet-16-gabor", f"{README}: CIFAR-10, FlexNet-7 with MFN-Gabor kernels"),
    _cifar("FlexNet_Gabor-16 + anis. Gauss.", "flexnet-16-gabor-anis",
           notes="no command; the settings of the MFN-Gabor command"),
    _cifar("FlexNet_Gabor-16 + Gabor init", "flexnet-16-gabor-init",
           notes="no command; the settings of the MFN-Gabor command"),
    _cifar("FlexNet-3", "flexnet-3", table="6", notes="no command; the FlexNet-7 command's settings, 3 blocks"),
    _cifar("FlexNet-5", "flexnet-5", table="6",
           notes="no command for CIFAR-10; the authors' testcase c10-fn5 (testcases/testcase_settings.txt) uses these"),
    *[_cifar(f"CKCNN_{net}-3", "flexnet-3", kwargs={"mask": False, "kernel_net": key}, table="6", seeds=(0,),
             lr=0.001 if key == "siren" else 0.01,
             notes=_SINGLE + ("; lr 0.001 as the CKCNN-16 (SIREN) command" if key == "siren" else ""))
      for net, key in (("SIREN", "siren"), ("Fourier", "fourier"), ("Gabor", "gabor"), ("MAGNet", "magnet"))],
    *[_cifar(f"CKCNN_{net}-7", "flexnet-7", kwargs={"mask": False, "kernel_net": key}, table="6", seeds=(0,),
             notes=_SINGLE) for net, key in (("Fourier", "fourier"), ("Gabor", "gabor"))],
    _cifar("FlexNet_Fourier-7", "flexnet-16-fourier", table="6", seeds=(0,), notes=_SINGLE),
    _cifar("CIFARResNet-44", "cifarresnet-44", kwargs={}, table="6",
           notes="Table 6's 'our reproduction'; no command (the ResNet-32 command, for an older code version, uses "
                 "lr 0.001); App. D.2's lr 0.01"),
    _cifar("CIFARResNet-44 w/ CKConv (k = 3)", "cifarresnet-44-ckconv", kwargs={}, table="6"),
    _cifar("CIFARResNet-44 w/ FlexConv", "cifarresnet-44-flexconv", table="6"),
    Row("T7 FlexNet-5", "7", "FlexNet-5", "imagenet32", "flexnet-5", dict(OFFICIAL), batch_size=2048,
        weight_decay=1e-5, augment=True, source=f"{README}: ImageNet-32, FlexNet-5"),
    Row("T7 CIFARResNet-32", "7", "CIFARResNet-32", "imagenet32", "cifarresnet-32", {}, lr=0.001, augment=True,
        source=f"{README}: ImageNet-32, ResNet-32",
        notes="the command, 'run on an older version of the experimental code', reads dataset=CIFAR10 (a copy "
              "slip: it is the ImageNet-32 row) with batch size 64 and lr 0.001"),
    Row("T9 FlexNet-16", "9", "FlexNet-16", "mnist", "flexnet-16", dict(OFFICIAL), source=f"{README}: MNIST"),
    Row("T10 FlexNet-16", "10", "FlexNet-16", "stl10", "flexnet-16", dict(OFFICIAL), epochs=100, batch_size=256,
        source=f"{README}: STL-10"),
]


def _alias(label: str, model: str, source: str, kwargs: dict | None = None, lam: float = 0.0, mask: bool = False,
           wd: float = 0.0, notes: str = "", table: str = "4", resolution=(16, 32, 100), seeds=THREE_SEEDS,
           key: str | None = None) -> Row:
    return Row(key or f"T{table} {label}", table, label, "cifar10_alias_free", model,
               dict(OFFICIAL if kwargs is None else kwargs), epochs=100, weight_decay=wd, augment=True, seeds=seeds,
               source=source, alias_lambda=lam, alias_include_mask=mask, resolution=resolution, notes=notes)


_AL = f"{README}: Aliasing regularization, CIFAR-10 (Table 4)"
ALIAS_ROWS = [
    _alias("CIFARResNet-44", "cifarresnet-44", f"{_AL}, ResNet-44", kwargs={}),
    _alias("FlexNet-16 w/ conv. (k = 3)", "flexnet-16-conv3", f"{_AL}, FlexNet-7 with convolutions (k = 3)", {}),
    _alias("FlexNet-16 w/ conv. (k = 33)", "flexnet-16-conv33", f"{_AL}, FlexNet-7 with convolutions (k = 33)", {}),
    _alias("FlexNet-16 w/ N-Jets", "flexnet-16-njet", f"{_AL}, FlexNet-7 with N-Jet layers", {}, wd=1e-5,
           notes=_NJET_NOTE),
    _alias("CKCNN-16_SIREN", "ckcnn-16", f"{_AL}, FlexNet-7 with SIREN kernels and without FlexConv mask", {}),
    _alias("FlexNet-16_SIREN", "flexnet-16-siren", f"{_AL}, FlexNet-7 with SIREN kernels"),
    _alias("FlexNet-16 w/o reg.", "flexnet-16", f"{_AL}, FlexNet-7 without aliasing regularization"),
    _alias("FlexNet-16 w/ reg. f+_MAGNet", "flexnet-16", f"{_AL}, FlexNet-7 with aliasing regularization without "
           "FlexConv mask (regularize_params.target=gabor)", lam=0.1),
    _alias("FlexNet-16 w/ reg. f+_FlexConv", "flexnet-16", f"{_AL}, FlexNet-7 with aliasing regularization with "
           "FlexConv mask (regularize_params.target=gabor+mask)", lam=0.1, mask=True),
]
FIG5_ROWS = [
    _alias(f"{reg} {s}->{t}", "flexnet-16", f"{README}: Aliasing regularization (use cross_res.source_res and "
           "target_res to reproduce Figure 5)", lam=0.1, mask=reg == "f+_FlexConv", table="F5",
           resolution=(s, t, 100), seeds=(0, 1, 2, 3, 4), key=f"F5 {reg} {s}->{t}")
    for reg in ("f+_MAGNet", "f+_FlexConv") for s in (16, 20) for t in (28, 30, 32, 34, 36)
]
_IK = f"{README}: Aliasing regularization, Imagenet-k"
IMAGENET_K_ROWS = [
    Row(f"T8 {label}", "8", label, "imagenetk_alias_free", model, kwargs, epochs=100, batch_size=2048,
        weight_decay=1e-5, augment=True, source=f"{_IK}, {name}", alias_lambda=lam, resolution=(16, 32, 100),
        notes=notes)
    for label, model, kwargs, lam, name, notes in (
        ("CIFARResNet-32", "cifarresnet-32", {}, 0.0, "ResNet-32", ""),
        ("FlexNet-5 w/ N-Jets", "flexnet-5-njet", {}, 0.0, "FlexNet-5 with N-Jet layers", _NJET_NOTE),
        ("FlexNet-5", "flexnet-5", dict(OFFICIAL), 0.1, "FlexNet-5 (regularize_params.target=gabor)", ""))
]

ROWS: dict[str, Row] = {r.key: r for r in [*_sequence_rows(), *IMAGE_ROWS, *ALIAS_ROWS, *FIG5_ROWS,
                                           *IMAGENET_K_ROWS]}

# The row whose values each experiment file's `full` profile holds.
DEFAULT_ROWS = {"smnist": "T1 smnist flextcn-2", "pmnist": "T1 pmnist flextcn-2", "scifar10": "T1 scifar10 flextcn-2",
                "npcifar10": "T1 npcifar10 flextcn-2", "char_trajectories": "T2 char_trajectories flextcn-2",
                "speech_commands_mfcc": "T2 speech_commands_mfcc flextcn-2",
                "speech_commands_raw": "T2 speech_commands_raw flextcn-2", "cifar10": "T3 FlexNet-16",
                "imagenet32": "T7 FlexNet-5", "mnist": "T9 FlexNet-16", "stl10": "T10 FlexNet-16",
                "cifar10_alias_free": "T4 FlexNet-16 w/ reg. f+_MAGNet", "imagenetk_alias_free": "T8 FlexNet-5"}


def rows(table: str | None = None, experiment: str | None = None) -> list[Row]:
    """The rows of one table (and/or experiment), in the paper's order."""
    return [r for r in ROWS.values() if (table is None or r.table == table)
            and (experiment is None or r.experiment == experiment)]


def row(key: str) -> Row:
    """The protocol row `key`; "(k3)" may stand for the paper's "(k = 3)" (a papermill parameters cell line holds
    one "=")."""
    key = re.sub(r"\(k(\d+)\)", r"(k = \1)", key) if isinstance(key, str) else key
    if key not in ROWS:
        import difflib
        close = difflib.get_close_matches(key, ROWS, n=3)
        raise KeyError(f"no protocol row {key!r}" + (f"; did you mean {close}?" if close else ""))
    return ROWS[key]


def method_overrides(r: Row) -> list[str]:
    """The settings that make row `r` the method it is, whatever the scale: the alias regularizer and the
    resolution change (a stand-in run of the row keeps these and scales the rest down)."""
    out = [f"train.alias_lambda={r.alias_lambda}", f"train.alias_include_mask={str(r.alias_include_mask).lower()}"]
    if r.resolution is not None:   # the authors' trainer goes back to the best epoch's weights before the change
        out += [f"resolution.source={r.resolution[0]}", f"resolution.target={r.resolution[1]}",
                "train.restore_best=true"]
    return out


def overrides(r: Row, seed: int | None = None) -> list[str]:
    """`--set` overrides that turn params/experiments/<r.experiment>.yaml's full profile into row `r`."""
    out = [f"model.name={r.model}", f"model.kwargs:={json.dumps(r.model_kwargs)}", f"optim.lr={r.lr}",
           f"optim.weight_decay={r.weight_decay}", f"optim.weight_decay_form={r.weight_decay_form}",
           f"train.epochs={r.epochs}", f"train.batch_size={r.batch_size}",
           f"data.augment={str(r.augment).lower()}", *method_overrides(r)]
    if r.resolution is not None:
        out.append(f"resolution.finetune_epochs={r.resolution[2]}")
    if seed is not None:
        out.append(f"train.seed={seed}")
    return out


def markdown_table(which: list[Row] | None = None) -> str:
    """The protocol as a markdown table (docs/protocol.md)."""
    lines = ["| row | experiment | model (kwargs) | epochs | batch | lr | weight decay (form) | augment | "
             "alias λ (mask) | resolution | seeds | source / notes |", "|" + "---|" * 12]
    for r in which or ROWS.values():
        kwargs = f" `{json.dumps(r.model_kwargs)}`" if r.model_kwargs else ""
        wd = f"{r.weight_decay:g} ({r.weight_decay_form})" if r.weight_decay else "0"
        alias = f"{r.alias_lambda:g}{' (f+_FlexConv)' if r.alias_include_mask else ''}" if r.alias_lambda else "–"
        res = "{}→{} px + {} ep.".format(*r.resolution) if r.resolution else "–"
        note = r.source + (f"; {r.notes}" if r.notes else "")
        lines.append(f"| {r.key} | {r.experiment} | `{r.model}`{kwargs} | {r.epochs} | {r.batch_size} | {r.lr:g} | "
                     f"{wd} | {'yes' if r.augment else 'no'} | {alias} | {res} | "
                     f"{','.join(map(str, r.seeds))} | {note} |")
    return "\n".join(lines)


DOC_HEADER = """# The protocol of every paper row (generated)

Generated from `flexlib.paper.protocol` by `python -m flexlib.paper.protocol > docs/protocol.md`;
`tests/test_protocol.py` checks that this file, every experiment file's `full` profile and every notebook's `full`
profile agree with that table.

Every row shares: Adam; cosine schedule after 5 warmup epochs; mask parameters at 0.1× the learning rate; MAGNet
kernels of 32 hidden units and 3 layers, input scale 25.6; dropout 0.2 (images) / 0.1 (sequences); BatchNorm; the
alias regularizer (where λ > 0) with method "together" and σ_cut = 2. `kernel_norm`: the authors' weight decay,
wd · Σ over CKConv/FlexConv layers of (‖generated kernel‖₂ + ‖bias‖₂) added to the loss (their `LnLoss`; it acts on
nothing else, so it changes nothing for N-Jet and discrete networks). `mask_init: official`: the commands' σ = 0.075
(App. D.1 says σ² = 0.125); `grid: official`: the authors' L-point causal kernel (App. A.2 says L + 1).

"""


def document() -> str:
    """docs/protocol.md: the shared settings and the table of every row."""
    return DOC_HEADER + markdown_table() + "\n"


if __name__ == "__main__":
    print(document(), end="")
