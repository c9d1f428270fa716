from django.contrib.auth import views as auth_views
from django.urls import path

from tasks import views

urlpatterns = [
    path("", views.index, name="index"),
    path("pgbell/token", views.pgbell_token, name="pgbell-token"),
    path("tasks/", views.create_task, name="create-task"),
    path("tasks/<int:pk>/", views.task_detail, name="task-detail"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
