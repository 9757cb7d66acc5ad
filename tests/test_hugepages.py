"""`python train.py` re-executes itself with malloc on huge pages before JAX is imported."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

# Runs train.py as `python train.py` would, with os.execv replaced by a report of what the
# process had imported when it re-executed.
PROBE = """
import os, runpy, sys
def execv(path, argv):
  print("jax imported:", "jax" in sys.modules, "|", os.environ["GLIBC_TUNABLES"])
  sys.exit(7)
os.execv = execv
sys.argv = ["train.py", "--help"]
runpy.run_path("train.py", run_name="__main__")
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the re-exec is Linux-only")
def test_train_py_reexecs_before_jax_is_imported():
  env = {key: value for key, value in os.environ.items() if key != "GLIBC_TUNABLES"}
  done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=120)
  assert done.returncode == 7, done.stderr
  assert done.stdout.strip() == "jax imported: False | glibc.malloc.hugetlb=1"


def test_the_reexec_module_imports_nothing_heavy():
  code = ("import sys; import training.hugepages; "
          "print(sorted(m for m in ('jax', 'numpy', 'flax', 'ml_collections') if m in sys.modules))")
  done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                        timeout=120)
  assert done.stdout.strip() == "[]", done.stderr
