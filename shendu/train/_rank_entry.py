"""What each rank of ``shendu train --nproc N`` runs (``shendu run`` starts this file on
every rank): the ``shendu`` command itself, given ``train ... --rank-of-job``."""
import sys

from shendu.cli import main

if __name__ == "__main__":  # run as a script by each rank; importing it does nothing
    sys.exit(main(sys.argv[1:]))
