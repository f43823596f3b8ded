"""The paper's parameter counts beside ours, one row per model and dataset (an acceptance table of the models).

`python -m flexlib.paper.sizes` prints the markdown table of docs/models.md.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..models.image_nets import kodak_kernel_net_config
from ..models.registry import count_parameters, create

TOLERANCE = 0.02

# Table 5 as printed (the row of "magnet-fathony-init" reads "7.261" in the OCR; see docs/models.md).
KODAK_PAPER_PARAMS = {"siren": 7140, "fourier": 7400, "gabor": 7110, "gabor-improved-init": 7110,
                      "magnet-fathony-init": 7260, "magnet": 7360}

# (channels, classes) of each dataset
DATASETS = {"CIFAR-10": (3, 10), "ImageNet-32": (3, 1000), "sMNIST": (1, 10), "sCIFAR10": (3, 10),
            "CT": (3, 20), "SC": (20, 10), "SC_raw": (1, 10), "Kodak": (2, 3)}


@dataclass(frozen=True)
class PaperRow:
    paper_name: str
    model: str            # a name of flexlib.models.create, or "kodak:<row>" for a Table 5 kernel net
    table: str
    dataset: str
    paper_params: int
    deviation: str | None = None  # why the count is off by more than TOLERANCE, if it is
    overrides: tuple[tuple[str, object], ...] = ()  # create() overrides, for rows without a name of their own

    def measure(self) -> int:
        if self.model.startswith("kodak:"):
            return count_parameters(kodak_kernel_net_config(self.model[6:]).build(2, 3))
        in_channels, num_classes = DATASETS[self.dataset]
        return count_parameters(create(self.model, in_channels, num_classes, **dict(self.overrides)))

    @property
    def call(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.overrides)
        return f"{self.model}{extra}"


_D_FLEXNET3 = ("no published config for FlexNet-3; our reading (c = 24, widths 24/36/48) gives 0.277M, and its "
               "mask-free twin matches all four CKCNN_*-3 rows of Table 6 (0.26-0.28M); no width list of D.1's "
               "factors gives 0.27M within 2% (docs/models.md)")
_D_FLEXNET5 = ("App. D.1's widths (c = 22: 22/33/33/44/44, the official ImageNet-32 command) give 0.454M on "
               "CIFAR-10 and 0.499M with 1000 classes; the paper prints 0.44M for both")
_D_TABLE1_INPUT = ("Table 1 prints one size for sMNIST/pMNIST/sCIFAR10/npCIFAR10; 108K is the 3-channel sCIFAR10 "
                   "model (107.6K), the 1-channel sMNIST one has 105.5K")
_D_TABLE2_INPUT = ("Table 2 prints one size for CT, SC and SC_raw; it is the 1-channel SC_raw model's. With 3 (CT) or "
                   "20 (SC MFCC) input channels the first block's kernel nets output more weights")
_D_CKCNN_FOURIER7 = ("the paper prints 0.63M for CKCNN_Fourier-7 but 0.66M for FlexNet_Fourier-7, which differs "
                     "from it only by the 15 masks (60 parameters)")
_D_CKCNN_BIG = ("weight-normalised SIREN kernels as in Romero et al. (2021) give 1.03M; the paper prints '1M' "
                "(one significant figure); without weight norm CKCNN-2 would miss 98K instead")

PAPER_ROWS = [
    PaperRow("FlexNet-16", "flexnet-16", "3", "CIFAR-10", 670_000),
    PaperRow("FlexNet-3", "flexnet-3", "6", "CIFAR-10", 270_000, _D_FLEXNET3),
    PaperRow("FlexNet-5", "flexnet-5", "6", "CIFAR-10", 440_000, _D_FLEXNET5),
    PaperRow("FlexNet-7", "flexnet-7", "6", "CIFAR-10", 670_000),
    PaperRow("FlexNet-16 w/ conv. (k = 3)", "flexnet-16-conv3", "3", "CIFAR-10", 170_000),
    PaperRow("FlexNet-16 w/ conv. (k = 33)", "flexnet-16-conv33", "3", "CIFAR-10", 20_000_000),
    PaperRow("FlexNet-16 w/ N-Jet", "flexnet-16-njet", "3", "CIFAR-10", 700_000),
    PaperRow("CKCNN-16", "ckcnn-16", "3", "CIFAR-10", 630_000),
    PaperRow("CKCNN_MAGNet-16", "ckcnn-16-magnet", "3", "CIFAR-10", 670_000),
    PaperRow("FlexNet_SIREN-16", "flexnet-16-siren", "3", "CIFAR-10", 630_000),
    PaperRow("FlexNet_Fourier-7", "flexnet-16-fourier", "6", "CIFAR-10", 660_000),
    PaperRow("FlexNet_Gabor-16", "flexnet-16-gabor", "3", "CIFAR-10", 670_000),
    PaperRow("FlexNet_Gabor-16 + anis. Gauss.", "flexnet-16-gabor-anis", "3", "CIFAR-10", 670_000),
    PaperRow("FlexNet_Gabor-16 + Gabor init", "flexnet-16-gabor-init", "3", "CIFAR-10", 670_000),
    # Table 6's CKCNN rows: the FlexNet-3 / -7 structure with CKConvs (no mask); reached through overrides.
    PaperRow("CKCNN_SIREN-3", "flexnet-3", "6", "CIFAR-10", 260_000, overrides=(("mask", False), ("kernel_net", "siren"))),
    PaperRow("CKCNN_Fourier-3", "flexnet-3", "6", "CIFAR-10", 270_000,
             overrides=(("mask", False), ("kernel_net", "fourier"))),
    PaperRow("CKCNN_Gabor-3", "flexnet-3", "6", "CIFAR-10", 280_000, overrides=(("mask", False), ("kernel_net", "gabor"))),
    PaperRow("CKCNN_MAGNet-3", "flexnet-3", "6", "CIFAR-10", 280_000, overrides=(("mask", False),)),
    PaperRow("CKCNN-7", "ckcnn-16", "6", "CIFAR-10", 630_000),
    PaperRow("CKCNN_Fourier-7", "flexnet-7", "6", "CIFAR-10", 630_000, _D_CKCNN_FOURIER7,
             overrides=(("mask", False), ("kernel_net", "fourier"))),
    PaperRow("CKCNN_Gabor-7", "flexnet-7", "6", "CIFAR-10", 670_000, overrides=(("mask", False), ("kernel_net", "gabor"))),
    PaperRow("CKCNN_MAGNet-7", "ckcnn-16-magnet", "6", "CIFAR-10", 670_000),
    PaperRow("CIFARResNet-44", "cifarresnet-44", "3", "CIFAR-10", 660_000),
    PaperRow("CIFARResNet-44 w/ CKConv (k = 3)", "cifarresnet-44-ckconv", "6", "CIFAR-10", 2_580_000),
    PaperRow("CIFARResNet-44 w/ FlexConv", "cifarresnet-44-flexconv", "6", "CIFAR-10", 2_580_000),
    PaperRow("FlexNet-5", "flexnet-5", "7", "ImageNet-32", 440_000, _D_FLEXNET5),
    PaperRow("CIFARResNet-32", "cifarresnet-32", "7", "ImageNet-32", 530_000),
    PaperRow("CIFARResNet-32", "cifarresnet-32", "8", "ImageNet-32", 520_000),
    PaperRow("FlexNet-5 w/ N-Jets", "flexnet-5-njet", "8", "ImageNet-32", 460_000),
    # Table 1 prints one size per model for four datasets; the FlexTCN sizes are those of the 3-channel
    # (sCIFAR10) models, the CKCNN / CKTCN sizes those of the 1-channel (sMNIST) models (docs/models.md).
    PaperRow("FlexTCN-2", "flextcn-2", "1", "sCIFAR10", 108_000),
    PaperRow("FlexTCN-4", "flextcn-4", "1", "sCIFAR10", 241_000),
    PaperRow("FlexTCN-6", "flextcn-6", "1", "sCIFAR10", 375_000),
    PaperRow("FlexTCN-2", "flextcn-2", "1", "sMNIST", 108_000, _D_TABLE1_INPUT),
    PaperRow("FlexTCN-4", "flextcn-4", "1", "sMNIST", 241_000),
    PaperRow("FlexTCN-6", "flextcn-6", "1", "sMNIST", 375_000),
    PaperRow("CKCNN-2", "ckcnn-2", "1", "sMNIST", 98_000),
    PaperRow("CKCNN-2-Big", "ckcnn-2-big", "1", "sMNIST", 1_000_000, _D_CKCNN_BIG),
    PaperRow("CKTCN_MAGNet-2", "cktcn-2", "1", "sMNIST", 105_000),
    PaperRow("CKTCN_Fourier-2", "cktcn-2-fourier", "1", "sMNIST", 105_000),
    PaperRow("CKTCN_Gabor-2", "cktcn-2-gabor", "1", "sMNIST", 106_000),
    PaperRow("FlexTCN_SIREN-6", "flextcn-6-siren", "1", "sMNIST", 343_000),
    PaperRow("FlexTCN_Fourier-6", "flextcn-6-fourier", "1", "sMNIST", 370_000),
    PaperRow("FlexTCN_Gabor-6", "flextcn-6-gabor", "1", "sMNIST", 373_000),
    # Table 2 prints one size for CT, SC and SC_raw; it is the 1-channel SC_raw model's (docs/models.md).
    PaperRow("FlexTCN-2", "flextcn-2", "2", "SC_raw", 105_000),
    PaperRow("FlexTCN-4", "flextcn-4", "2", "SC_raw", 239_000),
    PaperRow("FlexTCN-6", "flextcn-6", "2", "SC_raw", 373_000),
    PaperRow("FlexTCN-2", "flextcn-2", "2", "CT", 105_000, _D_TABLE2_INPUT),
    PaperRow("FlexTCN-4", "flextcn-4", "2", "CT", 239_000),
    PaperRow("FlexTCN-6", "flextcn-6", "2", "CT", 373_000),
    PaperRow("FlexTCN-2", "flextcn-2", "2", "SC", 105_000, _D_TABLE2_INPUT),
    PaperRow("FlexTCN-4", "flextcn-4", "2", "SC", 239_000, _D_TABLE2_INPUT),
    PaperRow("FlexTCN-6", "flextcn-6", "2", "SC", 373_000, _D_TABLE2_INPUT),
    PaperRow("CKCNN", "ckcnn-2", "2", "SC_raw", 100_000),
    PaperRow("CKTCN_MAGNet-2", "cktcn-2", "2", "SC_raw", 105_000),
    PaperRow("FlexTCN_SIREN-6", "flextcn-6-siren", "2", "SC_raw", 342_000),
    PaperRow("FlexTCN_Fourier-6", "flextcn-6-fourier", "2", "SC_raw", 370_000),
    PaperRow("FlexTCN_Gabor-6", "flextcn-6-gabor", "2", "SC_raw", 373_000),
    *[PaperRow(f"Kodak {row}", f"kodak:{row}", "5", "Kodak", n) for row, n in KODAK_PAPER_PARAMS.items()],
]


def _fmt(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.3f}M"
    return f"{n / 1e3:.2f}K" if n < 10_000 else f"{n / 1e3:.1f}K"


def markdown_table() -> str:
    lines = ["| paper model | flexlib name | table | dataset (in → classes) | paper | measured | Δ |",
             "|---|---|---|---|---|---|---|"]
    for row in PAPER_ROWS:
        n = row.measure()
        c, k = DATASETS[row.dataset]
        delta = n / row.paper_params - 1
        flag = "" if abs(delta) <= TOLERANCE else " ⚠"
        lines.append(f"| {row.paper_name} | `{row.call}` | {row.table} | {row.dataset} ({c} → {k}) | "
                     f"{_fmt(row.paper_params)} | {n:,} | {delta:+.1%}{flag} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
