"""The optimizer (Gatys et al.): pixels optimized against a network's features.

Read top-down, the modules tell the algorithm in order: ``model`` (backbones and feature
extractors), ``losses`` (content, Gram style, total variation), ``tiles`` (print sizes, tile by
tile), ``objective`` (the run's targets and the loss of an image), ``scales`` (coarse to fine,
and what the scales share), ``adam`` and ``lbfgs`` (the two optimizers), ``run`` (the generator
of progress records that ends with a result), ``video`` (a clip, frame after frame). A run comes
in through the front door, ``nst.front``, which checks it once.
"""

from nst.engine.objective import Problem, prepare
from nst.engine.run import Event, optimize
from nst.records import CancelToken, Progress, Result

__all__ = ["CancelToken", "Event", "Problem", "Progress", "Result", "optimize", "prepare"]
