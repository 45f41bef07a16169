"""Binance USD-M futures: public market data of USDT perpetuals (`feed`, `parser`, `rest`)."""
