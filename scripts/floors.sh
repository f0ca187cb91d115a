#!/usr/bin/env bash
# The dependency floors (issue 24): a second environment with the lowest versions pyproject.toml allows
# (constraints-floors.txt, which tests/test_floors.py keeps equal to pyproject's floors), where the README's default
# command and the fast tests that use the libraries' APIs must pass as they do on the newest versions.
#
#   scripts/floors.sh [--install-only|--tests-only] [VENV]
#       VENV: the environment's folder, default .venv-floors; made if missing, else updated. --install-only stops once
#       it is installed, --tests-only skips the install (.ci/run installs it while the main tests run: the install is
#       mostly a 3 GB download, which the tests' CPU does not slow, and took 283 of the floors' 431 s here).
set -euo pipefail
cd "$(dirname "$0")/.."
phase=all
case "${1:-}" in --install-only) phase=install; shift ;; --tests-only) phase=tests; shift ;; esac
venv=${1:-.venv-floors}
started=$SECONDS

if [ "$phase" != tests ]; then
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q -e ".[dev]" -c constraints-floors.txt
fi
installed=$((SECONDS - started))
[ "$phase" != install ] || { echo "floors: $venv installed in ${installed} s"; exit 0; }

echo "floors environment $venv:"
"$venv/bin/python" - <<'EOF'
import importlib.metadata
import platform

from packaging.requirements import Requirement

print(f"  python {platform.python_version()}")
for line in open("constraints-floors.txt"):
    line = line.split("#", 1)[0].strip()
    if line:
        name = Requirement(line).name
        print(f"  {name} {importlib.metadata.version(name)}")
EOF

export OMP_NUM_THREADS=1 HYPERLAB_FLOORS=1  # (one torch thread per process, as in tests/conftest.py)
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT
"$venv/bin/hyperlab-train" paths.log_dir="$log_dir"
# The fast tests of the libraries whose floors are older than their newest: torch (training, networks, data),
# scikit-learn, pandas and scipy (folds: a table's preprocessing and its folds; comparisons: the sweep's statistics,
# with matplotlib's figures), optuna (a search kept, pruned, its space), and the private names hyperlab relies on.
# (the files of torchvision, pyarrow and tensorboard, transfer, table_files and tensorboard, took CI past 30 minutes
# once the cluster tests joined it: the default hyperlab-train above still imports torchvision and logs to tensorboard.)
# Lightning's and Hydra's floors are their newest; the files that test hyperlab's own handling of sweeps, records,
# signals, refusals and text make the same library calls: running them here too would take CI past 30 minutes.
tests=(training networks data folds comparisons optuna private_names)
files=()
for name in "${tests[@]}"; do files+=("tests/test_$name.py"); done
"$venv/bin/pytest" -m "not slow" "${files[@]}" -k "not test_optuna.py or syntax or keeps_its_study or hopeless"
"$venv/bin/pytest" -n0 -q tests/test_floors.py  # (the README's way to run one file, in this process)
[ "$phase" = tests ] || echo "floors: installed in ${installed} s"
echo "floors: everything in $((SECONDS - started)) s"
