"""hyperlab's Optuna sweeper, where Hydra looks for sweepers (the `hydra_plugins` namespace package): the class is
hyperlab.sweeps.optuna's, named here. Hydra imports this module whenever it starts: it imports nothing of Optuna."""

from hyperlab.sweeps.optuna import OptunaSweeper as _OptunaSweeper


class OptunaSweeper(_OptunaSweeper):
    """conf/hparams_search/optuna.yaml: `hydra.sweeper._target_: hydra_plugins.hyperlab_optuna.OptunaSweeper`."""
