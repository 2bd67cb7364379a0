"""Thin Lambda entry points: each wires Powertools to the logic in `marketplace_saas`."""
