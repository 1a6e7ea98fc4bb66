"""sesflow domain: plain Python, no AWS client inside (addresses, rendering, MIME, policies)."""
