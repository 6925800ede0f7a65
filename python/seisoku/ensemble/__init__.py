"""Ensembles: model averaging and voting, bagging, multi-class AdaBoost (SAMME) and snapshot
ensembles.

* `Ensemble` combines trained classifiers (seisoku.nn modules that map inputs (N, ...) to
  logits (N, K)): soft voting averages the members' softmax probabilities, hard voting counts
  their argmax votes, both with optional member weights. `disagreement` measures how often
  members differ. `save` / `load` write the whole ensemble, architecture and parameters, to
  one .npz archive (no pickle).
* `Bagging` trains each member on a bootstrap resample (or a subsample) of the training set
  with seisoku.train.Trainer, members side by side in worker processes (or threads), and
  reports the out-of-bag accuracy.
* `AdaBoost` is SAMME (Zhu, Zou, Rosset and Hastie 2009, "Multi-class AdaBoost"): member m
  is trained with per-sample loss weights w (not by resampling; `PerSampleWeightLoss` makes
  them act per sample), and its vote weight is
  alpha_m = log((1 - err_m) / err_m) + log(K - 1).
* `SnapshotEnsemble` (Huang et al. 2017) takes a member at the end of every cycle of a cyclic
  cosine learning rate: M members for the cost of one training run.

Modules: _voting (Ensemble and its file), _members (member training; worker processes,
threads or MPI ranks; the per-sample weight loss), _bagging, _boosting, _snapshot, _run
(`seisoku train --ensemble`) and _estimator (BaggingMLPClassifier, re-exported by
seisoku.estimators; needs scikit-learn).
"""

from ._bagging import Bagging
from ._boosting import AdaBoost, samme_step
from ._members import BACKENDS, PerSampleWeightLoss
from ._snapshot import SnapshotEnsemble
from ._voting import ENSEMBLE_KIND, Ensemble

__all__ = [
    "BACKENDS",
    "ENSEMBLE_KIND",
    "AdaBoost",
    "Bagging",
    "Ensemble",
    "PerSampleWeightLoss",
    "SnapshotEnsemble",
    "samme_step",
]
