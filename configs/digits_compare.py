"""Default comparison: does masked-autoencoder pretraining help under a short finetuning budget?

Arms: ``pretrained`` (the base config: MLP 64-256-256 pretrained as a masked autoencoder, every
replicate its own pretraining run) vs ``scratch`` (``pretrain.enabled=False``), both fully
finetuned for 5 epochs, on a suite of three digits tasks (10-way ``identity``, ``parity``,
``ge5``), 16 paired seeds: replicate s of both arms uses the same data order and dropout keys.

Command:
  python -m jaxeval.compare --config configs/digits_compare.py --workdir workdirs/digits_compare
Expected (measured, jax 0.10.2 on a 2-core x86 CPU): pretrained ahead on every task's mean
(identity +0.001, parity +0.011, ge5 +0.005 accuracy), parity alone significant after Holm;
printed verdict
  pretrained > scratch on 1/3 tasks (Holm-corrected); aggregate IQM +0.004 [+0.002, +0.007];
  P(pretrained>scratch)=0.70 [0.59, 0.80]: significant and meaningful
With 40 finetuning epochs (``--config.finetune.epochs=40``) the advantage vanishes:
P(pretrained>scratch)=0.54 [0.44, 0.65], "no difference" (the interval excludes 0.25 and 0.75).
Runtime: 77 s of CPU time, 4 min wall measured on 2 CPU cores shared with other jobs (load
about 10), mostly compiling 1 pretraining and 6 finetuning programs and the statistics; set JAX_COMPILATION_CACHE_DIR to reuse compiled programs across runs. A rerun on
the same workdir restores every sweep from its checkpoints.
"""

from jaxeval.config import base_config


def get_config():
    config = base_config("compare")
    config.seed = 0
    config.num_seeds = 16
    config.chunk_width = 8
    config.dataset.name = "digits"
    config.model.name = "mlp"
    config.model.hidden = (256, 256)
    config.finetune.modes = ("full",)
    config.finetune.epochs = 5
    config.compare.arms = ("pretrained:", "scratch: pretrain.enabled=False")
    config.compare.tasks = ("identity", "parity", "ge5")
    config.compare.metric = "accuracy"
    config.compare.gamma = 0.75
    return config
