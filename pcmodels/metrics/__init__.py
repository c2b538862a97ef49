"""Evaluation metrics of generated point clouds.

- :mod:`.jets`: the field's standard jet metrics from ``jetnet.evaluation`` (W1M, W1P, W1EFP,
  FPD, KPD), imported safely under numpy 2, on zero-padded ``[N, P, 3]`` relative-coordinate jets.
- :mod:`.kl`: the binned, bootstrapped KL divergence of the EPiC-FM paper on per-jet features.
- :mod:`.plots`: real-vs-generated histograms with ratio panels.
- :mod:`.calo`: the CaloChallenge high-level shower features, histograms and separation powers.
- :mod:`.frechet`: FPD and KPD with jetnet's sampling, re-coded (showers' 362 features).
- :mod:`.classifier`: the CaloChallenge DNN classifier metric (AUC, JSD after calibration).

Importing this package is cheap: jetnet (and with it torch and numba) loads on first use.
"""

from .jets import (
    JET_OBSERVABLES,
    PARTICLE_FEATURES,
    SCALES,
    JetSample,
    MetricConfig,
    compare_jets,
    efp_features,
    fpd,
    informative_observables,
    jet_observables,
    kpd,
    load_jetnet_evaluation,
    w1efp,
    w1efp_from_features,
    w1m,
    w1p,
    wasserstein_placeholder_reason,
)
from .kl import KL_SCALE, KLResult, histogram_edges, kl_divergence, kl_metric
from .plots import plot_comparison
from .value import MetricValue

__all__ = [
    "JET_OBSERVABLES",
    "PARTICLE_FEATURES",
    "SCALES",
    "KL_SCALE",
    "MetricValue",
    "MetricConfig",
    "JetSample",
    "compare_jets",
    "load_jetnet_evaluation",
    "wasserstein_placeholder_reason",
    "w1m",
    "w1p",
    "w1efp",
    "w1efp_from_features",
    "efp_features",
    "fpd",
    "kpd",
    "jet_observables",
    "informative_observables",
    "KLResult",
    "histogram_edges",
    "kl_divergence",
    "kl_metric",
    "plot_comparison",
]
