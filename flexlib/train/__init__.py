"""The experiment engine: App. D.2 training, metrics, checkpoints (see run.py)."""
from .loop import NonFiniteLossError
from .run import RunResult, initial_model, load_model, load_run_config, run_experiment, run_params
from .schedule import build_optimizer, build_scheduler

__all__ = ["NonFiniteLossError", "RunResult", "build_optimizer", "build_scheduler", "initial_model", "load_model",
           "load_run_config", "run_experiment", "run_params"]
