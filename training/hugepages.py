"""malloc on transparent huge pages, set before anything heavy is imported (it imports only os and
sys: `python train.py` calls it first, so the re-execution does not pay for a JAX import twice)."""
import os
import sys


def reexec_with_huge_pages() -> None:
  """Restarts this command (same pid and arguments) with malloc on transparent huge pages.

  XLA:CPU allocates a step's temporaries afresh on every call; in 4 KiB pages that is a page fault
  per 4 KiB touched (docs/design.md, "CPU speed"). glibc reads its tunables only at startup, hence
  the re-execution before heavy imports; a no-op where THP is off or glibc < 2.35.
  GLIBC_TUNABLES=glibc.malloc.hugetlb=0 opts out.
  """
  tunables = os.environ.get("GLIBC_TUNABLES", "")
  if sys.platform == "linux" and "glibc.malloc.hugetlb" not in tunables:
    os.environ["GLIBC_TUNABLES"] = ":".join(filter(None, [tunables, "glibc.malloc.hugetlb=1"]))
    os.execv(sys.executable, sys.orig_argv)
