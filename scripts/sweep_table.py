"""Rewrite a sweep's summary.md, summary.csv and heatmap.png, e.g. of a sweep killed halfway.

    python scripts/sweep_table.py logs/mnist_mlp/multirun/<time> [--metric test/acc] [--pivot optimizer.lr model.hidden]

The same as the console script `hyperlab-sweep-table`.
"""

from hyperlab.sweeps.table import main

if __name__ == "__main__":
    main()
