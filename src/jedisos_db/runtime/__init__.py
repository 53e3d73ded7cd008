"""The data layer JediSOS imports at run time: config, errors, urls, secrets, db/ (models, engine,
migrations runner), repositories/, retention, the LangGraph checkpointer, the Hindsight REST client.
It imports nothing from ops, harness or cli.
"""
