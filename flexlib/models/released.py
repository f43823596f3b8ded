"""The trained FlexNets the authors released (rjbruin/flexconv, `experiments/checkpoints/`, listed in their
`experiments/readme.md`): where each file is, which flexlib architecture holds it, which experiment gives its data,
its resolutions, and the test accuracy the authors report for it. Load one with
`flexlib.models.from_authors_checkpoint`; `python -m flexlib evaluate --authors-checkpoint NAME` fetches and
evaluates it.
"""
from __future__ import annotations

from dataclasses import dataclass

URL = "https://github.com/rjbruin/flexconv/raw/master/experiments/checkpoints/{}"


@dataclass(frozen=True)
class ReleasedCheckpoint:
    """A checkpoint the authors published (experiments/readme.md), with what it reproduces."""
    filename: str
    model: str                      # the flexlib name of its architecture
    experiment: str                 # params/experiments/<experiment>.yaml gives its data
    paper: str                      # the paper's table and row
    accuracy: float                 # test accuracy (%) the authors report for this file
    source_res: int | None = None   # cross-resolution runs: trained at source_res px ...
    target_res: int | None = None   # ... then tested and fine-tuned at target_res px
    stage: str | None = None        # "source" (after training at source_res) or "final" (after fine-tuning)
    sha256: str | None = None       # unknown until the file is fetched once: the repository publishes none

    @property
    def url(self) -> str:
        return URL.format(self.filename)

    @property
    def last_res(self) -> int | None:
        """The resolution the weights were last trained at, where the authors report `accuracy`."""
        return self.target_res if self.stage == "final" else self.source_res


def _entry(name, model, experiment, paper, accuracy, *cross) -> tuple[str, ReleasedCheckpoint]:
    return name, ReleasedCheckpoint(f"{name}.pt", model, experiment, paper, accuracy, *cross)


RELEASED: dict[str, ReleasedCheckpoint] = dict([   # experiments/readme.md of rjbruin/flexconv
    _entry("cifar10-flexnet-7-seed2", "flexnet-16", "cifar10",
           "Table 3, FlexNet-16 (92.2 ± 0.1 over 3 seeds)", 92.31),
    _entry("cross-res-cifar10-flexnet-7-gabor-seed2-source", "flexnet-16", "cifar10_alias_free",
           "Table 4, FlexNet-16 w/ reg. f+_MAGNet, 16 px (86.5 ± 0.1)", 86.61, 16, 32, "source"),
    _entry("cross-res-cifar10-flexnet-7-gabor-seed2-final", "flexnet-16", "cifar10_alias_free",
           "Table 4, FlexNet-16 w/ reg. f+_MAGNet, fine-tuned at 32 px", 89.16, 16, 32, "final"),
    _entry("cross-res-cifar10-flexnet-7-gnm-seed1-source", "flexnet-16", "cifar10_alias_free",
           "Table 4, FlexNet-16 w/ reg. f+_FlexConv, 16 px (85.1 ± 0.3)", 85.25, 16, 32, "source"),
    _entry("cross-res-cifar10-flexnet-7-gnm-seed1-final", "flexnet-16", "cifar10_alias_free",
           "Table 4, FlexNet-16 w/ reg. f+_FlexConv, fine-tuned at 32 px", 87.85, 16, 32, "final"),
    _entry("imagenet32-flexnet-5-seed1", "flexnet-5", "imagenet32",
           "Table 7, FlexNet-5 top-1 (24.9 ± 0.4)", 25.31),
    _entry("cross-res-imagenetk-flexnet-5-gabor-seed1-source", "flexnet-5", "imagenet32",
           "Table 8, FlexNet-5 ImageNet-k, k = 16 (14.9 ± 0.1)", 14.92, 16, 32, "source"),
    _entry("cross-res-imagenetk-flexnet-5-gabor-seed1-final", "flexnet-5", "imagenet32",
           "Table 8, FlexNet-5 ImageNet-k, fine-tuned at k = 32", 25.09, 16, 32, "final"),
])
