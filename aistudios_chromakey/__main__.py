"""``python -m aistudios_chromakey``: the same as the ``aistudios-chromakey`` command."""

from ._cli import main

raise SystemExit(main())
