from django.urls import path

from dmp.portals.public import views

app_name = "public_portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
]
