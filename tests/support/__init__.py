"""Helpers the tests share: what more than one test module needs lives here, grouped by
subject, and test modules import it from here, never from one another (test_layers checks).

A fixture shared across directories is defined here and imported into the conftest.py of
each directory that uses it."""
