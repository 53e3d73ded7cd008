"""``jedisos-db verify``: the design's claims judged on a real server, written as a ledger.

- ``verdicts``  what a check finds (one ``Finding`` per test and claim) and how findings of one claim combine
- ``plugin``    the pytest plugin: the ``claim("ID")`` marker and the ``claim`` fixture tests record with
- ``claims``    the claim catalog (docs/design-claims.md) and the source tree whose tests are the checks
- ``run``       ``verify()``: the server, the claim-marked tests in-process, one verdict per catalog claim
- ``report``    the ledger on disk: verdicts.json, report.md, report.html
- ``schema``    the published JSON Schema of verdicts.json, and a check of a file against it
"""
