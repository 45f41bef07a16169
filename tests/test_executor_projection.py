"""The read models in the seed's key schema (projection.py), the portfolio's figures (portfolio.py), the
venue tally (tally.py) and the facts' codec (facts.py), from facts made by hand or by the paper desk."""
