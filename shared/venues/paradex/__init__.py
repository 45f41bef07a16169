"""Paradex: public market data of perpetuals (`feed`, `parser`, `rest`)."""
