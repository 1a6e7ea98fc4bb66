"""sesflow: operator CLI and embedded local AWS for the sesflow SAM application."""

__version__ = "0.1.0"
