from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from playground.accounts import views as accounts_views
from playground.classrooms import api as classrooms_api
from playground.classrooms import pages as classrooms_pages
from playground.labs import api as labs_api
from playground.labs import pages as labs_pages
from playground.metrics import views as metrics_views
from playground.ports import api as ports_api
from playground.sessions import api, pages

api_urls = [
    path("sessions/", api.sessions),
    path("sessions/<str:sid>/", api.session_detail),
    path("sessions/<str:sid>/extend/", api.session_extend),
    path("sessions/<str:sid>/instances/", api.instances),
    path("sessions/<str:sid>/instances/<str:iid>/", api.instance_detail),
    path("sessions/<str:sid>/instances/<str:iid>/exec/", api.instance_exec),
    path("sessions/<str:sid>/instances/<str:iid>/files/", api.instance_files),
    path("sessions/<str:sid>/instances/<str:iid>/ports/", ports_api.open_port),
    path("sessions/<str:sid>/check/", labs_api.session_check),
    path("sessions/<str:sid>/lab/", labs_api.session_lab),
    path("sessions/<str:sid>/skip/", labs_api.session_skip),
    path("labs/", labs_api.labs),
    path("labs/<slug:slug>/", labs_api.lab),
    path("labs/<slug:slug>/progress/", labs_api.lab_progress),
    path("sessions/<str:sid>/hand/", classrooms_api.hand),
    path("classrooms/", classrooms_api.classrooms),
    path("classrooms/<str:cid>/", classrooms_api.classroom_detail),
    path("classrooms/<str:cid>/roster/", classrooms_api.roster),
    path("classrooms/<str:cid>/message/", classrooms_api.message),
    path("classrooms/<str:cid>/time/", classrooms_api.extra_time),
    path("classrooms/<str:cid>/fast-forward/", classrooms_api.fast_forward),
    path("images/", api.images),
    path("templates/", api.templates),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

urlpatterns = [
    path("", pages.landing, name="landing"),
    path("sessions/<str:sid>/", pages.session_page, name="session"),
    path("labs/", labs_pages.catalogue, name="labs"),
    path("labs/<slug:slug>/", labs_pages.lab_page, name="lab"),
    path("join/", classrooms_pages.join_by_code, name="join"),
    path("classrooms/", classrooms_pages.my_classes, name="classrooms"),
    path("classrooms/new/", classrooms_pages.new_class, name="classroom-new"),
    path("classrooms/<str:cid>/", classrooms_pages.dashboard, name="classroom"),
    path("classrooms/<str:cid>/edit/", classrooms_pages.edit_class, name="classroom-edit"),
    path("classrooms/<str:cid>/progress.csv", classrooms_pages.progress_csv, name="classroom-csv"),
    path("classrooms/<str:cid>/sessions/<str:sid>/", classrooms_pages.watch, name="classroom-watch"),
    path("join/<str:token>/", classrooms_pages.join_by_invite, name="join-invite"),
    path("healthz", api.healthz),
    path("metrics", metrics_views.metrics),  # PLAYGROUND_METRICS_ALLOW only
    path("api/", include(api_urls)),
    path("admin/login/", accounts_views.admin_login),  # throttled; before the admin's own
    path("admin/", admin.site.urls),
    path("accounts/login/", accounts_views.LoginView.as_view(), name="login"),  # throttled; before the stock one
    path("accounts/", include("django.contrib.auth.urls")),
]

handler400 = "playground.errors.json_bad_request"
handler403 = "playground.errors.json_permission_denied"
handler404 = "playground.errors.json_not_found"
handler500 = "playground.errors.json_server_error"
