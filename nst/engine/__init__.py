"""The optimizer (Gatys et al.): pixels optimized against a network's features.

Read top-down, the modules tell the algorithm in order: ``model`` (backbones and feature
extractors), ``losses`` (content, Gram style, total variation), ``memory`` (what a run needs,
checked once), ``objective`` (the run's targets and the loss of an image), ``scales`` (coarse
to fine, and what the scales share), ``adam`` and ``lbfgs`` (the two optimizers), ``run`` (the
generator of progress records that ends with a result).
"""

from nst.engine.objective import Problem, prepare
from nst.engine.run import Event, check_run, optimize, run_stylize, stylize
from nst.records import CancelToken, Progress, Result

__all__ = [
    "CancelToken",
    "Event",
    "Problem",
    "Progress",
    "Result",
    "check_run",
    "optimize",
    "prepare",
    "run_stylize",
    "stylize",
]
