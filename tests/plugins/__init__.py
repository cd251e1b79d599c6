"""Third-party plugins used by the tests: code outside ``trm_modules`` and ``adapters``, registered in-process."""
