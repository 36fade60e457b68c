"""Default variance study: 6 init x 6 data-order x 3 dropout seeds (108 replicates) on digits.

Command:
  python -m jaxeval.variance --config configs/digits_variance.py --workdir workdirs/digits_variance
One masked-autoencoder pretraining run, then full finetuning and a linear probe of all 108
replicates (one vmapped program per mode, chunks of 8), 5-fold cross-validation repeated twice,
and the statistics. Expected: full finetuning accuracy about 0.94, most of its run-to-run variance
in the residual (init:data:dropout) and data-order terms; test-set noise dominates the standard
error of the mean accuracy. Runtime: a few minutes on 2 CPU cores.
"""

from jaxeval.config import base_config


def get_config():
    config = base_config("variance")
    config.seed = 0
    config.chunk_width = 8
    config.dataset.name = "digits"
    config.model.name = "mlp"
    config.model.hidden = (256, 256)
    config.finetune.epochs = 20
    config.variance.design = "factorial"
    config.variance.init = 6
    config.variance.data = 6
    config.variance.dropout = 3
    config.variance.metrics = ("accuracy", "nll")
    config.variance.cv = "kfold"
    config.variance.cv_folds = 5
    config.variance.cv_repeats = 2
    return config
