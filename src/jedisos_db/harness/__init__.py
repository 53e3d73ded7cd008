"""The harness: what measures and judges. Data generators, the pgvector benchmark, the pool probe,
the capacity model, the offline Hindsight server. It may import the data layer and operations.
"""
