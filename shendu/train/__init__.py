"""Training tools: the loop, callbacks, checkpoints, hyperparameter search, diagnosis, plots.

>>> from shendu import train
>>> sorted(n for n in ("fit", "evaluate", "predict", "EarlyStopping") if hasattr(train, n))
['EarlyStopping', 'evaluate', 'fit', 'predict']
"""
from .._threads import blas_threads
from . import callbacks, checkpoint, plots, search
from .callbacks import (
                        Callback,
                        CSVLogger,
                        EarlyStopping,
                        GradientMonitor,
                        GradientWarning,
                        JSONLogger,
                        LambdaCallback,
                        LRSchedulerCallback,
                        ModelCheckpoint,
)
from .checkpoint import get_rng_states, load_checkpoint, save_checkpoint, set_rng_states
from .diagnose import (
                        Diagnosis,
                        diagnose,
                        diagnose_history,
                        highest_loss_examples,
                        most_confused_pairs,
                        per_class_error,
)
from .ensemble import BootstrapSampler, Ensemble, SnapshotEnsemble
from .plots import plot_confusion_matrix, plot_learning_curves, plot_pr_curve
from .search import (
                        Choice,
                        IntUniform,
                        LogUniform,
                        SearchResult,
                        Uniform,
                        bayesian_search,
                        grid_search,
                        random_search,
)
from .trainer import History, Trainer, evaluate, fit, predict
from .transfer import GradualUnfreezing

__all__ = ["fit", "evaluate", "predict", "Trainer", "History", "Callback",
           "LambdaCallback", "EarlyStopping", "ModelCheckpoint", "LRSchedulerCallback",
           "CSVLogger", "JSONLogger", "GradientMonitor", "GradientWarning", "save_checkpoint",
           "load_checkpoint", "get_rng_states", "set_rng_states", "grid_search",
           "random_search", "bayesian_search", "SearchResult", "LogUniform", "Uniform",
           "Choice", "IntUniform", "diagnose", "diagnose_history", "Diagnosis",
           "per_class_error", "most_confused_pairs", "highest_loss_examples",
           "plot_learning_curves", "plot_confusion_matrix", "plot_pr_curve", "callbacks",
           "checkpoint", "plots", "search", "blas_threads", "GradualUnfreezing",
           "Ensemble", "BootstrapSampler", "SnapshotEnsemble"]
