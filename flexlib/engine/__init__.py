"""The experiment engine: typed configs from params/experiments/*.yaml, App. D.2 training with metrics and
atomic checkpoints (run.py), DDP under torchrun, and the `python -m flexlib` command line (cli.py).

It knows the layer library, the models and the data; it knows nothing of the paper's notebooks."""
from .config import ConfigError, ExperimentConfig, FitConfig, load_config
from .loop import NonFiniteLossError
from .run import RunResult, initial_model, load_model, load_run_config, run_experiment, run_params
from .schedule import build_optimizer, build_scheduler

__all__ = ["ConfigError", "ExperimentConfig", "FitConfig", "load_config", "NonFiniteLossError", "RunResult",
           "build_optimizer", "build_scheduler", "initial_model", "load_model", "load_run_config", "run_experiment",
           "run_params"]
