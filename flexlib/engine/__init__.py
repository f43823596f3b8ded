"""The experiment engine: typed configs from params/experiments/*.yaml, App. D.2 training with metrics and
verified atomic checkpoints (run.py), divergence checks, DDP under torchrun, and the `python -m flexlib` command
line (cli.py).

It knows the layer library, the models and the data; it knows nothing of the paper's notebooks."""
from .checkpoint import CheckpointError, CheckpointWarning
from .config import ConfigError, ExperimentConfig, FitConfig, OptimConfig, load_config
from .divergence import DivergenceError, NonFiniteLossError
from .loop import Objective, train_step, training_objective
from .rundir import RunDirError
from .restore import initial_model, load_model, load_run_config
from .run import RunResult, run_experiment, run_params
from .schedule import build_optimizer, build_scheduler

__all__ = ["CheckpointError", "CheckpointWarning", "ConfigError", "DivergenceError", "ExperimentConfig", "FitConfig",
           "OptimConfig", "load_config", "NonFiniteLossError", "Objective", "RunDirError", "RunResult",
           "build_optimizer", "build_scheduler", "initial_model", "load_model", "load_run_config", "run_experiment",
           "run_params", "train_step", "training_objective"]
