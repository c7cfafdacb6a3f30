from django.urls import path

from dmp.portals.public import views

app_name = "public_portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("patients", views.patients, name="patients"),
    path("professionnels", views.professionals, name="professionals"),
    path("faq", views.faq, name="faq"),
    path("logiciels-dmp-compatibles", views.compatible_software, name="compatible_software"),
    path("contact", views.contact, name="contact"),
    path("accessibilite", views.accessibility, name="accessibility"),
    path("mentions-legales", views.legal, name="legal"),
    path("healthz", views.healthz, name="healthz"),
]
