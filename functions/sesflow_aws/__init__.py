"""Adapters that take a boto3 client, shared by the Lambda handlers and the CLI.

Each module wraps one store or service in the calls sesflow makes of it (the ledger, the
tracking item, the suppression list, campaigns, SES, the event bus, templates, secrets,
schedules); the domain rules stay in ``sesflow_core``, the Lambda wiring in
``sesflow_handlers``.
"""
