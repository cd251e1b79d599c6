"""Plugins shipped with trm-modules (installed as ``trm_adapters``): task codecs and bridges."""
