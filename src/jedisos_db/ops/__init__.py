"""Operations: what runs a database. Provisioning (embedded, URL, Docker), the design's start-up
order, least-privilege roles, the connection budget, catalog snapshots and diffs, Hindsight's migrations,
backup and restore (with the per-table checksums of their manifest).
It may import the data layer, never the harness or the CLI.
"""
