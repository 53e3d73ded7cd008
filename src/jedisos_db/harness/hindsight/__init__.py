"""The real Hindsight server run offline for the harness: its API process, a deterministic
TEI-compatible embedding endpoint, and the recorded OpenAPI contract.
"""
