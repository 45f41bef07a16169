"""Gate: public market data of USDT-settled perpetual futures (`feed`, `parser`, `rest`)."""
