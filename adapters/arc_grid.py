"""The ARC grid task codec (``"arc"``) — being written; registers nothing yet."""

from trm_modules.host.hookspecs import hookimpl


@hookimpl
def trm_register_codecs() -> list[type]:
    """No codec yet."""
    return []
