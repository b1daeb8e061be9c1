"""What each rank of ``shendu train --nproc N`` runs (``shendu run`` starts this file on
every rank): the ``shendu`` command itself, given ``train ... --rank-of-job``."""
import sys

from shendu.cli import main

sys.exit(main(sys.argv[1:]))
