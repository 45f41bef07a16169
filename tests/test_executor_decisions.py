"""The executor core's decisions (core.py), each at and either side of its boundary: which signals
are taken, how orders are placed, timed, retried, cancelled and hedged, exits and restarts."""
