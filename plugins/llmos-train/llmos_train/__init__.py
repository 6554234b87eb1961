"""llmos-train: optimizers, LR schedules, the training loop, grid search and DDP.

Importing this package is light; torch is imported inside the modules that need it
(:mod:`llmos_train.optim`, :mod:`llmos_train.loop`...).
"""

__version__ = "0.1.0"
