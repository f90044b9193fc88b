"""Shared test settings: hypothesis without wall-clock deadlines (CI has 2 slow cores)."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "grit-lite", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200
)
settings.load_profile("grit-lite")
