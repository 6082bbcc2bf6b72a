"""``python -m aistudios_chromakey``: the same as the ``aistudios-chromakey`` command."""

from .cli import main

raise SystemExit(main())
