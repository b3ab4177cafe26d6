#!/bin/bash
# No image registry is reachable from the playground: make a small `busybox`
# image here, from the static busybox binary every docker instance has.
set -e
start-dockerd --wait 60
if ! docker image inspect busybox:latest >/dev/null 2>&1; then
    dir="$(mktemp -d)"
    cp /bin/busybox "$dir/busybox"
    cat > "$dir/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["sh"]
DOCKERFILE
    docker build -q -t busybox:latest "$dir" >/dev/null
    rm -rf "$dir"
fi
echo "$(hostname): the image busybox:latest is ready"
