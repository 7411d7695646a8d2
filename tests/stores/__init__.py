"""Tests of the state stores."""
