"""Default multi-task study: digits (6 derived tasks) and generated MNIST-1D, 4 configurations.

Suite: digits 10-class, parity, >=5, one-vs-rest 3 and 8, 10-class with 200 training examples,
and MNIST-1D 10-class (4,000 generated training examples; its own backbone). Each dataset gets
5 pretraining seeds of an MLP masked autoencoder (128-128), kept at 25/50/75/100% of the 20
pretraining epochs; every task is finetuned with 3 seeds per backbone in the configurations
full, probe, probe on the 25% checkpoint, and scratch (15 runs per task and config), plus
probes from every checkpoint for the pretraining -> downstream link. Intervals: 95% percentile
bootstrap, nested (pretraining seeds, then finetuning seeds), 2,000 resamples.

Command:
  python -m jaxeval.multitask --config configs/digits_multitask.py --workdir workdirs/digits_multitask
Expected (measured, seed 0): digits accuracy full/scratch 0.92 (10-class), 0.97 (parity), 0.95 (>=5),
0.97 (one-vs-rest), 0.85 (n=200), probes 0.02-0.11 lower, probe@25% lower still; MNIST-1D full 0.63,
probe 0.38. Normalised mean: full 0.783 [0.779, 0.787], scratch 0.784, probe 0.592, probe@25% 0.503;
full and scratch share ranks 1-2 (rank intervals [1, 2]; P(rank=1) 0.76 scratch, 0.24 full).
Pretraining loss vs probe accuracy: Pearson -0.89 [-0.98, -0.85] for the digits suite mean,
-0.24 [-0.61, 0.18] on MNIST-1D.
Runtime: 190 s of CPU time; 414 and 533 s wall in two runs on a shared 2-core machine
(load average 7-11; not measured on an idle one). Two fresh processes gave identical fingerprints.
"""

from jaxeval.config import base_config


def get_config():
    config = base_config("multitask")
    config.seed = 0
    config.num_seeds = 3
    config.chunk_width = 8
    config.model.name = "mlp"
    config.model.hidden = (128, 128)
    config.model.recon_hidden = 128
    config.pretrain.num_seeds = 5
    config.pretrain.epochs = 20
    config.finetune.epochs = 30
    config.multitask.nested = True
    return config
