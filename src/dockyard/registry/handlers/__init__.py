"""Request handlers, one module per route family of the distribution spec."""
