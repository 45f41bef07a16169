"""OKX v5: public market data of perpetual swaps (`feed`, `parser`, `rest`)."""
