"""``jedisos-db verify``: the design's claims judged on a real server, written as a ledger.

- ``verdicts``  what a check finds (one ``Finding`` per test and claim) and how findings of one claim combine
- ``plugin``    the pytest plugin: the ``claim("ID")`` marker and the ``claim`` fixture tests record with
"""
