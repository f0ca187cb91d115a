"""`--help` of hyperlab's commands: the presets, the config groups with their options and defaults (conf/), a sweep,
and the other commands."""

import yaml

from hyperlab.classes import CONF_DIR

# hyperlab's commands; `python -m hyperlab <command>` runs `hyperlab-<command>`
COMMANDS = """\
    hyperlab-train [-m] key=value ...        train and test (a sweep with -m)            hyperlab.train
    hyperlab-finetune ckpt_path=... ...      a new run from a checkpoint's weights       hyperlab.start
    hyperlab-eval ckpt_path=... ...          test a checkpoint in a fresh process        hyperlab.evaluate
    hyperlab-predict ckpt_path=... images=.. classify your own images or rows            hyperlab.predict
    hyperlab-sweep-table folder=...          (re)write a sweep's table and heatmap       hyperlab.sweeps.table
"""

HELP_FLAGS = {"--help", "-h"}


def commands_table() -> str:
    """hyperlab's commands, one line each."""
    return "\n".join(["hyperlab's commands (each takes --help; python -m hyperlab <command> is the same):",
                      COMMANDS.rstrip()])


def help_text(config_name: str) -> str:
    """hyperlab-train --help (and hyperlab-finetune's): the presets, the groups to choose from with their options and
    defaults (conf/), a sweep, and the other commands."""
    defaults = {}
    for entry in yaml.safe_load((CONF_DIR / "train.yaml").read_text()).get("defaults", []):
        if isinstance(entry, dict):
            defaults.update({str(k).split(" ")[-1]: v for k, v in entry.items()})
    folders = sorted(f for f in CONF_DIR.iterdir() if f.is_dir() and f.name not in ("hydra", "experiment"))
    options = {folder.name: sorted(p.stem for p in folder.glob("*.yaml")) for folder in folders}
    launchers = sorted(p.stem for p in (CONF_DIR / "hydra" / "launcher").glob("*.yaml")) + ["joblib", "submitit_local"]
    lines = [
        f"hyperlab-{'finetune' if config_name == 'finetune' else 'train'} [-m] [key=value ...]",
        "  train and test one experiment; with -m, a sweep: every combination of the values given as a,b,c",
        "",
        "experiments (experiment=<preset>, conf/experiment/): "
        + ", ".join(sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))),
        "",
        "groups (group=option; default in brackets, conf/<group>/):",
        *(
            f"  {group:<14} {' | '.join(names)}" + (f"  [{defaults[group]}]" if defaults.get(group) else "")
            for group, names in options.items()
        ),  # fmt: skip
        f"  {'hydra/launcher':<14} {' | '.join(sorted(launchers))}  [basic: one run after another]",
        "",
        "examples:",
        "  hyperlab-train experiment=mnist_cnn data.root=../shared/data optimizer.lr=0.01 trainer.max_epochs=3",
        "  hyperlab-train -m experiment=mnist_mlp sweep=homework data.root=../shared/data    # the homework: 64 runs",
        "  hyperlab-train -m experiment=blobs optimizer.lr=0.1,0.01 model.depth=1,2          # any grid",
        "  hyperlab-train -m experiment=blobs optimizer.lr=0.1,0.01 repeats=3                # each 3 times: noise?",
        "  hyperlab-train experiment=iris data.folds=5                                       # 5-fold cross-validation",
        "  hyperlab-train -m experiment=mnist_mlp hparams_search=optuna data.root=../shared/data",
        "  hyperlab-train --cfg job experiment=iris       # print the composed config (every key) and stop",
        "  (Hydra's own flags: --hydra-help)",
        "",
        commands_table(),
    ]
    return "\n".join(lines)
