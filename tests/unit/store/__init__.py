"""Tests of tensorfusion.store; `contract` holds the suite every backend runs."""

import pytest

# The contract's assertions live outside test modules; rewrite them so failures show values.
pytest.register_assert_rewrite(f"{__name__}.contract")
