"""One SOAP endpoint dispatching on the WS-Addressing action; the usual actor paths are aliases."""

from django.urls import path

from dmp.ihe.xds.views import endpoint

app_name = "xds"

urlpatterns = [
    path("", endpoint, name="endpoint"),
    path("repository", endpoint, name="repository"),
    path("registry", endpoint, name="registry"),
    path("dmp", endpoint, name="dmp"),
]
