"""`python -m trm_modules.cli …` — the same CLI, for launchers such as torchrun."""

from . import main

main()
