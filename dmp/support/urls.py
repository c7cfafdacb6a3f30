from django.urls import path

from dmp.support import views

app_name = "support"

urlpatterns = [
    path("", views.ticket_index, name="ticket_index"),
    path("tickets/new", views.ticket_new, name="ticket_new"),
    path("tickets/<str:reference>", views.ticket_detail, name="ticket_detail"),
    path("tickets/<str:reference>/comment", views.ticket_add_comment, name="ticket_comment"),
    path("tickets/<str:reference>/status", views.ticket_set_status, name="ticket_status"),
    path("tickets/<str:reference>/take", views.ticket_take, name="ticket_take"),
    path("statistics", views.statistics_view, name="statistics"),
    path("records", views.record_lookup, name="record_lookup"),
]
