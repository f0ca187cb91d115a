"""What third-party packages print that is not the user's business, silenced where it arises, one message at a
time; and Python's warnings sent to the run's log.

`quiet_third_party()` is called once per process, first thing in an entry point's `main()`: before `hydra.main`,
which sets up the run's logging (whether Lightning is imported already does not matter). Everything else Lightning
and torch say is still shown, and lands in the run folder's train.log beside hyperlab's own lines: Lightning's
loggers are routed there by conf/hydra/default.yaml (`job_logging.loggers`), Python's warnings by
`logging.captureWarnings` here.

A leaf: of hyperlab it imports only hyperlab.compat (a leaf too, which imports no other package at its import), and
neither Lightning nor torch.
"""

import logging
import warnings

from hyperlab.compat import PYTREE_MODULE

# Lightning 2.6.6 advertises its cloud logger on every Trainer without a LitLogger (trainer/connectors/
# logger_connector/logger_connector.py:91) and its model registry when it makes the checkpoint callback itself
# (trainer/connectors/callback_connector.py:190), both with `rank_zero_info`, i.e. through this logger. 2.6.6 has no
# switch for them; a later Lightning has Trainer(suggest_integrations=False): set that in conf/trainer/ instead of
# this filter once hyperlab requires it.
LIGHTNING_INFO_LOGGER = "lightning.pytorch.utilities.rank_zero"
LIGHTNING_TIPS = (
    "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]",
    "💡 Tip: For seamless cloud uploads and versioning, try installing [litmodels]",
)
# torch (2.15 here) deprecates constructing `LeafSpec()` with a FutureWarning (torch/utils/_pytree.py:1380); Lightning
# 2.6.6's `_tree_flatten` still does (lightning/pytorch/utilities/_pytree.py:21), for every CombinedLoader, i.e. in
# each fit and test (Lightning's issue #21326). Silenced where it is raised (compat.PYTREE_MODULE): Lightning's line,
# not the user's.
LEAFSPEC_MESSAGE = r"`isinstance\(treespec, LeafSpec\)` is deprecated"

# Lightning warns in every run on a machine where SLURM's `srun` is installed but the run was not started by it
# (lightning/fabric/plugins/environments/slurm.py, `_validate_srun_used`): a tutor's machine with a one-node cluster,
# a login node. hyperlab's runs on SLURM are started by srun through its launcher (hydra/launcher=slurm); one started
# by hand runs on the machine it was typed on, as meant.
SRUN_MESSAGE = r"The `srun` command is available on your system but is not used"


class DropMessages(logging.Filter):
    """Drops the records whose message starts with one of `prefixes` (as a logger's filter: that logger's own)."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


class NoLineEnd(logging.Filter):
    """Drops the line end `warnings.formatwarning` puts after a warning (a handler ends the line itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = record.msg.rstrip("\n")
        return True


_LIGHTNING_TIPS = DropMessages(*LIGHTNING_TIPS)
_NO_LINE_END = NoLineEnd()


def quiet_third_party() -> None:
    """Silence the few third-party messages that are noise, and log Python's warnings (a second call does nothing
    more)."""
    # advertising, not news about the run (see LIGHTNING_TIPS)
    logging.getLogger(LIGHTNING_INFO_LOGGER).addFilter(_LIGHTNING_TIPS)
    # a deprecation inside Lightning that the user can do nothing about (see LEAFSPEC_MESSAGE)
    warnings.filterwarnings("ignore", message=LEAFSPEC_MESSAGE, category=FutureWarning, module=PYTREE_MODULE)
    # advice for a cluster's login node, given on any machine with SLURM installed (see SRUN_MESSAGE)
    warnings.filterwarnings("ignore", message=SRUN_MESSAGE)
    # every other warning goes through logging (logger "py.warnings"), so that the run's train.log holds it too
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").addFilter(_NO_LINE_END)
