from django.urls import path

from dmp.pilotage import views

app_name = "pilotage"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("panel", views.dashboard_panel, name="panel"),
    path("api/summary.json", views.summary_json, name="summary"),
    path("metrics", views.prometheus, name="metrics"),
]
