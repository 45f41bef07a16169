"""Bybit V5: linear perpetuals' public market data (`feed`, `parser`, `rest`) and request
signing for trading (`signing`)."""
