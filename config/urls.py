"""Root URL configuration: each channel and portal mounts its own urls module."""

from django.contrib.auth.views import LogoutView
from django.urls import include, path

from dmp.common.staff import ThrottledLoginView
from dmp.support.views import staff_home

urlpatterns = [
    # The web services first: every call of a vendor's software resolves its URL, which came
    # after each of the public portal's patterns (mounted at "") and the other includes.
    path("ihe/xds/", include("dmp.ihe.xds.urls")),
    path("fhir/", include("dmp.ihe.mhd.urls")),
    path("", include("dmp.portals.public.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("staff/", staff_home, name="staff_home"),
    path("staff/login/", ThrottledLoginView.as_view(), name="staff_login"),
    path("staff/logout/", LogoutView.as_view(next_page="/"), name="staff_logout"),
    path("patient/", include("dmp.portals.patient.urls")),
    path("support/", include("dmp.support.urls")),
    path("pilotage/", include("dmp.pilotage.urls")),
    path("pro/", include("dmp.portals.professional.urls")),
]
