"""The agent-based simulation of Khyber Pakhtunkhwa's citizens, merchants and payment flows.

Pure domain code: no I/O and no clock. Randomness comes from seeded `random.Random` objects and
simulated time starts at a fixed instant, so one seed, scenario and parameter set always yields
the same event stream.
"""
