"""Optimizers (fused C++ updates) and learning-rate schedules."""
from . import lr_scheduler
from .lr_scheduler import (CosineAnnealingLR, ExponentialLR, LinearLR, LinearWarmup, LRScheduler, ReduceLROnPlateau,
                           StepLR)
from .optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, get

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "get", "lr_scheduler", "LRScheduler", "StepLR",
           "ExponentialLR", "CosineAnnealingLR", "LinearLR", "LinearWarmup", "ReduceLROnPlateau"]
