from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from tasks import tokens
from tasks.models import Task


class TaskForm(forms.Form):
    title = forms.CharField(max_length=200)
    assignee = forms.CharField(max_length=150, help_text="username")

    def clean_assignee(self):
        username = self.cleaned_data["assignee"]
        try:
            return get_user_model().objects.get(username=username, is_active=True)
        except get_user_model().DoesNotExist:
            raise forms.ValidationError(f"no active user {username!r}") from None


def _index(request, form: TaskForm, status: int = 200):
    context = {
        "form": form,
        "tasks": Task.objects.filter(assignee=request.user).select_related("created_by")[:50],
        # read by the page's script through json_script, never pasted into JS
        "pgbell": {
            "url": settings.PGBELL_URL,
            "tokenUrl": reverse("pgbell-token"),
            "loginUrl": reverse("login"),
        },
    }
    return render(request, "tasks/index.html", context, status=status)


@require_GET
@login_required
def index(request):
    return _index(request, TaskForm())


@require_POST
@login_required
def create_task(request):
    """POST /tasks/ (a form: title, assignee username; CSRF-checked by the
    middleware). Redirects to / when created; a form with errors is shown
    again with 400."""
    form = TaskForm(request.POST)
    if not form.is_valid():
        return _index(request, form, status=400)
    # The trigger writes the notification rows inside this transaction;
    # pgbell is woken when it commits and a rollback notifies nobody.
    with transaction.atomic():
        Task.objects.create(
            title=form.cleaned_data["title"],
            assignee=form.cleaned_data["assignee"],
            created_by=request.user,
        )
    return redirect("index")


@require_GET
@login_required
def task_detail(request, pk: int):
    """Where a task_assigned notification's action_url leads: its assignee,
    its creator and staff may see it."""
    task = get_object_or_404(Task.objects.select_related("assignee", "created_by"), pk=pk)
    user = request.user
    if not (user.is_staff or task.assignee_id == user.pk or task.created_by_id == user.pk):
        raise Http404
    return render(request, "tasks/detail.html", {"task": task})


@require_GET
@never_cache
def pgbell_token(request):
    """GET /pgbell/token: {token, expires_in, user} for the logged-in user.
    Fetched by the page's script, so an anonymous caller gets a 401 in
    pgbell's error shape rather than the login redirect that
    @login_required would answer."""
    if not request.user.is_authenticated:
        return JsonResponse(
            {"error": {"code": "unauthorized", "message": "log in first"}}, status=401
        )
    return JsonResponse(tokens.issue(request.user))
