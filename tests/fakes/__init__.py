"""Test doubles shared by the suites (only for what the tests do not run for real)."""
