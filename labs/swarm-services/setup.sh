#!/bin/bash
# On every node: the engine's API is also served on TCP port 2375 of the
# lab's private network (as in the lab "The client and the daemon"), so a
# worker can ask the manager for its join token; and a small `busybox` image,
# since no registry is reachable from the playground (swarm services then use
# each node's own copy).
set -e
start-dockerd --wait 60
cat > /usr/local/sbin/docker-tcp <<'PY'
#!/usr/bin/python3
"""Serve the Docker socket on TCP port 2375 (byte for byte)."""
import socket, socketserver, threading

def pipe(src, dst):
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

class Forward(socketserver.BaseRequestHandler):
    def handle(self):
        engine = socket.socket(socket.AF_UNIX)
        engine.connect("/var/run/docker.sock")
        back = threading.Thread(target=pipe, args=(engine, self.request), daemon=True)
        back.start()
        pipe(self.request, engine)
        back.join()
        engine.close()

class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

Server(("0.0.0.0", 2375), Forward).serve_forever()
PY
chmod +x /usr/local/sbin/docker-tcp
curl -sf http://localhost:2375/_ping >/dev/null 2>&1 || setsid /usr/local/sbin/docker-tcp </dev/null >/var/log/docker-tcp.log 2>&1 &
if ! docker image inspect busybox:latest >/dev/null 2>&1; then
    dir="$(mktemp -d)"
    cp /bin/busybox "$dir/busybox"
    printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nCMD ["sh"]\n' > "$dir/Dockerfile"
    docker build -q -t busybox:latest "$dir" >/dev/null
    rm -rf "$dir"
fi
for _ in $(seq 50); do curl -sf http://localhost:2375/_ping >/dev/null && break; sleep 0.1; done
curl -sf http://localhost:2375/_ping >/dev/null || { cat /var/log/docker-tcp.log; exit 1; }
echo "$(hostname): ready"
