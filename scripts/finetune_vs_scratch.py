"""Fine-tuning against training from scratch: the same network, the same data and the same number of epochs,
once starting from a pretrained checkpoint (convolutions frozen, new head) and once from random weights.

    python scripts/finetune_vs_scratch.py --data-root ../shared/data            # MNIST 0-4 -> 5-9 (offline)
    python scripts/finetune_vs_scratch.py --data-root ../shared/data --fashion  # MNIST -> Fashion-MNIST

The runs are ordinary hyperlab runs, under logs/ (their folders are printed).
"""

import argparse
from pathlib import Path

from hyperlab.config import compose_config
from hyperlab.train import train

ROOT = Path(__file__).resolve().parents[1]

PLANS = {  # pretraining experiment, fine-tuning experiment, the same task from scratch
    "digits": ("mnist_lower", "finetune_upper", ["experiment=mnist_cnn", "data.classes=[5,6,7,8,9]"]),
    "fashion": ("mnist_cnn", "finetune_fashion", ["experiment=fashion_cnn"]),
}


def run(config_name: str, overrides: list[str], log_dir: str) -> dict:
    """One run, composed as `hyperlab-train` (or `hyperlab-finetune`) would compose it."""
    cfg = compose_config(config_name, [*overrides, f"paths.log_dir={log_dir}"], with_hydra=True)
    cfg.paths.output_dir = str(cfg.hydra.run.dir)  # the folder Hydra's command line would have made
    return train(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"), help="holds MNIST/raw/ ...")
    parser.add_argument("--fashion", action="store_true", help="MNIST -> Fashion-MNIST (needs FashionMNIST/raw/)")
    parser.add_argument("--log-dir", default=str(ROOT / "logs"))
    args = parser.parse_args()
    pretrain, finetune, scratch = PLANS["fashion" if args.fashion else "digits"]
    data = [f"data.root={args.data_root}", "callbacks=default"]

    pretrained = run("train", [f"experiment={pretrain}", *data], args.log_dir)
    start = f"ckpt_path={pretrained['best_checkpoint']}"
    tuned = run("finetune", [f"experiment={finetune}", start, *data], args.log_dir)
    epochs = f"trainer.max_epochs={tuned['epochs']}"
    fresh = run("train", [*scratch, *data, epochs, f"name={finetune}_scratch"], args.log_dir)

    print(f"\npretrained ({pretrain}): test acc {pretrained['metrics']['test/acc']:.4f}  {pretrained['run_dir']}")
    print(f"{'':<34}{'test acc':>10}{'epochs':>8}{'train s':>9}")
    for label, result in (("fine-tuned from the checkpoint", tuned), ("trained from scratch", fresh)):
        metrics = result["metrics"]
        print(f"{label:<34}{metrics['test/acc']:>10.4f}{result['epochs']:>8}{result['train_time_s']:>9.1f}")


if __name__ == "__main__":
    main()
