"""The ADL LRS Conformance Test Suite (xAPI 1.0.3) against ``trm serve``: every test passes.

Runs where the suite is installed (``.ci/run`` installs it and sets ``TRM_LRS_SUITE``); elsewhere
it is skipped. ``python tests/fixtures/lrs_conformance.py`` prints the same run with every failure named.
"""

from __future__ import annotations

import os

import pytest

from fixtures.lrs_conformance import SUITE_ENV, installed_suite, run_suite


@pytest.mark.slow
def test_trm_serve_passes_the_adl_lrs_conformance_suite_for_xapi_1_0_3():
    suite = installed_suite() if os.environ.get(SUITE_ENV) else None
    if suite is None:
        pytest.skip(f"the ADL LRS conformance suite is not installed ({SUITE_ENV} names an installed copy)")
    result = run_suite(suite, "1.0.3")
    named = "\n".join(f"{name}: {error.splitlines()[0][:200]}" for name, error in result.failures)
    assert result.total > 1300, f"the suite ran only {result.total} tests"
    assert result.failed == 0, f"{result.failed} of {result.total} conformance tests failed:\n{named}"
