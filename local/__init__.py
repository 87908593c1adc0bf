"""Runs the stack on one machine: the Sage X3 emulator, embedded AWS and the local API gateway."""
