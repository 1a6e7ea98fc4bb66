"""Thin Lambda handlers: parse the event, call the domain, talk to AWS."""
