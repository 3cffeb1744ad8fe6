"""The Django app of the client: connects the integration once Django is ready."""

from __future__ import annotations

from django.apps import AppConfig


class FlawlessConfig(AppConfig):
    """``flawless.client.django``: reports the project's unhandled exceptions."""

    name = "flawless.client.django"
    label = "flawless_client"
    verbose_name = "flawless"

    def ready(self) -> None:
        """Configure the client from ``settings.FLAWLESS`` and connect the signals."""
        from django.conf import settings

        from flawless.client.django.integration import connect

        connect(getattr(settings, "FLAWLESS", None) or {})
