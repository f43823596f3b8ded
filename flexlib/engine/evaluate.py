"""``python -m flexlib evaluate``: a trained model on an experiment's test split, without training: a run of the
engine (``--run RUN_DIR``) or an authors' checkpoint (``--authors-checkpoint``).

The authors published trained FlexNets (rjbruin/flexconv, ``experiments/checkpoints/``). Evaluating one takes
minutes on a CPU and checks the paper's rows at trained weights: Table 3 (FlexNet-16 on CIFAR-10), Table 4
(alias-free FlexNet-16: 16 px, the change to 32 px, and after fine-tuning at 32 px), Tables 7 and 8 (ImageNet-32,
ImageNet-k).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from torch.utils.data import DataLoader

from ..data import build, data_root, sha256
from ..data.download import download
from ..layers.grids import kernel_size_for
from ..models.authors import AuthorsCheckpointError, authors_train_length, from_authors_checkpoint, \
    load_authors_state_dict
from ..models.released import RELEASED, ReleasedCheckpoint
from ..models.weights import as_path
from ..models.export import from_state, run_model
from .checkpoint import change_resolution, load_run_config, load_state, stages_of
from .config import MAX_RESOLUTION, ConfigError, ExperimentConfig, batch_size_range, load_config
from .distributed import DistInfo, resolve_device
from .provenance import provenance
from .step import StepOptions, evaluate

NATIVE = {"mnist": 28, "cifar10": 32, "stl10": 96}


def native_resolution(dataset: str) -> int:
    if dataset.startswith("imagenet") and dataset[8:].isdigit():
        return int(dataset[8:])
    if dataset not in NATIVE:
        raise ConfigError(f"evaluate takes image datasets {sorted(NATIVE)} or imagenet<k>, got {dataset!r}")
    return NATIVE[dataset]


def resolve_checkpoint(spec: str, cache_dir: Path) -> tuple[Path, ReleasedCheckpoint | None]:
    """A file path, or a released checkpoint's name (fetched into `cache_dir` once)."""
    path = as_path(spec, "--authors-checkpoint").expanduser()
    key = path.name.removesuffix(".pt")
    released = RELEASED.get(key)
    if path.is_file():
        return path, released
    if path.is_dir():
        raise IsADirectoryError(f"--authors-checkpoint {path} is a folder, not a checkpoint file")
    if released is None or path.parent != Path("."):
        raise FileNotFoundError(f"no file {spec} and no released checkpoint of that name; released: "
                                f"{', '.join(RELEASED)}")
    return download(released.url, cache_dir / released.filename, released.sha256), released


def plan_resolutions(cfg: ExperimentConfig, released: ReleasedCheckpoint | None, at: str | None,
                     train_length: int | None) -> tuple[int, int]:
    """(px to evaluate at, px of the weights' first training stage). `at`: "source", "target", a number of px,
    or None for where the weights were last trained (the authors' reported accuracy)."""
    native = native_resolution(cfg.data.dataset)
    source, target = (cfg.resolution.source, cfg.resolution.target) if cfg.resolution else (None, None)
    if released is not None:   # a released file was trained as the authors' readme says, whatever the experiment
        if released.source_res is not None and source is not None \
                and (source, target) != (released.source_res, released.target_res):
            raise ConfigError(f"{released.filename} is trained at {released.source_res} px and fine-tuned at "
                              f"{released.target_res} px, the experiment says {source} -> {target} px")
        source, target = released.source_res, released.target_res
        trained = source or native
    else:
        trained = source or cfg.data.resolution or native
    if isinstance(at, int) and not isinstance(at, bool):
        at = str(at)
    if at is not None and not isinstance(at, str):
        raise ConfigError(f"--at takes 'source', 'target' or a positive number of px, got {at!r}")
    if at is None:
        if released is not None:
            return released.last_res or native, trained
        return (train_length - 1 if train_length else cfg.data.resolution or source or native), trained
    if at in ("source", "target"):
        if source is None:
            raise ConfigError(f"--at {at} needs a cross-resolution experiment (a resolution: section) or a released "
                              f"cross-resolution checkpoint; give a number of px instead")
        return (source if at == "source" else target), trained
    if not (at.isascii() and at.isdigit()) or int(at) < 1:
        raise ConfigError(f"--at takes 'source', 'target' or a positive number of px, got {at!r}")
    if int(at) > MAX_RESOLUTION:
        raise ConfigError(f"--at {at}: at most {MAX_RESOLUTION} px (flexlib.engine.config.MAX_RESOLUTION), refused "
                          f"before the test images are resized")
    return int(at), trained


def _test_split(cfg: ExperimentConfig, resolution: int):
    """(name, test dataset, in_channels, num_classes) at `resolution` px. ImageNet-k is read at k = resolution (the
    authors' ImageNet-16 and -32 are separate downsamplings, not resizes) and without its training files."""
    data_cfg = replace(cfg.data, augment=False, resolution=resolution)
    if data_cfg.dataset.startswith("imagenet") and not data_cfg.offline:
        from ..data import vision
        from ..data.tensors import seeded_subset
        transform = vision.image_transform(*vision.STATS["imagenet"], False, resolution, None, from_pil=False)
        test = vision.DownsampledImageNet(data_root(data_cfg.root), resolution, False, transform)
        return (f"ImageNet{resolution} validation (Chrabaszcz et al., 2017)",
                seeded_subset(test, data_cfg.test_size, cfg.train.seed), 3, 1000)
    data = build(data_cfg, cfg.train.seed)
    return data.name, data.test, data.in_channels, data.num_classes


def _normalization(cfg: ExperimentConfig) -> str:
    """What the inputs are normalized with. flexlib.data follows the authors' test preprocessing (their
    datasets/cifar10.py, imagenet_small.py): [Resize(r, bilinear) of the image], ToTensor, Normalize with the
    ImageNet mean/std for CIFAR-10 and ImageNet-k, their own statistics for MNIST and STL-10."""
    if cfg.data.offline:
        return "stand-in data, normalized with its own statistics"
    from ..data import vision
    mean, std = vision.STATS["imagenet" if cfg.data.dataset.startswith("imagenet") else cfg.data.dataset]
    return f"mean {list(mean)}, std {list(std)}"


def evaluate_checkpoint(cfg: ExperimentConfig, checkpoint: str, at: str | None = None, batch_size: int = 100,
                        cache_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Load an authors' checkpoint (file or released name) into cfg.model, retarget it as run_crossres.py does,
    evaluate it on cfg.data's test split with the authors' preprocessing. Returns the results as a dict."""
    started = time.time()
    if batch_size_range(batch_size) is not None:
        raise ConfigError(f"--batch-size: {batch_size!r} is not allowed; expected {batch_size_range(batch_size)}")
    cache = Path(cache_dir) if cache_dir is not None else data_root(cfg.data.root) / "authors_checkpoints"
    path, released = resolve_checkpoint(checkpoint, cache)
    state = load_authors_state_dict(path)
    train_length = authors_train_length(state)
    resolution, trained = plan_resolutions(cfg, released, at, train_length)
    if released is not None and train_length is not None:
        last = released.last_res or native_resolution(cfg.data.dataset)
        if train_length != kernel_size_for(last):
            raise AuthorsCheckpointError(f"{path}: its kernels were last sampled on {train_length} points, but "
                                         f"{released.filename} was last trained at {last} px "
                                         f"({kernel_size_for(last)} points): is it the right file?")
    name, test, in_channels, num_classes = _test_split(cfg, resolution)
    model = from_authors_checkpoint(state, cfg.model.name, in_channels, num_classes, source_res=trained,
                                    target_res=resolution, **cfg.model.kwargs)
    device = resolve_device(cfg.train.device)
    loader = DataLoader(test, batch_size=batch_size, num_workers=cfg.data.num_workers)
    metrics = {**evaluate(model.to(device), loader, device, StepOptions(top5=num_classes >= 5), DistInfo(),
                          progress_bar=progress), "test_images": len(test)}
    return {"checkpoint": checkpoint, "file": str(path), "sha256": sha256(path),
            "released": asdict(released) if released else None, "model": cfg.model.name, "dataset": name,
            "resolution": resolution, "trained_resolution": trained, "train_length": train_length,
            "kernel_factor": (trained / resolution) ** 2, "normalization": _normalization(cfg), **metrics,
            "seconds": round(time.time() - started, 1), **provenance(device, 1)}


def evaluate_run(run_dir: str | Path, at: str | None = None, batch_size: int = 100, progress: bool = True) -> dict:
    """A run of the engine, as its latest usable checkpoint left it, on its experiment's test split: at the
    resolution its weights were last trained at, or at `at` ("source", "target" or px; kernels × (r₁/r₂)^D, eq. 9,
    as a resolution stage does). Returns the results as a dict."""
    started = time.time()
    if batch_size_range(batch_size) is not None:
        raise ConfigError(f"--batch-size: {batch_size!r} is not allowed; expected {batch_size_range(batch_size)}")
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    state = load_state(run_dir)
    model = from_state(run_model(run_dir)[0], state["model"], str(state["path"]))
    trained = stages_of(cfg)[state["stage"]].resolution
    if trained is None and cfg.data.dataset in NATIVE or cfg.data.dataset.startswith("imagenet"):
        trained = trained or native_resolution(cfg.data.dataset)
    resolution = trained if at is None else plan_resolutions(cfg, None, at, None)[0]
    if resolution != trained:
        change_resolution(model, trained, resolution)
    name, test, _, num_classes = _test_split(cfg, resolution)
    device = resolve_device(cfg.train.device)
    loader = DataLoader(test, batch_size=batch_size, num_workers=cfg.data.num_workers)
    metrics = {**evaluate(model.to(device), loader, device, StepOptions(top5=num_classes >= 5), DistInfo(),
                          progress_bar=progress), "test_images": len(test)}
    return {"run": str(run_dir), "checkpoint": str(state["path"]), "epoch": state["epoch"],
            "weights_of_epoch": state.get("weights_of_epoch", state["epoch"]), "model": cfg.model.name,
            "dataset": name, "resolution": resolution, "trained_resolution": trained, **metrics,
            "seconds": round(time.time() - started, 1), **provenance(device, 1)}


def summary_line(result: dict) -> str:
    if "run" in result:
        at = f" at {result['resolution']} px" if result["resolution"] else ""
        moved = f" (trained at {result['trained_resolution']} px)" if result["resolution"] != \
            result["trained_resolution"] else ""
        top5 = f", top-5 {100 * result['test_top5']:.2f} %" if "test_top5" in result else ""
        return (f"{result['run']} (weights of epoch {result['weights_of_epoch']}) on {result['dataset']}, "
                f"{result['test_images']} examples{at}{moved}: acc {100 * result['test_acc']:.2f} %{top5}, loss "
                f"{result['test_loss']:.4f} [{result['seconds']} s]")
    released = result["released"]
    head = Path(result["checkpoint"]).name.removesuffix(".pt")
    top5 = f", top-5 {100 * result['test_top5']:.2f} %" if "test_top5" in result else ""
    reported = ""
    if released:
        last = released["target_res"] if released["stage"] == "final" else released["source_res"]
        reported = f" (authors report {released['accuracy']:.2f} % at {last or result['trained_resolution']} px; " \
                   f"{released['paper']})"
    factor = f", kernels x{result['kernel_factor']:g} (eq. 9)" if result["kernel_factor"] != 1 else ""
    return (f"{head} on {result['dataset']}, {result['test_images']} images at {result['resolution']} px{factor}: "
            f"acc {100 * result['test_acc']:.2f} %{top5}, loss {result['test_loss']:.4f}{reported} "
            f"[{result['seconds']} s]")


def evaluate_command(args) -> int:
    """The CLI: one line of results on stdout, JSON with --out. Errors (ValueError/OSError subclasses: a bad
    checkpoint, a failed download, a missing dataset) are reported by flexlib.engine.cli as one line."""
    if (args.run is None) == (args.authors_checkpoint is None):
        raise ConfigError("evaluate takes one of --run RUN_DIR (a run of the engine) or --authors-checkpoint "
                          "PATH_OR_NAME (with a params file)")
    if args.run is not None:
        if args.params is not None or args.overrides:
            print("note: --run evaluates with the run's own config.yaml; params file and --set are ignored",
                  file=sys.stderr)
        result = evaluate_run(args.run, args.at, args.batch_size)
    else:
        if args.params is None:
            raise ConfigError("--authors-checkpoint needs a params file (params/experiments/<experiment>.yaml) for "
                              "the data and the model")
        cfg = load_config(args.params, args.profile, args.overrides, ExperimentConfig)
        result = evaluate_checkpoint(cfg, args.authors_checkpoint, args.at, args.batch_size, args.cache_dir)
    print(summary_line(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return 0
