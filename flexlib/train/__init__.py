"""The experiment engine: App. D.2 training, metrics, checkpoints (see run.py)."""
from .loop import NonFiniteLossError
from .run import RunResult, load_run_config, run_experiment
from .schedule import build_optimizer, build_scheduler

__all__ = ["NonFiniteLossError", "RunResult", "build_optimizer", "build_scheduler", "load_run_config",
           "run_experiment"]
