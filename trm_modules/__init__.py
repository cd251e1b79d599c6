"""trm-modules: package, serve, hot-swap and retrain Tiny Recursive Models.

This package's own namespace stays small and torch-free: the plugin contract
(``hookimpl``, ``hookspec``, from ``trm_modules.hookspecs``) and the version. The library lives
in the sub-packages: ``trm_modules.model``, ``train``, ``package``, ``host``, ``store``,
``server`` and ``cli``.
"""

from .hookspecs import hookimpl, hookspec

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl", "hookspec"]
