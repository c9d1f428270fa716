from django.conf import settings
from django.db import models


class Task(models.Model):
    """A task assigned to a user. Inserting one notifies its assignee and
    every staff user: the database trigger of migration 0002 does it, so any
    writer (this app, a script, psql) notifies alike."""

    title = models.CharField(max_length=200)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tasks"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.title
