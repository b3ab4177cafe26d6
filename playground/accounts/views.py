"""Django's sign-in page, with wrong passwords counted per client address."""
from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpResponse

from .throttles import failures_wait, note_failure

LOGIN_SCOPE = "login_address"


class LoginView(auth_views.LoginView):
    """Past PLAYGROUND_LOGIN_RATE_ADDRESS failed sign-ins from one address,
    the page answers 429 without checking the password (each check is a
    deliberately slow hash, and each wrong one a guess)."""

    def post(self, request, *args, **kwargs) -> HttpResponse:
        wait = failures_wait(LOGIN_SCOPE, request)
        if wait is not None:
            form = self.get_form_class()(request)  # unbound: nothing is checked
            context = self.get_context_data(
                form=form, throttled=f"Too many failed sign-ins from your network; try again in {wait} s.")
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form) -> HttpResponse:
        note_failure(LOGIN_SCOPE, self.request)
        return super().form_invalid(form)


def admin_login(request, extra_context=None) -> HttpResponse:
    """The admin's own sign-in page, counted like LoginView (the same scope)."""
    from django.contrib import admin

    if request.method == "POST":
        wait = failures_wait(LOGIN_SCOPE, request)
        if wait is not None:
            response = HttpResponse(f"Too many failed sign-ins from your network; try again in {wait} s.",
                                    status=429, content_type="text/plain; charset=utf-8")
            response["Retry-After"] = str(wait)
            return response
    response = admin.site.login(request, extra_context)
    if request.method == "POST" and response.status_code == 200:  # the form again: a wrong password
        note_failure(LOGIN_SCOPE, request)
    return response
