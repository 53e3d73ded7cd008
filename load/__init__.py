"""Locust load scenarios for jedisos-db (see locustfile.py); `python -m load` runs them."""
