# The app image of the production shape (docker-compose.yml): web, worker,
# beat and migrate. Built FROM a local base, never from a registry:
#
#   scripts/build-app-images.sh        builds playground-appbase (Debian's
#                                      python3 + a venv with the Python
#                                      packages, from deploy/images/appbase)
#                                      and then this, as playground-app
#
# By hand: docker build --network none --build-arg BASE=playground-appbase:latest \
#              -t playground-app:latest .
# (--network none: nothing here fetches anything, and the project's engine
# has no default bridge.) The browser bundle, static/build/, comes from
# scripts/build-frontend.sh on the host. .dockerignore keeps the context to
# what is copied below.
ARG BASE=playground-appbase:latest
FROM ${BASE}
WORKDIR /app
COPY manage.py ./
COPY sandboxes/ sandboxes/
COPY playground/ playground/
COPY templates/ templates/
COPY labs/ labs/
COPY static/ static/
# collectstatic needs settings, not secrets or services: a throwaway key.
# The byte code is compiled once here (the containers write none).
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v 0 \
    && python -m compileall -q manage.py sandboxes playground
USER playground
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "playground.asgi:application"]
