"""A city's morning on the network: riders with real cards through real gates."""
