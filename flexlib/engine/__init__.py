"""The experiment engine: typed configs from params/experiments/*.yaml (config.py), App. D.2 training runs with
metrics (run.py), one training step with its divergence checks and weight decay (step.py), verified atomic
checkpoints in locked run folders (checkpoint.py), DDP under torchrun (distributed.py), provenance, the evaluation
of trained checkpoints (evaluate.py) and the `python -m flexlib` command line (cli.py).

It knows the layer library, the models and the data; it knows nothing of the paper's notebooks."""
from .checkpoint import (CheckpointError, CheckpointWarning, RunDirError, initial_model, load_model,
                         load_run_config)
from .config import ConfigError, ExperimentConfig, OptimConfig, load_config, override_items
from .run import RunResult, build_optimizer, build_scheduler, run_experiment, run_params
from .step import DivergenceError, NonFiniteLossError, Objective, train_step, training_objective

__all__ = ["CheckpointError", "CheckpointWarning", "ConfigError", "DivergenceError", "ExperimentConfig",
           "OptimConfig", "load_config", "override_items", "NonFiniteLossError", "Objective", "RunDirError", "RunResult",
           "build_optimizer", "build_scheduler", "initial_model", "load_model", "load_run_config", "run_experiment",
           "run_params", "train_step", "training_objective"]
