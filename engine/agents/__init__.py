"""The engine's agents: planner, project lead, worker and feedback analyzer (one module each)."""
