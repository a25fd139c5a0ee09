# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Adapters to scaling engines: `transformers_kronos.integrations.ray` (Ray Data). Each imports its engine on use."""
