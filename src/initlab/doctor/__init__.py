"""The doctor: signal-propagation probes, verdicts, recommendations, diagnose/fix, monitor."""
