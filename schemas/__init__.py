"""The sandbox's contract: event models, the topic catalog and the money type. Depends on nothing of ours."""
