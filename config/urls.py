"""Root URL configuration: each channel and portal mounts its own urls module."""

from django.urls import include, path

urlpatterns = [
    path("", include("dmp.portals.public.urls")),
]
