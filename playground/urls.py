from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from playground.sessions import api, pages

api_urls = [
    path("sessions/", api.sessions),
    path("sessions/<str:sid>/", api.session_detail),
    path("sessions/<str:sid>/extend/", api.session_extend),
    path("sessions/<str:sid>/instances/", api.instances),
    path("sessions/<str:sid>/instances/<str:iid>/", api.instance_detail),
    path("sessions/<str:sid>/instances/<str:iid>/exec/", api.instance_exec),
    path("sessions/<str:sid>/instances/<str:iid>/files/", api.instance_files),
    path("images/", api.images),
    path("templates/", api.templates),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

urlpatterns = [
    path("", pages.landing, name="landing"),
    path("sessions/<str:sid>/", pages.session_page, name="session"),
    path("healthz", api.healthz),
    path("api/", include(api_urls)),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
]

handler400 = "playground.errors.json_bad_request"
handler403 = "playground.errors.json_permission_denied"
handler404 = "playground.errors.json_not_found"
handler500 = "playground.errors.json_server_error"
