# Environment of a recipe; sourced by run.sh / voc.sh from egs/<corpus>/voc1.
MAIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
export MAIN_ROOT
# The project's virtual environment (made by `make venv`), unless one is active.
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f "${MAIN_ROOT}/.venv/bin/activate" ]; then
    # shellcheck disable=SC1091
    . "${MAIN_ROOT}/.venv/bin/activate"
fi
export PATH="${PWD}/utils:${PATH}"
export PYTHONPATH="${MAIN_ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
export LC_ALL=C                 # Kaldi files are sorted in byte order
export PYTHONIOENCODING=UTF-8
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning,ignore::UserWarning}"
# One intra-op thread per process (as ESPnet's recipes do): jobs run side by
# side, and oversubscribed OpenMP threads spin; the fast generator and the
# DataLoader manage their own threads.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
