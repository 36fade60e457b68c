"""Training: optimizer, the jitted epoch/batch loop, self-supervised pretraining, finetuning."""

from jaxeval.train.finetune import evaluate, make_finetune
from jaxeval.train.loop import batch_indices, guarded_scan_epochs, scan_epochs, steps_per_epoch
from jaxeval.train.optim import make_optimizer
from jaxeval.train.pretrain import make_pretrain

__all__ = [
    "batch_indices",
    "evaluate",
    "make_finetune",
    "make_optimizer",
    "make_pretrain",
    "guarded_scan_epochs",
    "scan_epochs",
    "steps_per_epoch",
]
