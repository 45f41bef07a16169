"""A trade as its facts make it (trade.py): positions, cash, fees, funding, fills seen twice, orders
and their states."""
