"""Bitget v2: public market data of USDT-margined futures (`feed`, `parser`, `rest`)."""
