"""The paper's reported accuracies (%), as printed, keyed by the flexlib names the notebooks run.

Sequence tables are keyed by registry model name and engine experiment (the stem of params/experiments/<experiment>.yaml);
image tables by the paper's row label, which `flexlib.paper.sizes.PAPER_ROWS` also uses for the sizes. Rows the
paper took from other works (marked * there) are left out: this project does not reproduce them.
"""
from __future__ import annotations

# Table 1: sMNIST, pMNIST, sCIFAR10, npCIFAR10.
TABLE1 = {
    "ckcnn-2": {"smnist": 99.31, "pmnist": 98.00, "scifar10": 62.25, "npcifar10": 60.5},
    "ckcnn-2-big": {"smnist": 99.32, "pmnist": 98.54, "scifar10": 63.74, "npcifar10": 62.2},
    "cktcn-2-fourier": {"smnist": 99.44, "pmnist": 98.40, "scifar10": 68.28, "npcifar10": 66.26},
    "cktcn-2-gabor": {"smnist": 99.52, "pmnist": 98.38, "scifar10": 69.26, "npcifar10": 67.37},
    "cktcn-2": {"smnist": 99.55, "pmnist": 98.57, "scifar10": 74.58, "npcifar10": 67.52},
    "flextcn-2": {"smnist": 99.60, "pmnist": 98.61, "scifar10": 78.99, "npcifar10": 67.11},
    "flextcn-4": {"smnist": 99.60, "pmnist": 98.72, "scifar10": 80.26, "npcifar10": 67.42},
    "flextcn-6": {"smnist": 99.62, "pmnist": 98.63, "scifar10": 80.82, "npcifar10": 69.87},
    "flextcn-6-siren": {"smnist": 99.03, "pmnist": 95.36, "scifar10": 69.24, "npcifar10": 57.27},
    "flextcn-6-fourier": {"smnist": 99.49, "pmnist": 97.97, "scifar10": 74.79, "npcifar10": 67.35},
    "flextcn-6-gabor": {"smnist": 99.50, "pmnist": 98.37, "scifar10": 78.36, "npcifar10": 67.56},
}

# Table 2: CT, SC (MFCC), SC_raw. Rows without a CT value print "-" there. The OCR of this table is garbled; the
# reading is the one of docs/models.md ("Table 2 (OCR)").
TABLE2 = {
    "ckcnn-2": {"char_trajectories": 99.53, "speech_commands_mfcc": 95.27, "speech_commands_raw": 71.66},
    "cktcn-2-fourier": {"speech_commands_mfcc": 95.65, "speech_commands_raw": 74.90},
    "cktcn-2-gabor": {"speech_commands_mfcc": 96.66, "speech_commands_raw": 78.10},
    "cktcn-2": {"char_trajectories": 99.53, "speech_commands_mfcc": 97.01, "speech_commands_raw": 80.69},
    "flextcn-2": {"char_trajectories": 99.53, "speech_commands_mfcc": 97.10, "speech_commands_raw": 88.03},
    "flextcn-4": {"char_trajectories": 99.53, "speech_commands_mfcc": 97.73, "speech_commands_raw": 90.45},
    "flextcn-6": {"char_trajectories": 99.53, "speech_commands_mfcc": 97.67, "speech_commands_raw": 91.73},
    "flextcn-6-siren": {"speech_commands_mfcc": 95.83, "speech_commands_raw": 85.73},
    "flextcn-6-fourier": {"speech_commands_mfcc": 97.62, "speech_commands_raw": 91.02},
    "flextcn-6-gabor": {"speech_commands_mfcc": 97.35, "speech_commands_raw": 91.50},
}

SEQUENCE_TABLES = {"smnist": "1", "pmnist": "1", "scifar10": "1", "npcifar10": "1", "char_trajectories": "2",
                   "speech_commands_mfcc": "2", "speech_commands_raw": "2"}
SEQUENCE_LABELS = {"smnist": "sMNIST", "pmnist": "pMNIST", "scifar10": "sCIFAR10", "npcifar10": "npCIFAR10",
                   "char_trajectories": "CT", "speech_commands_mfcc": "SC", "speech_commands_raw": "SC_raw"}


def sequence_accuracy(model: str, experiment: str) -> float | None:
    """Table 1 or 2's accuracy of `model` on `experiment`, None where the paper prints none."""
    table = TABLE1 if SEQUENCE_TABLES[experiment] == "1" else TABLE2
    return table.get(model, {}).get(experiment)


# Image tables: {paper row label: accuracy}. Table 3 and Table 6 (CIFAR-10); the "-7" rows of Table 6 are the
# "-16" rows of Table 3 (the same networks, docs/models.md). Table 6 rows marked * are from Romero et al. /
# single runs of the authors and are kept, since they are the authors' own models.
CIFAR10 = {
    "CIFARResNet-44": 90.9,                     # Table 6, "our reproduction" (Table 3 prints He et al.'s 92.9)
    "CIFARResNet-44 w/ CKConv (k = 3)": 86.1,
    "CIFARResNet-44 w/ FlexConv": 81.6,
    "FlexNet-16 w/ conv. (k = 3)": 89.5,
    "FlexNet-16 w/ conv. (k = 33)": 78.0,
    "FlexNet-16 w/ N-Jet": 91.7,
    "CKCNN-16": 72.1,
    "CKCNN_MAGNet-16": 86.8,
    "FlexNet_SIREN-16": 89.0,
    "FlexNet_Gabor-16": 91.9,
    "FlexNet_Gabor-16 + anis. Gauss.": 92.0,
    "FlexNet_Gabor-16 + Gabor init": 92.0,
    "FlexNet-16": 92.2,
    "CKCNN_SIREN-3": 72.4, "CKCNN_Fourier-3": 83.8, "CKCNN_Gabor-3": 85.6, "CKCNN_MAGNet-3": 86.2,
    "CKCNN-7": 71.7, "CKCNN_Fourier-7": 84.6, "CKCNN_Gabor-7": 87.7, "CKCNN_MAGNet-7": 85.9,
    "FlexNet_Fourier-7": 91.6,
    "FlexNet-3": 90.4, "FlexNet-5": 91.0, "FlexNet-7": 92.2,
}
IMAGENET32 = {"CIFARResNet-32": 26.41, "FlexNet-5": 24.9}            # Table 7, top-1
MNIST = {"FlexNet-16": 99.7}                                       # Table 9
STL10 = {"FlexNet-16": 68.6}                                       # Table 10
IMAGE_TABLES = {"cifar10": ("Tables 3, 6", CIFAR10), "imagenet32": ("Table 7", IMAGENET32),
                "mnist": ("Table 9", MNIST), "stl10": ("Table 10", STL10)}
# Sizes the paper prints for rows that flexlib.paper.sizes.PAPER_ROWS does not hold (other input shapes).
EXTRA_SIZES = {"mnist": {"FlexNet-16": ("flexnet-16", 1, 10, 670_000)},
               "stl10": {"FlexNet-16": ("flexnet-16", 3, 10, 670_000)}}

# Table 4: alias-free FlexNets on CIFAR-10, trained at 16 px: accuracy at 16 px and its change at 32 px.
TABLE4 = {
    "CIFARResNet-44": (85.8, -31.6),
    "FlexNet-16 w/ conv. (k = 3)": (85.3, -21.2),
    "FlexNet-16 w/ conv. (k = 33)": (67.7, -57.1),
    "FlexNet-16 w/ N-Jets": (86.4, -5.5),
    "CKCNN-16_SIREN": (45.9, -15.8),
    "FlexNet-16_SIREN": (70.4, -50.0),
    "FlexNet-16 w/o reg.": (86.4, -34.4),
    "FlexNet-16 w/ reg. f+_MAGNet": (86.5, -3.8),
    "FlexNet-16 w/ reg. f+_FlexConv": (85.1, -3.3),
}
# Table 8: ImageNet-k, trained at k = 16: top-1 at 16 and its change at 32.
TABLE8 = {"CIFARResNet-32": (16.1, -11.6), "FlexNet-5 w/ N-Jets": (15.7, -1.9), "FlexNet-5": (14.9, -1.9)}
# Fig. 5: change of accuracy (percentage points) from source to target resolution, right after upsampling and
# after fine-tuning, for the regularized f+_FlexConv (first rows) and f+_MAGNet models (means over five runs).
# The figure's row labels are cut in the text. We read the top rows as f+_FlexConv, following §4.3: regularizing
# f+_MAGNet only "increases the accuracy difference" at upsampling "but also increases the fine-tune accuracy".
FIG5_TARGETS = (28, 30, 32, 34, 36)
FIG5 = {
    ("f+_FlexConv", "upsampling"): {16: (-1.7, -1.7, -3.4, -1.9, -1.9), 20: (-0.4, -0.5, -1.4, -0.4, -0.4)},
    ("f+_FlexConv", "fine-tuning"): {16: (3.2, 3.0, 5.9, 4.0, 3.8), 20: (1.2, 1.4, 3.0, 1.7, 1.8)},
    ("f+_MAGNet", "upsampling"): {16: (-3.0, -6.2, -4.9, -3.9, -7.4), 20: (-5.1, -3.8, -3.9, -4.8, -4.5)},
    ("f+_MAGNet", "fine-tuning"): {16: (8.6, 7.3, 4.7, 5.6, 9.3), 20: (6.3, 5.1, 5.7, 5.9, 5.6)},
}

# The rows each image table's full profile trains: (paper row label, registry model, create() overrides).
# Table 6's FlexNet-7, CKCNN-7 and CKCNN_MAGNet-7 are Table 3's FlexNet-16, CKCNN-16 and CKCNN_MAGNet-16.
_CK3 = [(f"CKCNN_{net}-3", "flexnet-3", {"mask": False, "kernel_net": key})
        for net, key in (("SIREN", "siren"), ("Fourier", "fourier"), ("Gabor", "gabor"), ("MAGNet", "magnet"))]
IMAGE_ROWS = {
    "cifar10": [
        ("FlexNet-16", "flexnet-16", {}), ("FlexNet-16 w/ conv. (k = 3)", "flexnet-16-conv3", {}),
        ("FlexNet-16 w/ conv. (k = 33)", "flexnet-16-conv33", {}), ("FlexNet-16 w/ N-Jet", "flexnet-16-njet", {}),
        ("CKCNN-16", "ckcnn-16", {}), ("CKCNN_MAGNet-16", "ckcnn-16-magnet", {}),
        ("FlexNet_SIREN-16", "flexnet-16-siren", {}), ("FlexNet_Gabor-16", "flexnet-16-gabor", {}),
        ("FlexNet_Gabor-16 + anis. Gauss.", "flexnet-16-gabor-anis", {}),
        ("FlexNet_Gabor-16 + Gabor init", "flexnet-16-gabor-init", {}),
        ("FlexNet_Fourier-7", "flexnet-16-fourier", {}), ("FlexNet-3", "flexnet-3", {}), ("FlexNet-5", "flexnet-5", {}),
        *_CK3,
        ("CKCNN_Fourier-7", "flexnet-7", {"mask": False, "kernel_net": "fourier"}),
        ("CKCNN_Gabor-7", "flexnet-7", {"mask": False, "kernel_net": "gabor"}),
        ("CIFARResNet-44", "cifarresnet-44", {}), ("CIFARResNet-44 w/ CKConv (k = 3)", "cifarresnet-44-ckconv", {}),
        ("CIFARResNet-44 w/ FlexConv", "cifarresnet-44-flexconv", {}),
    ],
    "imagenet32": [("FlexNet-5", "flexnet-5", {}), ("CIFARResNet-32", "cifarresnet-32", {})],
    "mnist": [("FlexNet-16", "flexnet-16", {})],
    "stl10": [("FlexNet-16", "flexnet-16", {})],
}


def paper_accuracy(row) -> float | None:
    """The accuracy (%) the paper prints for a protocol row (flexlib.paper.protocol.Row); Table 4 and 8: at the
    source resolution. None where it prints none (Fig. 5 gives changes only)."""
    if row.table in ("1", "2"):
        return sequence_accuracy(row.model, row.experiment)
    tables = {"3": CIFAR10, "6": CIFAR10, "7": IMAGENET32, "9": MNIST, "10": STL10,
              "4": {k: v[0] for k, v in TABLE4.items()}, "8": {k: v[0] for k, v in TABLE8.items()}}
    return tables.get(row.table, {}).get(row.label)
