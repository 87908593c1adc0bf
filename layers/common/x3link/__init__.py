"""Sage X3 link: the OAuth pairing, token keeping and Sage X3 calls that every function shares."""
