"""KuCoin futures: public market data of USDT-margined perpetuals (`feed`, `parser`, `rest`)."""
