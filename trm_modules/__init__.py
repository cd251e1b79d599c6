"""trm-modules: package, serve, hot-swap and retrain Tiny Recursive Models."""

__version__ = "0.1.0"
