"""The package's version, kept apart so that any module can read it without
importing the package's ``__init__``."""

__version__ = "0.2.0"
VERSION = __version__
