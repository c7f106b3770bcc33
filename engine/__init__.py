"""The semi-autonomous production engine: teachers, agents, the session loop, the runner and the dataset store."""
