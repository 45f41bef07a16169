"""OKX v5: public market data of perpetual swaps (`feed`, `parser`, `rest`) and swap trading
(`trading`: the client; `client`: signed REST and the code table; `signing`; `private`: rows as
updates; `stream`: the private stream)."""
